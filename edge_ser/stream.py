"""The streaming engine: 16 kHz audio in, one `Event` per hop out.

Audio -> `StreamingLogMel` (each STFT frame once) -> a fixed ring of the last ``n_frames`` log-mel frames ->
every hop (default 0.5 s) the model scores the window (the model's ``window_seconds``; before the ring is full,
the frames so far, padded by ``features.fit_frames``) -> scores smoothed over recent hops -> an Event.
A speech gate on the hop's audio (energy against an adaptive noise floor) says whether someone speaks; a silent
hop has ``speech=False``, no emotion, and no model call.

Robot code uses it without the CLI::

    engine = Engine(load_model("fine15-cnn"))
    for event in engine.events(MicrophoneSource()):      # or engine.feed(block) from your own audio loop
        if event.speech:
            print(event.emotion, event.intensity, event.confidence)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .frontend import StreamingLogMel
from .labels import split_label


@dataclass(frozen=True)
class GateConfig:
    """Energy speech gate with an adaptive noise floor (all levels in dBFS of 32 ms frames).

    A frame is active when its level exceeds both ``noise_floor + margin_db`` and ``min_level_db``; a hop is speech
    when at least ``min_active`` of its frames are active.  The noise floor is the ``floor_percentile``-th
    percentile of the last ``floor_seconds`` of frame levels (of what has been heard so far, at the start): steady
    noise stays within a few dB of it, speech has syllables well above the quiet gaps between them.
    """

    frame_samples: int = 512
    margin_db: float = 8.0
    min_level_db: float = -55.0
    min_active: float = 0.15
    floor_seconds: float = 8.0
    floor_percentile: float = 10.0
    enabled: bool = True


@dataclass(frozen=True)
class SmoothingConfig:
    """Exponential moving average of the label scores over hops: ``s = alpha * p + (1 - alpha) * s``.

    ``alpha=1`` turns smoothing off.  The average restarts after ``reset_after_silent_hops`` silent hops in a row.
    """

    alpha: float = 0.5
    reset_after_silent_hops: int = 2


@dataclass
class Event:
    """One hop's result.  ``t``: seconds of audio consumed; ``window``: [t0, t1], the centres of the first and last
    log-mel frames the model saw; ``latency_ms``: compute time from the hop's last sample to this event."""

    t: float
    window: tuple[float, float]
    speech: bool
    label: str | None = None
    emotion: str | None = None
    intensity: str | None = None
    confidence: float | None = None
    latency_ms: float = 0.0
    scores: dict | None = None
    level_db: float = -120.0
    noise_floor_db: float = -120.0
    ts: float = field(default_factory=time.time)  # wall-clock UNIX time of the hop's end (see Recognizer.feed)

    def to_dict(self) -> dict:
        return {"t": round(self.t, 3), "ts": round(self.ts, 3), "window": [round(self.window[0], 3), round(self.window[1], 3)],
                "speech": self.speech, "label": self.label, "emotion": self.emotion, "intensity": self.intensity,
                "confidence": self.confidence, "latency_ms": round(self.latency_ms, 2), "scores": self.scores,
                "level_db": round(self.level_db, 1), "noise_floor_db": round(self.noise_floor_db, 1)}


@dataclass
class StatusEvent:
    """Something about the stream rather than the speech: ``state`` is ``device_lost``, ``reconnecting``,
    ``reconnected``, ``overflow``, ``waiting_for_device``, ``device_found``, ``backend`` (a line the audio
    library printed), ...; ``message`` says it in words; ``t`` is the audio time when it happened (None before any
    audio), ``ts`` the wall-clock UNIX time; ``details`` adds state-specific fields (counts, delays)."""

    state: str
    message: str = ""
    t: float | None = None
    ts: float = field(default_factory=time.time)
    details: dict = field(default_factory=dict)

    speech = False  # so code that looks at ``event.speech`` treats a status as "no speech"

    def to_dict(self) -> dict:
        return {"type": "status", "state": self.state, "message": self.message,
                "t": None if self.t is None else round(self.t, 3), "ts": round(self.ts, 3), **self.details}


class SpeechGate:
    """Frame levels -> speech/no speech per hop, with the noise floor tracked in a fixed ring."""

    def __init__(self, config: GateConfig = GateConfig(), sample_rate: int = 16000):
        self.config = config
        self.sample_rate = sample_rate
        self.frame_seconds = config.frame_samples / sample_rate
        self._ring = np.empty(max(1, int(round(config.floor_seconds / self.frame_seconds))), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(self.config.frame_samples, dtype=np.float64)
        self._n_pending = 0
        self._ring_count = 0
        self._ring_pos = 0
        self._hop_levels: list[float] = []

    def push(self, samples: np.ndarray) -> None:
        """Add samples; complete frames are measured (memory: one frame of leftover samples)."""
        fs = self.config.frame_samples
        i = 0
        n = len(samples)
        while i < n:
            take = min(fs - self._n_pending, n - i)
            self._pending[self._n_pending:self._n_pending + take] = samples[i:i + take]
            self._n_pending += take
            i += take
            if self._n_pending == fs:
                self._add_level(_dbfs(self._pending))
                self._n_pending = 0

    def _add_level(self, level: float) -> None:
        self._hop_levels.append(level)
        self._ring[self._ring_pos] = level
        self._ring_pos = (self._ring_pos + 1) % len(self._ring)
        self._ring_count = min(self._ring_count + 1, len(self._ring))

    @property
    def noise_floor(self) -> float:
        cfg = self.config
        if self._ring_count == 0:
            return -120.0
        return float(np.percentile(self._ring[:self._ring_count], cfg.floor_percentile))

    def decide(self) -> tuple[bool, float, float]:
        """Close the hop: (speech, hop level dBFS, noise floor dBFS)."""
        cfg = self.config
        levels = np.array(self._hop_levels) if self._hop_levels else np.array([-120.0])
        self._hop_levels = []
        floor = self.noise_floor
        threshold = max(floor + cfg.margin_db, cfg.min_level_db)
        active = float(np.mean(levels > threshold))
        level = float(10 * np.log10(np.mean(10 ** (levels / 10))))
        speech = (active >= cfg.min_active) if cfg.enabled else True
        return speech, level, floor


class LoudestFrame:
    """The level of the loudest frame of a recording fed in blocks of any size (dBFS of ``frame_samples`` frames,
    as the speech gate measures them; a last partial frame counts as one padded with zeros, so a file shorter than
    a frame is measured too).  `classify` calls a file silent when no frame is louder than the gate's
    ``min_level_db``."""

    def __init__(self, frame_samples: int = GateConfig.frame_samples):
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.float64)
        self._loudest = 0.0  # mean square of the loudest frame so far

    def push(self, samples: np.ndarray) -> None:
        y = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64).reshape(-1)])
        n = len(y) - len(y) % self.frame_samples
        if n:
            frames = y[:n].reshape(-1, self.frame_samples)
            self._loudest = max(self._loudest, float(np.einsum("ij,ij->i", frames, frames).max()) / self.frame_samples)
        self._pending = y[n:]

    @property
    def level_db(self) -> float:
        loudest = self._loudest
        if len(self._pending):  # zero-padded to a whole frame
            loudest = max(loudest, float(np.dot(self._pending, self._pending)) / self.frame_samples)
        return float(_level_db(loudest))


def _dbfs(frame: np.ndarray) -> float:
    return _level_db(float(np.mean(frame * frame)))


def _level_db(mean_square: float) -> float:
    return max(-120.0, 10.0 * np.log10(mean_square + 1e-12) + 3.0103)  # +3 dB: a full-scale sine is 0 dBFS


class FrameRing:
    """The last ``capacity`` log-mel frames in a preallocated array."""

    def __init__(self, n_mels: int, capacity: int):
        self._buf = np.zeros((n_mels, capacity), dtype=np.float32)
        self.capacity = capacity
        self.count = 0  # frames written in total
        self._pos = 0

    def reset(self) -> None:
        self.count = 0
        self._pos = 0

    def extend(self, frames: np.ndarray) -> None:
        k = frames.shape[1]
        if k >= self.capacity:
            self._buf[:] = frames[:, k - self.capacity:]
            self._pos = 0
        else:
            first = min(k, self.capacity - self._pos)
            self._buf[:, self._pos:self._pos + first] = frames[:, :first]
            self._buf[:, :k - first] = frames[:, first:]
            self._pos = (self._pos + k) % self.capacity
        self.count += k

    def window(self) -> np.ndarray:
        """The frames held, oldest first: ``(n_mels, min(count, capacity))``."""
        if self.count < self.capacity:
            return self._buf[:, :self.count].copy()
        return np.concatenate([self._buf[:, self._pos:], self._buf[:, :self._pos]], axis=1)


class Engine:
    """Feeds 16 kHz mono audio through the frontend, gate, model and smoothing; one Event per hop."""

    def __init__(self, model, hop_seconds: float = 0.5, gate: GateConfig | None = None,
                 smoothing: SmoothingConfig | None = None, warmup: bool = True, adapt: bool = True):
        if not hop_seconds > 0:
            raise ValueError("hop_seconds must be positive")
        self.model = model
        self.config = model.frontend
        self.sample_rate = self.config.sample_rate
        self.hop_seconds = float(hop_seconds)
        self.hop_samples = max(1, int(round(hop_seconds * self.sample_rate)))
        self.gate = SpeechGate(gate or GateConfig(), self.sample_rate)
        self.smoothing = smoothing or SmoothingConfig()
        if not 0 < self.smoothing.alpha <= 1:
            raise ValueError("smoothing alpha must be in (0, 1]")
        self.frontend = StreamingLogMel(self.config)
        self.ring = FrameRing(self.config.n_mels, model.n_frames)
        self.warmup_s = model.warmup() if warmup and hasattr(model, "warmup") else 0.0
        # speaker adaptation (models trained with speaker normalisation): statistics of the speech heard so far;
        # kept across reset() (same room, same people), cleared by reset_adaptation()
        self.adapt = bool(adapt) and model.speaker_norm is not None
        self.reset_adaptation()
        self.reset()

    def reset_adaptation(self) -> None:
        self.adaptation = self.model.speaker_stats() if self.adapt else None

    def reset(self) -> None:
        self.frontend.reset()
        self.ring.reset()
        self.gate.reset()
        self.samples = 0
        self.hops = 0
        self._to_hop = self.hop_samples
        self._smoothed: np.ndarray | None = None
        self._silent_run = 0
        self._compute_s = 0.0

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def feed(self, samples) -> list[Event]:
        """Consume audio (16 kHz mono, float in [-1, 1]); return the events of the hops it completes."""
        y = np.asarray(samples, dtype=np.float32).reshape(-1)
        if y.size and not np.all(np.isfinite(y)):
            y = np.nan_to_num(y, nan=0.0, posinf=1.0, neginf=-1.0)
        events = []
        i = 0
        while i < len(y):
            take = min(self._to_hop, len(y) - i)
            piece = y[i:i + take]
            t0 = time.perf_counter()
            self.ring.extend(self.frontend.push(piece))
            self.gate.push(piece)
            self._compute_s += time.perf_counter() - t0
            i += take
            self.samples += take
            self._to_hop -= take
            if self._to_hop == 0:
                events.append(self._hop())
                self._to_hop = self.hop_samples
        return events

    def _hop(self) -> Event:
        start = time.perf_counter()
        self.hops += 1
        speech, level, floor = self.gate.decide()
        db = self.ring.window()
        cfg = self.config
        last = self.ring.count - 1
        first = max(0, self.ring.count - db.shape[1])
        window = (first * cfg.hop_length / cfg.sample_rate, max(0, last) * cfg.hop_length / cfg.sample_rate)
        event = Event(t=self.samples / self.sample_rate, window=window, speech=speech, level_db=level,
                      noise_floor_db=floor)
        if speech and db.shape[1] > 0:
            self._silent_run = 0
            x = self.model.input_for(db)[None]
            if self.adaptation is not None and db.shape[1] >= self.model.n_frames:  # full windows of speech only
                self.adaptation.update(x)
            probs = self.model.predict(self.model.normalize(x, self.adaptation))[0]
            a = self.smoothing.alpha
            self._smoothed = probs if self._smoothed is None else a * probs + (1 - a) * self._smoothed
            s = self._smoothed
            k = int(np.argmax(s))
            event.label = self.model.labels[k]
            event.emotion, event.intensity = split_label(event.label)
            event.confidence = round(float(s[k]), 4)
            event.scores = {lab: round(float(p), 4) for lab, p in zip(self.model.labels, s)}
        else:
            event.speech = False
            self._silent_run += 1
            if self._silent_run >= self.smoothing.reset_after_silent_hops:
                self._smoothed = None
        event.latency_ms = 1000.0 * (self._compute_s + time.perf_counter() - start)
        self._compute_s = 0.0
        return event

    def finish(self) -> list[Event]:
        """At the end of a finite source: one last event for the partial hop since the previous event, if any."""
        if self._to_hop == self.hop_samples:
            return []
        event = self._hop()
        self._to_hop = self.hop_samples
        return [event]

    def events(self, source: Iterable[np.ndarray], duration: float | None = None) -> Iterator[Event]:
        """Events from a source of audio blocks.  Stops after ``duration`` seconds of audio (events every hop), or
        at the end of the source, where a partial last hop gives one more event (its ``t`` is the source's end)."""
        limit = None if duration is None else int(round(duration * self.sample_rate))
        for block in source:
            if limit is not None:
                block = block[:max(0, limit - self.samples)]
            yield from self.feed(block)
            if limit is not None and self.samples >= limit:
                return
        yield from self.finish()

    def run(self, source: Iterable[np.ndarray], callback: Callable[[Event], object],
            duration: float | None = None) -> int:
        """Call ``callback(event)`` for every event; returns the number of events."""
        n = 0
        for event in self.events(source, duration):
            callback(event)
            n += 1
        return n

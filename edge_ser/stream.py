"""The streaming engine: 16 kHz audio in, one `Event` per hop out.

Audio is gathered into hops (default 0.5 s); once per hop it goes through `StreamingLogMel` (each STFT frame once)
and the speech detector (`edge_ser.vad`, on those frames), which marks the frames that hold speech. Only speech
frames (and ``context_frames`` around them) enter a fixed ring of the last ``n_frames``; the model scores that ring
(the model's ``window_seconds`` of speech; before it is full, the speech so far stretched evenly over the window,
`features.fit_frames` with ``pad="stretch"`` (``GateConfig.fill``), whatever the model's own ``input.pad``), so a
window is scored from its speech, not from the silence around it. (Centre-padding the speech so far with silence, as
the shipped models pad a short clip, read nearly every utterance of the held-out sessions as ``neutral``: 314 of 326
clean hops; repeating it from its first frame, the rule before ``stretch``, let a few frames more or less at an
utterance's edges move the label, so the same voice 20 dB quieter kept its emotion less often; docs/room.md.) Until
``min_speech_seconds`` of speech have been heard in the current utterance an event says ``speech: true`` with
``label: null``; a silent hop has ``speech=False``, no emotion and no model call, and ends the utterance: the
smoothing and the speech ring restart, so no emotion is carried across a silence.

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

from . import features
from .errors import UserError
from .frontend import FrontendConfig, StreamingLogMel
from .labels import intensity_score, split_label
from .vad import CLIP_LEVEL, CLIP_SHARE, DETECTORS

VAD_METHODS = tuple(DETECTORS)


@dataclass(frozen=True)
class GateConfig:
    """The speech gate: a detector (`edge_ser.vad`) marks speech frames; a hop is speech when at least
    ``min_active`` of its frames are.  Levels are dBFS (a full-scale sine is 0 dBFS).

    vad: ``spectral`` (default: per-band noise floors on the log-mel frames, holds in fan/pink noise and babble)
        or ``energy`` (the frame level against a percentile of recent levels: the original gate).
    margin_db: how far above the noise a frame must rise to be speech; None = the detector's default
        (spectral 2 dB of band rise above the noise's own, energy 8 dB of level above the floor).
    min_level_db: a frame quieter than this is never speech (-70 dBFS; a quiet talker two metres from a
        laptop microphone peaks around -45, the detector's own floor does the rest).
    min_speech_seconds: speech heard in the current utterance before an event carries an emotion (0.75 s; `classify`
        needs as much audio above ``min_level_db``).
    context_frames: frames either side of a speech frame also given to the model (2 = 64 ms: word edges).
    fill: how the speech heard so far fills the model's window before there is a whole window of it
        (`features.PADS`): ``stretch`` (default: each frame repeated evenly, so every frame weighs about the same
        wherever the utterance starts or ends), ``repeat`` (from the first frame, the rule before) or ``silence``.
    floor_seconds: the noise floor's memory (3 s: a fan switched on stops being speech after it);
        floor_percentile: the energy detector's percentile.
    floor_guard: the floors never learn from digital silence (< -100 dBFS) or clipped frames (False: the original
        energy gate, for comparison).
    enabled: False calls every hop and frame speech.
    """

    frame_samples: int = 512
    margin_db: float | None = None
    min_level_db: float = -70.0
    min_active: float = 0.15
    floor_seconds: float = 3.0
    floor_percentile: float = 10.0
    enabled: bool = True
    vad: str = "spectral"
    min_speech_seconds: float = 0.75
    context_frames: int = 2
    floor_guard: bool = True
    fill: str = "stretch"

    def validate(self) -> "GateConfig":
        """UserError for a bad option (the CLI turns it into one ``error:`` line)."""
        if self.vad not in DETECTORS:
            raise UserError(f"--vad must be one of {', '.join(DETECTORS)}, got {self.vad!r}")
        if self.margin_db is not None and not (np.isfinite(self.margin_db) and 0 <= self.margin_db <= 40):
            raise UserError(f"--gate-margin must be between 0 and 40 dB, got {self.margin_db:g}")
        if not (np.isfinite(self.min_level_db) and -120 <= self.min_level_db <= 0):
            raise UserError(f"--min-level must be between -120 and 0 dBFS, got {self.min_level_db:g}")
        if not (np.isfinite(self.min_speech_seconds) and 0 <= self.min_speech_seconds <= 30):
            raise UserError(f"--min-speech must be between 0 and 30 seconds, got {self.min_speech_seconds:g}")
        if not 0 < self.min_active <= 1:
            raise UserError(f"min_active must be in (0, 1], got {self.min_active:g}")
        if not all(isinstance(v, (int, np.integer)) for v in (self.frame_samples, self.context_frames)):
            raise UserError("frame_samples and context_frames must be whole numbers")
        if self.fill not in features.PADS:
            raise UserError(f"fill must be one of {', '.join(features.PADS)}, got {self.fill!r}")
        if not self.floor_seconds > 0 or self.frame_samples <= 0 or self.context_frames < 0:
            raise UserError("floor_seconds and frame_samples must be positive, context_frames not negative")
        return self


@dataclass(frozen=True)
class SmoothingConfig:
    """Exponential moving average of the label scores over hops: ``s = alpha * p + (1 - alpha) * s``.

    ``alpha=1`` turns smoothing off.  The average (and the utterance's speech) restarts after
    ``reset_after_silent_hops`` silent hops in a row (1: any silent hop ends the utterance).
    """

    alpha: float = 0.5
    reset_after_silent_hops: int = 1


@dataclass
class Event:
    """One hop's result.  ``t``: seconds of audio consumed; ``window``: [t0, t1], the centres of the first and last
    log-mel frames the model saw (speech frames only); ``speech_seconds``: speech heard in the current utterance
    (label etc. stay None until it reaches the gate's ``min_speech_seconds``); ``latency_ms``: compute time of the
    hop (frontend, detector, model, smoothing)."""

    t: float
    window: tuple[float, float]
    speech: bool
    label: str | None = None
    emotion: str | None = None
    intensity: str | None = None
    intensity_score: float | None = None  # edge_ser.labels.intensity_score of the smoothed probabilities
    confidence: float | None = None
    latency_ms: float = 0.0
    scores: dict | None = None
    level_db: float = -120.0
    noise_floor_db: float = -120.0
    speech_seconds: float = 0.0
    ts: float = field(default_factory=time.time)  # wall-clock UNIX time of the hop's end (see Recognizer.feed)

    def to_dict(self) -> dict:
        return {"t": round(self.t, 3), "ts": round(self.ts, 3),
                "window": [round(self.window[0], 3), round(self.window[1], 3)], "speech": self.speech,
                "speech_seconds": round(self.speech_seconds, 3), "label": self.label, "emotion": self.emotion,
                "intensity": self.intensity, "intensity_score": self.intensity_score,
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
    """Audio (and its log-mel frames) -> speech frames and a speech/no speech decision per hop.

    ``push(samples, frames)`` once per hop with the hop's samples and the log-mel frames the frontend made of them
    (without ``frames`` the gate runs its own frontend); ``active`` then holds the speech flag of each of those
    frames, and ``decide()`` closes the hop.  Frame ``k`` (centred on sample ``k * hop_length``) is measured on
    the ``2 * frame_samples`` samples around its centre."""

    def __init__(self, config: GateConfig = GateConfig(), sample_rate: int = 16000,
                 frontend: FrontendConfig | None = None):
        self.config = config.validate()
        self.sample_rate = sample_rate
        self.frontend_config = frontend or FrontendConfig(sample_rate=sample_rate)
        fc = self.frontend_config
        self.frame_seconds = fc.hop_length / sample_rate
        self.detector = DETECTORS[config.vad](config, self.frame_seconds, fc.n_mels, sample_rate, fc.fmin, fc.fmax)
        self._level_floor = self.detector  # its noise_floor (dBFS) is reported in events
        self._own_frontend: StreamingLogMel | None = None
        self.reset()

    def reset(self) -> None:
        fs = self.config.frame_samples
        self._pending = np.zeros(fs, dtype=np.float64)
        self._n_pending = 0
        self._blocks = 0                                  # complete frame_samples blocks measured
        self._block_ms = np.zeros(256)                    # ring: mean square of block j at j % 256
        self._block_clip = np.zeros(256, dtype=bool)
        self._frames = 0                                  # log-mel frames judged
        self._hop_levels: list[float] = []
        self._hop_active: list[np.ndarray] = []
        self.active = np.zeros(0, dtype=bool)
        self.detector.reset()
        if self._own_frontend is not None:
            self._own_frontend.reset()

    @property
    def noise_floor(self) -> float:
        return self._level_floor.noise_floor

    def _measure(self, samples: np.ndarray) -> None:
        fs = self.config.frame_samples
        y = np.asarray(samples, dtype=np.float64).reshape(-1)
        if self._n_pending:
            take = min(fs - self._n_pending, len(y))
            self._pending[self._n_pending:self._n_pending + take] = y[:take]
            self._n_pending += take
            y = y[take:]
            if self._n_pending < fs:
                return
            self._store(self._pending[None])
            self._n_pending = 0
        n = len(y) - len(y) % fs
        if n:
            self._store(y[:n].reshape(-1, fs))
        rest = len(y) - n
        self._pending[:rest] = y[n:]
        self._n_pending = rest

    def _store(self, blocks: np.ndarray) -> None:
        ms = np.einsum("ij,ij->i", blocks, blocks) / blocks.shape[1]
        clip = np.mean(np.abs(blocks) >= CLIP_LEVEL, axis=1) >= CLIP_SHARE
        idx = (self._blocks + np.arange(len(ms))) % len(self._block_ms)
        self._block_ms[idx] = ms
        self._block_clip[idx] = clip
        self._blocks += len(ms)
        self._hop_levels.extend(_level_db(ms).tolist())

    def _frame_levels(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Levels (dBFS) and clipped flags of the next ``k`` log-mel frames: blocks j-1 and j around frame j."""
        j = self._frames + np.arange(k)
        n = len(self._block_ms)
        j = np.minimum(j, max(self._blocks - 1, 0))  # the frontend's last frames (flush) reach past the blocks
        prev = np.maximum(j - 1, 0)
        ms = 0.5 * (self._block_ms[j % n] + self._block_ms[prev % n])
        return _level_db(ms), self._block_clip[j % n] | self._block_clip[prev % n]

    def push(self, samples: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        """Add samples and their log-mel frames; returns (and keeps in ``active``) the frames' speech flags."""
        self._measure(samples)
        if frames is None:
            if self._own_frontend is None:
                self._own_frontend = StreamingLogMel(self.frontend_config)
            frames = self._own_frontend.push(np.asarray(samples, dtype=np.float32))
        k = frames.shape[1]
        levels, clipped = self._frame_levels(k)
        self._frames += k
        active = self.detector.push(frames, levels, clipped) if k else np.zeros(0, dtype=bool)
        if not self.config.enabled:
            active = np.ones(k, dtype=bool)
        self.active = active
        self._hop_active.append(active)
        return active

    def decide(self) -> tuple[bool, float, float]:
        """Close the hop: (speech, hop level dBFS, noise floor dBFS)."""
        cfg = self.config
        levels = np.array(self._hop_levels) if self._hop_levels else np.array([-120.0])
        active = np.concatenate(self._hop_active) if self._hop_active else np.zeros(0, dtype=bool)
        self._hop_levels, self._hop_active = [], []
        level = float(10 * np.log10(np.mean(10 ** (levels / 10))))
        speech = (active.size > 0 and float(active.mean()) >= cfg.min_active) if cfg.enabled else True
        return bool(speech), level, self.noise_floor


class LoudestFrame:
    """The level of the loudest frame of a recording fed in blocks of any size (dBFS of ``frame_samples`` frames,
    as the speech gate measures them; a last partial frame counts as one padded with zeros, so a file shorter than
    a frame is measured too).  `classify` calls a file silent when no frame is louder than the gate's
    ``min_level_db``, and gives no emotion when less than ``min_speech_seconds`` of it (``active_seconds``: frames
    louder than ``min_level_db``) is loud enough to be speech."""

    def __init__(self, frame_samples: int = GateConfig.frame_samples, min_level_db: float = GateConfig.min_level_db,
                 sample_rate: int = 16000):
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        self._threshold = 10 ** ((min_level_db - 3.0103) / 10)  # mean square of a frame at min_level_db
        self._pending = np.zeros(0, dtype=np.float64)
        self._loudest = 0.0  # mean square of the loudest frame so far
        self._active = 0     # whole frames louder than min_level_db

    def push(self, samples: np.ndarray) -> None:
        y = np.concatenate([self._pending, np.asarray(samples, dtype=np.float64).reshape(-1)])
        n = len(y) - len(y) % self.frame_samples
        if n:
            frames = y[:n].reshape(-1, self.frame_samples)
            ms = np.einsum("ij,ij->i", frames, frames) / self.frame_samples
            self._loudest = max(self._loudest, float(ms.max()))
            self._active += int(np.count_nonzero(ms > self._threshold))
        self._pending = y[n:]

    @property
    def active_seconds(self) -> float:
        """Seconds of whole frames louder than ``min_level_db`` (a last partial frame counts for its length)."""
        extra = len(self._pending) if len(self._pending) and (
            float(np.dot(self._pending, self._pending)) / self.frame_samples > self._threshold) else 0
        return (self._active * self.frame_samples + extra) / self.sample_rate

    @property
    def level_db(self) -> float:
        loudest = self._loudest
        if len(self._pending):  # zero-padded to a whole frame
            loudest = max(loudest, float(np.dot(self._pending, self._pending)) / self.frame_samples)
        return float(_level_db(loudest))


def _dbfs(frame: np.ndarray) -> float:
    return _level_db(float(np.mean(frame * frame)))


def _level_db(mean_square):
    """dBFS of a mean square (a number or an array): +3 dB so that a full-scale sine is 0 dBFS, floored at -120."""
    level = np.maximum(-120.0, 10.0 * np.log10(np.asarray(mean_square, dtype=np.float64) + 1e-12) + 3.0103)
    return float(level) if level.ndim == 0 else level


class FrameRing:
    """The last ``capacity`` log-mel frames in a preallocated array; ``fill``: how `filled` makes a whole window of
    fewer (`features.PADS`)."""

    def __init__(self, n_mels: int, capacity: int, fill: str = GateConfig.fill):
        self.fill = features.check_pad(fill)
        self._buf = np.zeros((n_mels, capacity), dtype=np.float32)
        self._index = np.zeros(capacity, dtype=np.int64)  # each held frame's number in the stream
        self.capacity = capacity
        self.count = 0  # frames written in total
        self._pos = 0

    def reset(self) -> None:
        self.count = 0
        self._pos = 0

    def extend(self, frames: np.ndarray, index: np.ndarray | None = None) -> None:
        """Append frames (``index``: their frame numbers, default consecutive after the last)."""
        k = frames.shape[1]
        if index is None:
            last = int(self._index[(self._pos - 1) % self.capacity]) if self.count else -1
            index = last + 1 + np.arange(k)
        if k >= self.capacity:
            self._buf[:] = frames[:, k - self.capacity:]
            self._index[:] = index[k - self.capacity:]
            self._pos = 0
        else:
            first = min(k, self.capacity - self._pos)
            self._buf[:, self._pos:self._pos + first] = frames[:, :first]
            self._buf[:, :k - first] = frames[:, first:]
            self._index[self._pos:self._pos + first] = index[:first]
            self._index[:k - first] = index[first:]
            self._pos = (self._pos + k) % self.capacity
        self.count += k

    def index_span(self) -> tuple[int, int]:
        """Frame numbers of the oldest and newest frame held."""
        if self.count == 0:
            return 0, 0
        oldest = 0 if self.count < self.capacity else self._pos
        return int(self._index[oldest]), int(self._index[(self._pos - 1) % self.capacity])

    def window(self) -> np.ndarray:
        """The frames held, oldest first: ``(n_mels, min(count, capacity))``."""
        if self.count < self.capacity:
            return self._buf[:, :self.count].copy()
        return np.concatenate([self._buf[:, self._pos:], self._buf[:, :self._pos]], axis=1)

    def filled(self) -> np.ndarray:
        """A whole window ``(n_mels, capacity)``: the frames held, filled by ``fill`` when fewer than ``capacity``."""
        w = self.window()
        return features.fit_frames(w, self.capacity, self.fill) if w.shape[1] else w


class Engine:
    """Feeds 16 kHz mono audio through the frontend, speech detector, model and smoothing; one Event per hop.

    Audio is gathered until a hop is complete, then the frontend and the detector run once on the whole hop."""

    def __init__(self, model, hop_seconds: float = 0.5, gate: GateConfig | None = None,
                 smoothing: SmoothingConfig | None = None, warmup: bool = True, adapt: bool = True):
        if not hop_seconds > 0:
            raise ValueError("hop_seconds must be positive")
        self.model = model
        self.config = model.frontend
        self.sample_rate = self.config.sample_rate
        self.hop_seconds = float(hop_seconds)
        self.hop_samples = max(1, int(round(hop_seconds * self.sample_rate)))
        self.gate_config = (gate or GateConfig()).validate()
        # The detector's thresholds were set and measured on the default frontend's frames (32 ms, 128 bands): a
        # model with another frontend (e.g. the GE2E encoder's 10 ms, 40 bands) gets the same gate, run on its own
        # frontend, its flags carried over to the model's frames by time (`_model_flags`).
        gate_frontend = FrontendConfig(sample_rate=self.sample_rate, top_db=self.config.top_db)
        self._gate_own = gate_frontend.to_dict() != self.config.to_dict()
        self.gate = SpeechGate(self.gate_config, self.sample_rate, gate_frontend if self._gate_own else self.config)
        # context_frames is in the gate's frames: the same time span in the model's
        self._context = int(round(self.gate_config.context_frames * self.gate.frame_seconds
                                  * self.sample_rate / self.config.hop_length))
        self.smoothing = smoothing or SmoothingConfig()
        if not 0 < self.smoothing.alpha <= 1:
            raise ValueError("smoothing alpha must be in (0, 1]")
        self.frontend = StreamingLogMel(self.config)
        # the current utterance's speech frames
        self.ring = FrameRing(self.config.n_mels, model.n_frames, self.gate_config.fill)
        self._buf = np.zeros(self.hop_samples, dtype=np.float32)
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
        self.gate.reset()
        self.samples = 0
        self.hops = 0
        self._to_hop = self.hop_samples
        self._frames = 0          # log-mel frames made so far
        self._prev_active = np.zeros(0, dtype=bool)  # the previous hop's last frames' flags (context)
        self._gate_flags = np.zeros(0, dtype=bool)   # the gate's last flags, in its own frames (_model_flags)
        self._gate_frames = 0                         # gate frames judged so far
        self._end_utterance()
        self._silent_run = 0

    def _end_utterance(self) -> None:
        """A silence: the utterance's speech is added to the speaker's statistics (if enough was heard and not
        already added), then the smoothing and the speech ring restart."""
        if (self.adaptation is not None and getattr(self, "_unadapted", 0) > 0
                and self.ring.count >= self._min_speech_frames()):
            self.adaptation.update(self.model.input_for(self.ring.filled())[None])
        self.ring.reset()
        self._unadapted = 0
        self._smoothed: np.ndarray | None = None

    def _min_speech_frames(self) -> int:
        return int(np.ceil(self.gate_config.min_speech_seconds * self.sample_rate / self.config.hop_length - 1e-9))

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def speech_seconds(self) -> float:
        """Speech frames heard in the current utterance, in seconds."""
        return self.ring.count * self.config.hop_length / self.sample_rate

    def feed(self, samples) -> list[Event]:
        """Consume audio (16 kHz mono, float in [-1, 1]); return the events of the hops it completes."""
        y = np.asarray(samples, dtype=np.float32).reshape(-1)
        if y.size and not np.all(np.isfinite(y)):
            y = np.nan_to_num(y, nan=0.0, posinf=1.0, neginf=-1.0)
        events = []
        i = 0
        while i < len(y):
            take = min(self._to_hop, len(y) - i)
            at = self.hop_samples - self._to_hop
            self._buf[at:at + take] = y[i:i + take]
            i += take
            self.samples += take
            self._to_hop -= take
            if self._to_hop == 0:
                events.append(self._hop(self._buf))
                self._to_hop = self.hop_samples
        return events

    def _speech_frames(self, frames: np.ndarray, active: np.ndarray) -> None:
        """Add this hop's speech frames (active ones and ``context_frames`` either side, within the hop and from the
        previous hop's last flags) to the ring."""
        c = self._context
        flags = np.concatenate([self._prev_active, active])
        keep = flags.copy()
        for d in range(1, min(c, len(flags) - 1) + 1):
            keep[d:] |= flags[:-d]
            keep[:-d] |= flags[d:]
        sel = np.flatnonzero(keep[len(self._prev_active):])
        if sel.size:
            self.ring.extend(frames[:, sel], index=self._frames + sel)
            self._unadapted += sel.size

    def _model_flags(self, gate_active: np.ndarray, k: int) -> np.ndarray:
        """The speech flags of the model's next ``k`` frames from the gate's flags in its own frames: each model
        frame takes the flag of the gate frame nearest its centre, or the gate's latest one while the gate's
        frames (longer, so later) have not reached it yet."""
        keep = max(256, 2 * len(gate_active) + 64)  # this hop's flags and the previous hop's, whatever the hop
        self._gate_flags = np.concatenate([self._gate_flags, gate_active])[-keep:]
        self._gate_frames += len(gate_active)
        if not self._gate_frames or not k:
            return np.zeros(k, dtype=bool)
        centre = (self._frames + np.arange(k)) * self.config.hop_length
        g = np.minimum(np.rint(centre / self.gate.frontend_config.hop_length).astype(np.int64), self._gate_frames - 1)
        first = self._gate_frames - len(self._gate_flags)
        return self._gate_flags[np.clip(g - first, 0, len(self._gate_flags) - 1)]

    def _hop(self, audio: np.ndarray) -> Event:
        start = time.perf_counter()
        self.hops += 1
        frames = self.frontend.push(audio)
        if self._gate_own:
            active = self._model_flags(self.gate.push(audio), frames.shape[1])
        else:
            active = self.gate.push(audio, frames)
        speech, level, floor = self.gate.decide()
        cfg = self.config
        event = Event(t=self.samples / self.sample_rate, window=(0.0, 0.0), speech=speech, level_db=level,
                      noise_floor_db=floor)
        x = None  # this hop's model input, computed once (adaptation and scoring see the same window)
        if speech:
            self._silent_run = 0
            self._speech_frames(frames, active)
            n = self.model.n_frames
            if self.adaptation is not None and self._unadapted >= n:  # a full window of new speech
                x = self.model.input_for(self.ring.filled())[None]
                self.adaptation.update(x)
                self._unadapted = 0
        else:
            self._silent_run += 1
            if self._silent_run >= self.smoothing.reset_after_silent_hops:
                self._end_utterance()
        c = self._context
        self._prev_active = active[len(active) - c:] if c else active[:0]
        self._frames += frames.shape[1]
        held = min(self.ring.count, self.ring.capacity)
        event.speech_seconds = self.speech_seconds if speech else 0.0
        if held:
            first, last = self.ring.index_span()
            event.window = (first * cfg.hop_length / cfg.sample_rate, last * cfg.hop_length / cfg.sample_rate)
        if speech and held and self.ring.count >= self._min_speech_frames():
            if x is None:
                x = self.model.input_for(self.ring.filled())[None]
            probs = self.model.predict(self.model.normalize(x, self.adaptation))[0]
            a = self.smoothing.alpha
            self._smoothed = probs if self._smoothed is None else a * probs + (1 - a) * self._smoothed
            s = self._smoothed
            k = int(np.argmax(s))
            event.label = self.model.labels[k]
            event.emotion, event.intensity = split_label(event.label)
            event.intensity_score = intensity_score(self.model.labels, s)
            event.confidence = round(float(s[k]), 4)
            event.scores = {lab: round(float(p), 4) for lab, p in zip(self.model.labels, s)}
        event.latency_ms = 1000.0 * (time.perf_counter() - start)
        return event

    def finish(self) -> list[Event]:
        """At the end of a finite source: one last event for the partial hop since the previous event, if any."""
        if self._to_hop == self.hop_samples:
            return []
        n = self.hop_samples - self._to_hop
        event = self._hop(self._buf[:n].copy())
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

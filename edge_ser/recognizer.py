"""The Python entry point: `Recognizer`, one object for streaming audio, the microphone and whole clips.

    import edge_ser
    rec = edge_ser.Recognizer()                      # the model `edge-ser listen` would pick (profiles), hop 0.5 s
    for event in rec.feed(block, sample_rate=48000): # int16/int32/float32/float64, mono or (frames, channels)
        print(event.to_dict())
    for item in rec.listen():                        # the microphone: Event and StatusEvent objects
        ...
    result = rec.classify("clip.wav")                # or an array with sample_rate=; a Result

The rules `classify` and `listen` follow live here, the CLI only parses and prints: which model the settings and
profile choose (`choose_settings`), how any dtype/rate/channel count becomes the model's 16 kHz mono float
(`to_mono_float`, soxr resampling as it streams), the silence rule (a clip with no frame above the speech gate's
``min_level_db`` is silence, with no emotion), and speaker adaptation (`ADAPT_MODES` for clips; a stream adapts to
the speech heard so far in the session unless ``adapt=False``).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .audio import StreamResampler, resample
from .errors import InvalidAudio, UserError
from .stream import Engine, Event, GateConfig, LoudestFrame, SmoothingConfig, StatusEvent

log = logging.getLogger("edge_ser.recognizer")

__all__ = ["Recognizer", "Result", "Event", "StatusEvent", "choose_settings", "to_mono_float", "expand_paths",
           "ADAPT_MODES"]

ADAPT_MODES = ("file", "together", "none")  # clips: each adapts to itself / all are one speaker / population stats
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus", ".caf", ".w64"}

# samples handed to feed/classify: dtype -> the value of full scale
_FULL_SCALE = {"int16": 32768.0, "int32": 2147483648.0, "float32": 1.0, "float64": 1.0}
MIN_RATE, MAX_RATE = 1000, 768000
MAX_CHANNELS = 64
FLOAT_PEAK_LIMIT = 4.0  # float samples far beyond full scale are integers in disguise (int16 values as float)


# --- settings ------------------------------------------------------------------------------------------------

def choose_settings(profile: str | None = None, model: str | os.PathLike | None = None, fmt: str | None = None,
                    threads: int | None = None, hop: float | None = None):
    """`edge_ser.settings.RuntimeSettings` for these choices, as ``listen``/``classify`` use them (the policy is
    `edge_ser.settings.runtime_settings`: explicit options over the profile's, the defaults without a profile,
    ``auto`` measures this machine).  UserError for an unknown profile or a bad option."""
    from .settings import runtime_settings
    return runtime_settings(profile, model=None if model is None else str(model), fmt=fmt, threads=threads,
                            hop_seconds=hop)


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; a directory stands for the audio files under it (sorted; an empty one stays, to be
    reported as an error)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            out.extend(found or [p])
        else:
            out.append(p)
    return out


# --- samples from Python -------------------------------------------------------------------------------------

def check_rate(sample_rate, what: str = "sample_rate") -> int:
    """A sample rate as an int; InvalidAudio unless it is a whole number of Hz in [1000, 768000]."""
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, float, np.integer,
                                                                                   np.floating)):
        raise InvalidAudio(f"{what} must be a number of Hz, got a {type(sample_rate).__name__}")
    rate = float(sample_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise InvalidAudio(f"{what} must be a positive number of Hz, got {rate:g}")
    if rate != int(rate):
        raise InvalidAudio(f"{what} must be a whole number of Hz, got {rate:g}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidAudio(f"{what} must be from {MIN_RATE} to {MAX_RATE} Hz, got {int(rate)}")
    return int(rate)


def to_mono_float(samples, what: str = "samples") -> np.ndarray:
    """Samples as float32 mono in [-1, 1]: int16 and int32 scaled from full scale, float32/float64 as they are,
    ``(frames, channels)`` averaged.  InvalidAudio (a ValueError) for anything else, its message naming the type,
    dtype or shape, never the data."""
    if isinstance(samples, (bytes, bytearray, memoryview, str)):
        raise InvalidAudio(f"{what} must be a numpy array of samples, not {type(samples).__name__} (raw 16-bit PCM "
                           "bytes: np.frombuffer(data, dtype='<i2'))")
    if isinstance(samples, np.generic):
        samples = np.asarray(samples)
    if not isinstance(samples, np.ndarray):
        if not isinstance(samples, (list, tuple)):
            raise InvalidAudio(f"{what} must be a numpy array of samples, not {type(samples).__name__}")
        try:
            samples = np.asarray(samples, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidAudio(f"{what}: a {type(samples).__name__} that is not a list of numbers (or of "
                               "per-channel rows of numbers)") from None
    name = samples.dtype.name
    if name not in _FULL_SCALE:
        raise InvalidAudio(f"{what} must be int16, int32, float32 or float64, got {name}")
    if samples.ndim == 2:
        if not 1 <= samples.shape[1] <= MAX_CHANNELS:
            hint = " (channel-first audio? pass samples.T)" if samples.shape[0] <= MAX_CHANNELS else ""
            raise InvalidAudio(f"{what} must be mono or (frames, channels) with 1 to {MAX_CHANNELS} channels, got "
                               f"shape {samples.shape}{hint}")
    elif samples.ndim != 1:
        raise InvalidAudio(f"{what} must be mono or (frames, channels), got {samples.ndim} dimensions "
                           f"(shape {samples.shape})")
    if samples.size == 0:
        return np.zeros(0, dtype=np.float32)
    if samples.dtype.kind == "f":
        if not np.all(np.isfinite(samples)):
            raise InvalidAudio(f"{what} contain NaN or infinite values")
        peak = float(np.max(np.abs(samples)))
        if peak > FLOAT_PEAK_LIMIT:
            raise InvalidAudio(f"float {what} must be in [-1, 1], got a peak of {peak:.3g} (integer PCM as floats? "
                               "pass the int16 array itself, or divide by 32768)")
        y = samples
    else:
        y = samples.astype(np.float64) / _FULL_SCALE[name]
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float64) if y.shape[1] > 1 else y[:, 0]
    return np.ascontiguousarray(y, dtype=np.float32)


# --- results -------------------------------------------------------------------------------------------------

@dataclass
class Result:
    """One clip's prediction.  ``silent``: no frame reached the speech gate's minimum level (``loudest_dbfs`` is
    the loudest frame), so there is no emotion (label etc. None); neither is there with less than the gate's
    ``min_speech_seconds`` above that level (``speech_seconds``: too little to tell).  ``path`` is None for an
    array."""

    path: str | None
    label: str | None
    emotion: str | None
    intensity: str | None
    confidence: float | None
    scores: dict | None
    silent: bool
    loudest_dbfs: float
    model: str
    format: str
    duration_s: float
    adapt: str | None = None  # the speaker-adaptation mode used (None: the model does not adapt)
    speech_seconds: float = 0.0  # audio above the gate's min_level_db (no emotion under min_speech_seconds)
    intensity_score: float | None = None  # edge_ser.labels.intensity_score (None: no emotion, or no intensities)

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "emotion": self.emotion, "intensity": self.intensity,
                "intensity_score": self.intensity_score, "confidence": self.confidence, "scores": self.scores,
                "silent": self.silent, "speech_seconds": round(self.speech_seconds, 3),
                "loudest_dbfs": round(self.loudest_dbfs, 1), "model": self.model, "format": self.format,
                "duration_s": round(self.duration_s, 3), "adapt": self.adapt}


# --- the recognizer ------------------------------------------------------------------------------------------

class Recognizer:
    """Speech emotion recognition for a stream, the microphone or clips.

    ``model``: a model name (``edge-ser models``), a model directory or a loaded `edge_ser.model.Model`; None: the
    profile's, else the default (``fine16-linear``, or the first installed of `edge_ser.settings.FALLBACK_ORDER`).
    ``profile``: a firmware profile name, ``.toml`` file, bundle, or ``"auto"`` (measure this machine and choose).
    ``hop``: seconds between events (None: the profile's, else 0.5).  ``format``/``threads``: ONNX or TFLite,
    inference threads.  ``adapt``: speaker adaptation of a stream (models trained with it).  ``gate``/``smoothing``: the
    speech gate and score smoothing (`edge_ser.stream.GateConfig`, `SmoothingConfig`).

    Raises UserError (ModelError, ProfileError) for an unknown model or profile or a bad option.
    """

    def __init__(self, model=None, profile: str | None = None, hop: float | None = None, *,
                 format: str | None = None, threads: int | None = None, adapt: bool = True,
                 gate: GateConfig | None = None, smoothing: SmoothingConfig | None = None, warmup: bool = True):
        from . import registry
        from .model import Model
        if hop is not None and (isinstance(hop, bool) or not isinstance(hop, (int, float))
                                or not 0 < hop <= 10):
            raise UserError(f"hop must be a number of seconds in (0, 10], got {hop!r}")
        if isinstance(model, Model):
            from .settings import DEFAULT_HOP_SECONDS, RuntimeSettings
            self.settings = RuntimeSettings(model=str(model.path), fmt=model.format, threads=threads or 1,
                                            hop_seconds=hop or DEFAULT_HOP_SECONDS, profile_name=None,
                                            reason="model given")
            self.model = model
        else:
            self.settings = choose_settings(profile, model, format, threads, hop)
            s = self.settings
            self.model = registry.load_model(s.model, fmt=s.fmt, threads=s.threads)
        self.profile = self.settings.profile_name
        self.engine = Engine(self.model, hop_seconds=self.settings.hop_seconds, gate=gate, smoothing=smoothing,
                             warmup=warmup, adapt=adapt)
        self.sample_rate = self.model.frontend.sample_rate
        self._subscribers: list[Callable] = []
        self.reset()
        log.info("model %s (%s), hop %g s [%s]", self.model.name, self.model.format, self.hop, self.settings.reason)

    # -- what it runs -------------------------------------------------------------------------------------

    @property
    def hop(self) -> float:
        return self.engine.hop_seconds

    @property
    def seconds(self) -> float:
        """Seconds of audio fed so far (at its own rate)."""
        return self._fed_seconds

    def info(self) -> dict:
        """What a dashboard or sink shows: model, format, task, labels, window, hop, profile, and why."""
        m = self.model
        return {"model": m.name, "format": m.format, "task": m.manifest.task, "labels": list(m.labels),
                "window_seconds": m.window_seconds, "hop_seconds": self.hop, "profile": self.profile,
                "adapt": self.engine.adapt, "reason": self.settings.reason}

    def __repr__(self) -> str:
        return f"Recognizer(model={self.model.name!r}, format={self.model.format!r}, hop={self.hop:g})"

    # -- subscribers ---------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event | StatusEvent], object]) -> Callable[[], None]:
        """Call ``callback(item)`` for every Event and StatusEvent this recognizer produces (from `feed`,
        `flush`, `events`, `listen`), in order, in the thread that produces them; returns a function that
        unsubscribes.  A callback that raises is logged and kept: a sink's fault never stops the stream."""
        self._subscribers.append(callback)

        def unsubscribe():
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def _publish(self, item) -> None:
        for callback in list(self._subscribers):
            try:
                callback(item)
            except Exception:  # noqa: BLE001 - a sink's bug must not end listen
                log.exception("subscriber %r failed on a %s", callback, type(item).__name__)

    # -- streaming ------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: audio time 0, no smoothing or pending samples (speaker adaptation is kept; see
        `reset_adaptation`)."""
        self.engine.reset()
        self._resampler: StreamResampler | None = None
        self._rate: int | None = None
        self._fed_seconds = 0.0
        self._last_ts = float("-inf")  # events' wall-clock times never go backwards

    def reset_adaptation(self) -> None:
        """Forget the speaker statistics gathered so far (another person, another room)."""
        self.engine.reset_adaptation()

    def feed(self, samples, sample_rate: int = 16000, timestamp: float | None = None) -> list[Event]:
        """Consume audio; return the events of the hops it completes (none until a hop's worth has arrived).

        ``samples``: int16, int32, float32 or float64 (floats in [-1, 1]), mono or ``(frames, channels)``
        (averaged), at ``sample_rate`` Hz (any rate from 1 to 768 kHz; resampled as it streams, with soxr; the rate
        may change between calls).  Event times ``t`` are seconds of the audio fed; ``ts`` is their wall-clock time,
        taking the last sample given to be captured at ``timestamp`` (UNIX seconds; default: now).
        InvalidAudio (a ValueError) for anything that is not audio, with a short message.
        """
        now = time.time() if timestamp is None else float(timestamp)
        return self._feed(to_mono_float(samples), check_rate(sample_rate), now)

    def _feed(self, y: np.ndarray, rate: int, now: float) -> list[Event]:
        events: list[Event] = []
        if rate != self._rate:
            events += self._feed_engine(self._drain())  # the old rate's resampler tail
            self._rate = rate
            self._resampler = None if rate == self.sample_rate else StreamResampler(rate, self.sample_rate)
        self._fed_seconds += y.size / rate
        events += self._feed_engine(y if self._resampler is None else self._resampler(y))
        return self._stamp(events, now)

    def flush(self, timestamp: float | None = None) -> list[Event]:
        """At the end of a stream: the resampler's tail and one last event for a partial hop, if any."""
        now = time.time() if timestamp is None else float(timestamp)
        events = self._feed_engine(self._drain())
        events += self.engine.finish()
        return self._stamp(events, now)

    def _drain(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        tail, self._resampler = self._resampler.flush(), None
        self._rate = None
        return tail

    def _feed_engine(self, y: np.ndarray) -> list[Event]:
        return self.engine.feed(y) if y.size else []

    def _stamp(self, events: list[Event], now: float) -> list[Event]:
        """Wall-clock times: when the hop's last sample was heard (``now`` less the audio fed after it), never
        earlier than the previous event's, never later than ``now``.  Audio that arrives faster than real time
        (a replay, stdin in large blocks) would otherwise give times that go backwards."""
        for e in events:
            e.ts = min(now, max(now - max(0.0, self._fed_seconds - e.t), self._last_ts))
            self._last_ts = e.ts
            self._publish(e)
        return events

    def events(self, source, duration: float | None = None) -> Iterator[Event | StatusEvent]:
        """Events from a source of audio blocks at the model's rate (`edge_ser.sources`: a file, stdin, the
        microphone; or any iterable of mono float blocks in [-1, 1]; NaN/inf samples become 0/±1), with the source's StatusEvents between them when it has
        ``stream()``.  Stops after ``duration`` seconds of audio (events every hop) or at the end of the source,
        where a partial last hop gives one more event.  The stream starts at audio time 0 (`reset`)."""
        self.reset()
        limit = None if duration is None else int(round(duration * self.sample_rate))
        items = source.stream() if hasattr(source, "stream") else iter(source)
        fed = 0
        try:
            for item in items:
                if isinstance(item, StatusEvent):
                    if item.t is None:
                        item.t = round(self.engine.seconds, 3)
                    self._publish(item)
                    yield item
                    continue
                block = np.asarray(item, dtype=np.float32).reshape(-1)
                if limit is not None:
                    block = block[:max(0, limit - fed)]
                fed += len(block)  # a NaN/inf glitch is zeroed by Engine.feed: never the end of listen
                stamp = getattr(source, "last_block_time", None)
                yield from self._feed(block, self.sample_rate, time.time() if stamp is None else stamp)
                if limit is not None and fed >= limit:
                    return
            yield from self.flush()
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def listen(self, device: str | int | None = None, duration: float | None = None, wait_device: bool = False,
               **options) -> Iterator[Event | StatusEvent]:
        """Events from the microphone (``device``: None for the default input, an index or a name substring),
        with StatusEvents when the device is lost, reopened, overflows, or its driver prints something; forever,
        or for ``duration`` seconds of audio.  ``wait_device``: wait for a device to appear instead of raising
        DeviceError.  ``options`` go to `edge_ser.sources.MicrophoneSource`."""
        from .sources import MicrophoneSource
        options.setdefault("on_status", None)
        source = MicrophoneSource(device, target_rate=self.sample_rate, wait_device=wait_device, **options)
        try:
            yield from self.events(source, duration)
        finally:
            source.close()

    # -- clips ----------------------------------------------------------------------------------------------

    def is_silent(self, loudest_dbfs: float) -> bool:
        """The silence rule: a clip whose loudest frame does not exceed the speech gate's ``min_level_db`` holds
        nothing the gate could call speech, so it gets no emotion."""
        return not loudest_dbfs > self.engine.gate.config.min_level_db

    def classify(self, clip, sample_rate: int | None = None, adapt: str = "file") -> Result:
        """One Result for an audio file (any format libsndfile reads, any rate and channel count) or an array
        (as `feed` takes; ``sample_rate`` default: the model's 16 kHz).  ``adapt`` (models trained with speaker
        normalisation): ``"file"`` the clip adapts to itself, ``"none"`` the training population's statistics.
        AudioError for an unreadable file; InvalidAudio (a ValueError) for a bad array."""
        if adapt not in ("file", "none"):
            raise UserError(f"adapt must be 'file' or 'none' for one clip, got {adapt!r} (for 'together' use "
                            "classify_files)")
        if isinstance(clip, (str, os.PathLike)):
            if sample_rate is not None:
                raise UserError("sample_rate is for arrays; a file's header gives its rate")
            return self._classify_file(Path(clip), None if adapt == "file" else "none")
        rate = self.sample_rate if sample_rate is None else check_rate(sample_rate)
        y = to_mono_float(clip)
        if y.size == 0:
            raise InvalidAudio("samples: no samples")
        y = resample(y, rate, self.sample_rate)
        m = self.model
        loudest = self._loudest()
        loudest.push(y)
        # the array is in memory: one pass (its windows, then its own statistics from them, then the scores);
        # a file goes block by block in two passes (`Model.classify_file`), with the same windows
        # "none": fresh statistics left empty, i.e. the training population's
        probs = m.classify_audio(y) if adapt == "file" else m.classify_audio(y, stats=m.speaker_stats(), update=False)
        return self._result(None, probs, loudest, len(y) / self.sample_rate, adapt)

    def classify_files(self, paths: Iterable[str | os.PathLike], adapt: str = "file"
                       ) -> Iterator[tuple[Path, Result | UserError]]:
        """``(path, Result)`` for each file (directories stand for the audio files under them), or ``(path,
        error)`` for one that cannot be read, going on with the rest.  ``adapt``: ``"file"``, ``"none"``, or
        ``"together"``: the files are one speaker, all of them (but the silent ones) adapt the model first."""
        if adapt not in ADAPT_MODES:
            raise UserError(f"adapt must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
        files = expand_paths(paths)
        m = self.model
        shared = None
        if adapt == "together" and m.speaker_norm is not None:
            shared = m.speaker_stats()
            for path in files:
                try:
                    if not path.is_dir():
                        own, loudest = m.speaker_stats(), LoudestFrame()
                        m.adapt_file(path, own, listener=loudest)
                        if not self.is_silent(loudest.level_db):  # a silent file says nothing of the voice
                            shared.merge(own)
                except UserError:
                    pass  # reported when the file is classified
        for path in files:
            try:
                if path.is_dir():
                    raise UserError(f"{path}: no audio files in this directory")
                yield path, self._classify_file(path, adapt, shared)
            except UserError as exc:
                yield path, exc

    def _classify_file(self, path: Path, adapt: str | None, shared=None) -> Result:
        loudest = self._loudest()  # block by block: bounded memory for any length; the loudest frame alongside
        adapt = adapt or "file"
        probs, seconds = self.model.classify_file(path, stats=shared, update=adapt == "file", listener=loudest)
        return self._result(str(path), probs, loudest, seconds, adapt)

    def _loudest(self) -> LoudestFrame:
        return LoudestFrame(min_level_db=self.engine.gate.config.min_level_db, sample_rate=self.sample_rate)

    def _result(self, path, probs, loudest: LoudestFrame, seconds: float, adapt: str) -> Result:
        m = self.model
        level = loudest.level_db
        silent = self.is_silent(level)
        short = loudest.active_seconds < self.engine.gate.config.min_speech_seconds  # too little to tell
        described = dict.fromkeys(("label", "emotion", "intensity", "intensity_score", "confidence",
                                   "scores")) if silent or short else m.describe(probs)
        return Result(path=path, **described, silent=silent, loudest_dbfs=level, model=m.name, format=m.format,
                      duration_s=seconds, adapt=adapt if m.speaker_norm is not None else None,
                      speech_seconds=loudest.active_seconds)

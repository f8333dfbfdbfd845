"""Speaker adaptation: standardise a model's inputs by the statistics of the voice being heard.

Emotion and intensity show as departures from a speaker's usual voice (louder, brighter, more varied than *this*
person usually is), while most of what separates two recordings is who speaks and through which microphone.  A
model trained with speaker normalisation sees each input standardised by its speaker's statistics:
``x' = (x - mean) / std`` with mean and variance taken per element of the input, or per group of elements when
the manifest names axes to pool over (the CNN's log-mel image: per mel band, over time).

The statistics come from unlabelled speech of the same speaker (all of a speaker's clips when training or
evaluating; the speech heard so far in a `listen` session; the file itself in `classify`) and are shrunk toward
the training population's statistics, which weigh as much as ``prior_windows`` windows of speech, so one short
clip gets a mild correction and a long session a full one.

The manifest holds it as ``input.speaker_norm = {axes, prior_windows, mean, var}``; models without it are used
unchanged.

Level-invariant prior.  Some input elements are levels in dB (the CNN's log-mel image, the forest's absolute band
levels): playing the same voice 20 dB quieter moves them by -20.  The speaker's own statistics follow, but a prior
fixed at the population's mean level does not, so a short clip was pulled toward "as loud as the population" and a
quiet one read as low-arousal (``sad``).  When the norm knows which statistics are such levels (``level_mask``,
found by `gain_mask` for a model's features), the prior is moved by the speaker's mean level offset from the
population before it is mixed in: the prior then supplies the population's spectral *shape* and spread, never its
loudness, and a gain on the input leaves the standardised input unchanged.  The offset is the speaker's mean window level minus the
population's (``level_ref``), from the speaker's windows (or, with none heard yet, from the inputs being
standardised).  A window's level is the power mean of its level elements (`window_levels`:
``10 log10 mean 10^(x/10)``), which the loud, speech-dominated elements set: pink noise at 10 dB SNR moves it by
+0.5 dB, where it moves the mean of the dB values by +11 dB (60 held-out clips, docs/room.md), so a noisy clip is
no longer read as a quiet one.  Models whose manifest has no ``level_ref`` (trained before it) keep the earlier
offset, the mean over the level statistics of (speaker mean - population mean).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-3  # added to the standard deviation (inputs are dB-scale or unit-free statistics)
PRIOR_WINDOWS = 10.0  # default weight of the population's statistics, in windows (the default models use it)


class SpeakerStats:
    """Running sums of one speaker's model inputs (a batch axis first), pooled over the norm's axes."""

    def __init__(self, norm: "SpeakerNorm"):
        self.norm = norm
        self.windows = 0
        self.elements = 0.0  # inputs counted per statistic (windows x pooled elements per window)
        self.sum = np.zeros(norm.mean.shape, dtype=np.float64)
        self.sumsq = np.zeros(norm.mean.shape, dtype=np.float64)
        self.level_sum = 0.0  # sum of `SpeakerNorm.window_levels` (dB), with a level_ref only

    def update(self, x: np.ndarray) -> "SpeakerStats":
        """Add a batch of model inputs ``(batch, *input_shape)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != self.norm.shape:
            raise ValueError(f"inputs of shape {x.shape[1:]} for a norm of shape {self.norm.shape}")
        axes = (0,) + tuple(a + 1 for a in self.norm.axes)
        self.sum += x.sum(axis=axes, keepdims=True)[0]
        self.sumsq += np.square(x).sum(axis=axes, keepdims=True)[0]
        if self.norm.level_ref is not None:
            self.level_sum += float(self.norm.window_levels(x).sum())
        self.windows += x.shape[0]
        self.elements += x.shape[0] * self.norm.pooled
        return self

    def merge(self, other: "SpeakerStats") -> "SpeakerStats":
        """Add another set of sums (the same norm) to these, as if its inputs had been added here."""
        if other.norm.shape != self.norm.shape or tuple(other.norm.axes) != tuple(self.norm.axes):
            raise ValueError("statistics of a different norm")
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.level_sum += other.level_sum
        self.windows += other.windows
        self.elements += other.elements
        return self

    def level_offset(self) -> float:
        """The speaker's mean level minus the population's over the norm's level statistics (dB; 0 without any)."""
        mask = self.norm.level_mask
        if mask is None or not mask.any() or self.elements == 0:
            return 0.0
        if self.norm.level_ref is not None:
            return self.level_sum / self.windows - self.norm.level_ref
        return float(np.mean((self.sum / self.elements - self.norm.mean)[mask]))

    def mean_var(self, offset: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The speaker's mean and variance shrunk toward the population's by ``prior_windows`` windows (the
        population's levels moved by ``offset``, by default `level_offset`, when the norm has a level mask)."""
        k = self.norm.prior_windows * self.norm.pooled
        n = self.elements + k
        prior = self.norm.prior_mean(self.level_offset() if offset is None else offset)
        mean = (self.sum + k * prior) / n
        second = (self.sumsq + k * (self.norm.var + np.square(prior))) / n
        return mean, np.maximum(second - np.square(mean), 0.0)

    def to_dict(self) -> dict:
        return {"windows": self.windows}


@dataclass
class SpeakerNorm:
    shape: tuple            # the model input's shape (without the batch axis)
    axes: tuple             # input axes pooled into one statistic (() = one statistic per element)
    mean: np.ndarray        # population statistics, ``shape`` with the pooled axes of length 1
    var: np.ndarray
    prior_windows: float = PRIOR_WINDOWS
    level_mask: np.ndarray | None = None  # statistics that are dB levels (shape of ``mean``); None: a fixed prior
    level_ref: float | None = None  # the population's mean `window_levels` (dB); None: the earlier offset

    def prior_mean(self, offset: float = 0.0) -> np.ndarray:
        """The population's mean with its level statistics moved by ``offset`` dB."""
        if self.level_mask is None or offset == 0.0:
            return self.mean
        return self.mean + offset * self.level_mask

    def input_offset(self, x: np.ndarray) -> float:
        """The level offset of a batch of inputs from the population (as `SpeakerStats.level_offset`)."""
        if self.level_mask is None or not self.level_mask.any():
            return 0.0
        if self.level_ref is not None:
            return float(np.mean(self.window_levels(x))) - self.level_ref
        axes = (0,) + tuple(a + 1 for a in self.axes)
        return float(np.mean((np.asarray(x, np.float64).mean(axis=axes, keepdims=True)[0] - self.mean)
                             [self.level_mask]))

    def window_levels(self, x: np.ndarray) -> np.ndarray:
        """Each input's level (dB): the power mean ``10 log10 mean 10^(v/10)`` of its level elements (the
        statistics of ``level_mask``, every element they pool).  A gain moves it by the gain; additive noise far less
        than the mean of the dB values, since the loud elements set it."""
        x = np.asarray(x, np.float64)
        mask = np.broadcast_to(self.level_mask, self.shape)
        v = x[:, mask]
        top = v.max(axis=1, keepdims=True)
        return (top + 10.0 * np.log10(np.mean(10.0 ** ((v - top) / 10.0), axis=1, keepdims=True)))[:, 0]

    def set_level_ref(self, x: np.ndarray) -> "SpeakerNorm":
        """Take the population's level reference from a batch of its (raw) inputs (needs ``level_mask``)."""
        if self.level_mask is None or not self.level_mask.any():
            self.level_ref = None
        else:
            self.level_ref = float(np.mean(self.window_levels(x)))
        return self

    @property
    def pooled(self) -> int:
        """Elements of one input pooled into each statistic."""
        return int(np.prod([self.shape[a] for a in self.axes])) if self.axes else 1

    def stats(self) -> SpeakerStats:
        return SpeakerStats(self)

    def apply(self, x: np.ndarray, stats: SpeakerStats | None) -> np.ndarray:
        """Standardise inputs ``(batch, *shape)`` by ``stats`` (the population's alone when None)."""
        if stats is None or stats.elements == 0:  # nothing heard: the population, at the level of these inputs
            mean, var = self.prior_mean(self.input_offset(x)), self.var
        else:
            mean, var = stats.mean_var()
        return ((np.asarray(x, np.float64) - mean) / (np.sqrt(var) + EPS)).astype(np.float32)

    @classmethod
    def fit_population(cls, x: np.ndarray, axes=(), prior_windows: float = PRIOR_WINDOWS) -> "SpeakerNorm":
        """Population statistics from a batch of (raw) training inputs."""
        x = np.asarray(x, dtype=np.float64)
        shape = tuple(x.shape[1:])
        red = (0,) + tuple(a + 1 for a in axes)
        mean = x.mean(axis=red, keepdims=True)[0]
        var = x.var(axis=red, keepdims=True)[0]
        return cls(shape, tuple(axes), mean, var, float(prior_windows))

    def to_manifest(self) -> dict:
        spec = {"axes": list(self.axes), "prior_windows": self.prior_windows,
                "mean": np.round(self.mean, 6).tolist(), "var": np.round(self.var, 6).tolist()}
        if self.level_ref is not None:
            spec["level_ref"] = round(self.level_ref, 6)
        return spec

    @classmethod
    def from_manifest(cls, spec: dict, input_shape) -> "SpeakerNorm":
        """From ``input.speaker_norm``; ValueError when it does not fit the input shape."""
        shape = tuple(int(s) for s in input_shape)
        axes = tuple(int(a) for a in spec.get("axes", ()))
        if any(not 0 <= a < len(shape) for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"speaker_norm axes {list(axes)} do not fit an input of shape {list(shape)}")
        want = tuple(1 if i in axes else s for i, s in enumerate(shape))
        mean = np.asarray(spec["mean"], dtype=np.float64)
        var = np.asarray(spec["var"], dtype=np.float64)
        if mean.shape != want or var.shape != want:
            raise ValueError(f"speaker_norm statistics of shape {list(mean.shape)}/{list(var.shape)}, expected "
                             f"{list(want)}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
            raise ValueError("speaker_norm statistics must be finite with non-negative variances")
        prior = float(spec.get("prior_windows", PRIOR_WINDOWS))
        if not (np.isfinite(prior) and prior > 0):
            raise ValueError("speaker_norm prior_windows must be a positive number")
        level_ref = spec.get("level_ref")
        if level_ref is not None:
            if isinstance(level_ref, bool) or not isinstance(level_ref, (int, float)) or not np.isfinite(level_ref):
                raise ValueError("speaker_norm level_ref must be a finite number (dB)")
            level_ref = float(level_ref)
        return cls(shape, axes, mean, var, prior, level_ref=level_ref)


def gain_mask(input_fn, n_mels: int, n_frames: int, axes: tuple, step_db: float = 10.0) -> np.ndarray:
    """Which statistics of a speaker norm are dB levels: the pooled groups of ``input_fn(window)`` (a model's
    features of a ``(n_mels, n_frames)`` log-mel window) that move by exactly ``step_db`` when the window does.
    Probed on a fixed speech-like window (no silence padding, nothing near the dB floor)."""
    rng = np.random.default_rng(0)
    t = np.arange(n_frames)
    envelope = -30.0 + 12.0 * np.sin(2 * np.pi * t / 9.0)[None, :]  # syllable-rate level changes
    tilt = -np.linspace(0.0, 30.0, n_mels)[:, None]
    window = (envelope + tilt + 3.0 * rng.standard_normal((n_mels, n_frames))).astype(np.float32)
    a = np.asarray(input_fn(window), np.float64)
    b = np.asarray(input_fn(window + np.float32(step_db)), np.float64)
    moved = np.abs(b - a - step_db) < 1e-3 * step_db
    if axes:
        moved = moved.all(axis=tuple(axes), keepdims=True)
    return moved

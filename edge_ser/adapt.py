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
quiet one read as low-arousal (``sad``).  When the norm knows which statistics are such levels and how far a gain
moves them (``level_slope``, found by `gain_slopes` for a model's features: 1 for a log-mel level, sqrt(n_mels) for
the first MFCC), the prior is moved by the speaker's mean level offset from the population before it is mixed in:
the prior then supplies the population's spectral *shape* and spread, never its loudness, and a gain on the input
leaves the standardised input unchanged.

The offset is the speaker's mean window level minus the population's (``level_ref``), from the speaker's windows
(or, with none heard yet, from the inputs being standardised).  A window's level is the power mean of its level
elements (`SpeakerNorm.window_levels`: ``10 log10 mean 10^(x/10)``), which the loud, speech-dominated elements set:
pink noise at 10 dB SNR moves it by +0.5 dB, where it moves the mean of the dB values by +11 dB (40 held-out clips,
docs/room.md), so a noisy clip is no longer read as a quiet one.  Models whose manifest has no ``level_ref``
(trained before it) keep the offset they were trained with: the mean over their unit level statistics of (speaker
mean - population mean).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import power_level_db

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
        if self.norm.uses_window_levels:
            self.level_sum += float(self.norm.window_levels(x).sum())
        self.windows += x.shape[0]
        self.elements += x.shape[0] * self.norm.pooled
        return self

    def merge(self, other: "SpeakerStats") -> "SpeakerStats":
        """Add another set of sums (the same norm) to these, as if its inputs had been added here."""
        if (other.norm.shape != self.norm.shape or tuple(other.norm.axes) != tuple(self.norm.axes)
                or other.norm.level_ref != self.norm.level_ref):
            raise ValueError("statistics of a different norm")
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.level_sum += other.level_sum
        self.windows += other.windows
        self.elements += other.elements
        return self

    def level_offset(self) -> float:
        """The speaker's mean level minus the population's over the norm's level statistics (dB; 0 without any)."""
        if not self.norm.has_levels or self.elements == 0:
            return 0.0
        if self.norm.uses_window_levels:
            return self.level_sum / self.windows - self.norm.level_ref
        mask = self.norm.level_mask
        return float(np.mean((self.sum / self.elements - self.norm.mean)[mask] / self.norm.level_slope[mask]))

    def mean_var(self, offset: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The speaker's mean and variance shrunk toward the population's by ``prior_windows`` windows (the
        population's levels moved by ``offset``, by default `level_offset`, when the norm has level statistics)."""
        k = self.norm.prior_windows * self.norm.pooled
        n = self.elements + k
        prior = self.norm.prior_mean(self.level_offset() if offset is None else offset)
        mean = (self.sum + k * prior) / n
        second = (self.sumsq + k * (self.norm.var + np.square(prior))) / n
        return mean, np.maximum(second - np.square(mean), 0.0)

    def to_dict(self) -> dict:
        return {"windows": self.windows}

    def state(self) -> tuple:
        """The sums as plain values (to send to another process); `SpeakerNorm.stats_from` rebuilds them."""
        return self.sum, self.sumsq, self.windows, self.elements, self.level_sum


@dataclass
class SpeakerNorm:
    shape: tuple            # the model input's shape (without the batch axis)
    axes: tuple             # input axes pooled into one statistic (() = one statistic per element)
    mean: np.ndarray        # population statistics, ``shape`` with the pooled axes of length 1
    var: np.ndarray
    prior_windows: float = PRIOR_WINDOWS
    # per statistic (shape of ``mean``), how far it moves per dB of gain on the input (`gain_slopes`): 1 for a dB
    # level, 0 for a statistic a gain leaves alone; None: a fixed prior
    level_slope: np.ndarray | None = None
    level_ref: float | None = None  # the population's mean `window_levels` (dB); None: the earlier offset

    @property
    def has_levels(self) -> bool:
        """At least one statistic moves with a gain (the prior then follows the speaker's level)."""
        return self.level_slope is not None and bool(self.level_slope.any())

    @property
    def uses_window_levels(self) -> bool:
        """The offset comes from window levels: a ``level_ref`` and at least one level statistic."""
        return self.level_ref is not None and self.has_levels

    @property
    def level_mask(self) -> np.ndarray | None:
        """The statistics that are levels (``level_slope != 0``)."""
        return None if self.level_slope is None else self.level_slope != 0

    def prior_mean(self, offset: float = 0.0) -> np.ndarray:
        """The population's mean with its level statistics moved by ``offset`` dB."""
        if self.level_slope is None or offset == 0.0:
            return self.mean
        return self.mean + offset * self.level_slope

    def input_offset(self, x: np.ndarray) -> float:
        """The level offset of a batch of inputs from the population: `SpeakerStats.level_offset` of these inputs."""
        return self.stats().update(x).level_offset() if self.has_levels else 0.0

    def window_levels(self, x: np.ndarray) -> np.ndarray:
        """Each input's level (dB): the power mean ``10 log10 mean 10^(v/10)`` of its level elements (every element
        of the statistics with a ``level_slope``, each divided by its slope: dB).  A gain moves it by the gain;
        additive noise far less than the mean of the dB values, since the loud elements set it."""
        x = np.asarray(x, np.float64)
        slope = np.broadcast_to(self.level_slope, self.shape)
        mask = slope != 0
        return np.atleast_1d(power_level_db(x[:, mask] / slope[mask], axis=1))

    def set_level_ref(self, x: np.ndarray) -> "SpeakerNorm":
        """Take the population's level reference from a batch of its (raw) inputs (needs ``level_slope``)."""
        self.level_ref = float(np.mean(self.window_levels(x))) if self.has_levels else None
        return self

    @property
    def pooled(self) -> int:
        """Elements of one input pooled into each statistic."""
        return int(np.prod([self.shape[a] for a in self.axes])) if self.axes else 1

    def stats(self) -> SpeakerStats:
        return SpeakerStats(self)

    def stats_from(self, state: tuple) -> SpeakerStats:
        """Statistics holding ``state`` (`SpeakerStats.state`)."""
        st = SpeakerStats(self)
        st.sum, st.sumsq = np.array(state[0], np.float64), np.array(state[1], np.float64)
        st.windows, st.elements, st.level_sum = state[2], state[3], float(state[4])
        return st

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


def gain_slopes(input_fn, n_mels: int, n_frames: int, axes: tuple, unit_only: bool = False,
                step_db: float = 10.0) -> np.ndarray:
    """How far each statistic of a speaker norm moves per dB of gain (`SpeakerNorm.level_slope`): the pooled groups
    of ``input_fn(window)`` (a model's features of a ``(n_mels, n_frames)`` log-mel window) whose every element
    moves in proportion to a gain on the window, by the same factor (1 for a log-mel level, sqrt(n_mels) for the
    first MFCC, 0 for what a gain leaves alone).  ``unit_only``: only the groups that move by exactly the gain (the
    earlier rule, for models trained without a ``level_ref``).  Probed on a fixed speech-like window (no silence
    padding, nothing near the dB floor) moved by ``step_db`` and twice that."""
    rng = np.random.default_rng(0)
    t = np.arange(n_frames)
    envelope = -30.0 + 12.0 * np.sin(2 * np.pi * t / 9.0)[None, :]  # syllable-rate level changes
    tilt = -np.linspace(0.0, 30.0, n_mels)[:, None]
    window = (envelope + tilt + 3.0 * rng.standard_normal((n_mels, n_frames))).astype(np.float32)
    a, b, c = (np.asarray(input_fn(window + np.float32(g)), np.float64) for g in (0.0, step_db, 2 * step_db))
    slope = (b - a) / step_db
    tol = 1e-3 * max(1.0, float(np.abs(slope).max()))  # float32 features: 0.01 dB per 10 dB for a level
    linear = (np.abs((c - b) / step_db - slope) < tol) & (np.abs(slope) > tol)
    if unit_only:  # exactly the gain, as the earlier mask: slope 1.0
        linear &= np.abs(slope - 1.0) < 1e-3
        slope = np.ones_like(slope)
    if axes:  # a statistic pools its elements: all of them must move alike
        ax = tuple(axes)
        uniform = linear.all(axis=ax, keepdims=True) & (np.ptp(slope, axis=ax, keepdims=True) < tol)
        return np.where(uniform, slope.mean(axis=ax, keepdims=True), 0.0)
    return np.where(linear, slope, 0.0)


def gain_mask(input_fn, n_mels: int, n_frames: int, axes: tuple, step_db: float = 10.0) -> np.ndarray:
    """Which statistics of a speaker norm are dB levels: those that move by exactly the gain (`gain_slopes` with
    ``unit_only``)."""
    return gain_slopes(input_fn, n_mels, n_frames, axes, unit_only=True, step_db=step_db) != 0

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

    def update(self, x: np.ndarray) -> "SpeakerStats":
        """Add a batch of model inputs ``(batch, *input_shape)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1:] != self.norm.shape:
            raise ValueError(f"inputs of shape {x.shape[1:]} for a norm of shape {self.norm.shape}")
        axes = (0,) + tuple(a + 1 for a in self.norm.axes)
        self.sum += x.sum(axis=axes, keepdims=True)[0]
        self.sumsq += np.square(x).sum(axis=axes, keepdims=True)[0]
        self.windows += x.shape[0]
        self.elements += x.shape[0] * self.norm.pooled
        return self

    def merge(self, other: "SpeakerStats") -> "SpeakerStats":
        """Add another set of sums (the same norm) to these, as if its inputs had been added here."""
        if other.norm.shape != self.norm.shape or tuple(other.norm.axes) != tuple(self.norm.axes):
            raise ValueError("statistics of a different norm")
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.windows += other.windows
        self.elements += other.elements
        return self

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """The speaker's mean and variance shrunk toward the population's by ``prior_windows`` windows."""
        k = self.norm.prior_windows * self.norm.pooled
        n = self.elements + k
        mean = (self.sum + k * self.norm.mean) / n
        second = (self.sumsq + k * (self.norm.var + np.square(self.norm.mean))) / n
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

    @property
    def pooled(self) -> int:
        """Elements of one input pooled into each statistic."""
        return int(np.prod([self.shape[a] for a in self.axes])) if self.axes else 1

    def stats(self) -> SpeakerStats:
        return SpeakerStats(self)

    def apply(self, x: np.ndarray, stats: SpeakerStats | None) -> np.ndarray:
        """Standardise inputs ``(batch, *shape)`` by ``stats`` (the population's alone when None)."""
        mean, var = (self.mean, self.var) if stats is None else stats.mean_var()
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
        return {"axes": list(self.axes), "prior_windows": self.prior_windows,
                "mean": np.round(self.mean, 6).tolist(), "var": np.round(self.var, 6).tolist()}

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
        return cls(shape, axes, mean, var, prior)

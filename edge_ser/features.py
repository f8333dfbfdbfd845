"""Model inputs computed from log-mel frames: one definition shared by training (export/) and the runtime.

A model's manifest names its features in ``input.features`` with their parameters in ``input.params``;
`compute` turns a window of log-mel frames (dB, no top_db floor yet) into the model's input array.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .frontend import AMIN, apply_top_db

SILENCE_DB = float(10.0 * np.log10(AMIN))  # what zero samples give: -100 dB


def fit_frames(db: np.ndarray, n_frames: int) -> np.ndarray:
    """Centre-crop or centre-pad (with silence) ``(n_mels, T)`` to exactly ``n_frames`` frames."""
    t = db.shape[1]
    if t == n_frames:
        return db
    if t > n_frames:
        start = (t - n_frames) // 2
        return db[:, start:start + n_frames]
    out = np.full((db.shape[0], n_frames), SILENCE_DB, dtype=np.float32)
    start = (n_frames - t) // 2
    out[:, start:start + t] = db
    return out


def clip_windows(db: np.ndarray, n_frames: int, hop_frames: int) -> np.ndarray:
    """Cut a clip's log-mel frames ``(n_mels, T)`` into model windows ``(n_windows, n_mels, n_frames)``.

    The one windowing rule shared by classify, evaluation and training: windows start every ``hop_frames``
    frames from the first frame; if the last regular window stops short of the clip's end, one more window
    ending exactly on the last frame is added, so every frame is seen.  A clip of at most ``n_frames`` frames
    gives one window, centre-padded with silence by `fit_frames`.  `WindowCutter` is the same rule for frames
    that arrive in pieces (a file read block by block); this function is that cutter fed the whole clip.
    """
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2:
        raise ValueError(f"db must be (n_mels, frames), got shape {db.shape}")
    cutter = WindowCutter(n_frames, hop_frames)
    return np.stack(cutter.push(db) + cutter.finish())


class WindowCutter:
    """`clip_windows`' rule over frames that arrive in pieces, in bounded memory: `push` returns the regular
    windows the new frames complete, `finish` the last one (end-aligned, or the one padded window of a short clip).
    Holds at most one window plus the frames of one push."""

    def __init__(self, n_frames: int, hop_frames: int):
        if n_frames <= 0 or hop_frames <= 0:
            raise ValueError("n_frames and hop_frames must be positive")
        self.n, self.hop = int(n_frames), int(hop_frames)
        self.held: np.ndarray | None = None
        self.base = 0    # absolute index of held[:, 0]
        self.total = 0   # frames pushed so far
        self.start = 0   # next regular window's start

    def push(self, frames: np.ndarray) -> list[np.ndarray]:
        frames = np.asarray(frames, dtype=np.float32)
        if self.held is None:
            self.held = frames
        elif frames.shape[1]:
            self.held = np.concatenate([self.held, frames], axis=1)
        self.total += frames.shape[1]
        out = []
        while self.start + self.n <= self.total:
            s = self.start - self.base
            out.append(self.held[:, s:s + self.n])
            self.start += self.hop
        keep = max(0, min(self.start, self.total - self.n))  # the next window's start, or the end-aligned one's
        if keep > self.base:
            self.held = self.held[:, keep - self.base:].copy()
            self.base = keep
        return out

    def finish(self) -> list[np.ndarray]:
        held = self.held if self.held is not None else np.zeros((0, 0), dtype=np.float32)
        if self.total < self.n:  # a short clip: one window, padded (all its frames are still held)
            return [fit_frames(held, self.n)]
        if self.start - self.hop + self.n < self.total:  # the last regular window stops short of the end
            return [held[:, self.total - self.n - self.base:self.total - self.base]]
        return []


def _floor(db: np.ndarray, top_db: float | None) -> np.ndarray:
    return apply_top_db(db, top_db) if top_db is not None else db


def _pool(x: np.ndarray, pool_bands: int, pool_frames: int) -> np.ndarray:
    """Average blocks of ``pool_bands`` mel bands x ``pool_frames`` frames (a remainder is dropped)."""
    if pool_bands == 1 and pool_frames == 1:
        return x
    b, t = x.shape[0] // pool_bands, x.shape[1] // pool_frames
    x = x[:b * pool_bands, :t * pool_frames]
    return x.reshape(b, pool_bands, t, pool_frames).mean(axis=(1, 3))


def log_mel_image(db: np.ndarray, n_frames: int, top_db: float | None = 80.0, norm: str = "utterance",
                  pool_bands: int = 1, pool_frames: int = 1) -> np.ndarray:
    """CNN input ``(n_mels // pool_bands, n_frames // pool_frames, 1)``: the window's log-mel, floored, pooled
    (mean over blocks of bands x frames; 1 x 1 keeps the full resolution) and normalised.

    norm: ``utterance`` subtracts the window's mean and divides by its std (removes gain);
    ``band`` subtracts each band's mean over the window (removes a fixed channel response) then divides by the
    window's std; ``none`` leaves dB values.
    """
    x = _pool(_floor(fit_frames(np.asarray(db, dtype=np.float32), n_frames), top_db), pool_bands, pool_frames)
    if norm == "utterance":
        x = (x - x.mean()) / (x.std() + 1e-3)
    elif norm == "band":
        x = x - x.mean(axis=1, keepdims=True)
        x = x / (x.std() + 1e-3)
    elif norm != "none":
        raise ValueError(f"unknown norm {norm!r}")
    return x[:, :, None].astype(np.float32)


def log_mel_stats(db: np.ndarray, n_frames: int, top_db: float | None = 80.0, bands: int = 32) -> np.ndarray:
    """RFC input: per-band statistics of the window's log-mel, mel bands pooled to ``bands`` groups.

    Per band: mean (relative to the window's mean level), std, 10/50/90th percentiles (relative), and mean
    absolute frame-to-frame change; then the window's level spread and its loudest-to-median range.
    """
    x = _floor(fit_frames(np.asarray(db, dtype=np.float32), n_frames), top_db)
    n_mels = x.shape[0]
    if n_mels % bands:
        raise ValueError(f"n_mels={n_mels} is not a multiple of bands={bands}")
    pooled = x.reshape(bands, n_mels // bands, -1).mean(axis=1)
    level = pooled.mean()
    pct = np.percentile(pooled, [10, 50, 90], axis=1)
    delta = np.abs(np.diff(pooled, axis=1)).mean(axis=1) if pooled.shape[1] > 1 else np.zeros(bands)
    frame_level = pooled.mean(axis=0)
    glob = np.array([frame_level.std(), frame_level.max() - np.median(frame_level)])
    feats = np.concatenate([pooled.mean(axis=1) - level, pooled.std(axis=1), (pct - level).ravel(), delta, glob])
    return feats.astype(np.float32)


@lru_cache(maxsize=8)
def _dct_matrix(n: int, n_out: int) -> np.ndarray:
    """The first ``n_out`` rows of the orthonormal DCT-II of length ``n`` (scipy.fft.dct(..., norm="ortho")); a
    matrix product here spares the runtime scipy.fft's import (~20 MB resident) for a 32-point transform."""
    k = np.arange(n_out)[:, None]
    m = np.cos(np.pi * (np.arange(n)[None, :] + 0.5) * k / n) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def _skew(v: np.ndarray) -> float:
    sd = v.std()
    return float(((v - v.mean()) ** 3).mean() / (sd ** 3 + 1e-6))


def _pitch_proxy(x: np.ndarray, active: np.ndarray, low_bands: int = 48, lags=(3, 17)) -> np.ndarray:
    """Crude F0 cue from the unpooled log-mel: below 1 kHz Slaney mel bands are equally spaced (~23 Hz at 16 kHz,
    128 mels), so a voiced frame's harmonics repeat every F0/spacing bands.  Per active frame, the lag of the
    strongest autocorrelation across the low bands (parabolically refined) and its strength; returns mean, std,
    10th/90th percentile of the lag over voiced frames, mean strength and the voiced share."""
    low = 10.0 ** (x[:low_bands, active] / 20.0)
    low = low - low.mean(axis=0, keepdims=True)
    energy = (low ** 2).sum(axis=0) + 1e-12
    lo, hi = lags
    ac = np.stack([(low[:-k] * low[k:]).sum(axis=0) / energy for k in range(lo - 1, hi + 1)])  # lags lo-1..hi
    inner = ac[1:-1]
    best = inner.argmax(axis=0)
    strength = inner.max(axis=0)
    cols = np.arange(inner.shape[1])
    left, mid, right = ac[best, cols], ac[best + 1, cols], ac[best + 2, cols]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > 1e-9, 0.5 * (left - right) / np.where(np.abs(denom) > 1e-9, denom, 1), 0.0)
    lag = best + lo + np.clip(shift, -0.5, 0.5)
    voiced = strength > 0.2
    lv = lag[voiced] if voiced.any() else lag
    return np.array([lv.mean(), lv.std(), np.percentile(lv, 10), np.percentile(lv, 90), strength.mean(),
                     voiced.mean()])


def band_stats(db: np.ndarray, n_frames: int, top_db: float | None = 80.0, bands: int = 32, active_db: float = 35.0,
               n_ceps: int = 13, pitch: bool = False, band_norm: bool = False, absolute: bool = False) -> np.ndarray:
    """RFC input: level-free statistics of the window's active (speech) frames.

    Speaker/channel normalisation by construction: every level is relative to the window's mean level over its
    active frames (frames within ``active_db`` of the loudest), so gain and silence do not move the features.
    Mel bands are pooled to ``bands`` groups.  Per band: mean, std, 10th/90th percentile (relative), mean absolute
    frame-to-frame change.  Cepstra (DCT over the pooled bands per active frame): mean of c1.. and std of c0..
    ``n_ceps``.  Level contour of active frames: std, 90-10 percentile range, skew, mean absolute change;
    activity ratio; spectral centroid and slope (over bands) per active frame: mean and std.  ``pitch`` adds
    `_pitch_proxy` (an F0 cue from the harmonic spacing in the low bands); ``band_norm`` subtracts each band's
    mean over the window before the relative statistics (cepstral-mean-normalisation-like).  ``absolute`` adds
    the levels themselves (dB): the active frames' mean, maximum and median level and each band's mean over them.
    They depend on gain and microphone, so they are only meaningful relative to the speaker (`edge_ser.adapt`).
    """
    x = _floor(fit_frames(np.asarray(db, dtype=np.float32), n_frames), top_db).astype(np.float64)
    n_mels = x.shape[0]
    if n_mels % bands:
        raise ValueError(f"n_mels={n_mels} is not a multiple of bands={bands}")
    pooled = x.reshape(bands, n_mels // bands, -1).mean(axis=1)
    level = pooled.mean(axis=0)
    active = level >= level.max() - active_db
    xa = pooled[:, active]
    ref = xa.mean()
    rel = xa - ref
    if band_norm:  # remove each band's mean level over the window (a fixed channel/speaker envelope)
        rel = rel - rel.mean(axis=1, keepdims=True)
    pct = np.percentile(rel, [10, 90], axis=1)
    delta = np.abs(np.diff(pooled, axis=1)).mean(axis=1) if pooled.shape[1] > 1 else np.zeros(bands)
    ceps = _dct_matrix(bands, min(n_ceps, bands)) @ rel
    lv = level[active] - ref
    dlv = np.abs(np.diff(lv)).mean() if lv.size > 1 else 0.0
    idx = np.arange(bands, dtype=np.float64)
    w = 10.0 ** ((xa - xa.max(axis=0, keepdims=True)) / 10.0)
    centroid = (w * idx[:, None]).sum(axis=0) / w.sum(axis=0)
    slope = np.polyfit(idx, rel, 1)[0] if rel.shape[1] else np.zeros(1)
    glob = np.array([lv.std(), np.percentile(lv, 90) - np.percentile(lv, 10), _skew(lv), dlv, active.mean(),
                     centroid.mean(), centroid.std(), np.mean(slope), np.std(slope)])
    parts = [rel.mean(axis=1), xa.std(axis=1), pct.ravel(), delta, ceps.mean(axis=1)[1:], ceps.std(axis=1), glob]
    if pitch:
        parts.append(_pitch_proxy(x, active))
    if absolute:
        parts += [np.array([ref, level[active].max(), np.percentile(level[active], 50)]), xa.mean(axis=1)]
    feats = np.concatenate(parts)
    return feats.astype(np.float32)


FEATURES = {"log_mel_image": log_mel_image, "log_mel_stats": log_mel_stats, "band_stats": band_stats}


def compute(db: np.ndarray, features: str, params: dict) -> np.ndarray:
    """The model input for one window: ``features`` names a function above, ``params`` its keyword arguments."""
    try:
        fn = FEATURES[features]
    except KeyError:
        raise ValueError(f"unknown features {features!r} (known: {', '.join(FEATURES)})") from None
    return fn(db, **params)

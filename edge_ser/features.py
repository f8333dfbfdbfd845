"""Model inputs computed from log-mel frames: one definition shared by training (export/) and the runtime.

A model's manifest names its features in ``input.features`` with their parameters in ``input.params``;
`compute` turns a window of log-mel frames (dB, no top_db floor yet) into the model's input array.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .frontend import AMIN, apply_top_db

SILENCE_DB = float(10.0 * np.log10(AMIN))  # what zero samples give: -100 dB
LN10 = float(np.log(10.0))


# How a clip shorter than the model's window fills it (the manifest's ``input.pad``): ``repeat`` its frames from the
# first (a short utterance fills the window with speech), ``stretch`` each frame repeated evenly (the nearest frame of
# the clip stretched in time to the window: every frame counts about equally, wherever the clip starts or ends;
# `listen`'s ring, docs/room.md), or ``silence`` centred around them (every shipped model; a manifest without
# ``input.pad``).
PADS = ("repeat", "stretch", "silence")


def check_pad(pad: str) -> str:
    if pad not in PADS:
        raise ValueError(f"pad must be one of {PADS}, got {pad!r}")
    return pad


def fit_frames(db: np.ndarray, n_frames: int, pad: str = "silence") -> np.ndarray:
    """Centre-crop ``(n_mels, T)`` to exactly ``n_frames`` frames, or fill a shorter one by ``pad`` (`PADS`):
    its frames repeated from the first, each stretched evenly (frame ``i * T // n_frames`` at position ``i``), or
    centred in silence.  No frames at all give silence whatever the pad."""
    check_pad(pad)
    t = db.shape[1]
    if t == n_frames:
        return db
    if t > n_frames:
        start = (t - n_frames) // 2
        return db[:, start:start + n_frames]
    if pad == "repeat" and t > 0:
        return np.tile(db, (1, -(-n_frames // t)))[:, :n_frames]
    if pad == "stretch" and t > 0:
        return db[:, np.arange(n_frames) * t // n_frames]
    out = np.full((db.shape[0], n_frames), SILENCE_DB, dtype=np.float32)
    start = (n_frames - t) // 2
    out[:, start:start + t] = db
    return out


def clip_windows(db: np.ndarray, n_frames: int, hop_frames: int, pad: str = "silence") -> np.ndarray:
    """Cut a clip's log-mel frames ``(n_mels, T)`` into model windows ``(n_windows, n_mels, n_frames)``.

    The one windowing rule shared by classify, evaluation and training: windows start every ``hop_frames``
    frames from the first frame; if the last regular window stops short of the clip's end, one more window
    ending exactly on the last frame is added, so every frame is seen.  A clip of at most ``n_frames`` frames
    gives one window, filled by `fit_frames` with the model's ``pad``.  `WindowCutter` is the same rule for frames
    that arrive in pieces (a file read block by block); this function is that cutter fed the whole clip.
    """
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2:
        raise ValueError(f"db must be (n_mels, frames), got shape {db.shape}")
    cutter = WindowCutter(n_frames, hop_frames, pad)
    return np.stack(cutter.push(db) + cutter.finish())


class WindowCutter:
    """`clip_windows`' rule over frames that arrive in pieces, in bounded memory: `push` returns the regular
    windows the new frames complete, `finish` the last one (end-aligned, or the one padded window of a short clip).
    Holds at most one window plus the frames of one push."""

    def __init__(self, n_frames: int, hop_frames: int, pad: str = "silence"):
        if n_frames <= 0 or hop_frames <= 0:
            raise ValueError("n_frames and hop_frames must be positive")
        self.n, self.hop, self.pad = int(n_frames), int(hop_frames), check_pad(pad)
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
            return [fit_frames(held, self.n, self.pad)]
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
    d = v - v.mean()
    return float((d * d * d).mean() / (sd ** 3 + 1e-6))


def _pitch_proxy(x: np.ndarray, active: np.ndarray, low_bands: int = 48, lags=(3, 17)) -> np.ndarray:
    """Crude F0 cue from the unpooled log-mel: below 1 kHz Slaney mel bands are equally spaced (~23 Hz at 16 kHz,
    128 mels), so a voiced frame's harmonics repeat every F0/spacing bands.  Per active frame, the lag of the
    strongest autocorrelation across the low bands (parabolically refined) and its strength; returns mean, std,
    10th/90th percentile of the lag over voiced frames, mean strength and the voiced share."""
    low = np.exp(x[:low_bands, active] * (LN10 / 20.0))  # 10^(x/20); exp is ~10x cheaper than a power
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
    p10, p90 = np.percentile(lv, [10, 90])
    return np.array([lv.mean(), lv.std(), p10, p90, strength.mean(), voiced.mean()])


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
    w = np.exp((xa - xa.max(axis=0, keepdims=True)) * (LN10 / 10.0))
    centroid = (w * idx[:, None]).sum(axis=0) / w.sum(axis=0)
    slope = np.polyfit(idx, rel, 1)[0] if rel.shape[1] else np.zeros(1)
    p10, p90 = np.percentile(lv, [10, 90])
    glob = np.array([lv.std(), p90 - p10, _skew(lv), dlv, active.mean(),
                     centroid.mean(), centroid.std(), np.mean(slope), np.std(slope)])
    parts = [rel.mean(axis=1), xa.std(axis=1), pct.ravel(), delta, ceps.mean(axis=1)[1:], ceps.std(axis=1), glob]
    if pitch:
        parts.append(_pitch_proxy(x, active))
    if absolute:
        parts += [np.array([ref, level[active].max(), np.percentile(level[active], 50)]), xa.mean(axis=1)]
    feats = np.concatenate(parts)
    return feats.astype(np.float32)


# --- seed 001 / 002 features: MFCC with deltas, spectral descriptors, window statistics ----------------------------
# All are computed from the window's log-mel frames (dB, no floor), the only thing the streaming engine keeps.  MFCC
# and deltas equal librosa's (see `mfcc`, `delta`).  Descriptors librosa computes from the waveform or the linear
# STFT (zero-crossing rate, RMS, spectral centroid and bandwidth) are estimated from the mel bands: the mel power
# of band m divided by its Slaney norm is the power the band's triangle collects, and those triangles sum to ~1 over
# the spectrum, so sums over bins become sums over bands.  How close each estimate comes to librosa is measured in
# tests/test_features.py and docs/kinds.md.

def mfcc(db: np.ndarray, n_mfcc: int = 13, top_db: float | None = 80.0) -> np.ndarray:
    """MFCC ``(n_mfcc, frames)`` of log-mel frames: the orthonormal DCT-II over the (floored) mel bands.

    Equal to ``librosa.feature.mfcc(S=db_floored, n_mfcc=n_mfcc)`` (dct_type 2, norm ortho, no lifter); for a whole
    clip, ``mfcc(log_mel(y, top_db=None))`` equals ``librosa.feature.mfcc(y=y, sr=16000, n_mfcc=n_mfcc)`` to float32
    rounding of the dB values (tests: max |diff| < 2e-3 on coefficients of size ~100-500)."""
    x = _floor(np.asarray(db, dtype=np.float32), top_db).astype(np.float64)
    return (_dct_matrix(x.shape[0], n_mfcc) @ x).astype(np.float32)


@lru_cache(maxsize=32)
def _savgol_matrix(n: int, width: int, order: int) -> np.ndarray:
    """``(n, n)`` matrix D with ``delta = x @ D.T`` along time: scipy.signal.savgol_filter(x, width, polyorder=order,
    deriv=order, mode="interp") as librosa.feature.delta uses it.  Inside, the least-squares polynomial of degree
    ``order`` over ``width`` frames centred on t, differentiated ``order`` times at t; in the first and last
    ``width // 2`` frames ("interp"), the polynomial fitted to the first (last) ``width`` frames, differentiated
    at t."""
    h = width // 2
    u = np.arange(-h, h + 1, dtype=np.float64)
    pinv = np.linalg.pinv(u[:, None] ** np.arange(order + 1)[None, :])  # (order+1, width): coefficients a_p
    # polyorder == deriv (librosa): the order-th derivative of the fitted polynomial is order! * a_order, the same
    # at every position, so an edge row is the interior row applied to the first (last) width frames
    row = math.factorial(order) * pinv[order]
    d = np.zeros((n, n))
    for t in range(h, n - h):
        d[t, t - h:t + h + 1] = row
    for t in range(min(h, n)):
        d[t, :width] = row
        d[n - 1 - t, n - width:] = row
    return d


def delta(x: np.ndarray, width: int = 9, order: int = 1) -> np.ndarray:
    """``librosa.feature.delta(x, width=width, order=order)`` along the last axis (mode "interp").  librosa refuses
    fewer frames than ``width``; here the width shrinks to the largest odd number of frames available (>= 3), and
    fewer than 3 frames give zeros."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if width < 3 or width % 2 == 0:
        raise ValueError("delta width must be an odd integer >= 3")
    w = min(width, n if n % 2 else n - 1)
    if w < max(3, order + 1):
        return np.zeros_like(x, dtype=np.float32)
    return (x @ _savgol_matrix(n, w, order).T).astype(np.float32)


def _cmvn(x: np.ndarray) -> np.ndarray:
    """Each channel (column) of ``(frames, channels)`` minus its mean over the window, over its std."""
    return (x - x.mean(axis=0, keepdims=True)) / (x.std(axis=0, keepdims=True) + 1e-3)


def mfcc_deltas(db: np.ndarray, n_frames: int, n_mfcc: int = 13, top_db: float | None = 80.0, width: int = 9,
                cmvn: bool = False) -> np.ndarray:
    """TIM-Net / seed 002 input ``(n_frames, 3 * n_mfcc)``: per frame the MFCC, their deltas and delta-deltas
    (39 with the default 13), time first.  ``cmvn``: standardise each coefficient over the window."""
    c = mfcc(fit_frames(np.asarray(db, dtype=np.float32), n_frames), n_mfcc, top_db)
    x = np.concatenate([c, delta(c, width, 1), delta(c, width, 2)]).T
    return (_cmvn(x) if cmvn else x).astype(np.float32)


@lru_cache(maxsize=8)
def _mel_geometry(n_mels: int, sample_rate: int, n_fft: int, fmin: float, fmax: float | None):
    """Per mel band, from the frontend's filters: the Slaney norm of its triangle, the number of bins it spans
    (sum of its unnormalised triangle), and the triangle-weighted mean of f, f^2 and cos(2 pi f / sr) over them."""
    from .frontend import mel_filters
    w = mel_filters(sample_rate, n_fft, n_mels, fmin, fmax).astype(np.float64)
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    hi = sample_rate / 2.0 if fmax is None else fmax
    from .frontend import hz_to_mel, mel_to_hz
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(hi), n_mels + 2))
    norm = 2.0 / (edges[2:] - edges[:-2])
    tri = w / norm[:, None]
    bins = tri.sum(axis=1)
    safe = np.where(bins > 0, bins, 1.0)
    mean_f = tri @ f / safe
    mean_f2 = tri @ f ** 2 / safe
    mean_cos = tri @ np.cos(2 * np.pi * f / sample_rate) / safe
    return norm, bins, mean_f, mean_f2, mean_cos


def _band_power(db: np.ndarray, geometry) -> np.ndarray:
    """``(n_mels, frames)``: the STFT power each mel band's (unnormalised) triangle collects."""
    norm = geometry[0]
    return np.exp(np.asarray(db, dtype=np.float64) * (LN10 / 10.0)) / norm[:, None]  # 10^(db/10)


def spectral_descriptors(db: np.ndarray, sample_rate: int = 16000, n_fft: int = 2048, fmin: float = 0.0,
                         fmax: float | None = None) -> dict:
    """Per frame of log-mel dB frames ``(n_mels, T)`` (no floor), estimates of librosa's frame descriptors:

    - ``rms``: ``librosa.feature.rms(S=|STFT|, frame_length=n_fft)`` = sqrt(2 sum_k |X_k|^2) / n_fft (Parseval)
    - ``centroid``, ``bandwidth`` (Hz): ``librosa.feature.spectral_centroid`` / ``spectral_bandwidth`` (p=2) of the
      STFT magnitude, each band's magnitude taken as flat over its triangle (sqrt(power * bins))
    - ``zcr``: ``librosa.feature.zero_crossing_rate(y, frame_length=n_fft)`` via the Rice/Kedem relation for a
      Gaussian signal, zcr = arccos(rho1) / pi with rho1 the lag-1 autocorrelation = sum P(f) cos(2 pi f / sr) /
      sum P(f) (the waveform is not kept; exact for a tone or white noise, an estimate for speech).
    """
    db = np.asarray(db, dtype=np.float64)
    geo = _mel_geometry(db.shape[0], sample_rate, n_fft, fmin, fmax)
    _, bins, mean_f, mean_f2, mean_cos = geo
    e = _band_power(db, geo)
    total = e.sum(axis=0) + 1e-20
    rms = np.sqrt(2.0 * total) / n_fft
    mag = np.sqrt(e * bins[:, None])
    msum = mag.sum(axis=0) + 1e-20
    centroid = (mean_f[:, None] * mag).sum(axis=0) / msum
    spread = (mean_f2[:, None] - 2 * centroid[None] * mean_f[:, None] + centroid[None] ** 2) * mag
    bandwidth = np.sqrt(np.maximum(spread.sum(axis=0) / msum, 0.0))
    rho = np.clip((mean_cos[:, None] * e).sum(axis=0) / total, -1.0, 1.0)
    zcr = np.arccos(rho) / np.pi
    return {"zcr": zcr, "rms": rms, "centroid": centroid, "bandwidth": bandwidth}


HANN_POWER = 0.375  # mean square of the periodic Hann window: windowed frame power / signal power


def frame_descriptors(db: np.ndarray, n_frames: int, n_mfcc: int = 13, top_db: float | None = 80.0, width: int = 9,
                      sample_rate: int = 16000, n_fft: int = 2048, fmin: float = 0.0, fmax: float | None = None,
                      cmvn: bool = False) -> np.ndarray:
    """Seed 001's acoustic features per frame ``(n_frames, 3 * n_mfcc + 4)``: MFCC + deltas + delta-deltas
    (`mfcc_deltas`), zero-crossing rate, RMS in dB (20 log10, floored at -100), spectral centroid and bandwidth in
    kHz (`spectral_descriptors` of the unfloored window).  ``cmvn``: standardise each channel over the window."""
    x = fit_frames(np.asarray(db, dtype=np.float32), n_frames)
    m = mfcc_deltas(x, n_frames, n_mfcc, top_db, width)
    d = spectral_descriptors(x, sample_rate, n_fft, fmin, fmax)
    extra = np.stack([d["zcr"], 20 * np.log10(np.maximum(d["rms"], 1e-5)), d["centroid"] / 1000.0,
                      d["bandwidth"] / 1000.0], axis=1)
    out = np.concatenate([m, extra], axis=1)
    return (_cmvn(out) if cmvn else out).astype(np.float32)


def _moments(v: np.ndarray) -> np.ndarray:
    """mean, variance, skewness, excess kurtosis (scipy.stats' biased defaults) of the values ``v``."""
    v = np.asarray(v, dtype=np.float64).ravel()
    mu, var = v.mean(), v.var()
    sd = np.sqrt(var)
    if sd < 1e-9:
        return np.array([mu, var, 0.0, 0.0])
    z = (v - mu) / sd
    z2 = z * z  # products, not powers: np.power with 3 or 4 costs ~1 ms on a window
    return np.array([mu, var, (z2 * z).mean(), (z2 * z2).mean() - 3.0])


WINDOW_STATS = ("logmel_mean", "logmel_var", "logmel_skew", "logmel_kurtosis", "signal_var_db", "signal_kurtosis",
                "centroid_khz", "bandwidth_khz")


def window_stats(db: np.ndarray, n_frames: int, top_db: float | None = 80.0, sample_rate: int = 16000,
                 n_fft: int = 2048, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Seed 001's statistical features of a window, ``len(WINDOW_STATS)`` values:

    - mean, variance, skewness, excess kurtosis of the window's (floored) log-mel dB values;
    - the raw signal's variance (dB) and excess kurtosis, estimated from the frame powers: the seed takes the four
      moments of the samples, but a power spectrogram keeps no phase (the samples' mean and skewness are gone);
      for speech modelled as Gaussian noise of slowly varying power s_t, the samples' variance is mean(s_t) and
      their kurtosis 3 mean(s_t^2) / mean(s_t)^2 (excess: minus 3), s_t = rms_t^2 / HANN_POWER;
    - the mean spectral centroid and bandwidth (kHz) over the window's frames (the seed's last two).
    """
    x = fit_frames(np.asarray(db, dtype=np.float32), n_frames)
    d = spectral_descriptors(x, sample_rate, n_fft, fmin, fmax)
    s = d["rms"] ** 2 / HANN_POWER
    var = s.mean()
    kurt = 3.0 * (s ** 2).mean() / max(var, 1e-20) ** 2 - 3.0
    out = np.concatenate([_moments(_floor(x, top_db)),
                          [10 * np.log10(max(var, 1e-10)), kurt, d["centroid"].mean() / 1000.0,
                           d["bandwidth"].mean() / 1000.0]])
    return out.astype(np.float32)


def power_level_db(db: np.ndarray, axis=None) -> np.ndarray:
    """The power mean of dB values, ``10 log10 mean 10^(db/10)`` (over ``axis``; all by default): a window's level,
    which its loud (speech) frames set, so additive noise under the speech hardly moves it (docs/room.md)."""
    db = np.asarray(db, dtype=np.float64)
    top = db.max(axis=axis, keepdims=True)
    level = top + 10.0 * np.log10(np.mean(np.exp((db - top) * (LN10 / 10.0)), axis=axis, keepdims=True))
    return level.squeeze() if axis is None else np.squeeze(level, axis=axis)


def concat(db: np.ndarray, n_frames: int, parts: list, level_free: bool = False) -> np.ndarray:
    """Several inputs in one flat vector, for a network with one input tensor that splits it again (fusion,
    ensemble): ``parts`` is a list of ``{"features": name, "params": {...}}``, each computed on the window (with the
    window's ``n_frames``) and flattened, in order.  The part ``gender`` is `edge_ser.gender.estimate` (from the
    audio's log-mel, never from a name or a label).  ``level_free``: the window's level (`power_level_db`) is
    taken off its log-mel first, so a gain on the input changes no part (silence padding then sits at a fixed
    level under the speech)."""
    db = np.asarray(db, dtype=np.float32)
    if level_free and db.size:
        db = (db - np.float32(power_level_db(db))).astype(np.float32)
    out = []
    for part in parts:
        name, params = part["features"], dict(part.get("params", {}))
        if name == "gender":
            from .gender import estimate
            out.append(np.atleast_1d(np.float32(estimate(db, n_frames, **params))))
        else:
            out.append(compute(db, name, {"n_frames": n_frames, **params}).ravel())
    return np.concatenate(out).astype(np.float32)


def ge2e(db: np.ndarray, n_frames: int, **params) -> np.ndarray:
    """A pretrained speech encoder's features of the window (`edge_ser.encoders.ge2e`, onnxruntime)."""
    from .encoders import ge2e as encode
    return encode(db, n_frames, **params)


FEATURES = {"log_mel_image": log_mel_image, "log_mel_stats": log_mel_stats, "band_stats": band_stats,
            "mfcc_deltas": mfcc_deltas, "frame_descriptors": frame_descriptors, "window_stats": window_stats,
            "concat": concat, "ge2e": ge2e}


def compute(db: np.ndarray, features: str, params: dict) -> np.ndarray:
    """The model input for one window: ``features`` names a function above, ``params`` its keyword arguments."""
    try:
        fn = FEATURES[features]
    except KeyError:
        raise ValueError(f"unknown features {features!r} (known: {', '.join(FEATURES)})") from None
    return fn(db, **params)

"""Model inputs computed from log-mel frames: one definition shared by training (export/) and the runtime.

A model's manifest names its features in ``input.features`` with their parameters in ``input.params``;
`compute` turns a window of log-mel frames (dB, no top_db floor yet) into the model's input array.
"""
from __future__ import annotations

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
    gives one window, centre-padded with silence by `fit_frames`.
    """
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2:
        raise ValueError(f"db must be (n_mels, frames), got shape {db.shape}")
    if n_frames <= 0 or hop_frames <= 0:
        raise ValueError("n_frames and hop_frames must be positive")
    t = db.shape[1]
    if t <= n_frames:
        return fit_frames(db, n_frames)[None].copy()
    starts = list(range(0, t - n_frames + 1, hop_frames))
    if starts[-1] + n_frames < t:
        starts.append(t - n_frames)
    return np.stack([db[:, s:s + n_frames] for s in starts])


def _floor(db: np.ndarray, top_db: float | None) -> np.ndarray:
    return apply_top_db(db, top_db) if top_db is not None else db


def log_mel_image(db: np.ndarray, n_frames: int, top_db: float | None = 80.0, norm: str = "utterance") -> np.ndarray:
    """CNN input ``(n_mels, n_frames, 1)``: the window's log-mel, floored and normalised.

    norm: ``utterance`` subtracts the window's mean and divides by its std (removes gain);
    ``band`` subtracts each band's mean over the window (removes a fixed channel response) then divides by the
    window's std; ``none`` leaves dB values.
    """
    x = _floor(fit_frames(np.asarray(db, dtype=np.float32), n_frames), top_db)
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


FEATURES = {"log_mel_image": log_mel_image, "log_mel_stats": log_mel_stats}


def compute(db: np.ndarray, features: str, params: dict) -> np.ndarray:
    """The model input for one window: ``features`` names a function above, ``params`` its keyword arguments."""
    try:
        fn = FEATURES[features]
    except KeyError:
        raise ValueError(f"unknown features {features!r} (known: {', '.join(FEATURES)})") from None
    return fn(db, **params)

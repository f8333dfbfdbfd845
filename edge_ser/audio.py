"""Decode audio files and bring them to the frontend's rate: mono float32 at 16 kHz.

Any format libsndfile reads (WAV, FLAC, OGG, AIFF, ...), any sample rate and channel count, integer or float
samples.  Channels are averaged; the rate is converted with a polyphase FIR resampler (scipy's
``resample_poly``, Kaiser-windowed low-pass anti-aliasing filter).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .errors import AudioError

TARGET_RATE = 16000


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` audio; 1-D audio is returned as is."""
    data = np.asarray(data)
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(f"audio must be (frames, channels), got shape {data.shape}")
    return data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Polyphase resampling with an anti-aliasing filter; float32 out."""
    audio = np.asarray(audio, dtype=np.float64)
    if orig_rate == target_rate or audio.size == 0:
        return audio.astype(np.float32)
    ratio = Fraction(int(target_rate), int(orig_rate))
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def sanitize(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Reject audio that no frontend can use (NaN/inf samples)."""
    if audio.size and not np.all(np.isfinite(audio)):
        raise AudioError(f"{what}: contains NaN or infinite samples")
    return audio


def check_readable(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioError(f"{p}: permission denied")
    return p


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    p = check_readable(path)
    try:
        return sf.info(str(p))
    except Exception as exc:  # libsndfile's messages are cryptic; keep ours one line
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None


def load_audio(path: str | os.PathLike, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Read a file as mono float32 at ``target_rate``.  Raises AudioError with a one-line reason."""
    p = check_readable(path)
    try:
        data, rate = sf.read(str(p), dtype="float64", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{p}: contains no samples")
    audio = sanitize(to_mono(data), str(p))
    return resample(audio, rate, target_rate)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]

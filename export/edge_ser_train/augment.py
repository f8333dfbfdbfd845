"""Waveform augmentation for the training part (applied after the split, never to validation/test clips).

AWGN at a chosen SNR (seed 000: 20 dB), pitch shift, time stretch and low-pass, each seeded: the same clip, kind
and seed give the same samples.  `variant_seed` derives a per-clip seed from the run's seed and the clip's path so
cached augmented copies are reproducible.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AugmentConfig:
    snr_db: float = 20.0                 # AWGN signal-to-noise ratio (seed 000)
    pitch_steps: float = 2.0             # pitch shift drawn uniformly in +-steps semitones (at least 0.5)
    stretch: float = 0.15                # time-stretch rate drawn in [1 - s, 1 + s]
    lowpass_hz: tuple = (2500.0, 5000.0)  # low-pass cut-off drawn in this range

    def to_dict(self) -> dict:
        return {"snr_db": self.snr_db, "pitch_steps": self.pitch_steps, "stretch": self.stretch,
                "lowpass_hz": list(self.lowpass_hz)}


def variant_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:4], "little")


def signal_power(audio: np.ndarray) -> float:
    return float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise scaled so that 10*log10(P_signal / P_noise) == snr_db (P over the whole clip)."""
    p = signal_power(audio)
    if p == 0.0:
        return audio.astype(np.float32)
    noise = rng.standard_normal(len(audio))
    noise *= np.sqrt(p / (10.0 ** (snr_db / 10.0)) / np.mean(noise ** 2))
    return (audio + noise).astype(np.float32)


def pitch_shift(audio: np.ndarray, steps: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    import librosa
    return librosa.effects.pitch_shift(np.asarray(audio, dtype=np.float32), sr=sr, n_steps=float(steps))


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    import librosa
    return librosa.effects.time_stretch(np.asarray(audio, dtype=np.float32), rate=float(rate))


def low_pass(audio: np.ndarray, cutoff_hz: float, sr: int = SAMPLE_RATE, order: int = 6) -> np.ndarray:
    sos = butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, np.asarray(audio, dtype=np.float64)).astype(np.float32)


def _signed(rng: np.random.Generator, limit: float, floor: float) -> float:
    v = rng.uniform(floor, limit) if limit > floor else limit
    return float(v if rng.random() < 0.5 else -v)


def apply(audio: np.ndarray, kind: str, seed: int, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """One augmented copy of ``audio`` (16 kHz mono float32)."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return add_noise(audio, cfg.snr_db, rng)
    if kind == "pitch":
        return pitch_shift(audio, _signed(rng, cfg.pitch_steps, 0.5))
    if kind == "stretch":
        return time_stretch(audio, 1.0 + _signed(rng, cfg.stretch, 0.03))
    if kind == "lowpass":
        return low_pass(audio, rng.uniform(*cfg.lowpass_hz))
    raise ValueError(f"unknown augmentation {kind!r} (known: {', '.join(KINDS)})")


KINDS = ("noise", "pitch", "stretch", "lowpass")

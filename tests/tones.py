"""Synthetic voiced-speech-like tones: what the tiny test models in ``tests/fixtures/models/`` were trained on
(by ``scripts/make_test_models.py``) and what the tests classify with them.  numpy only, so a runtime-only
install can run the tests.  Class ``k`` is a harmonic complex at f0 = 120 + 70 k Hz."""
from __future__ import annotations

import numpy as np

SR = 16000


def harmonic_tone(f0: float, seconds: float, rng: np.random.Generator, amp: float = 0.3, noise: float = 0.003,
                  sr: int = SR) -> np.ndarray:
    """A voiced-speech-like harmonic complex (decaying harmonics up to 4 kHz) with a little vibrato and noise."""
    t = np.arange(int(seconds * sr)) / sr
    vib = 1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(vib) / sr
    y = np.zeros_like(t)
    for k in range(1, int(4000 // f0) + 1):
        y += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    y *= amp / (np.abs(y).max() + 1e-9)
    y += noise * rng.standard_normal(len(t))
    return y.astype(np.float32)


def tone_f0(class_index: int) -> float:
    """The fundamental of class ``class_index``'s tones (Hz)."""
    return 120.0 + 70.0 * class_index


def tone_dataset(n_classes: int, per_class: int, seed: int, seconds=(0.8, 1.6)):
    """``per_class`` tones of each of ``n_classes`` classes (f0 within +-2 %, random length and level):
    ``(clips, labels)``, the same for the same seed."""
    rng = np.random.default_rng(seed)
    clips, ys = [], []
    for c in range(n_classes):
        for _ in range(per_class):
            f0 = tone_f0(c) * rng.uniform(0.98, 1.02)
            clips.append(harmonic_tone(f0, rng.uniform(*seconds), rng, amp=rng.uniform(0.05, 0.5)))
            ys.append(c)
    return clips, np.array(ys)

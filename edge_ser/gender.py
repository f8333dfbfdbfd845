"""A small gender estimator from a window of log-mel frames, shipped with the runtime (seed 001's gender feature).

SER-FusionNet feeds the speaker's gender to its classifier; at run time nothing tells the robot who speaks, so the
gender comes from the audio: a logistic regression on the window's level-free band statistics with the F0 cue of
`edge_ser.features.band_stats` (``pitch=True``), its weights in ``assets/gender.json`` (numpy only, no pickle).
Trained by ``python -m edge_ser_train.gender_train`` on CREMA-D (VideoDemographics.csv) and RAVDESS (odd actors
male, even female); its accuracy on speakers it never heard is recorded in the file (``metrics``) and in
docs/kinds.md.  It is never read from a file name or a label.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelError

MODEL_PATH = Path(__file__).with_name("assets") / "gender.json"


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"gender estimator {p}: {exc.strerror or exc}") from None
    m = json.loads(raw)
    m["sha256"] = hashlib.sha256(raw).hexdigest()
    for key in ("mean", "scale", "coef"):
        m[key] = np.asarray(m[key], dtype=np.float64)
    return m


def model_info(path: Path | None = None) -> dict:
    """The estimator's metadata: features, params, metrics, trained_on and the file's sha256."""
    m = _load(str(path or MODEL_PATH))
    return {k: v for k, v in m.items() if k not in ("mean", "scale", "coef", "intercept")}


def estimate(db: np.ndarray, n_frames: int, sha256: str | None = None, path: str | None = None) -> float:
    """P(female) for one window of log-mel frames ``(n_mels, T)`` (dB, no floor), 0 = male, 1 = female.

    ``sha256``: the estimator file a model was trained with (its manifest records it); a different file is refused
    (the model's gender input would not mean what it learned)."""
    from . import features
    m = _load(str(path or MODEL_PATH))
    if sha256 is not None and sha256 != m["sha256"]:
        raise ModelError(f"gender estimator {path or MODEL_PATH} has sha256 {m['sha256'][:12]}…, the model was "
                         f"trained with {sha256[:12]}…")
    x = features.compute(db, m["features"], {**m["params"], "n_frames": n_frames}).astype(np.float64)
    z = float(((x - m["mean"]) / m["scale"]) @ m["coef"] + m["intercept"])
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -30, 30))))

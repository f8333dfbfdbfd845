"""Pretrained speech encoders as model inputs (`edge_ser.features.FEATURES`), run with onnxruntime.

``ge2e``: the GE2E voice encoder of Resemblyzer 0.1.4 (a 3-layer LSTM, 256 units, trained for speaker
verification, on LibriSpeech and VoxCeleb per the project it comes from; Apache-2.0, assets/ATTRIBUTION.md),
converted to ONNX without torch by ``edge_ser_train.ge2e`` (the file ships in ``assets/encoders/``).  Its input is the power mel spectrogram of 16 kHz
audio, 40 bands, 25 ms frames every 10 ms: the runtime frontend with ``n_fft=400, hop_length=160, n_mels=40``
(`GE2E_FRONTEND`), whose dB frames the graph turns back into power.  What a model uses is the encoder's internal
state, not its speaker embedding: each LSTM layer's hidden state averaged over time (768 values), which a linear
probe measured far more telling of emotion than the 256-value embedding (reports/embedding/).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ModelError
from .features import SILENCE_DB, fit_frames, power_level_db

ENCODERS_DIR = Path(__file__).resolve().parent / "assets" / "encoders"
GE2E_PATH = ENCODERS_DIR / "ge2e.onnx"
GE2E_SHA256 = "2bb5f61ac9ffaff926f0d9c41b0cebb8e1277c5cadfdbf016a52b8f474739c53"  # what edge_ser_train.ge2e writes
# its second and third LSTM layers quantised to int8 (edge_ser_train.ge2e.quantize), the first left in float:
# hidden means within ~0.05 of the float ones, ~40 % cheaper per window (reports/embedding/compact.json)
GE2E_INT8_PATH = ENCODERS_DIR / "ge2e-int8.onnx"
GE2E_INT8_SHA256 = "fdec5edacb1d828d532af752de219f3216acb1428ba28fe1fcb73d773f1c0a82"  # edge_ser_train.ge2e.quantize
GE2E_FILES = {"float": (GE2E_PATH, GE2E_SHA256), "int8": (GE2E_INT8_PATH, GE2E_INT8_SHA256)}
# the frontend a GE2E model declares in its manifest (FrontendConfig fields)
GE2E_FRONTEND = {"n_fft": 400, "hop_length": 160, "n_mels": 40}
GE2E_PARTIAL_FRAMES = 160   # 1.6 s: the encoder's training utterances (Resemblyzer's partials)
GE2E_STEP_FRAMES = 77       # a partial every 0.77 s (Resemblyzer's rate 1.3 per second)
GE2E_MIN_COVERAGE = 0.75    # a last partial is kept when at least this share of it is inside the window
# Resemblyzer scales every utterance to -30 dBFS RMS; speech at that RMS has a power level (`power_level_db` of
# its 40-band dB frames) of -20.3 dB (median of 22 CREMA-D and RAVDESS clips, spread +-0.4): the window is shifted
# to that level, so the input gain never reaches the encoder.
GE2E_LEVEL_DB = -20.3


@lru_cache(maxsize=4)
def _session(path: str, sha256: str):
    """One onnxruntime session per encoder file, its checksum verified first (a missing or damaged file is refused
    with a ModelError: one ``error:`` line in the CLI)."""
    import onnxruntime as ort

    from .manifest import sha256_of
    try:
        actual = sha256_of(Path(path))
    except OSError as exc:
        raise ModelError(f"speech encoder {path}: {exc.strerror or exc} (reinstall edge-ser)") from None
    if actual != sha256:
        raise ModelError(f"speech encoder {path}: checksum mismatch (expected {sha256[:12]}...): the file is damaged "
                         "(reinstall edge-ser)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def partial_starts(n: int, partial: int = GE2E_PARTIAL_FRAMES, step: int = GE2E_STEP_FRAMES,
                   min_coverage: float = GE2E_MIN_COVERAGE) -> list[int]:
    """Where the encoder's partial utterances start in ``n`` frames (as Resemblyzer cuts them): every ``step``
    frames while a partial fits, then one more if at least ``min_coverage`` of it is inside (the rest is padded
    with silence); always at least one."""
    starts = list(range(0, max(1, n - partial + step + 1), step))
    if len(starts) > 1 and (n - starts[-1]) / partial < min_coverage:
        starts = starts[:-1]
    return starts


def ge2e(db: np.ndarray, n_frames: int, output: str = "hidden_means",
         level_db: float | None = GE2E_LEVEL_DB, precision: str = "float") -> np.ndarray:
    """The GE2E encoder's features of one window of 40-band log-mel frames ``db`` (n_mels, frames), float32:
    ``output="hidden_means"`` (768: each layer's mean hidden state), ``"embedding"`` (256, L2-normalised) or
    ``"both"`` (1024), averaged over the window's partial utterances.  ``level_db``: the window is first shifted
    to this power level (None: as recorded).  ``precision``: ``"float"`` (``ge2e.onnx``) or ``"int8"``
    (``ge2e-int8.onnx``: a model trained on one is run with the same one, its manifest says which)."""
    db = np.asarray(db, dtype=np.float32)
    if db.ndim != 2 or db.shape[0] != GE2E_FRONTEND["n_mels"]:
        raise ModelError(f"features ge2e need log-mel frames of {GE2E_FRONTEND['n_mels']} bands (a model with the "
                         f"frontend {GE2E_FRONTEND}), got an array of shape {db.shape}")
    if output not in ("hidden_means", "embedding", "both"):
        raise ModelError(f"features ge2e: output must be hidden_means, embedding or both, got {output!r}")
    if precision not in GE2E_FILES:
        raise ModelError(f"features ge2e: precision must be one of {', '.join(GE2E_FILES)}, got {precision!r}")
    db = fit_frames(db, n_frames)
    if level_db is not None and db.size:
        db = (db + np.float32(level_db - power_level_db(db))).astype(np.float32)
    n = db.shape[1]
    starts = partial_starts(n)
    need = starts[-1] + GE2E_PARTIAL_FRAMES
    if need > n:
        db = np.concatenate([db, np.full((db.shape[0], need - n), SILENCE_DB, np.float32)], axis=1)
    batch = np.stack([db[:, s:s + GE2E_PARTIAL_FRAMES].T for s in starts]).astype(np.float32)
    path, sha256 = GE2E_FILES[precision]
    session = _session(str(path), sha256)
    hidden, embedding = session.run(None, {"logmel": batch})
    if output == "hidden_means":
        return hidden.mean(axis=0)
    emb = embedding.mean(axis=0)
    emb = emb / max(float(np.linalg.norm(emb)), 1e-12)
    return emb.astype(np.float32) if output == "embedding" else np.concatenate([emb, hidden.mean(axis=0)])

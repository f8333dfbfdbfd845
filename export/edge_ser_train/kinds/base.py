"""The protocol every model kind follows, so loaders, splits, the training loop, export and manifests are shared.

A kind names its input (features + params, via `InputSpec`), fits on window inputs with optional sample weights
and validation data, predicts window probabilities, saves/loads its native model (training side only), and exports
deployable files (``model.onnx`` / ``model.tflite``).  A new kind is one new module in `edge_ser_train.kinds` registered in
`edge_ser_train.kinds.KINDS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..dataset import InputSpec


class Kind(Protocol):
    name: str
    formats: tuple[str, ...]          # deployable formats this kind exports ("onnx", "tflite")
    # optional: ``soft_targets = True`` when fit also takes y as probabilities over the labels (N, n_classes),
    # e.g. soft SSL pseudo labels; otherwise y is label indices (N,)

    def input_spec(self, window_seconds: float, hop_seconds: float) -> InputSpec: ...

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
            validation: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0) -> "Kind": ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> "Kind": ...

    def export(self, directory: Path, fmt: str, quantize: str = "none",
               representative: np.ndarray | None = None) -> Path: ...

    def describe(self) -> dict: ...

"""What the Keras kinds after seeds 001-003 (fusion, timnet, aae, ensemble) share: class-balanced fitting with
early stopping on speaker-disjoint validation windows, native save/load, ONNX (tf2onnx) and TFLite
(``from_keras_model``, via `edge_ser_train.kinds.cnn.to_tflite`) export.  A kind subclasses `KerasKind`, gives its
options dataclass (``Options``), its input (``features`` / ``params``) and ``build(input_shape, X)``; networks use
built-in Keras layers only, so a saved model loads without custom objects and converts to every format.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from ..dataset import InputSpec
from ..targets import balanced_weights, head_rows
from .cnn import _tf, composed_heads_loss, export_keras, fine16_output

log = logging.getLogger("edge_ser.train")


def normalization(X: np.ndarray, name: str = "input_norm", axis=-1):
    """A Keras Normalization layer adapted on the training inputs (per channel of the last axis)."""
    import keras
    layer = keras.layers.Normalization(axis=axis, name=name)
    layer.adapt(np.asarray(X, np.float32).reshape(-1, X.shape[-1]) if axis == -1 else np.asarray(X, np.float32))
    return layer


def time_reverse(x, name: str):
    """``x (batch, T, C)`` reversed in time with built-in layers: a fixed, frozen anti-identity Dense over the
    transposed time axis (converts to ONNX and TFLite, no custom layer; T^2 multiplications per channel)."""
    from keras import layers
    t = int(x.shape[1])
    h = layers.Permute((2, 1), name=f"{name}_t")(x)
    dense = layers.Dense(t, use_bias=False, trainable=False, name=name)
    h = dense(h)
    dense.set_weights([np.eye(t, dtype=np.float32)[::-1]])
    return layers.Permute((2, 1), name=f"{name}_back")(h)


def split_flat(inp, sizes: list, shapes: list, name: str):
    """Split a flat input ``(batch, sum(sizes))`` into parts reshaped to ``shapes`` (built-in layers only)."""
    from keras import layers
    total = int(sum(sizes))
    col = layers.Reshape((total, 1), name=f"{name}_col")(inp)
    out, start = [], 0
    for k, (n, shape) in enumerate(zip(sizes, shapes)):
        part = layers.Cropping1D((start, total - start - n), name=f"{name}_crop{k}")(col)
        out.append(layers.Reshape(tuple(shape), name=f"{name}_part{k}")(part))
        start += n
    return out


class KerasKind:
    """Base of the Keras kinds; subclasses set ``name``, ``Options``, ``features`` and implement ``build``."""
    name = "keras"
    formats = ("onnx", "tflite")
    Options = None  # a dataclass with documented defaults
    speaker_axes: list | None = None  # speaker normalisation axes (edge_ser.adapt) when options.speaker_norm

    def __init__(self, n_classes: int, partial_groups=None, factorised: bool = False, **options):
        self.n_classes = int(n_classes)
        # fine16 (`edge_ser_train.targets`): label n_classes + j is the candidate set partial_groups[j]; factorised
        # networks end in `cnn.fine16_output` (emotion and intensity heads composed) and train on the masked loss
        self.partial_groups = [list(g) for g in (partial_groups or [])]
        self.factorised = bool(factorised)
        if self.factorised and self.n_classes != 16:
            raise ValueError(f"a factorised (emotion x intensity) model has fine16's 16 outputs, not {n_classes}")
        if self.partial_groups and not self.factorised:
            raise ValueError(f"the {self.name} kind trains partial labels factorised only (factorised=True, fine16)")
        self.o = self.Options(**options)
        self.model = None
        self.history: dict = {}

    supports_partial = True  # factorised only (fine16)

    def output(self, h):
        """The network's probabilities on features ``h``: a softmax over the labels, or fine16's composed heads."""
        from keras import layers
        if self.factorised:
            return fine16_output(h)
        return layers.Dense(self.n_classes, activation="softmax", name="probabilities")(h)

    def targets(self, y, w=None) -> tuple[np.ndarray, np.ndarray | None]:
        """What Keras fits on: (label indices, balanced sample weights), or factorised (rows of `targets.head_rows`,
        None: the per-head weights are inside the rows).  ``w`` None: validation targets, unweighted."""
        y = np.asarray(y)
        if self.factorised:
            return head_rows(y, self.partial_groups, w), None
        if y.ndim != 1 or (len(y) and y.max() >= self.n_classes):
            raise ValueError(f"the {self.name} kind trains on full labels (indices < {self.n_classes})")
        if w is None:
            return y, None
        return y, balanced_weights(y, np.asarray(w, np.float64), self.n_classes).astype(np.float32)

    def loss(self):
        from edge_ser.labels import FINE16_EMOTIONS, INTENSITIES
        if self.factorised:
            return composed_heads_loss(len(FINE16_EMOTIONS), len(INTENSITIES))
        return "sparse_categorical_crossentropy"

    # --- input ------------------------------------------------------------------------------------------------
    @property
    def features(self) -> str:
        raise NotImplementedError

    @property
    def params(self) -> dict:
        raise NotImplementedError

    @property
    def speaker_norm(self) -> dict | None:
        if not getattr(self.o, "speaker_norm", False):
            return None
        from edge_ser.adapt import PRIOR_WINDOWS
        return {"axes": list(self.speaker_axes or []), "prior_windows": PRIOR_WINDOWS}

    def input_spec(self, window_seconds: float, hop_seconds: float) -> InputSpec:
        return InputSpec(self.features, self.params, window_seconds, hop_seconds, speaker_norm=self.speaker_norm)

    # --- training ---------------------------------------------------------------------------------------------
    def build(self, input_shape, X: np.ndarray):
        """The (uncompiled) Keras model; ``X`` are training inputs (for normalisation layers)."""
        raise NotImplementedError

    def fit(self, X, y, sample_weight=None, validation=None, seed: int = 0, progress: bool = False):
        _tf()
        import keras
        X = np.asarray(X, np.float32)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        yt, wt = self.targets(y, w)
        keras.utils.set_random_seed(seed)
        self.model = self.build(X.shape[1:], X)
        self.history = self._fit_built(X, yt, wt, validation)
        return self

    def _fit_built(self, X, y, w, validation) -> dict:
        """Train the network `build` made (``self.model``) on the targets of `targets`; a kind with a frozen part
        overrides this to train only the rest."""
        return self._train(self.model, X, y, w, validation)

    def _train(self, net, X, y, w, validation, epochs: int | None = None) -> dict:
        """Fit ``net`` on targets from `targets` (``validation``: inputs and label indices, converted here)."""
        import keras
        net.compile(optimizer=keras.optimizers.Adam(self.o.lr), loss=self.loss())
        callbacks = []
        val = None
        if validation is not None and len(validation[0]):
            val = (np.asarray(validation[0], np.float32), self.targets(validation[1])[0])
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.o.patience,
                                                           restore_best_weights=True))
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=max(1, self.o.patience // 2),
                                                               min_lr=1e-7))  # seed 001's plateau schedule
        h = net.fit(X, y, sample_weight=w, validation_data=val, epochs=epochs or self.o.epochs,
                    batch_size=self.o.batch_size, shuffle=True, verbose=0, callbacks=callbacks)
        return {k: [float(v) for v in vals] for k, vals in h.history.items()}

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X, np.float32)
        return np.asarray(self.model.predict(X, batch_size=256, verbose=0), np.float32)

    # --- files ------------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save(directory / "model.keras")
        (directory / f"{self.name}.json").write_text(json.dumps(
            {"n_classes": self.n_classes, "options": dataclasses.asdict(self.o), "history": self.history,
             "factorised": self.factorised, "partial_groups": self.partial_groups}, default=list))

    def load(self, directory: Path):
        _tf()
        import keras
        directory = Path(directory)
        meta = json.loads((directory / f"{self.name}.json").read_text())
        self.n_classes = meta["n_classes"]
        self.o = self.Options(**meta["options"])
        self.factorised = bool(meta.get("factorised", False))
        self.partial_groups = meta.get("partial_groups", [])
        self.history = meta.get("history", {})
        self.model = keras.models.load_model(directory / "model.keras", compile=False)
        return self

    def describe(self) -> dict:
        d = {"network": self.network_text() + ("; two heads, emotion (6) and intensity (3), masked losses, composed "
                                               "into fine16" if self.factorised else ""), **dataclasses.asdict(self.o)}
        if self.model is not None:
            d["parameters"] = int(self.model.count_params())
            if self.history.get("loss"):
                d["epochs_run"] = len(self.history["loss"])
        return d

    def network_text(self) -> str:
        return self.name

    def export(self, directory: Path, fmt: str = "onnx", quantize: str = "none", representative=None) -> Path:
        return export_keras(self.model, directory, fmt, quantize, representative, what=f"a {self.name} model")

"""Seed 002's ensemble: the TIM-Net temporal branch on MFCC fused with an utterance-embedding branch.

Seed 002 mean-pools wav2vec2's last hidden states over time (768 values per utterance) and passes them through a
Dense layer; both branches are concatenated, then dropout and a softmax Dense.  No pretrained speech model can be
installed here, so our own speech encoder stands in: seed 003's BEGAN encoder (`edge_ser_train.kinds.aae`,
trained without labels, frozen), its code map mean-pooled over time.

Input: one flat vector per window (`edge_ser.features.concat`): the `mfcc_deltas` sequence ``(frames, 39)``, then
the embedding branch's input.  The embedding interface (option ``embedding``):

- ``"aae"`` (default): the part is the window's log-mel image (`log_mel_image`, as the encoder was trained) and
  the network holds the frozen encoder (``encoder=DIR`` from ``python -m edge_ser_train.kinds.aae``; without it, a
  BEGAN is trained on the fit's own windows, labels unused); embedding = the code map averaged over time, flattened.
- ``"features"``: ``embedding_features = {"features": NAME, "params": {...}}`` names any function of
  `edge_ser.features.FEATURES` (the runtime computes it from the window's log-mel, numpy only); its flattened
  output is the utterance embedding.  A user with their own embedding model adds a function there (for instance
  one that runs a local ONNX encoder) and names it; the exported model then takes that vector as its second part.

Either way, branch 2 is Dense(``embedding_units``, ReLU) on the embedding; the model is one file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .aae import AAE, PARAMS as IMAGE_PARAMS, describe_encoder, pad_layer
from .keras_kind import KerasKind, normalization, split_flat
from .timnet import TimNetOptions, temporal_branch

N_MFCC_FEATURES = 39


@dataclass
class EnsembleOptions:
    """TIM-Net branch options (``timnet``: TimNetOptions fields, full form by default) and the embedding branch."""
    timnet: dict = field(default_factory=dict)
    embedding: str = "aae"             # "aae" (our encoder, frozen) or "features" (a runtime feature vector)
    encoder: str | None = None         # embedding "aae": a train_encoder directory (None: train one in fit)
    began: dict = field(default_factory=dict)
    embedding_features: dict | None = None  # embedding "features": {"features": NAME, "params": {...}}
    embedding_units: int = 64          # the Dense layer on the embedding
    dropout: float = 0.3               # before the softmax Dense (seed 002)
    epochs: int = 60
    patience: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    speaker_norm: bool = False         # one flat input holds both parts; the encoder expects unnormalised images

    def __post_init__(self):
        if self.embedding not in ("aae", "features"):
            raise ValueError(f"ensemble embedding must be 'aae' or 'features', not {self.embedding!r}")
        if self.embedding == "features" and not (self.embedding_features or {}).get("features"):
            raise ValueError("embedding 'features' needs embedding_features={'features': NAME, 'params': {...}}")
        if self.speaker_norm:
            raise ValueError("the ensemble does not use speaker normalisation")
        TimNetOptions(**self.timnet)  # validate early


class Ensemble(KerasKind):
    name = "ensemble"
    Options = EnsembleOptions

    def __init__(self, n_classes: int, **options):
        super().__init__(n_classes, **options)
        self._aae = None

    @property
    def tim(self) -> TimNetOptions:
        return TimNetOptions(**{"speaker_norm": False, **self.o.timnet})

    @property
    def features(self) -> str:
        return "concat"

    def embedding_part(self) -> dict:
        if self.o.embedding == "aae":
            return {"features": "log_mel_image", "params": dict(IMAGE_PARAMS)}
        e = self.o.embedding_features
        return {"features": e["features"], "params": dict(e.get("params", {}))}

    @property
    def params(self) -> dict:
        return {"parts": [{"features": "mfcc_deltas", "params": {"n_mfcc": 13, "top_db": 80.0, "width": 9,
                                                                 "cmvn": self.tim.cmvn}},
                          self.embedding_part()]}

    def build(self, input_shape, X):
        import keras
        from keras import layers
        total = int(input_shape[0])
        # the window's frame count from the MFCC part: image part = 64 x (frames // 2) for "aae"
        if self.o.embedding == "aae":
            t = next(t for t in range(1, total) if t * N_MFCC_FEATURES + 64 * (t // 2) == total)
            emb_shape = (64, t // 2, 1)
        else:
            t = getattr(self, "_frames", None)
            if t is None:
                raise ValueError("embedding 'features': the window's frame count is set by input_spec/fit")
            emb_shape = (total - t * N_MFCC_FEATURES,)
        n_seq = t * N_MFCC_FEATURES
        inp = keras.Input(shape=(total,), name="input")
        seq, emb = split_flat(inp, [n_seq, total - n_seq], [(t, N_MFCC_FEATURES), emb_shape], "split")
        h1 = temporal_branch(normalization(X[:, :n_seq].reshape(-1, t, N_MFCC_FEATURES), "mfcc_norm")(seq), self.tim)
        if self.o.embedding == "aae":
            images = X[:, n_seq:].reshape((-1,) + emb_shape)
            if self._aae is None:
                self._aae = AAE(self.n_classes, encoder=self.o.encoder, began=self.o.began)
            enc = self._aae.get_encoder(images)
            code = enc(pad_layer(emb_shape, "emb_pad")(emb), training=False)
            code = layers.AveragePooling2D((1, int(code.shape[2])), name="emb_time_mean")(code)  # mean over time
            e = layers.Flatten(name="embedding")(code)
        else:
            e = normalization(X[:, n_seq:], "embedding_norm")(emb)
        h2 = layers.Dense(self.o.embedding_units, activation="relu", name="embedding_dense")(e)
        h = layers.Concatenate(name="branches")([h1, h2])
        h = layers.Dropout(self.o.dropout, name="head_drop")(h)
        return keras.Model(inp, self.output(h), name="edge_ser_ensemble")

    def input_spec(self, window_seconds: float, hop_seconds: float):
        spec = super().input_spec(window_seconds, hop_seconds)
        self._frames = spec.n_frames
        return spec

    def fit(self, X, y, sample_weight=None, validation=None, seed: int = 0, progress: bool = False):
        if self.o.embedding == "features" and getattr(self, "_frames", None) is None:
            self._frames = self._infer_frames(np.asarray(X).shape[1])
        return super().fit(X, y, sample_weight, validation, seed, progress)

    def _infer_frames(self, total: int) -> int:
        from edge_ser import features
        part = self.embedding_part()
        for t in range(1, total // N_MFCC_FEATURES + 1):
            size = features.compute(np.full((128, t), -50.0, np.float32), part["features"],
                                    {"n_frames": t, **part["params"]}).size
            if t * N_MFCC_FEATURES + size == total:
                return t
        raise ValueError(f"cannot split an ensemble input of {total} values")

    def describe(self) -> dict:
        return describe_encoder(super().describe(), self._aae.encoder_meta if self._aae is not None else None)

    def network_text(self) -> str:
        emb = ("frozen BEGAN encoder (seed 003) on the log-mel image, mean over time" if self.o.embedding == "aae"
               else f"runtime feature vector {self.o.embedding_features['features']}")
        return (f"ensemble (seed 002): TIM-Net branch ({self.tim.blocks} TABs, {self.tim.form} form) on MFCC+deltas "
                f"+ embedding branch (Dense {self.o.embedding_units} on: {emb}); concatenated, dropout, softmax")

    def save(self, directory: Path) -> None:
        super().save(directory)
        import json
        p = Path(directory) / "ensemble.json"
        meta = json.loads(p.read_text())
        meta["encoder_meta"] = self._aae.encoder_meta if self._aae is not None else {}
        meta["frames"] = getattr(self, "_frames", None)
        p.write_text(json.dumps(meta, default=list))

    def load(self, directory: Path):
        import json
        super().load(directory)
        meta = json.loads((Path(directory) / "ensemble.json").read_text())
        self._frames = meta.get("frames")
        if meta.get("encoder_meta"):
            self._aae = AAE(self.n_classes)
            self._aae.encoder_meta = meta["encoder_meta"]
        return self

"""Seed 003 (Pereira et al., ICANN 2018): a speech encoder learnt without labels by an adversarially trained
autoencoder in the BEGAN form (Berthelot et al., 2017), then frozen under a small convolutional classifier.

BEGAN: the discriminator D is an autoencoder (encoder E, decoder); its reconstruction loss
``L(v) = mean |v - D(v)|`` drives the game.  With real windows x and generated ones G(z), z ~ U(-1, 1):

    L_D = L(x) - k_t L(G(z))          (D: reconstruct real windows well, generated ones badly)
    L_G = L(G(z))                     (G: make windows D reconstructs well)
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1)
    M_global = L(x) + |gamma L(x) - L(G(z))|   (convergence measure)

``gamma`` (the seed: 0.7) is the equilibrium ratio E[L(G(z))] / E[L(x)] the control variable k steers to: when the
generated windows are reconstructed better than gamma times the real ones (gamma L(x) > L(G(z))), k grows and
D's loss weighs pushing them away more; when worse, k shrinks and D attends to reconstructing real windows.
The encoder E (D's, as the seed uses "the encoder of the autoencoder") maps the window's log-mel image
``(64, frames/2, 1)`` to a code map ``(16, frames/8, code_channels)``.

`train_encoder` trains it once on unlabelled clips (every clip of every corpus given; labels unused) and saves it
(``encoder.keras`` + ``encoder.json``); `AAE` (option ``encoder=DIR``) loads it, freezes it and trains only the
classifier (2 x Conv2D 32 + ReLU + max-pool, global average, dropout, softmax).  Without ``encoder`` the kind
trains a BEGAN on its own training windows (labels unused) first.  ``baseline=True`` is the same classifier on the
log-mel image alone (to measure what the encoder adds).  The exported model is encoder + classifier in one file.

    python -m edge_ser_train.kinds.aae --data ../shared/data/cremad --data ../shared/data/ravdess ... --out DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cnn import _tf
from .keras_kind import KerasKind

log = logging.getLogger("edge_ser.train.aae")

FEATURES = "log_mel_image"
PARAMS = {"top_db": 80.0, "norm": "utterance", "pool_bands": 2, "pool_frames": 2}


@dataclass
class BeganOptions:
    """The seed's BEGAN settings (gamma 0.7, Adam 5e-5, batch 16) and BEGAN's lambda_k 0.001, k_0 = 0; training is
    bounded by ``steps`` (the seed ran 100 epochs of LibriSpeech on a GPU)."""
    gamma: float = 0.7
    lambda_k: float = 0.001
    k0: float = 0.0
    lr: float = 5e-5
    batch_size: int = 16
    steps: int = 3000
    z_dim: int = 64
    filters: int = 32
    code_channels: int = 8     # the code map's channels (the bottleneck: 1/2 of the input's values)
    max_windows: int = 20000   # unlabelled windows kept (a random subset when there are more)
    seed: int = 0


def update_k(k: float, loss_real: float, loss_fake: float, gamma: float, lambda_k: float) -> float:
    """BEGAN's proportional control of k, clipped to [0, 1]."""
    return float(min(1.0, max(0.0, k + lambda_k * (gamma * loss_real - loss_fake))))


def padded_shape(shape) -> tuple:
    """The input image padded to multiples of 4 (two stride-2 stages)."""
    h, w = int(shape[0]), int(shape[1])
    return (4 * math.ceil(h / 4), 4 * math.ceil(w / 4), 1)


def build_encoder(shape, o: BeganOptions, name: str = "encoder"):
    """E: padded image -> code map (h/4, w/4, code_channels); ELU convolutions as BEGAN (no batch norm)."""
    import keras
    from keras import layers
    inp = keras.Input(shape=shape, name=f"{name}_in")
    h = layers.Conv2D(o.filters, 3, padding="same", activation="elu", name=f"{name}_c1")(inp)
    h = layers.Conv2D(o.filters, 3, strides=2, padding="same", activation="elu", name=f"{name}_c2")(h)
    h = layers.Conv2D(2 * o.filters, 3, padding="same", activation="elu", name=f"{name}_c3")(h)
    h = layers.Conv2D(2 * o.filters, 3, strides=2, padding="same", activation="elu", name=f"{name}_c4")(h)
    out = layers.Conv2D(o.code_channels, 1, padding="same", name=f"{name}_code")(h)
    return keras.Model(inp, out, name=name)


def build_decoder(code_shape, o: BeganOptions, name: str):
    """Code map -> padded image (BEGAN's decoder; the generator is the same network after a Dense from z)."""
    import keras
    from keras import layers
    inp = keras.Input(shape=code_shape, name=f"{name}_in")
    h = layers.Conv2D(2 * o.filters, 3, padding="same", activation="elu", name=f"{name}_c1")(inp)
    h = layers.UpSampling2D(2, name=f"{name}_up1")(h)
    h = layers.Conv2D(o.filters, 3, padding="same", activation="elu", name=f"{name}_c2")(h)
    h = layers.UpSampling2D(2, name=f"{name}_up2")(h)
    h = layers.Conv2D(o.filters, 3, padding="same", activation="elu", name=f"{name}_c3")(h)
    out = layers.Conv2D(1, 3, padding="same", name=f"{name}_out")(h)
    return keras.Model(inp, out, name=name)


def build_generator(code_shape, o: BeganOptions):
    import keras
    from keras import layers
    z = keras.Input(shape=(o.z_dim,), name="z")
    h = layers.Dense(int(np.prod(code_shape)), name="g_dense")(z)
    h = layers.Reshape(tuple(code_shape), name="g_reshape")(h)
    return keras.Model(z, build_decoder(code_shape, o, "g_decoder")(h), name="generator")


def pad_images(X: np.ndarray) -> np.ndarray:
    """Zero-pad images ``(n, h, w, 1)`` at the bottom/right to `padded_shape` (as the network's ZeroPadding2D)."""
    ph, pw, _ = padded_shape(X.shape[1:])
    return np.pad(X, ((0, 0), (0, ph - X.shape[1]), (0, pw - X.shape[2]), (0, 0)))


class BEGAN:
    """The adversarial autoencoder; ``train(X)`` on images ``(n, h, w, 1)``; ``history`` records k, L(x), L(G(z))
    and M_global per step."""

    def __init__(self, image_shape, o: BeganOptions):
        self.o = o
        self.shape = padded_shape(image_shape)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.encoder = build_encoder(self.shape, o)
        code = tuple(int(s) for s in self.encoder.output_shape[1:])
        self.decoder = build_decoder(code, o, "decoder")
        self.generator = build_generator(code, o)
        self.k = float(o.k0)
        self.history = {"k": [], "loss_real": [], "loss_fake": [], "m_global": []}

    def reconstruction_loss(self, v, training=False):
        from keras import ops  # (not _tf(): this runs inside a tf.function)
        return ops.mean(ops.abs(v - self.decoder(self.encoder(v, training=training), training=training)))

    def train(self, X: np.ndarray, steps: int | None = None, log_every: int = 200) -> "BEGAN":
        tf = _tf()
        import keras
        o = self.o
        keras.utils.set_random_seed(o.seed)
        X = pad_images(np.asarray(X, np.float32))
        rng = np.random.default_rng(o.seed)
        d_vars = self.encoder.trainable_variables + self.decoder.trainable_variables
        g_vars = self.generator.trainable_variables
        d_opt, g_opt = keras.optimizers.Adam(o.lr, beta_1=0.5), keras.optimizers.Adam(o.lr, beta_1=0.5)

        @tf.function
        def step(x, z, k):
            with tf.GradientTape() as dt, tf.GradientTape() as gt:
                g = self.generator(z, training=True)
                loss_real = self.reconstruction_loss(x, True)
                loss_fake_d = self.reconstruction_loss(tf.stop_gradient(g), True)
                loss_d = loss_real - k * loss_fake_d
                loss_g = self.reconstruction_loss(g, True)
            d_opt.apply_gradients(zip(dt.gradient(loss_d, d_vars), d_vars))
            g_opt.apply_gradients(zip(gt.gradient(loss_g, g_vars), g_vars))
            return loss_real, loss_g

        t0 = time.time()
        for s in range(steps or o.steps):
            x = X[rng.integers(0, len(X), o.batch_size)]
            z = rng.uniform(-1, 1, (o.batch_size, o.z_dim)).astype(np.float32)
            lr_, lf_ = (float(v) for v in step(tf.constant(x), tf.constant(z), tf.constant(self.k, tf.float32)))
            self.k = update_k(self.k, lr_, lf_, o.gamma, o.lambda_k)
            for key, v in (("k", self.k), ("loss_real", lr_), ("loss_fake", lf_),
                           ("m_global", lr_ + abs(o.gamma * lr_ - lf_))):
                self.history[key].append(float(v))
            if log_every and (s + 1) % log_every == 0:
                log.info("BEGAN step %d: L(x) %.4f, L(G(z)) %.4f, k %.4f, M_global %.4f (%.0f s)", s + 1, lr_, lf_,
                         self.k, self.history["m_global"][-1], time.time() - t0)
        return self

    def save(self, directory: Path, meta: dict | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save(directory / "encoder.keras")
        digest = hashlib.sha256((directory / "encoder.keras").read_bytes()).hexdigest()
        h = self.history
        summary = {k: [round(float(np.mean(v[i:i + 100])), 5) for i in range(0, len(v), 100)] for k, v in h.items()}
        (directory / "encoder.json").write_text(json.dumps({
            "began": dataclasses.asdict(self.o), "image_shape": list(self.image_shape), "padded_shape": list(self.shape),
            "features": FEATURES, "params": PARAMS, "encoder_sha256": digest, "final_k": self.k, "steps": len(h["k"]),
            "history_per_100_steps": summary, **(meta or {})}, indent=1) + "\n")
        return directory


def describe_encoder(description: dict, encoder_meta: dict | None) -> dict:
    """A kind's description (`describe`, the manifest's ``extra.model``) with what identifies the frozen encoder it
    holds (what it was trained on, BEGAN options, final k, checksum), when it holds one."""
    if encoder_meta:
        description["encoder"] = {k: encoder_meta[k] for k in ("trained_on", "began", "final_k", "encoder_sha256")
                                  if k in encoder_meta}
    return description


def load_encoder(directory: Path):
    """(encoder keras model, its metadata) from a directory written by `train_encoder` / `BEGAN.save`."""
    _tf()
    import keras
    directory = Path(directory)
    meta_path = directory / "encoder.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: no encoder.json (train one with python -m edge_ser_train.kinds.aae)")
    meta = json.loads(meta_path.read_text())
    digest = hashlib.sha256((directory / "encoder.keras").read_bytes()).hexdigest()
    if digest != meta["encoder_sha256"]:
        raise ValueError(f"{directory}/encoder.keras does not match its encoder.json (sha256)")
    return keras.models.load_model(directory / "encoder.keras", compile=False), meta


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def unlabelled_windows(roots, n_frames: int = 79, hop_frames: int = 31, max_windows: int = 20000, seed: int = 0,
                       cache_dir=None):
    """Log-mel images of windows of every audio file under ``roots`` (.wav, .flac, .ogg: any corpus, whatever its
    layout; labels unused), at most ``max_windows`` (a random subset), as the kind computes its inputs."""
    from edge_ser import features
    from ..corpora import Clip
    from ..dataset import TRAIN_PAD, LogMelCache
    cache = LogMelCache(cache_dir)
    files = sorted(p for r in roots for p in Path(r).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    xs, used, per_root = [], 0, {}
    for p in files:
        db = cache.get(Clip(str(p), "unlabelled", "unknown", None, "neutral", None))
        if db is None:
            continue
        used += 1
        root = next(str(r) for r in roots if str(p).startswith(str(Path(r))))
        per_root[Path(root).name] = per_root.get(Path(root).name, 0) + 1
        for w in features.clip_windows(db, n_frames, hop_frames, TRAIN_PAD):  # as the kind's InputSpec pads
            xs.append(features.compute(w, FEATURES, {**PARAMS, "n_frames": n_frames}))
    if not xs:
        raise ValueError(f"no readable audio under {', '.join(map(str, roots))}")
    X = np.stack(xs)
    if len(X) > max_windows:
        X = X[np.sort(np.random.default_rng(seed).permutation(len(X))[:max_windows])]
    return X, {"roots": per_root, "clips": used, "unreadable": len(files) - used, "windows": int(len(X)),
               "labels": "unused"}


def train_encoder(roots, out: Path, options: BeganOptions | None = None, window_seconds: float = 2.5,
                  cache_dir=None) -> Path:
    """Train the BEGAN on every clip under ``roots`` without labels and save its encoder in ``out``."""
    from edge_ser.frontend import FrontendConfig
    o = options or BeganOptions()
    fe = FrontendConfig()
    n_frames = fe.frames_for(int(round(window_seconds * fe.sample_rate)))
    X, trained_on = unlabelled_windows(roots, n_frames, max(1, int(round(1.0 * fe.sample_rate / fe.hop_length))),
                                       o.max_windows, o.seed, cache_dir)
    log.info("BEGAN on %d unlabelled windows of %s", len(X), trained_on["roots"])
    gan = BEGAN(X.shape[1:], o).train(X)
    return gan.save(out, {"trained_on": trained_on, "window_seconds": window_seconds, "n_frames": n_frames})


@dataclass
class AAEOptions:
    """The classifier on the frozen encoder (the seed tunes it per task with Hyperas; these are small defaults)."""
    encoder: str | None = None     # a directory from train_encoder; None: train a BEGAN on the fit's windows first
    began: dict = field(default_factory=dict)  # BeganOptions fields, when the kind trains its own encoder
    baseline: bool = False         # True: the classifier on the log-mel image alone (no encoder)
    filters: int = 32
    dropout: float = 0.3
    epochs: int = 40
    patience: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    speaker_norm: bool = False     # the encoder was trained on utterance-normalised images, not speaker-normalised


def classifier_head(h, o, output, prefix: str = "cls"):
    """The small classifier: 2 x (Conv2D + ReLU + max-pool), global average, dropout, then ``output`` (the kind's
    probabilities layer, `KerasKind.output`)."""
    from keras import layers
    for j in (1, 2):
        h = layers.Conv2D(o.filters, 3, padding="same", activation="relu", name=f"{prefix}_conv{j}")(h)
        h = layers.MaxPooling2D(2, padding="same", name=f"{prefix}_pool{j}")(h)
    h = layers.GlobalAveragePooling2D(name=f"{prefix}_avg")(h)
    h = layers.Dropout(o.dropout, name=f"{prefix}_drop")(h)
    return output(h)


def pad_layer(shape, name="pad"):
    from keras import layers
    ph, pw, _ = padded_shape(shape)
    return layers.ZeroPadding2D(((0, ph - int(shape[0])), (0, pw - int(shape[1]))), name=name)


class AAE(KerasKind):
    name = "aae"
    Options = AAEOptions

    def __init__(self, n_classes: int, **options):
        super().__init__(n_classes, **options)
        self.encoder = None
        self.encoder_meta: dict = {}

    @property
    def features(self) -> str:
        return FEATURES

    @property
    def params(self) -> dict:
        return dict(PARAMS)

    def get_encoder(self, X):
        """The frozen encoder: loaded from ``encoder``, or a BEGAN trained on ``X`` (labels unused)."""
        if self.encoder is None:
            if self.o.encoder:
                self.encoder, self.encoder_meta = load_encoder(Path(self.o.encoder))
                want = tuple(self.encoder_meta["image_shape"])
                if tuple(X.shape[1:]) != want or self.encoder_meta.get("params") != PARAMS:
                    raise ValueError(f"encoder {self.o.encoder} was trained on images {want}, this kind's are "
                                     f"{tuple(X.shape[1:])}")
            else:
                gan = BEGAN(X.shape[1:], BeganOptions(**self.o.began)).train(X)
                self.encoder = gan.encoder
                self.encoder_meta = {"trained_on": {"windows": int(len(X)), "labels": "unused",
                                                    "data": "the training part's windows"},
                                     "began": dataclasses.asdict(gan.o), "final_k": gan.k}
        self.encoder.trainable = False
        return self.encoder

    def build(self, input_shape, X):
        import keras
        inp = keras.Input(shape=tuple(input_shape), name="input")
        if self.o.baseline:
            return keras.Model(inp, classifier_head(inp, self.o, self.output), name="edge_ser_aae")
        enc = self.get_encoder(X)
        code = keras.Input(shape=tuple(int(s) for s in enc.output_shape[1:]), name="code")
        self.head = keras.Model(code, classifier_head(code, self.o, self.output), name="classifier")
        out = self.head(enc(pad_layer(input_shape)(inp), training=False))
        return keras.Model(inp, out, name="edge_ser_aae")

    def _fit_built(self, X, y, w, validation) -> dict:
        """The encoder is frozen and deterministic, so its codes are computed once and only the classifier trains
        on them (the same result as training the whole model with the encoder frozen, without running the encoder
        every epoch); the saved and exported model is encoder + classifier."""
        if self.o.baseline:
            return super()._fit_built(X, y, w, validation)
        codes = self.encoder.predict(pad_images(X), batch_size=256, verbose=0)
        val = None
        if validation is not None and len(validation[0]):
            val = (self.encoder.predict(pad_images(np.asarray(validation[0], np.float32)), batch_size=256,
                                        verbose=0), validation[1])
        return self._train(self.head, codes, y, w, val)

    def describe(self) -> dict:
        return describe_encoder(super().describe(), self.encoder_meta)

    def network_text(self) -> str:
        if self.o.baseline:
            return "baseline: 2 x (Conv2D 32 + ReLU + max-pool), global average, softmax on the log-mel image"
        return ("BEGAN encoder (frozen; trained without labels) -> 2 x (Conv2D 32 + ReLU + max-pool), global "
                "average, dropout, softmax")

    def save(self, directory: Path) -> None:
        super().save(directory)
        meta = json.loads((Path(directory) / "aae.json").read_text())
        meta["encoder_meta"] = self.encoder_meta
        (Path(directory) / "aae.json").write_text(json.dumps(meta, default=list))

    def load(self, directory: Path):
        super().load(directory)
        self.encoder_meta = json.loads((Path(directory) / "aae.json").read_text()).get("encoder_meta", {})
        return self


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train seed 003's BEGAN encoder once, without labels.")
    ap.add_argument("--data", action="append", required=True, type=Path, help="corpus root (repeatable)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--window-seconds", type=float, default=2.5)
    ap.add_argument("--cache-dir", default=None)
    for f in dataclasses.fields(BeganOptions):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    o = BeganOptions(**{f.name: getattr(a, f.name) for f in dataclasses.fields(BeganOptions)})
    print(train_encoder(a.data, a.out, o, a.window_seconds, a.cache_dir))


if __name__ == "__main__":
    main()

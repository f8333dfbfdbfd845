"""2-D CNN on the window's log-mel image, after seed 000: four conv layers (filters 5x5 then 3x3) with ReLU and
max-pooling, dropout 0.1 / 0.5, L1+L2 on conv and dense weights, softmax; Adam with the seed's learning-rate
decay (1e-6, Keras' legacy ``lr / (1 + decay * step)``); early stopping on speaker-disjoint validation windows.
Small enough for a board: ~64 k parameters, int8 TFLite under 80 KB per network; ``members=N`` averages N of them
in one exported model (the default models use 3: ~190 k parameters, int8 under 240 KB); ``mixup=a`` blends
training windows (fine15-cnn uses 0.2); ``stats_branch`` adds per-band statistics of the input beside the
convolutions (seed 001's idea; measured no better).  ``factorised=True`` (fine16): two heads, emotion (neutral + five)
and intensity (three), trained with masked losses (a clip's missing part adds nothing) and exported with fixed
layers composing the 16 fine16 probabilities (`edge_ser_train.targets`).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from edge_ser.adapt import PRIOR_WINDOWS

from ..dataset import InputSpec

FEATURES = "log_mel_image"
PARAMS = {"top_db": 80.0, "norm": "utterance", "pool_bands": 2, "pool_frames": 2}
# with speaker normalisation the image keeps its dB levels and is standardised per mel band by the speaker's
# statistics (edge_ser.adapt), so loudness relative to the speaker's usual voice stays visible
SPEAKER_PARAMS = dict(PARAMS, norm="none")
SPEAKER_NORM = {"axes": [1], "prior_windows": PRIOR_WINDOWS}  # one statistic per mel band (pooled over time)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("EDGE_SER_TRAIN_THREADS", "2")))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def spec_mask_layer(freq: int = 8, time: int = 6, masks: int = 2, seed: int = 0):
    """SpecAugment's masking (Park et al. 2019) as a Keras layer, active in training only: ``masks`` times, a band of
    0..``freq`` mel rows and a run of 0..``time`` frames, each at a random place per example, are set to 0 (the
    speaker's mean after speaker normalisation).  No weights: the exported network leaves it out."""
    import keras
    from keras import ops

    class SpecMask(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.generator = keras.random.SeedGenerator(seed)

        def _keep(self, x, axis: int, width: int):
            n, b = ops.shape(x)[axis], ops.shape(x)[0]
            w = ops.floor(keras.random.uniform((b, 1), 0, width + 1, seed=self.generator))
            start = ops.floor(keras.random.uniform((b, 1), 0, 1, seed=self.generator) * (ops.cast(n, "float32") - w + 1))
            at = ops.cast(ops.arange(n), "float32")[None, :]
            keep = ops.cast(ops.logical_or(at < start, at >= start + w), x.dtype)
            return ops.reshape(keep, (b, n, 1, 1) if axis == 1 else (b, 1, n, 1))

        def call(self, x, training=None):
            if not training:
                return x
            for _ in range(masks):
                x = x * self._keep(x, 1, freq) * self._keep(x, 2, time)
            return x

    return SpecMask(name="spec_mask")


def band_statistics(x):
    """Per mel band of the input image ``(bands, frames, 1)``, over the window's frames: mean, maximum, minimum and
    mean square (built-in layers only, so the model saves, converts and quantises like the convolutions)."""
    from keras import layers
    n_frames = int(x.shape[2])
    mean = layers.AveragePooling2D(pool_size=(1, n_frames), name="band_mean")(x)
    top = layers.MaxPooling2D(pool_size=(1, n_frames), name="band_max")(x)
    low = layers.Rescaling(-1.0, name="band_min")(
        layers.MaxPooling2D(pool_size=(1, n_frames), name="band_negmax")(layers.Rescaling(-1.0, name="negate")(x)))
    square = layers.AveragePooling2D(pool_size=(1, n_frames), name="band_meansquare")(
        layers.Multiply(name="square")([x, x]))
    return layers.Flatten(name="stats_branch")(layers.Concatenate(axis=-1, name="stats_branch_concat")(
        [mean, top, low, square]))


def build_network(input_shape, n_classes: int, filters=(16, 32, 48, 64), l1: float = 1e-6, l2: float = 1e-4,
                  batch_size=None, batchnorm: bool = False, name: str = "edge_ser_cnn", spec_augment=None,
                  seed: int = 0, stats_branch: bool = False, heads: tuple | None = None, compose: bool = True):
    """The network; ``heads`` ``(n_emotions, n_intensities)``: two softmax heads instead of one, their probabilities
    composed into fine16's by fixed layers (``compose``; the exported network) or concatenated (the training copy,
    for the masked loss).  ``spec_augment`` (``{"freq", "time", "masks"}``, training copies only) puts `spec_mask_layer`
    after the input; ``stats_branch`` concatenates `band_statistics` of the input (seed 001's statistical features
    beside the deep ones) with the convolutions' features before the dense layer."""
    import keras
    from keras import layers, regularizers
    reg = regularizers.L1L2(l1=l1, l2=l2)
    inp = keras.Input(shape=tuple(input_shape), batch_size=batch_size, name="input")
    h = inp
    if spec_augment:
        h = spec_mask_layer(**spec_augment, seed=seed)(h)
    for k, (f, size) in enumerate(zip(filters, (5, 3, 3, 3))):
        if batchnorm:  # conv -> batch norm -> ReLU (the norm folds into the conv on export)
            h = layers.Conv2D(f, size, padding="same", use_bias=False, kernel_regularizer=reg, name=f"conv{k + 1}")(h)
            h = layers.BatchNormalization(name=f"bn{k + 1}")(h)
            h = layers.ReLU(name=f"relu{k + 1}")(h)
        else:
            h = layers.Conv2D(f, size, padding="same", activation="relu", kernel_regularizer=reg,
                              name=f"conv{k + 1}")(h)
        h = layers.MaxPooling2D(2, padding="same", name=f"pool{k + 1}")(h)
        if k < len(filters) - 1:
            h = layers.Dropout(0.1, name=f"drop{k + 1}")(h)
    # average over the remaining time steps: the band pattern, independent of where in the window it sits
    h = layers.AveragePooling2D(pool_size=(1, int(h.shape[2])), name="time_avg")(h)
    h = layers.Flatten(name="flatten")(h)
    if stats_branch:
        h = layers.Concatenate(name="deep_and_stats")([h, band_statistics(inp)])
    h = layers.Dropout(0.5, name="drop_dense")(h)
    h = layers.Dense(64, activation="relu", kernel_regularizer=reg, name="dense")(h)
    if heads:
        return keras.Model(inp, fine16_output(h, reg, compose=compose, heads=heads), name=name)
    out = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="probabilities")(h)
    return keras.Model(inp, out, name=name)


def fine16_output(h, reg=None, compose: bool = True, heads: tuple = (6, 3)):
    """fine16's factorised output on features ``h``: an emotion head (neutral + five, softmax) and an intensity head
    (low/medium/high, softmax), composed into the 16 probabilities by fixed layers (`targets.composition`), or
    (``compose=False``) the two heads concatenated (`heads_loss` trains on that)."""
    from keras import layers
    pe = layers.Dense(heads[0], activation="softmax", kernel_regularizer=reg, name="emotion")(h)
    pi = layers.Dense(heads[1], activation="softmax", kernel_regularizer=reg, name="intensity")(h)
    if not compose:
        return layers.Concatenate(name="heads")([pe, pi])
    from ..targets import composition
    we, be, wi, bi = composition()
    compose_e = layers.Dense(we.shape[1], trainable=False, name="compose_emotion")
    compose_i = layers.Dense(wi.shape[1], trainable=False, name="compose_intensity")
    out = layers.Multiply(name="probabilities")([compose_e(pe), compose_i(pi)])
    compose_e.set_weights([we, be])
    compose_i.set_weights([wi, bi])
    return out


def heads_loss(n_emotions: int):
    """Masked cross-entropy of the two heads: ``y_true`` rows are (emotion, its weight, intensity, its weight), a
    weight 0 where the clip does not carry that part; ``y_pred`` the concatenated head probabilities."""
    tf = _tf()

    def masked_heads(y_true, y_pred):
        pe, pi = y_pred[:, :n_emotions], y_pred[:, n_emotions:]
        ye = tf.cast(tf.maximum(y_true[:, 0], 0.0), tf.int32)
        yi = tf.cast(tf.maximum(y_true[:, 2], 0.0), tf.int32)
        le = -tf.math.log(tf.clip_by_value(tf.gather(pe, ye, batch_dims=1), 1e-7, 1.0))
        li = -tf.math.log(tf.clip_by_value(tf.gather(pi, yi, batch_dims=1), 1e-7, 1.0))
        return y_true[:, 1] * le + y_true[:, 3] * li
    return masked_heads


def composed_heads_loss(n_emotions: int, n_intensities: int):
    """`heads_loss` on a composed fine16 output ``(N, 1 + (n_emotions - 1) * n_intensities)``: the two heads are
    recovered from it (``p_e(neutral) = p[0]``, ``p_e(e) = sum_i p[e, i]``, ``p_i(i) = sum_e p[e, i] / sum p[1:]``,
    exact for `targets.compose`), so a kind whose network ends in `fine16_output` trains on the same masked loss."""
    tf = _tf()
    base = heads_loss(n_emotions)

    def masked_composed(y_true, y_pred):
        grid = tf.reshape(y_pred[:, 1:], (-1, n_emotions - 1, n_intensities))
        pe = tf.concat([y_pred[:, :1], tf.reduce_sum(grid, axis=2)], axis=1)
        mass = tf.reduce_sum(grid, axis=[1, 2])[:, None]
        pi = tf.reduce_sum(grid, axis=1) / tf.maximum(mass, 1e-12)
        return base(y_true, tf.concat([pe, pi], axis=1))
    return masked_composed


def mixup_batches(X, Y, w, batch_size: int, alpha: float, seed: int = 0):
    """Mixup (Zhang et al. 2018) as a tf.data pipeline: shuffled batches in which every example is blended with
    another of its batch, ``lam x_i + (1 - lam) x_j`` with ``lam ~ Beta(alpha, alpha)`` per example, and so are its
    one-hot targets ``Y`` and its sample weight.

    As measured for the shipped fine15-cnn: the map's random ops have fixed seeds, so the sequence of lam draws and
    of in-batch partner positions restarts every epoch; the reshuffle changes which windows meet them, so each
    window still gets a fresh lam and partner per epoch.  Blending the (class-balancing) weights like the targets
    lets a rare class's weight leak to its partner's class (at alpha 0.2 a class keeps ~0.86 of its own weight);
    weighting each side's target by its own weight instead would keep the balance exact (not measured)."""
    tf = _tf()
    ds = tf.data.Dataset.from_tensor_slices((X, Y, w.astype(np.float32)))
    ds = ds.shuffle(len(X), seed=seed, reshuffle_each_iteration=True).batch(batch_size)

    def mix(x, y, sw):
        n = tf.shape(x)[0]
        a = tf.random.gamma([n], alpha, seed=seed)
        b = tf.random.gamma([n], alpha, seed=seed + 1)
        lam = a / (a + b + 1e-12)
        other = tf.random.shuffle(tf.range(n), seed=seed + 2)
        lx = tf.reshape(lam, [-1] + [1] * (len(X.shape) - 1))
        ly = lam[:, None]
        return (lx * x + (1 - lx) * tf.gather(x, other), ly * y + (1 - ly) * tf.gather(y, other),
                lam * sw + (1 - lam) * tf.gather(sw, other))
    return ds.map(mix, num_parallel_calls=1).prefetch(2)


def ensemble(members, input_shape):
    """One model whose output is the mean of its members' probabilities (one file to export and run)."""
    import keras
    from keras import layers
    if len(members) == 1:
        return members[0]
    inp = keras.Input(shape=tuple(input_shape), name="input")
    out = layers.Average(name="probabilities")([m(inp) for m in members])
    return keras.Model(inp, out, name="edge_ser_cnn_ensemble")


class CNN:
    name = "cnn"
    formats = ("onnx", "tflite")
    supports_partial = True
    soft_targets = True  # fit takes y as label indices (N,) or probabilities over the labels (N, n_classes)
    sample_regimes = True  # speaker adaptation regimes drawn per training window (edge_ser_train.train.design)

    def __init__(self, n_classes: int, epochs: int = 40, patience: int = 8, batch_size: int = 64, lr: float = 1e-3,
                 decay: float = 1e-6, features: str = FEATURES, params: dict | None = None, verbose: int = 0,
                 filters=(16, 32, 48, 64), partial_groups=None, batchnorm: bool = False, speaker_norm: bool = True,
                 members: int = 1, spec_augment: dict | None = None, stats_branch: bool = False, mixup: float = 0.0,
                 factorised: bool = False):
        self.n_classes = n_classes
        # label n_classes + j means "one of the classes partial_groups[j]" (e.g. emotion known, intensity not)
        self.partial_groups = [list(g) for g in (partial_groups or [])]
        self.options = {"epochs": epochs, "patience": patience, "batch_size": batch_size, "lr": lr, "decay": decay,
                        "filters": list(filters), "batchnorm": bool(batchnorm), "members": int(members),
                        "spec_augment": dict(spec_augment) if spec_augment else None,
                        "stats_branch": bool(stats_branch), "mixup": float(mixup), "factorised": bool(factorised)}
        if factorised and n_classes != 16:
            raise ValueError(f"a factorised (emotion x intensity) CNN has fine16's 16 outputs, not {n_classes}")
        if self.options["members"] < 1:
            raise ValueError("members must be at least 1")
        if self.options["mixup"] < 0 or (self.options["mixup"] and self.partial_groups):
            raise ValueError("mixup is a Beta(a, a) parameter a >= 0, and needs full labels (no partial groups)")
        self.speaker_norm = dict(SPEAKER_NORM) if speaker_norm else None
        default = SPEAKER_PARAMS if speaker_norm else PARAMS
        self.features, self.params = features, dict(default if params is None else params)
        self.verbose = verbose
        self.model = None
        self.history = {}

    def input_spec(self, window_seconds: float, hop_seconds: float) -> InputSpec:
        return InputSpec(self.features, self.params, window_seconds, hop_seconds, speaker_norm=self.speaker_norm)

    def _loss(self):
        """Cross-entropy; for a partial label, minus the log of the summed probability of its classes."""
        if not self.partial_groups:
            return "sparse_categorical_crossentropy"
        tf = _tf()
        m = np.eye(self.n_classes, dtype=np.float32)
        g = np.zeros((len(self.partial_groups), self.n_classes), dtype=np.float32)
        for j, group in enumerate(self.partial_groups):
            g[j, group] = 1.0
        table = tf.constant(np.concatenate([m, g]))

        def partial_crossentropy(y_true, y_pred):
            rows = tf.gather(table, tf.cast(tf.reshape(y_true, [-1]), tf.int32))
            p = tf.reduce_sum(rows * y_pred, axis=-1)
            return -tf.math.log(tf.clip_by_value(p, 1e-7, 1.0))
        return partial_crossentropy

    def _compile(self, model, loss=None):
        import keras
        schedule = keras.optimizers.schedules.InverseTimeDecay(self.options["lr"], decay_steps=1,
                                                               decay_rate=self.options["decay"])
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss or self._loss())

    def _head_rows(self, y, w=None) -> np.ndarray:
        """Factorised targets: rows (emotion, weight, intensity, weight) for the masked loss (`heads_loss`);
        ``w`` None: weights 1 where known (validation), else balanced per head (`targets.balanced_weights`)."""
        from ..targets import head_rows
        return head_rows(y, self.partial_groups, w)

    def fit(self, X, y, sample_weight=None, validation=None, seed: int = 0, progress: bool = True):
        _tf()
        import keras
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if self.options.get("factorised"):
            if y.ndim != 1:
                raise ValueError("a factorised model trains on label indices (partial ones included), not soft "
                                 "targets")
            val = None if validation is None else (np.asarray(validation[0], np.float32),
                                                   self._head_rows(np.asarray(validation[1])))
            return self._fit_members(X, self._head_rows(y, w), None, val, seed, progress)
        soft = y.ndim == 2  # soft targets: probabilities over the labels
        if soft and self.partial_groups:
            raise ValueError("soft targets and partial labels do not mix")
        # balanced classes: sklearn's "balanced" rule on the clip-weighted counts.  A soft target counts for each
        # class by its probability, and its window weighs its target's expected class weight (y @ cw): as measured
        # (reports/ssl/soft/), but not exactly balanced when targets spread over classes of different weights;
        # weighting the target itself (y * cw / (y @ cw)) would be exact (not measured)
        full = np.ones(len(y), bool) if soft else y < self.n_classes
        per_class = (w[:, None] * y).sum(axis=0) if soft else np.bincount(y[full], weights=w[full],
                                                                            minlength=self.n_classes)
        cw = np.where(per_class > 0, w[full].sum() / (self.n_classes * np.maximum(per_class, 1e-9)), 0.0)
        if soft:
            w = w * (y @ cw)
        else:
            cw = np.concatenate([cw, np.ones(len(self.partial_groups))])  # partial labels keep their clip weight
            w = w * cw[y]
        w = (w / w.mean()).astype(np.float32)
        if soft:
            y = y.astype(np.float32)
        val = None
        if validation is not None:
            Xv, yv = validation
            val = (np.asarray(Xv, np.float32), np.asarray(yv))
        return self._fit_members(X, y, w, val, seed, progress)

    def _fit_members(self, X, y, w, val, seed: int, progress: bool):
        import keras
        # members: independently initialised and shuffled copies (seeds seed + 1009 k), each with its own early
        # stopping; the shipped model averages their probabilities.  members=1 is the seed's single network.
        nets, histories = [], []
        for k in range(self.options.get("members", 1)):
            keras.utils.set_random_seed(seed + 1009 * k)
            net, history = self._fit_one(X, y, w, val, progress, name="edge_ser_cnn" if k == 0 else f"member{k}",
                                         seed=seed + 1009 * k)
            nets.append(net)
            histories.append(history)
        self.model = ensemble(nets, X.shape[1:])
        self.history = histories[0] if len(histories) == 1 else {"members": histories}
        return self

    def _build(self, input_shape, name: str, **training_only):
        from edge_ser.labels import FINE16_EMOTIONS, INTENSITIES
        heads = (len(FINE16_EMOTIONS), len(INTENSITIES)) if self.options.get("factorised") else None
        return build_network(input_shape, self.n_classes, self.options["filters"],
                             batchnorm=self.options.get("batchnorm", False), name=name,
                             stats_branch=self.options.get("stats_branch", False), heads=heads, **training_only)

    def _fit_one(self, X, y, w, val, progress: bool, name: str, seed: int = 0):
        import keras
        factorised = self.options.get("factorised", False)  # the training copy ends in the two heads
        net = self._build(X.shape[1:], name, spec_augment=self.options.get("spec_augment"), seed=seed,
                          **({"compose": False} if factorised else {}))
        alpha = self.options.get("mixup", 0.0)
        if factorised:  # y: rows of `_head_rows`, the weights inside (masked loss)
            from edge_ser.labels import FINE16_EMOTIONS
            self._compile(net, heads_loss(len(FINE16_EMOTIONS)))
            data = {"x": X, "y": y, "batch_size": self.options["batch_size"], "shuffle": True}
        elif alpha or y.ndim == 2:  # mixup or soft targets: categorical cross-entropy on probability targets
            self._compile(net, "categorical_crossentropy")
            eye = np.eye(self.n_classes, dtype=np.float32)
            Y = y if y.ndim == 2 else eye[y]
            if alpha:  # on a mixing tf.data pipeline
                data = {"x": mixup_batches(X, Y, w, self.options["batch_size"], alpha, seed)}
            else:
                data = {"x": X, "y": Y, "sample_weight": w, "batch_size": self.options["batch_size"], "shuffle": True}
            val = None if val is None else (val[0], eye[val[1]])
        else:
            self._compile(net)
            data = {"x": X, "y": y, "sample_weight": w, "batch_size": self.options["batch_size"], "shuffle": True}
        callbacks = []
        if progress:
            try:
                from tqdm.keras import TqdmCallback
                callbacks.append(TqdmCallback(verbose=0, leave=False))
            except ImportError:
                pass
        if val is not None:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.options["patience"],
                                                           restore_best_weights=True))
        h = net.fit(**data, validation_data=val, epochs=self.options["epochs"], verbose=self.verbose,
                    callbacks=callbacks)
        # keep an uncompiled copy: converters and saving must not meet the (custom) training loss
        plain = self._build(X.shape[1:], name)
        for layer in plain.layers:  # by name: the training copy may have a mask layer (no weights) after its input
            if layer.weights and layer.trainable:  # (the fixed composing layers of a factorised net keep theirs)
                layer.set_weights(net.get_layer(layer.name).get_weights())
        return plain, {k: [float(v) for v in vals] for k, vals in h.history.items()}

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        return np.asarray(self.model.predict(X, batch_size=256, verbose=0), dtype=np.float32)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save(directory / "model.keras")
        (directory / "cnn.json").write_text(json.dumps({"n_classes": self.n_classes, "options": self.options,
                                                        "partial_groups": self.partial_groups,
                                                        "features": self.features, "params": self.params,
                                                        "speaker_norm": self.speaker_norm,
                                                        "history": self.history}))

    def load(self, directory: Path) -> "CNN":
        _tf()
        import keras
        directory = Path(directory)
        meta = json.loads((directory / "cnn.json").read_text())
        self.n_classes, self.options = meta["n_classes"], meta["options"]
        self.features, self.params, self.history = meta["features"], meta["params"], meta.get("history", {})
        self.speaker_norm = meta.get("speaker_norm")
        self.partial_groups = [list(g) for g in meta.get("partial_groups", [])]
        self.model = keras.models.load_model(directory / "model.keras", compile=False)
        return self

    def describe(self) -> dict:
        d = {"network": "4 x (Conv2D + ReLU + MaxPool), dropout 0.1/0.5, L1+L2, dense 64, softmax"
                        + (f"; mean of {self.options['members']} such networks' probabilities"
                           if self.options.get("members", 1) > 1 else "")
                        + ("; SpecAugment masks in training" if self.options.get("spec_augment") else "")
                        + ("; per-band mean/max/min/mean-square of the input beside the conv features"
                           if self.options.get("stats_branch") else "")
                        + (f"; mixup (alpha {self.options['mixup']}) in training" if self.options.get("mixup") else "")
                        + ("; two heads, emotion (6) and intensity (3), masked losses, composed into fine16"
                           if self.options.get("factorised") else ""),
             **self.options, "speaker_norm": self.speaker_norm is not None}
        if self.model is not None:
            d["parameters"] = int(self.model.count_params())
            runs = self.history.get("members", [self.history])
            if all(h.get("loss") for h in runs):
                epochs = [len(h["loss"]) for h in runs]
                d["epochs_run"] = epochs[0] if len(epochs) == 1 else epochs
        return d

    def export(self, directory: Path, fmt: str = "onnx", quantize: str = "none", representative=None) -> Path:
        return export_keras(self.model, directory, fmt, quantize, representative, what="a CNN")


def export_keras(model, directory: Path, fmt: str = "onnx", quantize: str = "none", representative=None,
                 what: str = "a Keras model") -> Path:
    """Write a Keras model as ``model.onnx`` (tf2onnx, float32, input named ``input`` with a free batch) or
    ``model.tflite`` (`to_tflite`: float32, dynamic range or int8) into ``directory``; returns the file.  Every
    Keras kind exports through here."""
    tf = _tf()
    directory = Path(directory)
    if fmt == "onnx":
        if quantize != "none":
            raise ValueError("ONNX export is float32 only (use --format tflite for quantised models)")
        import tf2onnx
        shape = tuple(int(s) for s in model.input_shape[1:])
        # tf2onnx needs the model's output_names; Keras 3 functional models may lack them
        if not hasattr(model, "output_names"):
            model.output_names = ["probabilities"]
        spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
        path = directory / "model.onnx"
        path.write_bytes(proto.SerializeToString())
        return path
    if fmt != "tflite":
        raise ValueError(f"{what} exports to onnx or tflite, not {fmt}")
    path = directory / "model.tflite"
    path.write_bytes(to_tflite(model, quantize, representative))
    return path


def to_tflite(model, quantize: str = "none", representative=None, integer_io: bool = False) -> bytes:
    """A Keras model as TFLite: float32 (``none``), dynamic range, or int8 calibrated on ``representative`` inputs.

    ``int8`` (mixed precision): every layer's weights and activations are int8 (convolutions per channel, dense
    layers per tensor) except the first convolution and the classifier head (the logits' dense layer and the
    softmax), which stay float32, as do the input and output tensors.  Quantised logits (steps of 1/255 of their
    calibrated range, ~0.1) and an int8 softmax (steps of 1/256) turn a float model's near-ties into exact ties that
    argmax breaks towards the first class, and the first convolution sees the input at int8 resolution: with both
    in float, the int8 file's top-1 agreement with the float model on held-out speakers' windows rose from 94-95%
    to 98-99% (fine15-cnn; basic6-cnn 98-98.5% -> 98.5-99%) for ~2 KB and no measurable time (measurements in the
    commit that introduced this).  Calibrating on more windows or on augmented copies did not help (augmented:
    worse).  ``integer_io=True``: fully integer instead, int8 input/output and every layer int8 (for integer-only
    accelerators; lower agreement).
    Uses ``from_keras_model`` (``from_concrete_functions`` drops a Keras 3 model's weights); dense layers are
    quantised per tensor in dynamic range and int8 so tflite-runtime 2.14 can load the file too."""
    tf = _tf()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif quantize == "int8":
        if representative is None or not len(representative):
            raise ValueError("int8 quantisation needs a representative dataset")
        rep = np.asarray(representative, dtype=np.float32)

        def gen():
            for i in range(len(rep)):
                yield [rep[i:i + 1]]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": TF's own calibration
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            if integer_io:
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                conv.inference_input_type = tf.int8
                conv.inference_output_type = tf.int8
                return conv.convert()
            # calibrate, then quantise with the float layers left out (what tf.lite.experimental's
            # QuantizationDebugger does for its denylists)
            from tensorflow.lite.python.convert import mlir_quantize
            conv._experimental_calibrate_only = True
            calibrated = conv.convert()
            return mlir_quantize(calibrated, disable_per_channel_for_dense_layers=True, denylisted_ops=["SOFTMAX", "ADD", "MUL"],
                                 denylisted_nodes=_float_layers(calibrated))
    elif quantize != "none":
        raise ValueError(f"unknown quantisation {quantize!r} (none, dynamic, int8)")
    return conv.convert()


def _float_layers(flatbuffer: bytes) -> list[str]:
    """Output tensor names of the layers the int8 recipe keeps in float: the convolution / dense layer reading the
    model's input, and the dense layer feeding the softmax (the logits)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils
    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = m.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    ops = [(codes[op.opcodeIndex], list(op.inputs), list(op.outputs)) for op in graph.operators]
    op_ = schema.BuiltinOperator
    layers = (op_.CONV_2D, op_.DEPTHWISE_CONV_2D, op_.FULLY_CONNECTED)
    keep = [outs[0] for code, ins, outs in ops if code in layers and ins and ins[0] in set(graph.inputs)]
    producer = {t: (code, outs) for code, _ins, outs in ops for t in outs}
    for code, ins, _outs in ops:
        if code == op_.SOFTMAX and ins[0] in producer and producer[ins[0]][0] == op_.FULLY_CONNECTED:
            keep.append(ins[0])
    name = graph.tensors
    return [name[t].name.decode() if isinstance(name[t].name, bytes) else name[t].name for t in keep]

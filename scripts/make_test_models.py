#!/usr/bin/env python3
"""Make the tiny real models the runtime's tests use: ``tests/fixtures/models/<name>/`` (manifest.json + model file).

    python scripts/make_test_models.py [--out tests/fixtures/models]     (needs the training distribution:
                                                                         scikit-learn, skl2onnx, TensorFlow, tf2onnx)

They are trained on synthetic harmonic tones (``tests/tones.py``: class k has f0 = 120 + 70 k Hz) with a small
frontend, so the runner, CLI, stream, bundle and profile tests cover every runtime path (ONNX; TFLite float32 with a
dynamic batch; TFLite int8 with int8 tensors and a fixed batch of 1) on a runtime-only install: the files are
committed, and the tests never train.

    tiny-rfc        basic6, random forest on log-mel statistics, ONNX (skl2onnx)
    tiny-cnn        fine15, a two-convolution CNN on log-mel images, TFLite float32, dynamic batch
    tiny-cnn-int8   the same CNN, TFLite int8 (int8 input and output tensors), fixed batch 1
    tiny-cnn-dual   the same CNN in both formats: ONNX (tf2onnx) and TFLite float32
    tiny-rfc-adapt  basic6, random forest with speaker normalisation (input.speaker_norm, manifest version 2),
                    trained by edge_ser_train.train.run (2 actor folds) on a generated RAVDESS-layout corpus
                    (tests/corpus_factory.py: make_ravdess, actors 1-6, 1.2 s tones), ONNX

Fixed seeds everywhere, TensorFlow's deterministic ops and one thread: a rerun with the same library versions
writes the same bytes (checked by tests/test_fixtures.py, marked slow).  The converters are the ones the shipped
models go through (edge_ser_train.kinds.cnn.to_tflite; tf2onnx opset 17 as in CNN.export).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
from tones import SR, harmonic_tone, tone_dataset, tone_f0  # noqa: E402

# The tiny models' frontend: small so that training them takes seconds.
FRONTEND = dict(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32, fmin=0.0, fmax=None, top_db=None)
WINDOW_S = 1.0
NAMES = ("tiny-rfc", "tiny-cnn", "tiny-cnn-int8", "tiny-cnn-dual", "tiny-rfc-adapt")
# tiny-rfc-adapt's corpus (tests/test_adapt.py and tests/test_fixtures.py make the same one)
ADAPT_CORPUS = dict(actors=(1, 2, 3, 4, 5, 6), seconds=1.2)
# What the check on fresh tones uses (the same as tests/test_fixtures.py): one 1.7 s tone per class, seed 7.
CHECK_SEED, CHECK_SECONDS, CHECK_AMP = 7, 1.7, 0.2


def _window_features(clips, features_name: str, params: dict, n_frames: int, hop_frames: int):
    from edge_ser import features
    from edge_ser.frontend import log_mel
    fe = {k: v for k, v in FRONTEND.items() if k != "top_db"}
    xs, idx = [], []
    for i, y in enumerate(clips):
        db = log_mel(y, top_db=None, **fe)
        for w in features.clip_windows(db, n_frames, hop_frames):
            xs.append(features.compute(w, features_name, params))
            idx.append(i)
    return np.stack(xs), np.array(idx)


def _n_frames() -> int:
    from edge_ser.frontend import FrontendConfig
    return FrontendConfig(**FRONTEND).frames_for(int(WINDOW_S * SR))


def _versions() -> dict:
    """The versions of the libraries that shape the files (a rerun with other versions may differ slightly)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("numpy", "scikit-learn", "skl2onnx", "onnx", "tensorflow-cpu", "tensorflow", "keras", "tf2onnx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _write(out: Path, name: str, kind: str, task: str, input_spec: dict, files: dict[str, bytes],
           trained_on: dict) -> Path:
    from edge_ser.labels import TASKS
    from edge_ser.manifest import Manifest, write_manifest
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for stale in ("model.onnx", "model.tflite"):
        if stale not in files and (d / stale).exists():
            (d / stale).unlink()
    for fname, data in files.items():
        (d / fname).write_bytes(data)
    m = Manifest(name=name, kind=kind, task=task, labels=list(TASKS[task]), formats=[], input=input_spec,
                 frontend=dict(FRONTEND), window_seconds=WINDOW_S,
                 trained_on={"corpus": "synthetic harmonic tones (tests/tones.py: class k has f0 = 120 + 70 k Hz)",
                             "made_by": "scripts/make_test_models.py", "made_with": _versions(), **trained_on},
                 metrics={})
    write_manifest(d, m)
    return d


def build_rfc(out: Path) -> Path:
    """basic6 random forest on log-mel statistics of tones, exported with skl2onnx (probabilities, no zipmap)."""
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    n_frames = _n_frames()
    params = {"n_frames": n_frames, "top_db": 80.0, "bands": 32}
    clips, ys = tone_dataset(6, 8, seed=1)
    x, idx = _window_features(clips, "log_mel_stats", params, n_frames, 8)
    clf = RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0, n_jobs=1).fit(x, ys[idx])
    onx = convert_sklearn(clf, name="tiny_rfc", initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          options={id(clf): {"zipmap": False}}, target_opset=17)  # name: else a random uuid
    spec = {"features": "log_mel_stats", "params": params, "shape": [int(x.shape[1])], "dtype": "float32"}
    return _write(out, "tiny-rfc", "rfc", "basic6", spec, {"model.onnx": onx.SerializeToString()},
                  {"clips_per_class": 8, "seed": 1, "windows": int(len(x)),
                   "model": "RandomForestClassifier(n_estimators=12, max_depth=6, random_state=0)"})


def _deterministic_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    return tf


def build_cnns(out: Path) -> list[Path]:
    """fine15 tiny CNN on log-mel images of tones: TFLite float32 (dynamic batch), TFLite int8 (fixed batch 1, int8
    input and output tensors) and the same weights as ONNX + TFLite float32 in one directory."""
    tf = _deterministic_tf()
    import keras
    from edge_ser_train.kinds.cnn import to_tflite  # the converter the shipped models go through

    keras.utils.set_random_seed(0)
    n_frames = _n_frames()
    params = {"n_frames": n_frames, "top_db": 80.0, "norm": "utterance"}
    clips, ys = tone_dataset(15, 6, seed=2)
    x, idx = _window_features(clips, "log_mel_image", params, n_frames, 16)
    shape = x.shape[1:]

    def net(batch_size=None):
        inp = keras.Input(shape=shape, batch_size=batch_size, name="input")
        h = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(inp)
        h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inp, keras.layers.Dense(15, activation="softmax", name="probabilities")(h))

    model = net()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, ys[idx], epochs=40, batch_size=32, verbose=0, shuffle=True)

    fixed = net(batch_size=1)  # also covers the runner's batch-1 path
    fixed.set_weights(model.get_weights())
    tflite_f32 = to_tflite(model)
    tflite_i8 = to_tflite(fixed, "int8", x[::4], integer_io=True)  # int8 tensors in and out: the runner's path

    import tf2onnx
    if not hasattr(model, "output_names"):  # tf2onnx needs them; Keras 3 functional models may lack them
        model.output_names = ["probabilities"]
    sig = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=sig, opset=17)
    onnx_bytes = proto.SerializeToString()

    spec = {"features": "log_mel_image", "params": params, "shape": [int(s) for s in shape], "dtype": "float32"}
    about = {"clips_per_class": 6, "seed": 2, "windows": int(len(x)),
             "model": "Conv2D(8,3)-MaxPool(2)-Conv2D(16,3)-GlobalAveragePool-Dense(15, softmax); Adam 0.01, "
                      "40 epochs, batch 32, keras seed 0"}
    return [
        _write(out, "tiny-cnn", "cnn", "fine15", dict(spec), {"model.tflite": tflite_f32},
               dict(about, quantize="none")),
        _write(out, "tiny-cnn-int8", "cnn", "fine15", dict(spec), {"model.tflite": tflite_i8},
               dict(about, quantize="int8 (integer input and output), calibrated on every 4th training window")),
        _write(out, "tiny-cnn-dual", "cnn", "fine15", dict(spec), {"model.onnx": onnx_bytes,
                                                                   "model.tflite": tflite_f32},
               dict(about, quantize="none")),
    ]


def build_rfc_adapt(out: Path) -> Path:
    """basic6 RFC with speaker normalisation, trained by the training pipeline itself (edge_ser_train.train.run,
    2 actor folds, no augmentation) on a generated RAVDESS-layout corpus; the runtime's files only (manifest and
    model.onnx: the pickled native model stays behind)."""
    import shutil
    import tempfile

    from corpus_factory import make_ravdess
    from edge_ser.manifest import read_manifest, write_manifest
    from edge_ser_train.train import TrainConfig, run

    with tempfile.TemporaryDirectory(prefix="edge-ser-fixture-") as tmp:
        base = Path(tmp)
        old_cache = os.environ.get("EDGE_SER_CACHE")
        os.environ["EDGE_SER_CACHE"] = str(base / "cache")  # a fresh feature cache: nothing from other runs
        try:
            corpus = make_ravdess(base / "ravdess", **ADAPT_CORPUS)
            cfg = TrainConfig(task="basic6", kind="rfc", augment=(), folds=2, window_seconds=1.0,
                              kind_options={"n_estimators": 20, "max_leaf_nodes": 30})
            run([corpus], cfg, base / "out", log=lambda *a: None)
        finally:
            if old_cache is None:
                os.environ.pop("EDGE_SER_CACHE", None)
            else:
                os.environ["EDGE_SER_CACHE"] = old_cache
        m = read_manifest(base / "out", verify=True)
        d = out / "tiny-rfc-adapt"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        import onnx
        proto = onnx.load(str(base / "out" / "model.onnx"))
        proto.graph.name = "tiny_rfc_adapt"  # skl2onnx names the graph with a random uuid: the only difference
        (d / "model.onnx").write_bytes(proto.SerializeToString())
    m.name = "tiny-rfc-adapt"
    m.trained_on = dict(m.trained_on, made_by="scripts/make_test_models.py", made_with=_versions(),
                        corpus="generated RAVDESS layout (tests/corpus_factory.py make_ravdess, actors 1-6, 1.2 s)")
    write_manifest(d, m)
    return d


def check(out: Path) -> dict:
    """Each model through the runtime loader (hashes verified), on fresh tones: top-1 hits out of n, per format."""
    from edge_ser.registry import load_model
    result = {}
    for name in NAMES:
        d = out / name
        formats = json.loads((d / "manifest.json").read_text())["formats"]
        for fmt in formats:
            model = load_model(d, fmt=fmt)
            rng = np.random.default_rng(CHECK_SEED)
            if name == "tiny-rfc-adapt":  # not trained on tests/tones.py's tones
                continue
            n = len(model.labels) if model.manifest.task == "basic6" else 15
            hits = sum(int(np.argmax(model.classify_audio(harmonic_tone(tone_f0(c), CHECK_SECONDS, rng,
                                                                        amp=CHECK_AMP))) == c) for c in range(n))
            size = (d / ("model.onnx" if fmt == "onnx" else "model.tflite")).stat().st_size
            result[f"{name}/{fmt}"] = {"correct": hits, "of": n, "bytes": size}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "models",
                    help="where the model directories go (default: tests/fixtures/models)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    build_rfc(args.out)
    build_cnns(args.out)
    build_rfc_adapt(args.out)
    print(json.dumps(check(args.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

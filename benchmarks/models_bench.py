"""Each default model in each runtime and format, one window per call (batch 1, as the stream engine runs):
RFC — scikit-learn against onnxruntime; CNN — Keras against onnxruntime against TFLite float32 / dynamic-range /
int8.  Plus the int8 model's top-1 agreement with the float model and every file's size.

The native (training-side) models come from the model's ``native/`` folder written by ``edge_ser_train.train`` when it is
there (``<model>/native``, or ``$EDGE_SER_NATIVE/<name>/native``); otherwise the harness builds a *timing twin*
with the same architecture from ``edge_ser_train.kinds`` (random weights for the CNN; for the RFC a forest with the same
options fitted on random data of the same width), said so in the results.  Inference time does not depend on the
CNN's weights; for a forest it depends on the tree sizes, which the twin matches only approximately.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_ser.manifest import read_manifest, write_manifest
from edge_ser.registry import load_model

from .timing import compare

REPO = Path(__file__).resolve().parent.parent
QUANTS = ("none", "dynamic", "int8")
QUANT_LABEL = {"none": "float32", "dynamic": "dynamic", "int8": "int8"}


def native_dir(model_dir: Path) -> Path | None:
    candidates = [Path(model_dir) / "native",  # a training output directory
                  REPO / "runs" / "models" / Path(model_dir).name / "native"]  # where edge_ser_train.make_models trains
    extra = os.environ.get("EDGE_SER_NATIVE")
    if extra:
        candidates.append(Path(extra) / Path(model_dir).name / "native")
    for c in candidates:
        if (c / "manifest.json").is_file() or (c / "model.keras").is_file() or (c / "rfc.joblib").is_file():
            return c
    return None


def _tflite_variant_dir(model_dir: Path, tflite_bytes: bytes, root: Path, q: str) -> Path:
    """A model directory holding one TFLite variant, so it is loaded through the runtime's own loader."""
    d = root / f"{Path(model_dir).name}-{q}"
    d.mkdir(parents=True, exist_ok=True)
    m = read_manifest(model_dir, verify=False)
    (d / "model.tflite").write_bytes(tflite_bytes)
    write_manifest(d, m)
    return d


def _keras_model(model_dir: Path, manifest, nat: Path | None, threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    import keras
    if nat is not None and (nat / "model.keras").is_file():
        return keras.models.load_model(nat / "model.keras", compile=False), "native (training output)"
    from edge_ser_train.kinds.cnn import build_network
    filters = (16, 32, 48, 64)
    if nat is not None and (nat / "cnn.json").is_file():
        filters = tuple(json.loads((nat / "cnn.json").read_text())["options"]["filters"])
    net = build_network(tuple(manifest.input["shape"]), len(manifest.labels), filters)
    return net, f"timing twin: edge_ser_train.kinds.cnn.build_network{filters} with random weights"


def _tflite_bytes(keras_model, n_classes: int, q: str, representative: np.ndarray) -> bytes:
    """Convert with the training side's own converter (edge_ser_train.kinds.cnn.CNN.export)."""
    from edge_ser_train.convert import stdout_to_stderr
    from edge_ser_train.kinds.cnn import CNN
    kind = CNN(n_classes)
    kind.model = keras_model
    with tempfile.TemporaryDirectory() as tmp, stdout_to_stderr():
        return kind.export(Path(tmp), "tflite", q, representative=representative[:200]).read_bytes()


def _sklearn_model(model_dir: Path, manifest, nat: Path | None, X: np.ndarray):
    if nat is not None and (nat / "rfc.joblib").is_file():
        import joblib
        d = joblib.load(nat / "rfc.joblib")
        model = d["model"]
        model.n_jobs = 1
        return model, "native (training output)"
    from sklearn.ensemble import RandomForestClassifier
    opts = {"n_estimators": 500, "max_leaf_nodes": 160, "min_samples_leaf": 2, "max_features": "sqrt"}
    described = (manifest.trained_on or {}).get("model") or (manifest.extra or {}).get("model") or {}
    for k in opts:
        if isinstance(described, dict) and k in described:
            opts[k] = described[k]
    rng = np.random.default_rng(0)
    Xr = rng.standard_normal((4000, X.shape[1])).astype(np.float32)
    yr = rng.integers(0, len(manifest.labels), 4000)
    model = RandomForestClassifier(random_state=0, n_jobs=1, **opts).fit(Xr, yr)
    return model, f"timing twin: sklearn RandomForestClassifier({opts}) fitted on random data"


def _quantize_of(model_dir: Path, manifest) -> str | None:
    """What the shipped model.tflite is (none/dynamic/int8), from the manifest's parity record."""
    q = (manifest.parity or {}).get("tflite", {}).get("quantize") if isinstance(manifest.parity, dict) else None
    return q if q in QUANTS else None


def bench_model(model_dir: Path, X: np.ndarray, threads: int = 1, rounds: int = 5) -> dict:
    """Time one window per call in every runtime/format; top-1 agreement of every real-weight variant with the
    float reference (the shipped ONNX, else the float32 TFLite); timing twins get no agreement."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    nat = native_dir(model_dir)
    x1 = np.ascontiguousarray(X[:1], dtype=np.float32)
    out: dict = {"model": manifest.name, "kind": manifest.kind, "task": manifest.task,
                 "native_dir": str(nat) if nat else None, "runtimes": {}, "files": {}, "agreement": {},
                 "source": {}}
    for fname in sorted(p.name for p in model_dir.iterdir() if p.is_file()):
        out["files"][fname] = (model_dir / fname).stat().st_size
    fns = {}
    real = {}  # variants with the trained weights: used for agreement
    if "onnx" in manifest.formats:
        m = load_model(model_dir, fmt="onnx", threads=threads)
        real["onnxruntime"] = m
        fns["onnxruntime"] = lambda m=m: m.predict(x1)
        out["source"]["onnxruntime"] = "shipped model.onnx"
    if "tflite" in manifest.formats:
        q = _quantize_of(model_dir, manifest)
        key = f"tflite-shipped-{QUANT_LABEL[q]}" if q else "tflite-shipped"
        m = load_model(model_dir, fmt="tflite", threads=threads)
        real[key] = m
        fns[key] = lambda m=m: m.predict(x1)
        out["files"][f"{key}.tflite"] = out["files"]["model.tflite"]
        out["source"][key] = "shipped model.tflite"
    tmp = Path(tempfile.mkdtemp(prefix="edge-ser-bench-"))
    try:
        if manifest.kind == "rfc":
            sk, how = _sklearn_model(model_dir, manifest, nat, X)
            out["source"]["scikit-learn"] = how
            fns["scikit-learn"] = lambda: sk.predict_proba(x1)
        elif manifest.kind == "cnn":
            net, how = _keras_model(model_dir, manifest, nat, threads)
            out["source"]["keras"] = how
            import tensorflow as tf
            call = tf.function(lambda t: net(t, training=False))
            xt = tf.constant(x1)
            fns["keras"] = lambda: call(xt).numpy()
            for q in QUANTS:
                f = nat / f"model_{q}.tflite" if nat is not None else None
                key = f"tflite-{QUANT_LABEL[q]}"
                if f is not None and f.is_file():
                    data, is_real = f.read_bytes(), True
                    out["source"][key] = "native export (edge_ser_train.convert, trained weights)"
                else:
                    data, is_real = _tflite_bytes(net, len(manifest.labels), q, X), False
                    out["source"][key] = "converted from the timing twin (random weights: timing and size only)"
                d = _tflite_variant_dir(model_dir, data, tmp, q)
                m = load_model(d, fmt="tflite", threads=threads)
                if is_real:
                    real[key] = m
                fns[key] = lambda m=m: m.predict(x1)
                out["files"][f"{key}.tflite"] = len(data)
        out["runtimes"] = compare(fns, rounds=rounds)
        ref_key = "onnxruntime" if "onnxruntime" in real else ("tflite-float32" if "tflite-float32" in real else None)
        if ref_key and len(X) > 1:
            def probs(m):
                return np.concatenate([m.predict(X[i:i + 1]) for i in range(len(X))])
            ref = probs(real[ref_key])
            for key, m in real.items():
                if key == ref_key:
                    continue
                p = probs(m)
                out["agreement"][key] = {"vs": ref_key, "n_windows": int(len(X)),
                                         "top1_agreement": round(float(np.mean(p.argmax(1) == ref.argmax(1))), 4),
                                         "max_abs_diff": round(float(np.abs(p - ref).max()), 4)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out

"""edge_ser_train.convert / `edge-ser export`: conversions re-checked through the runtime loader, parity in the manifest."""
import json

import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import make_ravdess  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser.manifest import read_manifest  # noqa: E402
from edge_ser_train.convert import parity  # noqa: E402
from edge_ser_train.train import TrainConfig, run  # noqa: E402


@pytest.fixture(scope="module")
def rfc_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("conv")
    import os
    os.environ["EDGE_SER_CACHE"] = str(base / "cache")
    corpus = make_ravdess(base / "ravdess", actors=(1, 2, 3, 4), seconds=1.0)
    cfg = TrainConfig(task="basic6", kind="rfc", augment=(), window_seconds=1.0, kind_options={"n_estimators": 20})
    run([corpus], cfg, base / "m", log=lambda s: None)
    return base / "m"


def test_parity_numbers():
    a = np.array([[0.9, 0.1], [0.4, 0.6]])
    b = np.array([[0.8, 0.2], [0.6, 0.4]])
    p = parity(a, b)
    assert p["n"] == 2 and abs(p["max_abs_diff"] - 0.2) < 1e-9 and p["top1_agreement"] == 0.5


def test_export_command_rewrites_onnx_with_parity(rfc_dir, capsys):
    before = read_manifest(rfc_dir).sha256
    assert main(["export", "--model", str(rfc_dir), "--format", "onnx", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["format"] == "onnx" and r["bytes"] > 0 and r["parity"]["max_abs_diff"] < 1e-3
    m = read_manifest(rfc_dir)  # hashes still verify
    assert m.parity["onnx"]["loaded_with"] == "edge_ser.registry.load_model"
    assert set(m.sha256) == set(before) == {"model.onnx"}


@pytest.mark.parametrize("argv, message", [
    (["--format", "tflite"], "exports to onnx"),
    (["--format", "onnx", "--quantize", "int8"], "nothing to quantize"),
    (["--format", "coreml"], "unknown format"),
    (["--format", "onnx", "--quantize", "int4"], "unknown quantisation"),
])
def test_export_errors(rfc_dir, argv, message, capsys):
    assert main(["export", "--model", str(rfc_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_export_needs_a_trained_directory(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path), "--format", "onnx"]) == 2
    assert "no native/" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "nope"), "--format", "onnx"]) == 2
    assert "no such model directory" in capsys.readouterr().err


def test_int8_tflite_keeps_first_conv_and_head_in_float(tmp_path):
    """The int8 recipe: float32 input/output, int8 middle layers, the first convolution and the logits' dense layer
    (and softmax) in float; ``integer_io`` gives the fully integer file.  Both run in the runtime's TFLite runner."""
    pytest.importorskip("tensorflow")
    from edge_ser.runners import TFLiteRunner
    from edge_ser_train.kinds.cnn import build_network, to_tflite
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 16, 12, 1)).astype(np.float32)
    net = build_network(x.shape[1:], 5, filters=(4, 8, 8, 8))
    expected = net.predict(x[64:], verbose=0)
    labels = list("abcde")

    (tmp_path / "mixed.tflite").write_bytes(to_tflite(net, "int8", x[:64]))
    runner = TFLiteRunner(tmp_path / "mixed.tflite")
    assert runner.inp["dtype"] == np.float32 and runner.out["dtype"] == np.float32
    weights = {t["name"]: t["dtype"] for t in runner.interpreter.get_tensor_details()
               if t["name"].endswith(("/convolution", "/MatMul"))}
    kinds = {layer: {d for n, d in weights.items() if f"/{layer}" in n}
             for layer in ("conv1", "conv2", "conv4", "dense", "probabilities")}
    assert kinds == {"conv1": {np.float32}, "conv2": {np.int8}, "conv4": {np.int8}, "dense": {np.int8},
                     "probabilities": {np.float32}}
    got = np.concatenate([runner(x[i:i + 1], labels) for i in range(64, 96)])
    assert np.abs(got - expected).max() < 0.02

    (tmp_path / "integer.tflite").write_bytes(to_tflite(net, "int8", x[:64], integer_io=True))
    runner = TFLiteRunner(tmp_path / "integer.tflite")
    assert runner.inp["dtype"] == np.int8 and runner.out["dtype"] == np.int8
    got = np.concatenate([runner(x[i:i + 1], labels) for i in range(64, 96)])
    assert np.abs(got - expected).max() < 0.05

"""export.convert / `edge-ser export`: conversions re-checked through the runtime loader, parity in the manifest."""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from corpus_factory import make_ravdess  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser.manifest import read_manifest  # noqa: E402
from export.convert import parity  # noqa: E402
from export.train import TrainConfig, run  # noqa: E402


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
    assert m.parity["onnx"]["loaded_with"] == "edge_ser.models.load_model"
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

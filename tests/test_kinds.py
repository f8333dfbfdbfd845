"""The kinds after seeds 001-003 (timnet, fusion, aae, ensemble): network shapes, a tiny end-to-end
train -> export (ONNX + every TFLite) -> load through the runtime -> parity on a generated corpus, and the rules
each must keep (BEGAN's k in [0, 1], the frozen encoder, gender from the audio only)."""
import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from corpus_factory import make_cremad, make_ravdess  # noqa: E402

from edge_ser.manifest import read_manifest  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser_train import kinds  # noqa: E402
from edge_ser_train.train import TrainConfig, run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_ravdess(tmp_path_factory.mktemp("rav") / "ravdess", actors=(1, 2, 3, 4), seconds=1.0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("EDGE_SER_TRAIN_THREADS", "1")


def _end_to_end(corpus, out, kind, options, task="basic6"):
    """Train (no CV), export every format, check parity and that the runtime classifies audio with each file."""
    cfg = TrainConfig(task=task, kind=kind, augment=(), window_seconds=1.0, kind_options=options)
    result = run([corpus], cfg, out, log=lambda s: None)
    m = read_manifest(out)
    assert m.kind == kind and m.formats == ["onnx", "tflite"]
    assert m.parity["onnx"]["max_abs_diff"] < 1e-3
    assert m.parity["tflite_variants"]["none"]["max_abs_diff"] < 1e-3
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    for fmt in ("onnx", "tflite"):
        p = load_model(out, fmt=fmt).classify_audio(audio)
        assert p.shape == (len(m.labels),) and abs(p.sum() - 1) < 1e-3
    native = kinds.make(kind, len(m.labels)).load(out / "native")  # the native copy reloads, same predictions
    X = np.load(out / "native" / "heldout.npz")["X"][:16]
    np.testing.assert_allclose(native.predict_proba(X), load_model(out, fmt="onnx").predict(X), atol=1e-3)
    return result, m


# --- timnet -----------------------------------------------------------------------------------------------------

def test_timnet_network_shapes_and_forms():
    from edge_ser_train.kinds.timnet import TimNet
    X = np.random.default_rng(0).normal(size=(8, 32, 39)).astype(np.float32)
    full = TimNet(6, blocks=3, filters=8).build(X.shape[1:], X)
    seed = TimNet(6, blocks=3, filters=8, form="seed").build(X.shape[1:], X)
    assert full.output_shape == (None, 6) and seed.output_shape == (None, 6)
    names = {layer.name for layer in full.layers}
    assert {"tim_fusion", "tim_fwd0_gate", "tim_bwd2_gated", "tim_reverse"} <= names
    assert not {n for n in (layer.name for layer in seed.layers) if "gate" in n or "fusion" in n}
    dil = [layer.dilation_rate[0] for layer in full.layers if layer.name.startswith("tim_fwd") and "conv" in layer.name]
    assert dil == [1, 1, 2, 2, 4, 4]
    assert all(layer.padding == "causal" for layer in full.layers if "conv" in layer.name)
    # the reversal layer reverses time exactly
    import keras
    rev = keras.Model(full.input, full.get_layer("tim_reverse_back").output)
    x = X[:2]
    np.testing.assert_allclose(rev.predict(x, verbose=0), full.get_layer("input_norm")(x).numpy()[:, ::-1], atol=1e-5)
    with pytest.raises(ValueError):
        TimNet(6, form="other")


def test_timnet_forward_branch_is_causal():
    """A change in the last frames leaves the forward branch's earlier outputs alone (dilated causal convolutions)."""
    import keras
    from edge_ser_train.kinds.timnet import TimNet
    X = np.random.default_rng(1).normal(size=(4, 32, 39)).astype(np.float32)
    net = TimNet(6, blocks=3, filters=8).build(X.shape[1:], X)
    fwd = keras.Model(net.input, net.get_layer("tim_fwd2_gated").output)
    a = X[:1].copy()
    b = a.copy()
    b[0, 28:] += 5.0
    ya, yb = fwd.predict(a, verbose=0), fwd.predict(b, verbose=0)
    np.testing.assert_allclose(ya[0, :28], yb[0, :28], atol=1e-5)
    assert np.abs(ya[0, 28:] - yb[0, 28:]).max() > 1e-3


def test_timnet_trains_exports_and_runs(corpus, tmp_path):
    result, m = _end_to_end(corpus, tmp_path / "timnet", "timnet", {"epochs": 2, "blocks": 3, "filters": 8})
    assert m.input["features"] == "mfcc_deltas" and m.input["shape"] == [32, 39]
    assert m.extra["model"]["form"] == "full" and m.input["speaker_norm"]["axes"] == [0]

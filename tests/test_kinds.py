"""The kinds after seeds 001-003 (timnet, fusion, aae, ensemble): network shapes, a tiny end-to-end
train -> export (ONNX + every TFLite) -> load through the runtime -> parity on a generated corpus, and the rules
each must keep (BEGAN's k in [0, 1], the frozen encoder, gender from the audio only)."""
import json

import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")
pytest.importorskip("tensorflow", reason="the Keras kinds need tensorflow (training distribution)")

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


# --- aae ----------------------------------------------------------------------------------------------------------

def test_began_k_update_moves_as_the_paper_states_and_stays_in_0_1():
    from edge_ser_train.kinds.aae import update_k
    # generated windows reconstructed better than gamma x real ones: k grows (D pushes them away harder)
    assert update_k(0.5, loss_real=1.0, loss_fake=0.5, gamma=0.7, lambda_k=0.01) == pytest.approx(0.502)
    # worse than gamma x real: k shrinks (D attends to the real windows)
    assert update_k(0.5, loss_real=1.0, loss_fake=0.9, gamma=0.7, lambda_k=0.01) == pytest.approx(0.498)
    assert update_k(0.5, 1.0, 0.7, 0.7, 0.01) == pytest.approx(0.5)  # at equilibrium it stays
    assert update_k(0.0, 1.0, 5.0, 0.7, 0.1) == 0.0 and update_k(1.0, 5.0, 0.0, 0.7, 0.1) == 1.0


def test_began_training_keeps_k_in_0_1_and_follows_the_balance():
    from edge_ser_train.kinds.aae import BEGAN, BeganOptions
    X = np.random.default_rng(0).normal(size=(64, 16, 8, 1)).astype(np.float32)
    o = BeganOptions(steps=30, batch_size=8, filters=4, code_channels=2, z_dim=8, lambda_k=0.05, lr=1e-3)
    gan = BEGAN(X.shape[1:], o).train(X, log_every=0)
    h = gan.history
    k = np.array(h["k"])
    assert len(k) == 30 and np.all((k >= 0) & (k <= 1))
    # every step moved k by lambda_k (gamma L(x) - L(G(z))), clipped
    prev = np.concatenate([[o.k0], k[:-1]])
    want = np.clip(prev + o.lambda_k * (o.gamma * np.array(h["loss_real"]) - np.array(h["loss_fake"])), 0, 1)
    np.testing.assert_allclose(k, want, atol=1e-6)
    m = np.array(h["m_global"])
    np.testing.assert_allclose(m, np.array(h["loss_real"]) + np.abs(o.gamma * np.array(h["loss_real"])
                                                                    - np.array(h["loss_fake"])), atol=1e-6)


@pytest.fixture(scope="module")
def encoder_dir(corpus, tmp_path_factory):
    """An encoder trained once without labels on the generated corpus (every clip), reused by the tests below."""
    from edge_ser_train.kinds.aae import BeganOptions, train_encoder
    o = BeganOptions(steps=20, batch_size=8, filters=4, code_channels=2, z_dim=8, lr=1e-3)
    return train_encoder([corpus], tmp_path_factory.mktemp("enc") / "encoder", o, window_seconds=1.0,
                         cache_dir=str(tmp_path_factory.getbasetemp() / "cache"))


def test_encoder_is_saved_once_with_its_provenance(encoder_dir):
    from edge_ser_train.kinds.aae import load_encoder
    enc, meta = load_encoder(encoder_dir)
    assert meta["trained_on"]["labels"] == "unused" and meta["trained_on"]["clips"] == 4 * 11  # every file
    assert meta["image_shape"] == [64, 16, 1] and meta["steps"] == 20 and 0 <= meta["final_k"] <= 1
    assert enc.output_shape == (None, 16, 4, 2)
    (encoder_dir / "encoder.json").write_text((encoder_dir / "encoder.json").read_text().replace(
        meta["encoder_sha256"], "0" * 64))
    with pytest.raises(ValueError, match="sha256"):
        load_encoder(encoder_dir)
    (encoder_dir / "encoder.json").write_text((encoder_dir / "encoder.json").read_text().replace(
        "0" * 64, meta["encoder_sha256"]))


def test_frozen_encoder_is_not_updated_by_the_classifier(encoder_dir):
    from edge_ser_train.kinds.aae import AAE, load_encoder
    enc, _ = load_encoder(encoder_dir)
    before = [w.copy() for w in enc.get_weights()]
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 64, 16, 1)).astype(np.float32)
    y = np.arange(48) % 3
    kind = AAE(3, encoder=str(encoder_dir), epochs=3, batch_size=16).fit(X, y, validation=(X[:8], y[:8]))
    inner = kind.model.get_layer("encoder")
    assert not inner.trainable and not inner.trainable_weights
    for a, b in zip(before, inner.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert kind.model.trainable_weights  # the classifier did train
    head = [w for w in kind.model.trainable_weights]
    assert all("cls" in w.path or "probabilities" in w.path for w in head)


def test_aae_trains_exports_encoder_and_classifier_as_one_file(corpus, tmp_path, encoder_dir):
    _, m = _end_to_end(corpus, tmp_path / "aae", "aae", {"encoder": str(encoder_dir), "epochs": 2})
    assert m.input["features"] == "log_mel_image" and m.input["shape"] == [64, 16, 1]
    enc = m.extra["model"]["encoder"]
    assert enc["trained_on"]["labels"] == "unused" and len(enc["encoder_sha256"]) == 64
    assert sorted(p.name for p in (tmp_path / "aae").iterdir() if p.suffix in (".onnx", ".tflite")) == [
        "model.onnx", "model.tflite"]


# --- ensemble -----------------------------------------------------------------------------------------------------

def test_ensemble_trains_exports_and_runs_with_the_encoder(corpus, tmp_path, encoder_dir):
    from edge_ser_train.kinds.aae import load_encoder
    _, m = _end_to_end(corpus, tmp_path / "ens", "ensemble",
                       {"encoder": str(encoder_dir), "epochs": 2, "timnet": {"blocks": 2, "filters": 8}})
    assert m.input["features"] == "concat" and m.input["shape"] == [32 * 39 + 64 * 16]
    assert [p["features"] for p in m.input["params"]["parts"]] == ["mfcc_deltas", "log_mel_image"]
    assert m.extra["model"]["encoder"]["encoder_sha256"] == load_encoder(encoder_dir)[1]["encoder_sha256"]


def test_ensemble_embedding_interface_takes_any_runtime_feature(corpus, tmp_path):
    """embedding='features': a runtime feature vector (here band_stats) is the utterance embedding."""
    from edge_ser_train.train import load_data
    options = {"embedding": "features", "embedding_features": {"features": "band_stats", "params": {}},
               "epochs": 1, "timnet": {"blocks": 2, "filters": 8}}
    kind = kinds.make("ensemble", 6, **options)
    data = load_data([corpus], TrainConfig(task="basic6", kind="ensemble", augment=(), window_seconds=1.0), kind)
    assert [p["features"] for p in data.spec.params["parts"]] == ["mfcc_deltas", "band_stats"]
    X = np.concatenate([data.raw(i) for i in range(len(data.clips))])
    y = np.concatenate([np.full(len(data.raw(i)), data.y[i]) for i in range(len(data.clips))])
    n_stats = X.shape[1] - 32 * 39
    assert n_stats == len(__import__("edge_ser.features", fromlist=["band_stats"]).band_stats(
        np.zeros((128, 32), np.float32), 32))
    kind.fit(X, y)
    assert kind.predict_proba(X[:4]).shape == (4, 6)
    assert kind.model.get_layer("embedding_dense").input.shape[1] == n_stats
    fresh = kinds.make("ensemble", 6, **options)  # the frame count is inferred from the input when not set
    assert fresh._infer_frames(X.shape[1]) == 32
    with pytest.raises(ValueError):
        kinds.make("ensemble", 6, embedding="features")


# --- fusion + gender ----------------------------------------------------------------------------------------------

def test_fusion_network_splits_its_input_into_the_three_parts():
    from edge_ser_train.kinds.fusion import Fusion
    t = 32
    X = np.random.default_rng(0).normal(size=(16, t * 43 + 8 + 1)).astype(np.float32)
    net = Fusion(6, conv_filters=8).build(X.shape[1:], X)
    assert net.output_shape == (None, 6)
    assert net.get_layer("split_part0").output.shape[1:] == (t, 43)
    assert net.get_layer("fused").output.shape[1] == 32 + 8 + 1  # the seed's 41 fused features
    no_gender = Fusion(6, gender=False, conv_filters=8)
    assert [p["features"] for p in no_gender.params["parts"]] == ["frame_descriptors", "window_stats"]
    deep_only = Fusion(6, gender=False, stats=False, conv_filters=8).build((t * 43,), X[:, :t * 43])
    assert "fused" not in {layer.name for layer in deep_only.layers}
    with pytest.raises(ValueError):
        Fusion(6).build((t * 43 + 5,), X[:, :t * 43 + 5])


def test_gender_estimator_ships_with_its_unseen_speaker_accuracy():
    from edge_ser import gender
    info = gender.model_info()
    assert info["metrics"]["clip_accuracy"] > 0.8 and "disjoint by speaker" in info["metrics"]["protocol"]
    from corpus_factory import tone
    from edge_ser.frontend import log_mel
    db = log_mel(tone("sad", seconds=2.5), top_db=None)
    p = gender.estimate(db, db.shape[1])
    assert 0.0 <= p <= 1.0
    with pytest.raises(Exception, match="sha256"):
        gender.estimate(db, db.shape[1], sha256="0" * 64)


def test_gender_feature_comes_from_the_audio_never_from_names(tmp_path):
    """The same audio under CREMA-D actors recorded as male in one corpus and female in the other (and RAVDESS
    odd/even actor numbers): the fusion inputs are identical and equal the estimator's output on the audio."""
    from edge_ser.gender import estimate
    from edge_ser_train.kinds.fusion import Fusion
    from edge_ser_train.train import load_data
    a = make_cremad(tmp_path / "a" / "cremad", actors=(1001, 1002), xx=False)
    b = make_cremad(tmp_path / "b" / "cremad", actors=(1001, 1002), xx=False)
    demo = (b / "VideoDemographics.csv").read_text()
    (b / "VideoDemographics.csv").write_text(demo.replace('"Male"', '"X"').replace('"Female"', '"Male"')
                                             .replace('"X"', '"Female"'))
    cfg = TrainConfig(task="basic6", kind="fusion", augment=(), window_seconds=1.0)
    da, db_ = (load_data([root], cfg, Fusion(6)) for root in (a, b))
    assert [c.sex for c in da.clips] != [c.sex for c in db_.clips]  # the loaders do read the CSV
    for i in range(len(da.clips)):
        xa, xb = da.raw(i), db_.raw(i)
        np.testing.assert_array_equal(xa, xb)
        window = da.cache.get(da.clips[i])
        w = __import__("edge_ser.features", fromlist=["clip_windows"]).clip_windows(window, 32, 16)[0]
        assert xa[0, -1] == pytest.approx(estimate(w, 32), abs=1e-6)


def test_fusion_trains_exports_and_runs_with_and_without_gender(tmp_path):
    corpus = make_cremad(tmp_path / "cremad", actors=(1001, 1002, 1003, 1004), xx=False)
    _, m = _end_to_end(corpus, tmp_path / "fusion", "fusion", {"epochs": 2, "conv_filters": 8})
    parts = m.input["params"]["parts"]
    assert [p["features"] for p in parts] == ["frame_descriptors", "window_stats", "gender"]
    from edge_ser.gender import model_info
    assert parts[-1]["params"]["sha256"] == model_info()["sha256"]
    assert m.input["shape"] == [32 * 43 + 8 + 1] and "speaker_norm" not in m.input
    # without the gender input: the same loop, one value fewer per window (fit and predict only)
    from edge_ser_train.kinds.fusion import Fusion
    from edge_ser_train.train import load_data
    cfg = TrainConfig(task="basic6", kind="fusion", augment=(), window_seconds=1.0)
    kind = Fusion(6, gender=False, epochs=1, conv_filters=8)
    data = load_data([corpus], cfg, kind)
    X = np.concatenate([data.raw(i) for i in range(len(data.clips))])
    y = np.concatenate([np.full(len(data.raw(i)), data.y[i]) for i in range(len(data.clips))])
    assert X.shape[1] == 32 * 43 + 8
    assert kind.fit(X, y).predict_proba(X[:4]).shape == (4, 6)

"""edge_ser_train.train + `edge-ser train`: a tiny end-to-end run on a generated corpus in the RAVDESS layout
(train -> actor-fold CV -> export -> load through edge_ser.registry.load_model -> parity)."""
import json

import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import make_ravdess  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser.errors import UserError  # noqa: E402
from edge_ser.manifest import read_manifest  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser_train.train import TrainConfig, run  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_ravdess(tmp_path_factory.mktemp("rav") / "ravdess", actors=(1, 2, 3, 4, 5, 6), seconds=1.0)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EDGE_SER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_cli_train_rfc_cv_export_parity(corpus, tmp_path, capsys):
    out = tmp_path / "basic6-rfc"
    code = main(["train", "--data", str(corpus), "--task", "basic6", "--model", "rfc", "--out", str(out),
                 "--folds", "2", "--augment", "noise", "--window-seconds", "1.0", "--val-split", "corpus", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    cv = result["cv"]
    assert cv["folds"] == 2 and len(cv["per_fold"]) == 2
    for f in cv["per_fold"]:  # each fold tested on speakers it never trained on
        assert f["test_speakers"]
    tested = sum((f["test_speakers"] for f in cv["per_fold"]), [])
    assert sorted(tested) == [f"ravdess:{a:02d}" for a in range(1, 7)]
    assert cv["accuracy"]["mean"] > 0.5  # tones by emotion are learnable across speakers
    m = read_manifest(out)  # hashes verified
    assert m.kind == "rfc" and m.task == "basic6" and m.formats == ["onnx"] and m.window_seconds == 1.0
    assert m.input["features"] == "band_stats" and m.input["params"]["n_frames"] == 32
    assert m.metrics["accuracy"] == cv["accuracy"]["mean"] and m.metrics["accuracy_std"] == cv["accuracy"]["std"]
    assert "actor CV" in m.metrics["protocol"] and "speaker" in m.metrics["protocol_details"]
    assert "of each training corpus's speakers held out" in m.metrics["protocol_details"]  # --val-split corpus
    assert m.trained_on["corpora"] == ["ravdess"]
    assert m.parity["onnx"]["max_abs_diff"] < 1e-3 and m.parity["onnx"]["top1_agreement"] == 1.0
    assert m.trained_on["augment"] == ["noise"]
    assert not set(m.trained_on["validation_speakers"]) & {"ravdess:xx"}
    model = load_model(out)
    x = np.load(out / "native" / "heldout.npz")["X"]
    p = model.predict(x)
    assert p.shape == (len(x), 6) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_cli_train_recipe_trains_a_shipped_models_recipe(corpus, tmp_path, capsys):
    """--recipe basic6-rfc: the shipped recipe's task, kind, augmentation and options (80 trees x 420 leaves)."""
    from edge_ser_train.make_models import RECIPES
    out = tmp_path / "m"
    assert main(["train", "--data", str(corpus), "--recipe", "basic6-rfc", "--out", str(out),
                 "--window-seconds", "1.0", "--json"]) == 0
    capsys.readouterr()
    m = read_manifest(out)
    recipe = RECIPES["basic6-rfc"]
    assert (m.task, m.kind) == (recipe["task"], recipe["kind"]) and m.trained_on["augment"] == list(recipe["augment"])
    extra = json.loads((out / "manifest.json").read_text())["extra"]
    assert extra["train_config"]["kind_options"] == recipe["kind_options"]  # speaker_norm: the kind's default (on)
    assert m.input.get("speaker_norm")  # and it did standardise by speaker
    assert extra["model"]["n_estimators"] == 80 and extra["model"]["max_leaf_nodes"] == 420


def test_cli_train_recipe_passes_every_recipe_option(corpus, tmp_path, monkeypatch, capsys):
    """--recipe basic6-cnn: training hop, regime sampling, members, augmentation reach the TrainConfig; an equal
    --task/--model/--augment is accepted; a recipe's SSL switch (with its options) is applied."""
    import edge_ser_train.make_models
    import edge_ser_train.ssl
    import edge_ser_train.train
    seen = {}

    def fake_run(roots, cfg, out, ssl=None, **kw):
        seen.update(cfg=cfg, ssl=ssl)
        return {"validation": {"accuracy": 0.5, "n": 1}}

    monkeypatch.setattr(edge_ser_train.train, "run", fake_run)
    monkeypatch.setattr(edge_ser_train.ssl, "make_ssl_hook", lambda roots, cfg, **kw: seen.update(hook=kw) or None)
    assert main(["train", "--data", str(corpus), "--recipe", "basic6-cnn", "--task", "basic6", "--model", "cnn",
                 "--augment", "noise,pitch", "--out", str(tmp_path / "a")]) == 0
    cfg, recipe = seen["cfg"], edge_ser_train.make_models.RECIPES["basic6-cnn"]
    assert (cfg.task, cfg.kind, cfg.augment) == ("basic6", "cnn", ("noise", "pitch"))
    assert cfg.train_hop_seconds == recipe["train_hop_seconds"] and cfg.adapt_sample is True
    assert cfg.kind_options == recipe["kind_options"] and "hook" not in seen  # speaker_norm: the kind's default
    monkeypatch.setitem(edge_ser_train.make_models.RECIPES, "fine15-soft", dict(edge_ser_train.make_models.RECIPES["fine15-cnn"],
                                                                         ssl={"soft": True}))
    assert main(["train", "--data", str(corpus), "--recipe", "fine15-soft", "--out", str(tmp_path / "b")]) == 0
    assert seen["hook"]["soft"] is True and seen["cfg"].kind_options["mixup"] == 0.2
    assert seen["cfg"].val_split == "pooled"  # TrainConfig's default
    assert main(["train", "--data", str(corpus), "--recipe", "fine16-cnn", "--out", str(tmp_path / "c")]) == 0
    assert seen["cfg"].val_split == "corpus"  # the recipe's own
    assert main(["train", "--data", str(corpus), "--recipe", "fine16-cnn", "--val-split", "pooled",
                 "--out", str(tmp_path / "d")]) == 0
    assert seen["cfg"].val_split == "pooled"  # the option given wins
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--recipe", "fine15-svm"], "unknown recipe"),
    (["--recipe", "fine15-cnn", "--model", "rfc"], "--model rfc contradicts --recipe fine15-cnn"),
    (["--recipe", "fine15-cnn", "--task", "basic6"], "--task basic6 contradicts"),
    (["--recipe", "basic6-rfc", "--augment", "noise"], "--augment noise contradicts"),
])
def test_cli_train_recipe_errors(corpus, tmp_path, capsys, extra, message):
    assert main(["train", "--data", str(corpus), "--out", str(tmp_path / "m"), *extra]) == 2
    assert message in _one_error(capsys)
    assert not (tmp_path / "m").exists()


def test_run_takes_a_cv_computed_before(corpus, tmp_path):
    """run(cv=...): the manifest's CV metrics are the given ones; the folds are not trained again."""
    from edge_ser_train.train import cross_validate, load_data
    from edge_ser_train import kinds
    cfg = TrainConfig(task="basic6", kind="rfc", augment=(), window_seconds=1.0, folds=2,
                      kind_options={"n_estimators": 10})
    cv = cross_validate(load_data([corpus], cfg, kinds.make("rfc", 6, **cfg.kind_options)), cfg, log=lambda s: None)
    logged = []
    cfg.folds = 0  # the folds come from the given CV
    result = run([corpus], cfg, tmp_path / "m", log=logged.append, cv=cv)
    assert result["cv"] is cv and not [line for line in logged if line.startswith("fold ")]
    m = read_manifest(tmp_path / "m")
    assert m.metrics["accuracy"] == cv["accuracy"]["mean"] and m.metrics["per_fold"] == cv["per_fold"]
    assert m.metrics["pooled_confusion"] == cv["pooled_confusion"] and m.metrics["folds"] == 2
    assert m.metrics["protocol"].startswith("2-fold actor CV")
    with pytest.raises(UserError, match="not a CV of this task"):
        run([corpus], TrainConfig(task="fine15", kind="rfc", augment=(), window_seconds=1.0,
                                  kind_options={"n_estimators": 10}), tmp_path / "n", log=lambda s: None, cv=cv)


def test_fine15_from_ravdess_has_all_15_outputs(corpus, tmp_path):
    """RAVDESS has no 'low': the exported model still gives one probability per fine15 label."""
    cfg = TrainConfig(task="fine15", kind="rfc", augment=(), window_seconds=1.0, kind_options={"n_estimators": 20})
    run([corpus], cfg, tmp_path / "m", log=lambda s: None)
    model = load_model(tmp_path / "m")
    x = np.load(tmp_path / "m" / "native" / "heldout.npz")["X"]
    p = model.predict(x)
    assert p.shape[1] == 15
    low = [i for i, lab in enumerate(model.labels) if lab.endswith("_low")]
    assert np.all(p[:, low] == 0)


def test_same_seed_same_model(corpus, tmp_path):
    cfg = TrainConfig(task="basic6", kind="rfc", augment=("noise",), window_seconds=1.0,
                      kind_options={"n_estimators": 10})
    a = run([corpus], cfg, tmp_path / "a", log=lambda s: None)
    b = run([corpus], cfg, tmp_path / "b", log=lambda s: None)
    assert a["validation"] == b["validation"]
    x = np.load(tmp_path / "a" / "native" / "heldout.npz")["X"]
    np.testing.assert_array_equal(load_model(tmp_path / "a").predict(x), load_model(tmp_path / "b").predict(x))


def test_ssl_hook_gets_only_training_speakers(corpus, tmp_path):
    seen = {}

    def hook(ctx):
        seen.setdefault("excluded", []).append(set(ctx.excluded_speakers))
        train_spk = {ctx.data.clips[i].speaker for i in ctx.train_idx}
        assert not train_spk & ctx.excluded_speakers
        model = ctx.fit(ctx.train_idx)  # the hook may train set-1 models
        probs = ctx.predict_clips(model, [ctx.data.clips[i] for i in ctx.train_idx[:3]])
        assert probs.shape == (3, 6)
        return [(ctx.data.clips[i], int(ctx.data.y[i])) for i in ctx.train_idx[:2]]

    cfg = TrainConfig(task="basic6", kind="rfc", augment=(), folds=2, window_seconds=1.0,
                      kind_options={"n_estimators": 10})
    result = run([corpus], cfg, tmp_path / "ssl", ssl=hook, log=lambda s: None)
    assert len(seen["excluded"]) == 3  # two folds + the final model
    assert all(f["n_extra"] == 2 for f in result["cv"]["per_fold"])


@pytest.mark.slow
def test_cnn_one_epoch_exports_onnx_and_every_tflite(corpus, tmp_path):
    pytest.importorskip("tensorflow")
    cfg = TrainConfig(task="basic6", kind="cnn", augment=(), window_seconds=1.0,
                      kind_options={"epochs": 1, "filters": (4, 8, 8, 8)})
    result = run([corpus], cfg, tmp_path / "cnn", log=lambda s: None)
    m = read_manifest(tmp_path / "cnn")
    assert m.formats == ["onnx", "tflite"]
    assert m.parity["onnx"]["max_abs_diff"] < 1e-3
    assert set(m.parity["tflite_variants"]) == {"none", "dynamic", "int8"}
    assert m.parity["tflite_variants"]["none"]["max_abs_diff"] < 1e-3
    for fmt in ("onnx", "tflite"):
        model = load_model(tmp_path / "cnn", fmt=fmt)
        p = model.classify_audio(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
        assert p.shape == (6,) and abs(p.sum() - 1) < 1e-3
    assert result["export"]["tflite"]["bytes"] < 300_000


@pytest.mark.slow
def test_cnn_members_average_into_one_exported_model(corpus, tmp_path):
    """members=2: two independently seeded networks, one exported file whose output is the mean of theirs; the
    native copy reloads with the same predictions, and ONNX/TFLite match it."""
    pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import CNN
    cfg = TrainConfig(task="basic6", kind="cnn", augment=(), window_seconds=1.0,
                      kind_options={"epochs": 2, "filters": (4, 8, 8, 8), "members": 2})
    run([corpus], cfg, tmp_path / "ens", log=lambda s: None)
    m = read_manifest(tmp_path / "ens")
    described = m.extra["model"]
    assert described["members"] == 2 and "mean of 2" in described["network"]
    assert isinstance(described["epochs_run"], list) and len(described["epochs_run"]) == 2
    native = CNN(6).load(tmp_path / "ens" / "native")
    subnets = [layer for layer in native.model.layers if layer.__class__.__name__ in ("Functional", "Model")]
    assert len(subnets) == 2
    x = np.load(tmp_path / "ens" / "native" / "heldout.npz")["X"][:16]
    mean = np.mean([net.predict(x, verbose=0) for net in subnets], axis=0)
    assert np.abs(native.predict_proba(x) - mean).max() < 1e-5
    assert not np.allclose(subnets[0].predict(x, verbose=0), subnets[1].predict(x, verbose=0), atol=1e-3)
    assert m.parity["onnx"]["max_abs_diff"] < 1e-3
    assert m.parity["tflite_variants"]["none"]["max_abs_diff"] < 1e-3
    for fmt in ("onnx", "tflite"):
        p = load_model(tmp_path / "ens", fmt=fmt).classify_audio(
            np.random.default_rng(1).normal(0, 0.1, 16000).astype(np.float32))
        assert p.shape == (6,) and abs(p.sum() - 1) < 1e-3


def test_spec_mask_masks_in_training_only():
    """SpecAugment's masks: zero rows (mel bands) and columns (frames) per example in training, identity otherwise;
    the network built for export has no mask layer and the same weights to take."""
    pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import build_network, spec_mask_layer
    x = np.ones((16, 32, 20, 1), np.float32)
    layer = spec_mask_layer(freq=6, time=4, masks=1, seed=3)
    y = np.asarray(layer(x, training=True))[..., 0]
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    rows, cols = (y == 0).all(axis=2).sum(axis=1), (y == 0).all(axis=1).sum(axis=1)
    assert rows.max() <= 6 and cols.max() <= 4 and rows.sum() > 0 and cols.sum() > 0
    assert set(np.unique(y)) <= {0.0, 1.0} and len({r.tobytes() for r in (y == 0)}) > 1  # masks differ per example
    trained = build_network(x.shape[1:], 3, filters=(4, 4, 4, 4), spec_augment={"freq": 6, "time": 4, "masks": 1})
    plain = build_network(x.shape[1:], 3, filters=(4, 4, 4, 4))
    assert "spec_mask" in [layer.name for layer in trained.layers]
    assert "spec_mask" not in [layer.name for layer in plain.layers]
    assert [w.shape for w in trained.get_weights()] == [w.shape for w in plain.get_weights()]
    assert [layer.name for layer in trained.layers if layer.weights] == [layer.name for layer in plain.layers
                                                                          if layer.weights]


@pytest.mark.slow
def test_cnn_partial_labels_use_only_training_speakers(tmp_path):
    """fine15 + partial: CREMA-D XX clips (emotion known, intensity not) join the training part of their own
    speakers only, with a marginal-likelihood loss; the exported model still has 15 outputs."""
    pytest.importorskip("tensorflow")
    from corpus_factory import make_cremad
    crema = make_cremad(tmp_path / "crema", actors=(1001, 1002, 1003, 1004, 1005, 1006), seconds=0.8)
    cfg = TrainConfig(task="fine15", kind="cnn", augment=(), window_seconds=1.0, partial=True, folds=2,
                      kind_options={"epochs": 1, "filters": (4, 8, 8, 8)})
    result = run([crema], cfg, tmp_path / "m", log=lambda s: None)
    for f in result["cv"]["per_fold"]:
        assert 0 < f["n_extra"] < 6 * 5  # XX clips of the fold's training speakers only
        assert f["n_extra"] <= (6 - len(f["test_speakers"])) * 5
    m = load_model(tmp_path / "m")
    assert m.predict(np.load(tmp_path / "m" / "native" / "heldout.npz")["X"]).shape[1] == 15
    from edge_ser_train.kinds.cnn import CNN
    from edge_ser_train.train import partial_groups
    assert CNN(15).load(tmp_path / "m" / "native").partial_groups == partial_groups(m.labels)  # emotion groups


@pytest.mark.parametrize("extra, message", [
    (["--model", "svm"], "unknown model kind"),
    (["--task", "fine99"], "unknown task"),
    (["--folds", "1"], "--folds"),
    (["--augment", "echo"], "unknown augmentation"),  # (reverb is one since the room augmentations)
    (["--window-seconds", "0.1"], "--window-seconds"),
    (["--corpus", "timit"], "unknown corpus"),
    (["--val-split", "random"], "--val-split must be one of pooled, corpus"),
])
def test_cli_train_errors_are_one_line(corpus, tmp_path, extra, message, capsys):
    argv = ["train", "--data", str(corpus), "--out", str(tmp_path / "m"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_cli_train_refuses_to_overwrite(corpus, tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    for force in ([], ["--force"]):  # a user's folder is never a model directory to replace
        assert main(["train", "--data", str(corpus), "--out", str(out), *force]) == 2
        assert "not a model directory" in _one_error(capsys)
        assert (out / "keep.txt").read_text() == "user data"
    model_dir = tmp_path / "old-model"
    (model_dir / "native").mkdir(parents=True)
    (model_dir / "manifest.json").write_text('{"edge_ser_version": "0.1.0"}')
    assert main(["train", "--data", str(corpus), "--out", str(model_dir)]) == 2
    assert "exists (use --force" in _one_error(capsys)
    assert (model_dir / "manifest.json").read_text() == '{"edge_ser_version": "0.1.0"}'
    lookalike = tmp_path / "photos"  # a manifest.json that is not ours does not make a model directory
    (lookalike / "native").mkdir(parents=True)
    (lookalike / "manifest.json").write_text('{"app": "something else"}')
    assert main(["train", "--data", str(corpus), "--out", str(lookalike), "--force"]) == 2
    assert "not a model directory" in _one_error(capsys) and (lookalike / "manifest.json").exists()
    a_file = tmp_path / "model.txt"
    a_file.write_text("not a folder")
    for target in (a_file, a_file / "sub"):
        for force in ([], ["--force"]):
            assert main(["train", "--data", str(corpus), "--out", str(target), *force]) == 2
            assert f"{a_file}: is a file, not a directory" in _one_error(capsys)
    assert a_file.read_text() == "not a folder"
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "n")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_cli_train_force_replaces_only_a_previous_output(corpus, tmp_path, monkeypatch, capsys):
    """--force trains into the place of an old training output, which is deleted only when training succeeds and
    is put back when it fails (here: train.run replaced by a recorder)."""
    import edge_ser_train.train
    seen = []

    def fake_run(data, cfg, out, **kw):
        seen.append(sorted(p.name for p in out.iterdir()) if out.exists() else None)
        out.mkdir(parents=True, exist_ok=True)
        (out / "manifest.json").write_text('{"edge_ser_version": "new"}')
        if kw.get("name") == "broken":
            raise KeyboardInterrupt
        return {"validation": {"accuracy": 0.5, "n": 1}}

    monkeypatch.setattr(edge_ser_train.train, "run", fake_run)
    old = tmp_path / "old"
    (old / "native").mkdir(parents=True)
    (old / "native" / "manifest.json").write_text('{"edge_ser_version": "0.1.0"}')
    (old / "native" / "model.keras").write_bytes(b"old")
    # an interrupted run (Ctrl-C: exit 130) leaves the old model as it was
    assert main(["train", "--data", str(corpus), "--out", str(old), "--force", "--name", "broken"]) == 130
    assert (old / "native" / "model.keras").read_bytes() == b"old" and not (old / "manifest.json").exists()
    seen.clear()
    assert main(["train", "--data", str(corpus), "--out", str(old), "--force"]) == 0
    assert json.loads((old / "manifest.json").read_text()) == {"edge_ser_version": "new"}
    assert not (old / "native").exists() and [p.name for p in tmp_path.iterdir() if "replaced" in p.name] == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--data", str(corpus), "--out", str(empty)]) == 0  # an empty folder needs no --force
    assert seen == [None, []]


def test_stats_branch_computes_per_band_statistics_of_the_input():
    """stats_branch=True: the network sees each input band's mean, max, min and mean square over the window beside
    its convolution features (more dense weights, nothing else)."""
    pytest.importorskip("tensorflow")
    import keras
    from edge_ser_train.kinds.cnn import build_network
    x = np.random.default_rng(0).normal(size=(3, 16, 10, 1)).astype(np.float32)
    net = build_network(x.shape[1:], 5, filters=(4, 4, 4, 4), stats_branch=True)
    stats = np.asarray(keras.Model(net.input, net.get_layer("stats_branch").output)(x)).reshape(3, 16, 4)
    b = x[..., 0]
    expected = np.stack([b.mean(axis=2), b.max(axis=2), b.min(axis=2), (b ** 2).mean(axis=2)], axis=-1)
    assert np.allclose(stats, expected, atol=1e-5)
    plain = build_network(x.shape[1:], 5, filters=(4, 4, 4, 4))
    assert net.get_layer("dense").get_weights()[0].shape == (plain.get_layer("dense").get_weights()[0].shape[0]
                                                             + 16 * 4, 64)
    assert net.count_params() - plain.count_params() == 16 * 4 * 64


def test_mixup_batches_blend_inputs_targets_and_weights_alike():
    """mixup: every example of a batch is lam * itself + (1 - lam) * another example of the batch, with the same
    lam for its input, one-hot target and sample weight; targets stay distributions; lam varies."""
    pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import CNN, mixup_batches
    n, k = 40, 4
    y = np.arange(n) % k
    Y = np.eye(k, dtype=np.float32)[y]
    X = np.zeros((n, k, 3, 1), np.float32)
    X[:, :, 0, 0] = Y                      # the input carries its own target ...
    X[:, 0, 1, 0] = np.arange(n)           # ... and its index
    w = (1.0 + np.arange(n)).astype(np.float32)
    batches = list(mixup_batches(X, Y, w, batch_size=16, alpha=0.4, seed=3))
    assert sum(len(b[0]) for b in batches) == n
    lams = []
    for xb, yb, wb in (tuple(np.asarray(t) for t in b) for b in batches):
        assert np.allclose(yb.sum(axis=1), 1.0, atol=1e-5) and (yb >= 0).all()
        assert np.allclose(xb[:, :, 0, 0], yb, atol=1e-5)  # input and target mixed with the same lam
        idx = xb[:, 0, 1, 0]
        assert np.allclose(wb, 1.0 + idx, atol=1e-3)        # ... and so is the weight (linear in the index)
        blended = (yb > 1e-6).sum(axis=1) == 2              # partner of another class: the target shows lam
        lams += list(yb[blended].max(axis=1))
    lams = np.array(lams)
    assert len(lams) > n // 2
    # Beta(0.4, 0.4): some examples well blended, some nearly pure
    assert (lams < 0.8).sum() >= 3 and (lams > 0.95).sum() >= 3
    with pytest.raises(ValueError):
        CNN(15, mixup=0.2, partial_groups=[[0, 1, 2]])


@pytest.mark.slow
def test_cnn_with_mixup_and_stats_branch_trains_and_exports(corpus, tmp_path):
    """The options' whole path: mixup training (one-hot targets, validation and early stopping), the stats branch
    in the exported copy, ONNX and TFLite parity, the runtime loading both files."""
    pytest.importorskip("tensorflow")
    cfg = TrainConfig(task="basic6", kind="cnn", augment=(), window_seconds=1.0,
                      kind_options={"epochs": 2, "filters": (4, 8, 8, 8), "mixup": 0.2, "stats_branch": True})
    run([corpus], cfg, tmp_path / "mix", log=lambda s: None)
    m = read_manifest(tmp_path / "mix")
    described = m.extra["model"]
    assert described["mixup"] == 0.2 and described["stats_branch"] and "mixup" in described["network"]
    assert 1 <= described["epochs_run"] <= 2 and described["parameters"] > 0
    assert m.parity["onnx"]["max_abs_diff"] < 1e-3 and m.parity["tflite_variants"]["none"]["max_abs_diff"] < 1e-3
    for fmt in ("onnx", "tflite"):
        p = load_model(tmp_path / "mix", fmt=fmt).classify_audio(
            np.random.default_rng(2).normal(0, 0.1, 16000).astype(np.float32))
        assert p.shape == (6,) and abs(p.sum() - 1) < 1e-3


@pytest.mark.parametrize("kind, norm", [("timnet", None), ("fusion", None), ("aae", None), ("ensemble", None),
                                        ("cnn", False), ("rfc", True)])
def test_cli_train_takes_every_kind_with_its_own_speaker_norm_default(corpus, tmp_path, monkeypatch, capsys,
                                                                      kind, norm):
    """`train --model KIND` for every registered kind; --speaker-norm is passed only when given, so a kind that
    refuses speaker normalisation (fusion, aae, ensemble) keeps its own default."""
    import edge_ser_train.train
    seen = {}

    def fake_run(data, cfg, out, **kw):
        seen["cfg"] = cfg
        out.mkdir(parents=True, exist_ok=True)
        return {"validation": {"accuracy": 0.5, "n": 1}}

    monkeypatch.setattr(edge_ser_train.train, "run", fake_run)
    flag = [] if norm is None else ["--speaker-norm" if norm else "--no-speaker-norm"]
    assert main(["train", "--data", str(corpus), "--model", kind, "--task", "basic6", "--out",
                 str(tmp_path / kind), *flag]) == 0, capsys.readouterr().err
    assert seen["cfg"].kind == kind
    assert seen["cfg"].kind_options == ({} if norm is None else {"speaker_norm": norm})
    assert main(["train", "--data", str(corpus), "--model", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "known: rfc, cnn, timnet, fusion, aae, ensemble, linear" in capsys.readouterr().err

"""fine16 = neutral + the 15 fine labels: every clip trains with the labels it carries (emotion only, intensity only,
both), a missing part is masked in the loss, the two heads compose into 16 probabilities, a fine16 model is scored
on basic6/fine15/emotion5 by collapsing its output, and the runtime gives an intensity_score."""
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")

from corpus_factory import make_baved, make_cremad, make_esd  # noqa: E402

from edge_ser.labels import TASKS, candidates, collapse_matrix, intensity_score, label_for  # noqa: E402
from edge_ser_train import targets  # noqa: E402
from edge_ser_train.corpora import Clip  # noqa: E402
from edge_ser_train.evaluate import collapse  # noqa: E402
from edge_ser_train.protocols import task_scores  # noqa: E402

FINE16 = TASKS["fine16"]


def _clip(emotion, intensity, corpus="x"):
    return Clip("/x.wav", corpus, f"{corpus}:1", None, emotion, intensity)


def test_fine16_labels_and_candidates():
    assert FINE16[0] == "neutral" and FINE16[1:] == TASKS["fine15"] and len(FINE16) == 16
    assert label_for("fine16", "neutral", None) == "neutral" and label_for("fine15", "neutral", None) is None
    assert label_for("fine16", "sad", "low") == "sad_low" and label_for("fine16", "sad", None) is None
    assert candidates("fine16", "sad", None) == ("sad_low", "sad_medium", "sad_high")
    assert candidates("fine16", None, "high") == tuple(f"{e}_high" for e in ("angry", "sad", "happy", "disgust",
                                                                           "fear"))
    assert candidates("fine16", "surprise", None) == () and candidates("basic6", None, "high") == ()
    assert candidates("basic6", "sad", "low") == ("sad",)


def test_head_targets_mask_what_a_clip_does_not_carry():
    clips = [_clip("angry", "high"), _clip("neutral", None), _clip("sad", None), _clip(None, "low")]
    y, groups = targets.encode([c.targets("fine16") for c in clips], FINE16)
    assert y[0] == FINE16.index("angry_high") and y[1] == 0 and (y[2:] >= 16).all()
    ye, yi = targets.head_targets(y, FINE16, groups)
    assert ye.tolist() == [1, 0, 2, targets.MASKED]           # neutral angry sad happy disgust fear
    assert yi.tolist() == [2, targets.MASKED, targets.MASKED, 0]  # low medium high


def test_composition_sums_to_one_and_matches_the_heads():
    rng = np.random.default_rng(0)
    pe = rng.dirichlet(np.ones(6), 5)
    pi = rng.dirichlet(np.ones(3), 5)
    p = targets.compose(pe, pi)
    assert p.shape == (5, 16) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert np.allclose(p[:, 0], pe[:, 0])
    assert np.allclose(p[:, FINE16.index("happy_medium")], pe[:, 3] * pi[:, 1])


def test_cnn_masked_loss_moves_only_the_part_a_clip_carries():
    """Gradient of the two-head loss: a clip without intensity gives the intensity head nothing (and the emotion
    head something); a BAVED level without emotion the reverse."""
    tf = pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import CNN, heads_loss
    groups_clips = [_clip("sad", None), _clip(None, "high")]
    y, groups = targets.encode([c.targets("fine16") for c in groups_clips], FINE16)
    cnn = CNN(16, factorised=True, partial_groups=groups, speaker_norm=False, filters=(4, 4, 4, 4))
    net = cnn._build((16, 12, 1), "t", compose=False)
    x = np.random.default_rng(0).standard_normal((2, 16, 12, 1)).astype(np.float32)
    rows = cnn._head_rows(y)
    loss = heads_loss(6)
    head = {name: net.get_layer(name).kernel for name in ("emotion", "intensity")}
    for k, moved, still in ((0, "emotion", "intensity"), (1, "intensity", "emotion")):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(loss(tf.constant(rows[k:k + 1]), net(x[k:k + 1], training=False)))
        g = dict(zip(head, tape.gradient(value, list(head.values()))))
        assert float(tf.reduce_max(tf.abs(g[moved]))) > 0
        assert float(tf.reduce_max(tf.abs(g[still]))) == 0.0


def test_cnn_factorised_trains_and_exports_16_probabilities(tmp_path):
    pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import CNN
    clips = [_clip("angry", "high"), _clip("neutral", None), _clip("sad", None), _clip(None, "low")] * 8
    y, groups = targets.encode([c.targets("fine16") for c in clips], FINE16)
    x = np.random.default_rng(1).standard_normal((len(y), 16, 12, 1)).astype(np.float32)
    cnn = CNN(16, epochs=1, factorised=True, partial_groups=groups, speaker_norm=False, filters=(4, 4, 4, 4))
    cnn.fit(x, y, validation=(x[:8], y[:8]), progress=False)
    p = cnn.predict_proba(x)
    assert p.shape == (len(y), 16) and np.allclose(p.sum(1), 1, atol=1e-5)
    cnn.save(tmp_path)
    assert np.allclose(CNN(16).load(tmp_path).predict_proba(x), p, atol=1e-6)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(cnn.export(tmp_path, "onnx")))
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0] - p).max() < 1e-4


def test_rfc_intensity_forest_ignores_clips_without_intensity(tmp_path):
    """Changing the inputs of emotion-only clips changes nothing in the intensity forest (its masked loss); the
    exported ONNX composes both forests exactly."""
    from edge_ser_train.kinds.rfc import RFC
    clips = [_clip("angry", "high"), _clip("happy", "low"), _clip("sad", None), _clip(None, "low"),
             _clip("neutral", None)] * 20
    y, groups = targets.encode([c.targets("fine16") for c in clips], FINE16)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(y), 8)).astype(np.float32)
    x2 = x.copy()
    no_intensity = np.array([c.intensity is None for c in clips])
    x2[no_intensity] = rng.standard_normal((no_intensity.sum(), 8))
    a = RFC(16, n_estimators=10, factorised=True, partial_groups=groups, speaker_norm=False, n_jobs=1).fit(x, y)
    b = RFC(16, n_estimators=10, factorised=True, partial_groups=groups, speaker_norm=False, n_jobs=1).fit(x2, y)
    probe = rng.standard_normal((30, 8)).astype(np.float32)
    assert np.array_equal(a.intensity_model.predict_proba(probe), b.intensity_model.predict_proba(probe))
    assert not np.array_equal(a.model.predict_proba(probe), b.model.predict_proba(probe))
    p = a.predict_proba(probe)
    assert p.shape == (30, 16) and np.allclose(p.sum(1), 1, atol=1e-6)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(a.export(tmp_path)))
    assert np.abs(sess.run(None, {"input": probe})[0] - p).max() < 1e-5
    with pytest.raises(ValueError, match="factorised"):
        RFC(16, partial_groups=groups)


def test_collapse_fine16_to_basic6_fine15_emotion5():
    p = np.zeros(16, np.float32)
    p[0], p[FINE16.index("sad_low")], p[FINE16.index("sad_high")], p[FINE16.index("angry_medium")] = .4, .2, .15, .25
    basic6 = TASKS["basic6"]
    b = collapse(p, collapse_matrix(FINE16, "basic6"))
    assert np.isclose(b[basic6.index("sad")], 0.35) and np.isclose(b[basic6.index("neutral")], 0.4)
    f15 = collapse(p, collapse_matrix(FINE16, "fine15"))
    assert np.isclose(f15.sum(), 1) and np.isclose(f15[TASKS["fine15"].index("angry_medium")], 0.25 / 0.6)
    e5 = collapse(p, collapse_matrix(FINE16, "emotion5"))
    assert TASKS["emotion5"][int(np.argmax(e5))] == "sad"


def test_task_scores_use_the_clips_that_carry_each_task():
    clips = [_clip("sad", "low", "cremad"), _clip("sad", None, "esd"), _clip("neutral", None, "baved"),
             _clip(None, "high", "baved")]
    p = np.zeros((4, 16), np.float32)
    p[:, FINE16.index("sad_high")] = 1.0
    s = task_scores(p, clips, FINE16)
    assert s["fine16"]["n"] == 2 and s["fine16"]["accuracy"] == 0.0    # sad_low wrong, neutral wrong
    assert s["fine15"]["n"] == 1 and s["basic6"]["n"] == 3 and s["basic6"]["accuracy"] == pytest.approx(2 / 3)
    assert s["intensity"]["n"] == 2 and s["intensity"]["accuracy"] == 0.5  # low wrong, high right


def test_intensity_score():
    assert intensity_score(FINE16, np.eye(16)[FINE16.index("fear_high")]) == 1.0
    p = np.zeros(16)
    p[0], p[FINE16.index("sad_low")], p[FINE16.index("angry_high")] = 0.8, 0.1, 0.1
    assert intensity_score(FINE16, p) == 0.1  # neutral counts 0, low 0, high 1
    assert intensity_score(FINE16, np.eye(16)[0]) == 0.0
    assert intensity_score(TASKS["basic6"], np.ones(6) / 6) is None


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    base = tmp_path_factory.mktemp("f16")
    import os
    os.environ["EDGE_SER_CACHE"] = str(base / "cache")
    roots = [make_cremad(base / "cremad", actors=(1001, 1002, 1003, 1004), emotions=("angry", "sad", "neutral"),
                         seconds=0.6),
             make_baved(base / "baved", words=(0,)), make_esd(base / "esd", per_emotion=2)]
    return base, roots


@pytest.fixture(scope="module")
def trained16(mixed):
    from edge_ser_train.train import TrainConfig, run
    base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="rfc", augment=("room", "babble"), folds=2, window_seconds=0.5,
                      kind_options={"n_estimators": 10, "n_jobs": 1})
    return run(roots, cfg, base / "fine16-rfc", log=lambda s: None)


def test_train_fine16_rfc_keeps_every_clip_and_scores_per_corpus(mixed, trained16, capsys):
    """Every clip trains (CREMA-D IEO full, XX emotion only, BAVED level only or neutral, ESD emotion only); the CV
    reports the collapsed tasks per corpus; the exported model is scored on basic6 by collapsing its output."""
    from edge_ser.cli import main
    from edge_ser.manifest import read_manifest
    base, roots = mixed
    result = trained16
    m = read_manifest(base / "fine16-rfc")
    assert m.task == "fine16" and m.labels == list(FINE16)
    assert m.trained_on["augment"] == ["room", "babble"]
    carried = m.trained_on["labels_carried"]
    # BAVED levels low/high; CREMA-D XX of angry/sad + ESD angry/happy/sad; CREMA-D IEO + every neutral clip
    # (CREMA-D, BAVED level 1, ESD); ESD's surprise is not a fine16 label
    assert carried == {"intensity only": 3 * 2, "emotion only": 4 * 2 + 3 * 2,
                       "full label": 4 * 2 * 3 + 4 * 4 + 3 + 2}
    cv = result["cv"]
    assert set(cv["per_corpus"]) == {"cremad", "baved", "esd"}
    assert "intensity" in cv["per_corpus"]["baved"] and "fine15" not in cv["per_corpus"]["esd"]
    assert cv["per_corpus"]["esd"]["basic6"]["n"] == 8  # surprise is not a fine16 label
    assert m.parity["onnx"]["max_abs_diff"] < 1e-4
    code = main(["evaluate", "--model", str(base / "fine16-rfc"), "--data", str(roots[0]), "--task", "basic6",
                 "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert r["task"] == "basic6" and r["model_task"] == "fine16" and "collapsed" in r["protocol"]
    assert r["n"] == 4 * 3 * 4 and len(r["labels"]) == 6  # every CREMA-D clip here (XX included)


def test_babble_variants_of_a_training_part_name_its_own_pool(mixed):
    from edge_ser_train import kinds, splits
    from edge_ser_train.train import TrainConfig, load_data, train_variants, warm_variants
    _base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="rfc", augment=("room", "babble"), folds=2)
    data = load_data(roots, cfg, kinds.make("rfc", 16, factorised=True))
    (tr, te), _ = splits.actor_folds(data.y, data.speakers, 2, 0)
    variants = train_variants(data, cfg, tr)
    assert variants[0] == "room" and variants[1].startswith("babble@") and warm_variants(cfg) == ("room",)
    pool = data.cache.pools[variants[1].split("@")[1]]
    assert {s for _, s in pool} == set(data.speakers[tr].tolist())
    assert not {s for _, s in pool} & set(data.speakers[te].tolist())


def test_robustness_report_against_snr_and_rt60(mixed, trained16, tmp_path):
    from edge_ser_train import robustness
    base, roots = mixed
    r = robustness.run(base / "fine16-rfc", roots, task="basic6", snrs=(10.0,), rt60s=(0.5,), log=lambda m: None)
    assert [(c["rt60_s"], c["snr_db"]) for c in r["conditions"]] == [(None, None), (None, 10.0), (0.5, None),
                                                                     (0.5, 10.0)]
    assert r["n"] > 0 and "validation speakers" in r["protocol"]
    manifest = json.loads((base / "fine16-rfc" / "manifest.json").read_text())
    assert set(r["speakers"]) <= set(manifest["trained_on"]["validation_speakers"])
    path = robustness.write(r, tmp_path / "rob")
    assert (tmp_path / "rob" / "robustness.png").read_bytes()[:4] == b"\x89PNG" and "RT60" in path.read_text()


def test_classify_and_listen_give_an_intensity_score(mixed, trained16, capsys, tmp_path):
    import pathlib

    import soundfile as sf
    from edge_ser.cli import main
    from edge_ser.registry import load_model
    from edge_ser.stream import Engine
    base, roots = mixed
    from edge_ser.audio import load_audio
    sample = pathlib.Path(__file__).resolve().parents[1] / "edge_ser" / "assets" / "sample.wav"  # real speech
    clip = tmp_path / "speech.wav"
    sf.write(str(clip), load_audio(sample), 16000)
    assert main(["classify", str(clip), "--model", str(base / "fine16-rfc"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert 0.0 <= row["intensity_score"] <= 1.0  # (the scores printed are rounded to 4 places)
    expected = intensity_score(FINE16, [row["scores"][k] for k in FINE16])
    assert row["intensity_score"] == pytest.approx(expected, abs=1e-3)
    audio, _ = sf.read(str(clip), dtype="float32")  # 16 kHz
    engine = Engine(load_model(base / "fine16-rfc"))
    events = [e.to_dict() for e in engine.feed(np.concatenate([audio, audio]))]
    spoken = [e for e in events if e["label"] is not None]
    assert spoken and all(0.0 <= e["intensity_score"] <= 1.0 for e in spoken)


@pytest.mark.slow
def test_train_fine16_cnn_end_to_end(mixed):
    """The two-head CNN through the training loop: partial labels in training and validation (early stopping on
    the masked loss), exported with its composed 16 outputs, parity with the trained network."""
    pytest.importorskip("tensorflow")
    from edge_ser.manifest import read_manifest
    from edge_ser_train.train import TrainConfig, run
    base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="cnn", augment=(), window_seconds=0.5,
                      kind_options={"epochs": 2, "filters": (4, 4, 4, 4)})
    result = run(roots, cfg, base / "fine16-cnn", log=lambda s: None)
    m = read_manifest(base / "fine16-cnn")
    assert m.labels == list(FINE16) and m.extra["model"]["factorised"] is True
    assert m.parity["onnx"]["max_abs_diff"] < 1e-4 and m.parity["onnx"]["top1_agreement"] == 1.0
    assert result["validation"]["n"] > 0
    assert set(m.metrics["validation_tasks"]) >= {"basic6", "intensity"}


def test_composed_loss_is_the_heads_loss():
    """The Keras kinds train on their composed 16 outputs; the loss recovered from them equals the two-head loss."""
    tf = pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import composed_heads_loss, heads_loss
    rng = np.random.default_rng(3)
    pe, pi = rng.dirichlet(np.ones(6), 4).astype(np.float32), rng.dirichlet(np.ones(3), 4).astype(np.float32)
    clips = [_clip("angry", "high"), _clip("neutral", None), _clip("sad", None), _clip(None, "low")]
    y, groups = targets.encode([c.targets("fine16") for c in clips], FINE16)
    rows = tf.constant(targets.head_rows(y, groups))
    a = heads_loss(6)(rows, tf.constant(np.concatenate([pe, pi], 1)))
    b = composed_heads_loss(6, 3)(rows, tf.constant(targets.compose(pe, pi)))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)


@pytest.mark.parametrize("kind", ["timnet", "fusion", "aae"])
def test_keras_kind_factorised_loss_moves_only_the_part_a_clip_carries(kind):
    """As for the CNN: in each Keras kind, a clip without intensity moves the emotion head only, a level without
    emotion the intensity head only (gradients through the composed output)."""
    tf = pytest.importorskip("tensorflow")
    from edge_ser_train import kinds
    from edge_ser_train.kinds.cnn import composed_heads_loss
    two = [_clip("sad", None), _clip(None, "high")]
    y, groups = targets.encode([c.targets("fine16") for c in two], FINE16)
    options = {"timnet": {"blocks": 2, "filters": 4}, "fusion": {"gender": False}, "aae": {"baseline": True}}[kind]
    k = kinds.make(kind, 16, factorised=True, partial_groups=groups, **options)
    shape = {"timnet": (16, 39), "fusion": (16 * 43 + 8,), "aae": (16, 12, 1)}[kind]
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    net = k.build(shape, x)
    rows = targets.head_rows(y, groups)
    loss = composed_heads_loss(6, 3)
    head = {name: net.get_layer(name).kernel for name in ("emotion", "intensity")}
    for j, moved, still in ((0, "emotion", "intensity"), (1, "intensity", "emotion")):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(loss(tf.constant(rows[j:j + 1]), net(x[j:j + 1], training=False)))
        g = dict(zip(head, tape.gradient(value, list(head.values()))))
        big = float(tf.reduce_max(tf.abs(g[moved])))
        assert big > 0 and float(tf.reduce_max(tf.abs(g[still]))) <= 1e-6 * big


@pytest.mark.slow
def test_train_fine16_timnet_end_to_end(mixed):
    """A Keras kind on fine16 through the training loop: partial labels, composed 16 outputs, export parity."""
    pytest.importorskip("tensorflow")
    from edge_ser.manifest import read_manifest
    from edge_ser_train.train import TrainConfig, run
    base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="timnet", augment=(), window_seconds=0.5,
                      kind_options={"epochs": 2, "blocks": 2, "filters": 4})
    result = run(roots, cfg, base / "fine16-timnet", log=lambda s: None)
    m = read_manifest(base / "fine16-timnet")
    assert m.labels == list(FINE16) and "composed into fine16" in m.extra["model"]["network"]
    assert m.parity["onnx"]["max_abs_diff"] < 1e-4
    assert result["validation"]["n"] > 0 and "intensity" in m.metrics["validation_tasks"]


def test_self_training_fills_in_only_the_training_parts_partial_labels(mixed):
    """fine16 self-training: a pool clip of the training part gets one of its own candidate labels (its known
    emotion at an intensity, its known level under an emotion); full labels, validation and test clips are untouched;
    the paired experiment reports before and after per task."""
    from edge_ser_train import kinds, ssl16
    from edge_ser_train.train import TrainConfig, _fit, load_data
    _base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="rfc", augment=(), folds=2, window_seconds=0.5,
                      kind_options={"n_estimators": 8, "n_jobs": 1})
    data = load_data(roots, cfg, kinds.make("rfc", 16, factorised=True))
    idx = np.arange(len(data.y))
    tr, rest = idx[: len(idx) // 2], idx[len(idx) // 2:]
    data.set_population(tr)
    model = _fit(data, cfg, tr, rest, None, 0)
    y2, record = ssl16.grown_labels(data, model, tr, rest, log=lambda m: None)
    changed = np.flatnonzero(y2 != data.y)
    assert set(changed) <= set(ssl16.pool(data, tr)) and record["accepted"] == len(changed) <= record["pool"]
    assert all(y2[i] < 16 and y2[i] in ssl16.candidates(data, i) for i in changed)
    assert np.array_equal(y2[rest], data.y[rest])
    assert ssl16.best_candidate(np.eye(16)[5], [4, 5, 6]) == (5, 1.0)
    result = ssl16.experiment(data, cfg, seeds=1, log=lambda m: None, folds={0})
    assert len(result["rows"]) == 1 and "basic6" in result["summary"]
    assert set(result["rows"][0]["before"]) == set(result["rows"][0]["after"])
    assert "paired" in result["protocol"] and "| basic6 |" in ssl16.report_md("x", result)


def test_leave_one_corpus_out_and_nested_cv(mixed):
    """LOCO: one model per held-out corpus, trained on the others only; nested CV: a recipe chosen per fold on inner
    validation speakers (speaker-disjointness of inner/outer parts is asserted inside), scored once per fold."""
    from edge_ser_train import kinds
    from edge_ser_train.protocols import leave_one_corpus_out, nested_cv
    from edge_ser_train.train import TrainConfig, load_data
    _base, roots = mixed
    cfg = TrainConfig(task="fine16", kind="rfc", augment=(), folds=2, window_seconds=0.5,
                      kind_options={"n_estimators": 5, "n_jobs": 1})
    data = load_data(roots, cfg, kinds.make("rfc", 16, factorised=True))
    lo = leave_one_corpus_out(data, cfg, log=lambda m: None)
    assert set(lo["held_out"]) == {"cremad", "baved", "esd"}
    for name, r in lo["held_out"].items():
        assert name not in r["train_corpora"] and "basic6" in r
    assert "intensity" in lo["held_out"]["baved"] and "fine15" in lo["held_out"]["cremad"]
    recipes = {"plain": {"augment": ()}, "noisy": {"augment": ("noise",)}}
    ne = nested_cv(data, cfg, recipes, log=lambda m: None)
    assert len(ne["chosen"]) == 2 and set(ne["chosen"]) <= set(recipes)
    assert all(set(f["inner_scores"]) == set(recipes) for f in ne["per_fold"])
    assert "nested" in ne["protocol"] and "per_corpus" in ne


def test_ssl16_refuses_a_missing_corpus_folder_with_one_line(tmp_path, capsys):
    from edge_ser_train import ssl16
    assert ssl16.main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no such corpus folder" in err[0]
    with pytest.raises(SystemExit) as exit_:
        ssl16.main(["--recipe", "fine15-cnn"])  # not a fine16 recipe: argparse's one line, exit 2
    assert exit_.value.code == 2

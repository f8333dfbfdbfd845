"""edge_ser_train.ssl + `edge-ser pseudo-label` / `edge-ser train --ssl` on a tiny generated CREMA-D corpus in the real
layout (AudioWAV/AAAA_SSS_EEE_II.wav with LO/MD/HI and XX clips, VideoDemographics.csv, summaryTable.csv)."""
import csv
import json

import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import CREMA_EMO, make_cremad, make_ravdess, tone, _write  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser.labels import task_labels  # noqa: E402
from edge_ser_train import ssl  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402
from edge_ser_train.splits import actor_folds  # noqa: E402
from edge_ser_train.train import TrainConfig, cross_validate, load_data, run  # noqa: E402
from edge_ser_train import kinds  # noqa: E402

ACTORS = tuple(range(1001, 1009))
LABELS = list(task_labels("fine15"))
VOTE = {v: k[0].upper() for k, v in CREMA_EMO.items()}  # ANG -> A ...
LEVELS = {"LO": 40.0, "MD": 55.0, "HI": 70.0}


def _summary_table(root, actors):
    """summaryTable.csv in CREMA-D's format: intensity-rated clips get a level by intensity; XX clips a level
    from their index (tones have no perceived intensity), one tie row ("N:S", "30.0:80.0")."""
    lines = [",FileName,VoiceVote,VoiceLevel,FaceVote,FaceLevel,MultiModalVote,MultiModalLevel"]
    n = 0
    for f in sorted((root / "AudioWAV").iterdir()):
        stem = f.stem
        a, s, e, i = stem.split("_")
        vote = VOTE[e] if e != "NEU" else "N"
        level = LEVELS.get(i, 50.0 + (n % 7))
        if stem == f"{actors[0]}_DFA_SAD_XX":
            vote, level = "N:S", "30.0:80.0"
        lines.append(f"{n + 1},{stem},{vote},{level},{vote},60,{vote},60")
        n += 1
    (root / "summaryTable.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def crema(tmp_path_factory):
    root = make_cremad(tmp_path_factory.mktemp("crema") / "cremad", actors=ACTORS, seconds=1.0)
    for k, a in enumerate(ACTORS):  # a second XX sentence per emotion, and neutral XX (never in the pool)
        for e in ("angry", "sad", "happy", "disgust", "fear"):
            _write(root / "AudioWAV" / f"{a}_ITH_{CREMA_EMO[e]}_XX.wav", tone(e, None, 1.0, 16000, 500 + k), 16000)
        _write(root / "AudioWAV" / f"{a}_DFA_NEU_XX.wav", tone("neutral", None, 1.0, 16000, 900 + k), 16000)
    _summary_table(root, ACTORS)
    return root


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_SER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


def _cfg(**kw):
    base = dict(task="fine15", kind="rfc", augment=(), window_seconds=1.0,
                kind_options={"n_estimators": 10, "n_jobs": 1})
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def fine15_model(crema, tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "fine15-tiny"
    run([crema], _cfg(), out, log=lambda s: None)
    return out


# --- the rule ---------------------------------------------------------------------------------------------

def _probs(rows):
    p = np.full((len(rows), 15), 0.01)
    for k, (label, conf) in enumerate(rows):
        p[k, LABELS.index(label)] = conf
    return p


def test_pool_is_fine_emotions_without_intensity(crema):
    clips, _ = load_corpora([crema])
    pool = ssl.pool_of(clips)
    assert len(pool) == len(ACTORS) * 5 * 2  # DFA + ITH XX clips of the five fine emotions
    assert all(c.intensity is None and c.emotion != "neutral" for c in pool)
    assert not any("_IEO_" in c.path or "_NEU_" in c.path for c in pool)


def test_decide_accepts_only_known_emotion_above_threshold():
    p = _probs([("angry_high", 0.6), ("sad_low", 0.6), ("angry_low", 0.2), ("fear_medium", 0.9)])
    p = np.vstack([p, np.full(15, np.nan)])
    d = ssl.decide(p, ["angry", "angry", "angry", "fear", "sad"], LABELS, threshold=0.3)
    assert d.accepted.tolist() == [True, False, False, True, False]  # wrong emotion / low confidence / unreadable
    assert d.intensity[:4] == ["high", "low", "low", "medium"]
    assert d.confidence[0] == pytest.approx(0.6)
    rows = ssl.rows_for([type("C", (), {"path": f"x{k}.wav", "emotion": e, "speaker": "s"})()
                         for k, e in enumerate(["angry", "angry", "angry", "fear", "sad"])], d, 1)
    assert [r["label"] for r in rows] == ["angry_high", "", "", "fear_medium", ""]
    assert rows[4]["confidence"] == "" and rows[4]["accepted"] == 0


def test_expected_level_within_known_emotion():
    p = np.zeros(15)
    p[LABELS.index("sad_low")], p[LABELS.index("sad_high")], p[LABELS.index("angry_high")] = 0.2, 0.6, 0.2
    assert ssl.expected_level(p, LABELS, "sad") == pytest.approx((0 * 0.2 + 2 * 0.6) / 0.8)


def test_choose_threshold_keeps_labels_more_likely_right_than_wrong():
    # confident predictions are right, unconfident ones wrong: the threshold separates them
    right = [("happy_high", 0.8)] * 6 + [("happy_low", 0.5)] * 4
    wrong = [("happy_medium", 0.2)] * 8
    p = _probs(right + wrong)
    y = [LABELS.index(l) for l, _ in right] + [LABELS.index("happy_high")] * 8
    t, table = ssl.choose_threshold(p, y, LABELS)
    assert 0.2 < t <= 0.5
    best = next(r for r in table if r["threshold"] == t)
    assert best["accepted"] == 10 and best["correct"] == 10
    assert table[0]["accepted"] == 18 and table[0]["net"] == 2


# --- leakage: no pool clip of a fold's test (or validation) speakers enters that fold ---------------------------

def test_cv_pseudo_labels_come_only_from_each_folds_training_speakers(crema):
    cfg = _cfg(folds=2)
    data = load_data([crema], cfg, kinds.make("rfc", 15, **cfg.kind_options))
    clips, _ = load_corpora([crema])
    hook = ssl.SslHook(ssl.pool_of(clips), ssl.SslConfig(threshold=0.0, rounds=2), log=lambda s: None)
    result = cross_validate(data, cfg, hook, log=lambda s: None)
    folds = actor_folds(data.y, data.speakers, cfg.folds, cfg.seed)
    assert len(hook.records) == 2
    for (tr, te), rec, f in zip(folds, hook.records, result["per_fold"]):
        test_spk = set(data.speakers[te].tolist())
        assert rec["pool"] > 0 and rec["accepted"] == f["n_extra"] > 0
        pool_spk = {r["speaker"] for r in rec["rows"]}
        assert pool_spk <= set(rec["train_speakers"])
        assert not pool_spk & test_spk
        assert not pool_spk & set(rec["excluded_speakers"])
        assert test_spk <= set(rec["excluded_speakers"])
        for r in rec["rows"]:
            if r["accepted"]:
                assert r["label"].split("_")[0] == r["emotion"] == r["predicted_emotion"]


def test_experiment_before_is_plain_cv_and_report_is_written(crema, tmp_path):
    cfg = _cfg(folds=2)
    res = ssl.experiment([crema], cfg, ssl.SslConfig(threshold=None), log=lambda s: None,
                         checkpoint=tmp_path / "partial.json")
    done = json.loads((tmp_path / "partial.json").read_text())["folds_done"]  # each fold saved as it finished
    assert [d["fold"] for d in done] == [1, 2]
    assert [d["before"]["accuracy"] for d in done] == [b["accuracy"] for b in res["before"]["per_fold"]]
    data = load_data([crema], cfg, kinds.make("rfc", 15, **cfg.kind_options))
    plain = cross_validate(data, cfg, None, log=lambda s: None)  # same folds, seeds: set 1 == plain CV
    assert [b["accuracy"] for b in res["before"]["per_fold"]] == [f["accuracy"] for f in plain["per_fold"]]
    assert len(res["chosen_thresholds"]) == 2 and all(0 <= t <= 1 for t in res["chosen_thresholds"])
    for p in res["pool"]:
        assert p["threshold_table"] and sum(p["accepted_intensity"].values()) == p["accepted"]
    gain = res["gain"]["accuracy"]
    assert gain["mean"] == pytest.approx(res["after"]["accuracy"]["mean"] - res["before"]["accuracy"]["mean"])
    ref = res["crowd_check"][0]["reference_true_intensity"]
    assert ref["n"] == len(ACTORS) * 15 and ref["spearman"]["rho"] == pytest.approx(1.0)  # LO/MD/HI -> 40/55/70
    md = ssl.write_report(res, tmp_path)
    text = md.read_text()
    assert "set 1 (before)" in text and "VoiceLevel" in text and "± " in text
    saved = json.loads((tmp_path / "fine15-rfc.json").read_text())
    assert saved["before"]["accuracy"]["mean"] == res["before"]["accuracy"]["mean"]
    assert (tmp_path / "fine15-rfc-fold1-pseudo_labels.csv").exists()


def test_crowd_levels_ties_take_the_intended_emotions_level(crema):
    levels = ssl.crowd_levels(crema)
    entry = levels[f"{ACTORS[0]}_DFA_SAD_XX"]
    assert ssl._level_for(entry, "sad") == 80.0 and ssl._level_for(entry, "angry") == 55.0
    assert ssl.crowd_levels(crema / "AudioWAV" / "nothing") == {}


# --- CLI ---------------------------------------------------------------------------------------------------

def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cli_pseudo_label_writes_the_grown_dataset(crema, fine15_model, tmp_path, capsys):
    out = tmp_path / "grown.csv"
    assert main(["pseudo-label", "--model", str(fine15_model), "--data", str(crema), "--out", str(out),
                 "--threshold", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = _read(out)
    assert list(rows[0])[:7] == ["path", "label", "emotion", "intensity", "confidence", "accepted", "round"]
    assert len(rows) == summary["pool"] == len(ACTORS) * 10
    acc = [r for r in rows if r["accepted"] == "1"]
    assert len(acc) == summary["accepted"] > 0
    ref = summary["crowd_check"]["reference_true_intensity"]  # summaryTable.csv found next to AudioWAV/
    assert ref["n"] == len(ACTORS) * 15 and ref["mean_voice_level"]["high"]["mean_voice_level"] == 70.0
    for r in rows:
        stem_emotion = {v: k for k, v in CREMA_EMO.items()}[r["path"].rsplit("_", 2)[-2]]
        assert r["emotion"] == stem_emotion
        if r["accepted"] == "1":  # every accepted clip carries its known emotion
            assert r["label"] == f"{r['emotion']}_{r['intensity']}" and r["predicted_emotion"] == r["emotion"]
        else:
            assert r["label"] == ""
    # a higher threshold accepts a subset
    out2 = tmp_path / "strict.csv"
    assert main(["pseudo-label", "--model", str(fine15_model), "--data", str(crema), "--out", str(out2),
                 "--threshold", "0.9", "--json"]) == 0
    strict = {r["path"] for r in _read(out2) if r["accepted"] == "1"}
    assert strict <= {r["path"] for r in acc}


def test_cli_pseudo_label_never_overwrites_without_force(crema, fine15_model, tmp_path, capsys):
    out = tmp_path / "mine.csv"
    out.write_text("keep me\n")
    args = ["pseudo-label", "--model", str(fine15_model), "--data", str(crema), "--out", str(out)]
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "keep me\n"
    assert main(args + ["--force"]) == 0
    assert _read(out)[0]["path"]


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "1.5"], "--threshold"),
    (["--model", "no-such-model"], "no-such-model"),
])
def test_cli_pseudo_label_bad_input(crema, fine15_model, tmp_path, capsys, extra, message):
    args = ["pseudo-label", "--model", str(fine15_model), "--data", str(crema), "--out", str(tmp_path / "x.csv")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_cli_pseudo_label_needs_a_pool_and_a_fine15_model(crema, fine15_model, tmp_path, capsys):
    rav = make_ravdess(tmp_path / "ravdess", actors=(1, 2))  # every clip has an intensity: no pool
    assert main(["pseudo-label", "--model", str(fine15_model), "--data", str(rav), "--out",
                 str(tmp_path / "a.csv")]) == 2
    assert "pool" in capsys.readouterr().err
    basic = tmp_path / "basic6"
    run([crema], _cfg(task="basic6"), basic, log=lambda s: None)
    assert main(["pseudo-label", "--model", str(basic), "--data", str(crema), "--out", str(tmp_path / "b.csv")]) == 2
    assert "fine15" in capsys.readouterr().err


def test_cli_train_ssl_keeps_the_grown_dataset(crema, tmp_path, capsys):
    out = tmp_path / "ssl-model"
    assert main(["train", "--data", str(crema), "--task", "fine15", "--model", "rfc", "--out", str(out), "--ssl",
                 "--threshold", "0", "--window-seconds", "1.0", "--augment", "none", "--folds", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    s = result["ssl"]
    rows = _read(out / "pseudo_labels.csv")
    assert s["accepted"] == sum(r["accepted"] == "1" for r in rows) > 0 and len(s["folds"]) == 2
    assert all(f["n_extra"] > 0 for f in result["cv"]["per_fold"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trained_on"]["pseudo_labelled_clips"] == s["accepted"]
    val_spk = set(manifest["trained_on"]["validation_speakers"])
    assert not {r["speaker"] for r in rows} & val_spk  # the final model's pool: no validation speaker


def test_cli_train_ssl_bad_options(crema, tmp_path, capsys):
    base = ["train", "--data", str(crema), "--model", "rfc", "--out", str(tmp_path / "o")]
    assert main(base + ["--task", "basic6", "--ssl"]) == 2
    assert "fine15" in capsys.readouterr().err
    assert main(base + ["--threshold", "0.3"]) == 2
    assert "--ssl" in capsys.readouterr().err
    assert main(base + ["--ssl", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert main(base + ["--soft-labels"]) == 2
    assert "--ssl" in capsys.readouterr().err
    assert main(base + ["--ssl", "--soft-labels"]) == 2  # rfc trains on label indices
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "soft" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --- integration: real CREMA-D clips (../shared/data) with an installed fine15 model ---------------------------

def _real_cremad():
    import os
    from pathlib import Path
    root = Path(os.environ.get("EDGE_SER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    return root / "cremad"


def test_real_cremad_pool_with_an_installed_model(tmp_path, capsys):
    from edge_ser.registry import known_names
    real = _real_cremad()
    if not (real / "AudioWAV").is_dir():
        pytest.skip(f"real CREMA-D not found at {real} (set EDGE_SER_DATA)")
    names = [n for n in ("fine15-rfc", "fine15-cnn") if n in known_names()]
    if not names:
        pytest.skip("no fine15 model installed (make models)")
    sub = tmp_path / "cremad" / "AudioWAV"  # a few real clips in the released layout, linked not copied
    sub.mkdir(parents=True)
    picked = sorted(real.glob("AudioWAV/10[89]?_*_XX.flac"))[:12] + sorted(real.glob("AudioWAV/1091_IEO_*.flac"))[:3]
    for f in picked:
        (sub / f.name).symlink_to(f)
    out = tmp_path / "pool.csv"
    assert main(["pseudo-label", "--model", names[0], "--data", str(tmp_path / "cremad"), "--out", str(out),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = _read(out)
    n_pool = sum(1 for f in picked if "_XX" in f.name and "_NEU_" not in f.name)
    assert len(rows) == summary["pool"] == n_pool and summary["unreadable"] == {}
    for r in rows:
        assert 0 <= float(r["confidence"]) <= 1
        if r["accepted"] == "1":
            assert r["label"].split("_")[0] == r["emotion"] and float(r["confidence"]) >= summary["threshold"]


def test_extra_weight_scales_each_pseudo_labelled_clip(crema):
    """extra_weight: every extra (pseudo-labelled) clip and each of its augmented copies weighs extra_weight in
    total in the training design, a labelled clip 1."""
    from edge_ser_train.train import _extra_design
    cfg = _cfg(folds=2, augment=("noise",))
    data = load_data([crema], cfg, kinds.make("rfc", 15, **cfg.kind_options))
    data.set_population(np.arange(len(data.clips)))  # the speaker statistics the inputs are adapted with
    clips, _ = load_corpora([crema])
    extra = [(c, 0) for c in ssl.pool_of(clips)[:4]]
    full = _extra_design(data, extra, cfg)[2]
    cfg.extra_weight = 0.25
    _, y, w = _extra_design(data, extra, cfg)
    assert np.allclose(w, 0.25 * full) and len(y) == len(full)
    assert np.isclose(w.sum(), 0.25 * len(extra) * (1 + len(cfg.augment)))


# --- soft pseudo labels --------------------------------------------------------------------------------------

def test_decide_soft_targets_stay_in_the_known_emotion():
    """Every readable clip is accepted; its target is the model's distribution over the three intensities of its
    known emotion, even when the model's argmax is another emotion; an unreadable clip (NaN row) is not."""
    p = _probs([("happy_high", 0.5), ("angry_low", 0.6), ("sad_low", 0.3)])
    p[0, LABELS.index("happy_low")] = 0.3
    p[1, LABELS.index("sad_medium")] = 0.2  # the model says angry; the clip is sad
    p[2] = np.nan
    d, t = ssl.decide_soft(p, ["happy", "sad", "sad"], LABELS)
    assert list(d.accepted) == [True, True, False]
    assert np.allclose(t[:2].sum(axis=1), 1.0) and not t[2].any()
    cols = [LABELS.index(f"happy_{i}") for i in ("low", "medium", "high")]
    assert np.allclose(t[0, cols], np.array([0.3, 0.01, 0.5]) / 0.81)
    assert np.count_nonzero(t[0]) == 3 and np.count_nonzero(t[1]) == 3
    assert LABELS[d.pred[0]] == "happy_high" and d.confidence[0] == pytest.approx(0.5 / 0.81)
    assert LABELS[d.pred[1]] == "sad_medium" and d.predicted_emotion[1] == "angry"
    rows = ssl.rows_for([type("C", (), {"path": f"{k}.wav", "emotion": e, "speaker": "s"})()
                         for k, e in enumerate(["happy", "sad", "sad"])], d, 1)
    assert [r["label"] for r in rows] == ["happy_high", "sad_medium", ""]


def test_soft_labels_need_a_probability_kind_and_no_threshold(crema):
    with pytest.raises(ssl.SslError, match="soft"):
        ssl.make_ssl_hook([crema], _cfg(), soft=True)  # rfc trains on label indices
    cnn = _cfg(kind="cnn", kind_options={})
    with pytest.raises(ssl.SslError, match="threshold"):
        ssl.make_ssl_hook([crema], cnn, threshold=0.3, soft=True)
    assert cnn.extra_augment
    ssl.make_ssl_hook([crema], cnn, soft=True)
    assert not cnn.extra_augment  # the pool joins as recorded


def test_experiment_script_refuses_soft_labels_for_the_forest(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ssl.main(["--kind", "rfc", "--soft", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "soft pseudo labels need" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_soft_extra_design_repeats_each_target_on_its_windows(crema):
    from edge_ser_train.train import _extra_design
    cfg = _cfg(augment=("noise",), extra_augment=False)
    data = load_data([crema], cfg, kinds.make("rfc", 15, **cfg.kind_options))
    data.set_population(np.arange(len(data.clips)))
    clips, _ = load_corpora([crema])
    pool = ssl.pool_of(clips)[:3]
    targets = np.eye(15, dtype=np.float32)[[0, 4, 7]] * 0.5 + np.eye(15, dtype=np.float32)[[1, 5, 8]] * 0.5
    X, y, w = _extra_design(data, list(zip(pool, targets)), cfg)
    assert y.shape == (len(X), 15) and np.allclose(y.sum(axis=1), 1.0)
    assert np.isclose(w.sum(), len(pool))  # no augmented copies: each clip weighs 1
    assert {tuple(np.flatnonzero(r)) for r in y} == {(0, 1), (4, 5), (7, 8)}


@pytest.mark.slow
def test_soft_ssl_cnn_trains_on_every_pool_clip_of_the_training_speakers(crema):
    pytest.importorskip("tensorflow")
    cfg = _cfg(kind="cnn", folds=2, kind_options={"epochs": 1, "filters": (4, 8, 8, 8), "members": 1})
    data = load_data([crema], cfg, kinds.make("cnn", 15, **cfg.kind_options))
    clips, _ = load_corpora([crema])
    hook = ssl.make_ssl_hook([crema], cfg, soft=True, log=lambda s: None)
    result = cross_validate(data, cfg, hook, log=lambda s: None)
    for rec, f in zip(hook.records, result["per_fold"]):
        assert rec["accepted"] == rec["pool"] == f["n_extra"] == 5 * 2 * len(rec["pool_speakers"])
        assert not set(rec["pool_speakers"]) & set(f["test_speakers"])
        for r in rec["rows"]:
            assert r["accepted"] == 1 and r["label"].split("_")[0] == r["emotion"]


@pytest.mark.parametrize("mixup", [0.0, 0.2])
def test_cnn_soft_one_hot_targets_train_like_hard_labels(mixup):
    """A 2-D target of one-hot rows is the hard label: same class weights, same loss, same network."""
    pytest.importorskip("tensorflow")
    from edge_ser_train.kinds.cnn import CNN
    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 16, 16, 1)).astype(np.float32)
    y = np.arange(48) % 3
    y[:6] = 0  # unbalanced, so the class weights matter
    opts = dict(epochs=2, filters=(4, 4, 4, 4), speaker_norm=False, mixup=mixup)
    hard = CNN(3, **opts).fit(X, y, seed=1, progress=False).predict_proba(X)
    soft = CNN(3, **opts).fit(X, np.eye(3, dtype=np.float32)[y], seed=1, progress=False).predict_proba(X)
    assert np.allclose(hard, soft, atol=1e-5)
    assert not np.allclose(hard, hard.mean(axis=0), atol=1e-3)  # it learned something input-dependent


@pytest.mark.slow
def test_cli_train_cnn_with_soft_labels_keeps_the_grown_dataset(crema, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    out = tmp_path / "soft-model"
    assert main(["train", "--data", str(crema), "--task", "fine15", "--model", "cnn", "--out", str(out), "--ssl",
                 "--soft-labels", "--window-seconds", "1.0", "--augment", "noise", "--json"]) == 0
    captured = capsys.readouterr()
    s = json.loads(captured.out)["ssl"]
    assert s["soft"] and "soft labels" in captured.err
    rows = _read(out / "pseudo_labels.csv")
    assert s["accepted"] == s["pool"] == len(rows) == sum(r["accepted"] == "1" for r in rows) > 0
    for r in rows:  # the pseudo label keeps the known emotion; its confidence is a within-emotion probability
        assert r["label"].split("_")[0] == r["emotion"] and 1 / 3 - 1e-6 <= float(r["confidence"]) <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trained_on"]["pseudo_labelled_clips"] == len(rows)
    assert manifest["extra"]["train_config"]["extra_augment"] is False  # the pool joined as recorded

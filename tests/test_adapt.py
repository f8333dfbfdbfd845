"""edge_ser.adapt (speaker normalisation) and its use in training, evaluation, classify and the stream engine."""
import json

import numpy as np
import pytest

from edge_ser.adapt import EPS, SpeakerNorm
from edge_ser.errors import ModelError


def _norm(rng, shape=(4, 6), axes=(1,), prior=5.0):
    pop = rng.normal(size=(200,) + shape) * 2 + 3
    return SpeakerNorm.fit_population(pop, axes, prior), pop


def test_population_statistics_pool_the_named_axes(rng):
    norm, pop = _norm(rng)
    assert norm.mean.shape == (4, 1) and norm.pooled == 6
    np.testing.assert_allclose(norm.mean[:, 0], pop.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(norm.var[:, 0], pop.var(axis=(0, 2)), rtol=1e-12)
    per_element = SpeakerNorm.fit_population(pop, (), 5.0)
    assert per_element.mean.shape == (4, 6) and per_element.pooled == 1


def test_no_speech_heard_means_population_statistics(rng):
    norm, _ = _norm(rng)
    x = rng.normal(size=(3, 4, 6))
    expected = (x - norm.mean) / (np.sqrt(norm.var) + EPS)
    np.testing.assert_allclose(norm.apply(x, norm.stats()), expected, rtol=1e-5)
    np.testing.assert_allclose(norm.apply(x, None), expected, rtol=1e-5)


def test_statistics_are_the_speaker_windows_plus_a_prior_of_k_windows(rng):
    norm, _ = _norm(rng, prior=5.0)
    speaker = rng.normal(size=(40, 4, 6)) * 0.5 - 7
    stats = norm.stats().update(speaker[:15]).update(speaker[15:])  # in pieces = at once
    assert stats.windows == 40
    mean, var = stats.mean_var()
    # the prior as 5 windows whose every element has the population's mean and variance
    n, k = 40 * 6, 5 * 6
    m = (speaker.sum(axis=(0, 2)) + k * norm.mean[:, 0]) / (n + k)
    second = (np.square(speaker).sum(axis=(0, 2)) + k * (norm.var[:, 0] + norm.mean[:, 0] ** 2)) / (n + k)
    np.testing.assert_allclose(mean[:, 0], m, rtol=1e-10)
    np.testing.assert_allclose(var[:, 0], second - m ** 2, rtol=1e-8)
    # a long session converges to the speaker's own statistics
    long = norm.stats().update(np.concatenate([speaker] * 5000))
    lm, lv = long.mean_var()
    np.testing.assert_allclose(lm[:, 0], speaker.mean(axis=(0, 2)), atol=0.05)
    np.testing.assert_allclose(lv[:, 0], speaker.var(axis=(0, 2)), rtol=0.05)
    z = norm.apply(speaker, long)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_wrong_input_shape_is_refused(rng):
    norm, _ = _norm(rng)
    with pytest.raises(ValueError, match="shape"):
        norm.stats().update(np.zeros((2, 5, 6)))


def test_manifest_round_trip_and_invalid_specs(rng):
    norm, _ = _norm(rng)
    back = SpeakerNorm.from_manifest(json.loads(json.dumps(norm.to_manifest())), [4, 6])
    assert back.axes == (1,) and back.prior_windows == 5.0
    np.testing.assert_allclose(back.mean, norm.mean, atol=1e-6)
    spec = norm.to_manifest()
    with pytest.raises(ValueError, match="expected"):
        SpeakerNorm.from_manifest(spec, [5, 6])
    with pytest.raises(ValueError, match="axes"):
        SpeakerNorm.from_manifest(dict(spec, axes=[3]), [4, 6])
    with pytest.raises(ValueError, match="non-negative"):
        SpeakerNorm.from_manifest(dict(spec, var=[[-1.0]] * 4), [4, 6])
    with pytest.raises(ValueError, match="prior_windows"):
        SpeakerNorm.from_manifest(dict(spec, prior_windows=0), [4, 6])


# --- a tiny real model trained with speaker normalisation (needs the training extra) -------------------------

@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A basic6 RFC with speaker normalisation trained on a generated RAVDESS-layout corpus (2-fold CV)."""
    pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")
    from corpus_factory import make_ravdess

    from edge_ser_train.train import TrainConfig, run

    base = tmp_path_factory.mktemp("adapt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_SER_CACHE", str(base / "cache"))
        corpus = make_ravdess(base / "ravdess", actors=(1, 2, 3, 4, 5, 6), seconds=1.2)
        out = base / "basic6-rfc"
        cfg = TrainConfig(task="basic6", kind="rfc", augment=(), folds=2, window_seconds=1.0,
                          kind_options={"n_estimators": 20, "max_leaf_nodes": 30})
        result = run([corpus], cfg, out, log=lambda *a: None)
    return corpus, out, result


@pytest.fixture(scope="module")
def committed(tiny_models, adapt_corpus):
    """The runtime's view of `adapted`: the committed ``tiny-rfc-adapt`` (scripts/make_test_models.py trains it as
    `adapted` does, on the same generated corpus) and that corpus; no training, so a runtime-only install runs the
    tests that only need a speaker-normalised model.  ``(corpus, model directory, None)``."""
    return adapt_corpus, tiny_models["rfc_adapt"], None


def test_training_writes_the_population_statistics_and_both_cv_regimes(adapted):
    from edge_ser.manifest import read_manifest
    from edge_ser.registry import load_model

    _, out, result = adapted
    m = read_manifest(out)
    assert m.manifest_version == 2 and m.pad == "silence"  # speaker statistics; short clips centred in silence
    sn = m.input["speaker_norm"]
    assert sn["axes"] == [] and sn["prior_windows"] == 10.0 and len(sn["mean"]) == m.input["shape"][0]
    assert np.isfinite(sn["level_ref"])  # the window-level offset (edge_ser.adapt), as the runtime applies it
    assert m.input["params"]["absolute"] is True
    cv = result["cv"]
    assert set(cv["clip_adapt"]) == {"accuracy", "balanced_accuracy", "macro_f1"}
    assert all("clip_adapt" in f for f in cv["per_fold"])
    assert m.metrics["clip_adapt"]["accuracy"]["mean"] == cv["clip_adapt"]["accuracy"]["mean"]
    model = load_model(out)
    assert model.speaker_norm is not None and model.speaker_norm.shape == tuple(m.input["shape"])


def test_a_model_with_a_level_ref_is_level_invariant(adapted):
    """The runtime takes every level statistic of a model trained with a level_ref (gain_slopes, not only the unit
    ones) and gives a clip the same scores at its level and 20 dB quieter, alone or adapted to its speaker."""
    from edge_ser.adapt import gain_slopes
    from edge_ser.audio import load_audio
    from edge_ser.registry import load_model

    corpus, out, _ = adapted
    m = load_model(out)
    norm = m.speaker_norm
    assert norm.uses_window_levels
    np.testing.assert_array_equal(norm.level_slope, gain_slopes(m.input_for, m.frontend.n_mels, m.n_frames,
                                                                norm.axes))
    clips = sorted(corpus.rglob("*.wav"))[:4]
    assert len(clips) == 4
    for clip in clips:
        y = load_audio(clip)
        np.testing.assert_allclose(m.classify_audio(y), m.classify_audio(0.1 * y), atol=1e-4)
        speaker, quiet = m.speaker_stats(), m.speaker_stats()
        for other in clips:
            speaker.update(m.clip_inputs(load_audio(other)))
            quiet.update(m.clip_inputs(0.1 * load_audio(other)))
        np.testing.assert_allclose(m.classify_audio(y, stats=speaker, update=False),
                                   m.classify_audio(0.1 * y, stats=quiet, update=False), atol=1e-4)


def test_runtime_normalises_a_speaker_exactly_as_training_did(adapted):
    """Training's speaker-normalised inputs of a clip == the runtime's: the clip's raw inputs standardised by the
    statistics of every clip of its speaker (Model.adapt_file), with the manifest's population prior."""
    from edge_ser.audio import load_audio
    from edge_ser.registry import load_model
    from edge_ser_train import kinds
    from edge_ser_train.train import TrainConfig, load_data

    corpus, out, _ = adapted
    model = load_model(out)
    cfg = TrainConfig(task="basic6", kind="rfc", window_seconds=1.0, cache_dir=str(out.parent / "cache"))
    data = load_data([corpus], cfg, kinds.make("rfc", 6))
    data.norm = model.speaker_norm
    speaker = data.speakers[0]
    stats = model.speaker_stats()
    for j in np.flatnonzero(data.speakers == speaker):
        model.adapt_file(data.clips[j].path, stats)
    for i in np.flatnonzero(data.speakers == speaker)[:3]:
        runtime = model.normalize(model.clip_inputs(load_audio(data.clips[i].path)), stats)
        np.testing.assert_allclose(runtime, data.inputs(int(i)), atol=2e-4)
        clip_alone = model.normalize(model.clip_inputs(load_audio(data.clips[i].path)),
                                     model.speaker_stats().update(model.clip_inputs(load_audio(data.clips[i].path))))
        np.testing.assert_allclose(clip_alone, data.regime_inputs(int(i), "", "clip"), atol=2e-4)


def test_evaluate_adapt_modes(adapted, capsys):
    from edge_ser.cli import main

    corpus, out, _ = adapted
    results = {}
    for mode in ("speaker", "clip", "none"):
        assert main(["evaluate", "--model", str(out), "--data", str(corpus), "--adapt", mode, "--json"]) == 0
        results[mode] = json.loads(capsys.readouterr().out)
        assert results[mode]["adapt"] == mode and results[mode]["n"] == 6 * 11
    assert "each speaker's statistics" in results["speaker"]["protocol"]
    assert main(["evaluate", "--model", str(out), "--data", str(corpus), "--adapt", "bogus"]) == 2
    assert "adapt must be one of" in capsys.readouterr().err


def test_classify_adapt_modes(committed, capsys):
    from edge_ser.audio import load_audio
    from edge_ser.cli import main
    from edge_ser.registry import load_model

    corpus, out, _ = committed
    files = sorted(str(p) for p in (corpus / "Actor_01").glob("*.wav"))[:4]
    model = load_model(out)
    outputs = {}
    for mode in ("file", "together", "none"):
        assert main(["classify", *files, "--model", str(out), "--adapt", mode, "--json"]) == 0
        outputs[mode] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [o["adapt"] for o in outputs[mode]] == [mode] * 4
    # 'file': each file alone == Model.classify_audio with fresh statistics
    p = model.classify_audio(load_audio(files[0]))
    assert outputs["file"][0]["scores"] == model.describe(p)["scores"]
    # 'together': statistics of all four files, then each file scored with them
    stats = model.speaker_stats()
    for f in files:
        stats.update(model.clip_inputs(load_audio(f)))
    p = model.classify_audio(load_audio(files[1]), stats=stats, update=False)
    assert outputs["together"][1]["scores"] == model.describe(p)["scores"]
    # a silent file among them is reported as silence and adds nothing to the voice's statistics
    import soundfile as sf
    silent = corpus.parent / "silent.wav"
    sf.write(silent, np.zeros(16000 * 5, np.float32), 16000)
    assert main(["classify", *files, str(silent), "--model", str(out), "--adapt", "together", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[:4] == outputs["together"] and rows[4]["silent"] and rows[4]["label"] is None
    # 'none': the population alone
    p = model.predict(model.normalize(model.clip_inputs(load_audio(files[2])), None)).mean(axis=0)
    assert outputs["none"][2]["scores"] == model.describe(p)["scores"]
    assert main(["classify", files[0], "--model", str(out), "--adapt", "speaker"]) == 2
    assert "--adapt must be one of" in capsys.readouterr().err


def test_engine_adapts_on_full_speech_windows_only_and_keeps_it_across_reset(committed):
    from corpus_factory import tone

    from edge_ser.registry import load_model
    from edge_ser.stream import Engine

    _, out, _ = committed
    model = load_model(out)
    from edge_ser.stream import GateConfig
    # the corpus factory's steady tones are no speech to the spectral detector (they do not rise and fall like
    # syllables): the original energy gate (its floor learns from the digital silence before them)
    gate = GateConfig(vad="energy", margin_db=8.0, min_level_db=-55.0, floor_guard=False, floor_seconds=8.0)
    engine = Engine(model, hop_seconds=0.5, warmup=False, gate=gate)
    silence = np.zeros(16000 * 2, np.float32)
    engine.feed(silence)
    assert engine.adaptation.windows == 0  # no speech, nothing learnt
    speech = np.concatenate([tone("angry", "high", 1.0, seed=k) for k in range(4)])
    events = engine.feed(np.concatenate([speech, silence]))  # an utterance, then the silence that ends it
    speech_hops = sum(e.speech for e in events)
    assert 0 < engine.adaptation.windows <= speech_hops  # full speech windows and each finished utterance
    heard = engine.adaptation.windows
    engine.reset()
    assert engine.adaptation.windows == heard
    engine.reset_adaptation()
    assert engine.adaptation.windows == 0
    off = Engine(model, hop_seconds=0.5, warmup=False, adapt=False, gate=gate)
    off.feed(speech)
    assert off.adaptation is None


def test_invalid_speaker_norm_in_a_manifest_is_a_model_error(committed, tmp_path):
    import shutil

    from edge_ser.registry import load_model

    _, out, _ = committed
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    path = bad / "manifest.json"
    m = json.loads(path.read_text())
    m["input"]["speaker_norm"]["mean"] = m["input"]["speaker_norm"]["mean"][:-1]
    path.write_text(json.dumps(m))
    with pytest.raises(ModelError, match="speaker_norm is invalid"):
        load_model(bad)


def test_classify_file_adapts_to_the_whole_file_whatever_its_length(committed, tmp_path):
    """A file longer than one batch of windows (32) is still adapted to all of itself, like training's
    each-clip-alone regime and `classify_audio`."""
    import soundfile as sf
    from corpus_factory import tone

    from edge_ser.registry import load_model

    _, out, _ = committed
    model = load_model(out)
    y = np.concatenate([tone(e, "high", 2.0, seed=k) for k, e in enumerate(["angry", "sad", "happy"] * 4)])
    path = tmp_path / "long.wav"
    sf.write(str(path), y, 16000)
    assert len(model.clip_inputs(y)) > 32
    passes = []
    real_adapt_file = model.adapt_file
    model.adapt_file = lambda *a, **k: passes.append(a[0]) or real_adapt_file(*a, **k)
    p_file, seconds = model.classify_file(path)
    np.testing.assert_allclose(p_file, model.classify_audio(y), atol=1e-5)
    assert seconds == pytest.approx(24.0)
    assert passes == [path]  # longer than one batch: a first pass gathers the file's statistics
    short = tmp_path / "short.wav"
    sf.write(str(short), y[:16000 * 3], 16000)
    p_short, _ = model.classify_file(short)
    np.testing.assert_allclose(p_short, model.classify_audio(y[:16000 * 3]), atol=1e-5)
    assert passes == [path]  # one batch: read once


def test_manifest_version_is_the_oldest_that_describes_the_model(committed, tmp_path):
    import shutil

    from edge_ser.manifest import read_manifest, write_manifest

    _, out, _ = committed
    plain = tmp_path / "plain"
    shutil.copytree(out, plain)
    m = read_manifest(plain)
    assert m.manifest_version == 2 and m.pad == "silence"  # trained as `adapted`
    m.input["pad"] = "repeat"  # short clips repeated: only version 3 says so
    write_manifest(plain, m)
    assert json.loads((plain / "manifest.json").read_text())["manifest_version"] == 3
    assert read_manifest(plain, verify=False).pad == "repeat"
    del m.input["pad"]  # the default (silence), as older manifests have it
    write_manifest(plain, m)
    assert json.loads((plain / "manifest.json").read_text())["manifest_version"] == 2
    del m.input["speaker_norm"]
    write_manifest(plain, m)
    assert json.loads((plain / "manifest.json").read_text())["manifest_version"] == 1


def test_input_spec_writes_pad_only_when_not_silence():
    from edge_ser_train.dataset import TRAIN_PAD, InputSpec
    assert TRAIN_PAD == "silence"  # as every shipped model (docs/training.md: repeat measured, not adopted)
    spec = dict(features="logmel", params={})
    assert "pad" not in InputSpec(**spec).manifest_input([128, 79])
    assert InputSpec(**spec, pad="repeat").manifest_input([128, 79])["pad"] == "repeat"


def test_merged_statistics_equal_one_pass():
    rng = np.random.default_rng(0)
    norm = SpeakerNorm(shape=(4, 3), axes=(1,), mean=np.zeros((4, 1)), var=np.ones((4, 1)))
    a, b = rng.normal(size=(5, 4, 3)), rng.normal(2, 3, size=(7, 4, 3))
    merged = norm.stats().update(a).merge(norm.stats().update(b))
    whole = norm.stats().update(np.concatenate([a, b]))
    for got, want in zip(merged.mean_var(), whole.mean_var()):
        assert np.allclose(got, want)
    assert merged.windows == 12
    with pytest.raises(ValueError):
        merged.merge(SpeakerNorm(shape=(4, 3), axes=(), mean=np.zeros((4, 3)), var=np.ones((4, 3))).stats())

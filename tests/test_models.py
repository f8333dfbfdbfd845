"""Model registry and runners: loading, predicting through ONNX and TFLite (float32, int8, batch 1), and the
manifest checks that refuse a model before its file is opened."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import harmonic_tone, tone_f0
from edge_ser import registry as models
from edge_ser.errors import ModelError
from edge_ser.labels import TASKS
from edge_ser.registry import load_model, resolve_model


def _copy(src, tmp_path, name="m"):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("which,fmt,n_classes", [("rfc", "onnx", 6), ("cnn", "tflite", 15),
                                                 ("cnn_int8", "tflite", 15)])
def test_load_and_classify_tones(tiny_models, which, fmt, n_classes):
    model = load_model(tiny_models[which])
    assert model.format == fmt
    assert model.labels == list(TASKS[model.manifest.task])
    rng = np.random.default_rng(7)
    correct = 0
    for c in range(n_classes):
        probs = model.classify_audio(harmonic_tone(tone_f0(c), 1.7, rng, amp=0.2))
        assert probs.shape == (len(model.labels),)
        assert np.all(probs >= 0) and abs(probs.sum() - 1) < 1e-4
        correct += int(np.argmax(probs) == c)
    # the tiny models learned the tones: near-perfect on fresh tones (chance is 1/n_classes)
    assert correct >= n_classes - 1


def test_predict_batch_matches_single(tiny_models):
    for which in ("rfc", "cnn", "cnn_int8"):  # cnn_int8 has a fixed batch of 1: the runner loops
        model = load_model(tiny_models[which])
        rng = np.random.default_rng(3)
        windows = [rng.normal(-40, 10, (32, n)).astype(np.float32) for n in (20, 63, 80)]
        x = np.stack([model.input_for(w) for w in windows])
        batch = model.predict(x)
        single = np.concatenate([model.predict(x[i:i + 1]) for i in range(len(x))])
        assert batch.shape == (3, len(model.labels))
        np.testing.assert_allclose(batch, single, atol=1e-5)


def test_int8_agrees_with_float(tiny_models):
    f32, i8 = load_model(tiny_models["cnn"]), load_model(tiny_models["cnn_int8"])
    rng = np.random.default_rng(11)
    agree = 0
    for c in range(15):
        y = harmonic_tone(tone_f0(c), 1.2, rng, amp=0.3)
        agree += int(np.argmax(f32.classify_audio(y)) == np.argmax(i8.classify_audio(y)))
    assert agree >= 14


def test_int8_tensors_are_quantized(tiny_models):
    model = load_model(tiny_models["cnn_int8"])
    runner = model._runner
    assert runner.inp["dtype"] == np.int8 and runner.out["dtype"] == np.int8
    assert runner.inp["quantization"][0] > 0


def test_threads_and_format_choice(tiny_models):
    model = load_model(tiny_models["rfc"], fmt="onnx", threads=2)
    assert model._runner.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(ModelError, match="no tflite file"):
        load_model(tiny_models["rfc"], fmt="tflite")
    with pytest.raises(ModelError, match="unknown model format"):
        load_model(tiny_models["rfc"], fmt="pt")
    with pytest.raises(ModelError, match="threads"):
        load_model(tiny_models["rfc"], threads=0)


def test_hash_mismatch_refused(tiny_models, tmp_path):
    d = _copy(tiny_models["rfc"], tmp_path)
    data = bytearray((d / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_model(d)


def test_frontend_mismatch_refused(tiny_models, tmp_path):
    d = _copy(tiny_models["cnn"], tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["frontend"]["mel_scale"] = "htk"
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="frontend"):
        load_model(d)


def test_missing_model_file_refused(tiny_models, tmp_path):
    d = _copy(tiny_models["cnn"], tmp_path)
    (d / "model.tflite").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(d)


def test_corrupt_model_with_matching_hash_is_a_model_error(tiny_models, tmp_path):
    from edge_ser.manifest import read_manifest, write_manifest
    d = _copy(tiny_models["rfc"], tmp_path)
    (d / "model.onnx").write_bytes(b"not an onnx model")
    write_manifest(d, read_manifest(d, verify=False))
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        load_model(d)


def test_unknown_name_lists_known(tmp_path, monkeypatch, tiny_models):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(tiny_models["rfc"], root / "tiny-rfc")
    monkeypatch.setenv(models.MODELS_ENV, str(root))
    assert resolve_model("tiny-rfc") == root / "tiny-rfc"
    with pytest.raises(ModelError, match=r"unknown model 'nope' \(known models: .*tiny-rfc"):
        resolve_model("nope")
    with pytest.raises(ModelError, match="no such model directory"):
        resolve_model(str(tmp_path / "absent" / "dir"))
    with pytest.raises(ModelError, match="not a model directory"):
        resolve_model(tmp_path)
    names = [m.name for m in models.list_models()]
    assert "tiny-rfc" in names


def test_input_shape_checked(tiny_models):
    model = load_model(tiny_models["rfc"])
    with pytest.raises(ModelError, match="shape"):
        model.predict(np.zeros((1, 5), dtype=np.float32))


def test_default_models_load_if_shipped():
    """Every shipped default model passes verification and classifies a clip to valid probabilities."""
    shipped = [m for m in models.list_models() if str(models.DEFAULT_MODELS_DIR) in m.extra.get("path", "")]
    if not shipped:
        pytest.skip(f"no default models in {models.DEFAULT_MODELS_DIR} yet (make models)")
    rng = np.random.default_rng(0)
    y = harmonic_tone(200.0, 2.0, rng)
    for m in shipped:
        for fmt in m.formats:
            model = load_model(m.name, fmt=fmt)
            p = model.classify_audio(y)
            assert p.shape == (len(model.labels),) and abs(p.sum() - 1) < 1e-3


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.37, 2.9, 7.3])
def test_classify_file_equals_classify_audio(tiny_models, tmp_path, seconds):
    """The block-by-block classification (bounded memory) gives the windows and mean of `classify_audio`."""
    import soundfile as sf
    from edge_ser.audio import load_audio
    rng = np.random.default_rng(int(seconds * 100))
    y = np.concatenate([harmonic_tone(tone_f0(c), seconds / 3, rng, amp=0.3) for c in (1, 4, 12)])
    sf.write(tmp_path / "x.wav", np.stack([y, 0.5 * y], axis=1), 16000, subtype="FLOAT")
    for which in ("rfc", "cnn"):
        model = load_model(tiny_models[which])
        probs, duration = model.classify_file(tmp_path / "x.wav")
        expected = model.classify_audio(load_audio(tmp_path / "x.wav"))
        np.testing.assert_allclose(probs, expected, atol=1e-4)
        assert duration == pytest.approx(len(y) / 16000, abs=1e-3)


def test_classify_file_real_speech(tiny_models, cremad_clips):
    from edge_ser.audio import load_audio
    model = load_model(tiny_models["cnn"])
    for clip in cremad_clips[:3]:
        np.testing.assert_allclose(model.classify_file(clip)[0], model.classify_audio(load_audio(clip)), atol=1e-4)


def test_a_repeat_padded_model_fills_a_short_clip_with_its_frames(tiny_models, tmp_path):
    """A manifest with ``input.pad: repeat`` (training writes it from manifest version 3) fills a clip shorter than
    the window with its own frames, in classify_audio and the block-by-block classify_file alike."""
    import json
    import shutil

    import soundfile as sf
    from edge_ser import features
    d = tmp_path / "tiny-repeat"
    shutil.copytree(tiny_models["rfc"], d)
    m = json.loads((d / "manifest.json").read_text())
    m["input"]["pad"] = "repeat"
    (d / "manifest.json").write_text(json.dumps(m))
    model, old = load_model(d), load_model(tiny_models["rfc"])
    assert (model.pad, old.pad) == ("repeat", "silence")
    y = harmonic_tone(tone_f0(4), 0.6, np.random.default_rng(3), amp=0.3)
    db = model.frames(y)
    assert db.shape[1] < model.n_frames
    np.testing.assert_array_equal(model.clip_inputs(y)[0], model.input_for(features.fit_frames(db, model.n_frames,
                                                                                               "repeat")))
    assert not np.allclose(model.clip_inputs(y), old.clip_inputs(y))
    sf.write(tmp_path / "x.wav", y, 16000, subtype="FLOAT")
    np.testing.assert_allclose(model.classify_file(tmp_path / "x.wav")[0], model.classify_audio(y), atol=1e-4)

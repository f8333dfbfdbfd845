"""The committed tiny test models (tests/fixtures/models/, made by scripts/make_test_models.py): they load through
the runtime's verifying loader, are a few KB, classify the synthetic clips they were trained on, and (slow, with the
training distribution installed) the script makes them again."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURE_MODELS, REPO, TINY_MODELS
from corpus_factory import RAV_EMO
from corpus_factory import tone as corpus_tone
from edge_ser.audio import load_audio
from edge_ser.labels import TASKS
from edge_ser.manifest import MODEL_FILES, read_manifest
from edge_ser.registry import load_model
from tones import harmonic_tone, tone_dataset, tone_f0

SCRIPT = REPO / "scripts" / "make_test_models.py"
# name -> (task, formats, what the script trained it on)
EXPECTED = {
    "tiny-rfc": ("basic6", ["onnx"], "tones"),
    "tiny-cnn": ("fine15", ["tflite"], "tones"),
    "tiny-cnn-int8": ("fine15", ["tflite"], "tones"),
    "tiny-cnn-dual": ("fine15", ["onnx", "tflite"], "tones"),
    "tiny-rfc-adapt": ("basic6", ["onnx"], "ravdess"),
}
TONES = {"tiny-rfc": (6, 8, 1), "tiny-cnn": (15, 6, 2)}  # tone_dataset(classes, per class, seed) of each network
MAX_FILE_BYTES = 32 * 1024  # "a few KB": today 5.5-10.5 KB each


def _probs(model_dir: Path, fmt: str, clips) -> np.ndarray:
    model = load_model(model_dir, fmt=fmt)
    return np.stack([model.classify_audio(y) for y in clips])


def _fresh(name: str, seed: int = 7) -> tuple[list, np.ndarray]:
    """One clip per class that the model never saw, and its labels."""
    task = EXPECTED[name][0]
    if EXPECTED[name][2] == "ravdess":
        return ([corpus_tone(e, "high", 1.2, seed=500 + seed + k) for k, e in enumerate(TASKS[task])],
                np.arange(len(TASKS[task])))
    rng = np.random.default_rng(seed)
    n = len(TASKS[task])
    return [harmonic_tone(tone_f0(c), 1.7, rng, amp=0.2) for c in range(n)], np.arange(n)


def _training_clips(name: str, adapt_corpus: Path) -> tuple[list, np.ndarray]:
    if EXPECTED[name][2] == "ravdess":
        emotion = {code: e for e, code in RAV_EMO.items()}
        files = sorted(adapt_corpus.rglob("*.wav"))
        labels = [TASKS["basic6"].index(emotion[f.name.split("-")[2]]) for f in files]
        return [load_audio(f) for f in files], np.array(labels)
    return tone_dataset(*TONES["tiny-rfc" if name == "tiny-rfc" else "tiny-cnn"])


def test_every_fixture_is_listed_and_committed():
    on_disk = sorted(p.name for p in FIXTURE_MODELS.iterdir() if (p / "manifest.json").is_file())
    assert on_disk == sorted(EXPECTED) == sorted(TINY_MODELS.values())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_manifest_verified_and_small(name):
    task, formats, _ = EXPECTED[name]
    d = FIXTURE_MODELS / name
    m = read_manifest(d, verify=True)  # every file's sha256 against the manifest
    assert m.name == name and m.task == task and m.labels == list(TASKS[task])
    assert m.formats == formats and sorted(m.sha256) == sorted(MODEL_FILES[f] for f in formats)
    assert m.trained_on["made_by"] == "scripts/make_test_models.py"
    assert sorted(p.name for p in d.iterdir()) == sorted(["manifest.json", *m.sha256])  # nothing else (no pickle)
    for f in formats:
        assert 1024 < (d / MODEL_FILES[f]).stat().st_size <= MAX_FILE_BYTES
    assert (m.input.get("speaker_norm") is not None) == (name == "tiny-rfc-adapt")


@pytest.mark.parametrize("name,fmt", [(n, f) for n in sorted(EXPECTED) for f in EXPECTED[n][1]])
def test_fixture_classifies_its_training_tones(name, fmt, adapt_corpus):
    """Through ``edge_ser.registry.load_model`` (hashes verified): the clips the script trained on (clip level,
    every window) and one fresh clip per class."""
    task = EXPECTED[name][0]
    model = load_model(FIXTURE_MODELS / name, fmt=fmt)
    assert model.format == fmt and model.labels == list(TASKS[task])
    clips, ys = _training_clips(name, adapt_corpus)
    probs = np.stack([model.classify_audio(y) for y in clips])
    assert probs.shape == (len(clips), len(TASKS[task]))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    accuracy = float(np.mean(probs.argmax(axis=1) == ys))
    # measured: 0.979 tiny-rfc (47/48), 1.0 the others
    assert accuracy >= 0.95, f"{name}/{fmt}: {accuracy:.3f} of its training clips"
    clips, ys = _fresh(name)
    hits = int(np.sum(np.stack([model.classify_audio(y) for y in clips]).argmax(axis=1) == ys))
    assert hits >= len(ys) - 1  # chance is 1/n_classes


def test_dual_fixture_formats_agree():
    """tiny-cnn-dual holds one network twice: its ONNX and TFLite files give the same probabilities, and its TFLite
    file is tiny-cnn's."""
    d = FIXTURE_MODELS / "tiny-cnn-dual"
    assert (d / "model.tflite").read_bytes() == (FIXTURE_MODELS / "tiny-cnn" / "model.tflite").read_bytes()
    clips, _ = _fresh("tiny-cnn-dual", seed=5)
    np.testing.assert_allclose(_probs(d, "onnx", clips), _probs(d, "tflite", clips), atol=1e-4)
    assert load_model(d).format == "onnx"  # the default when a model has both


def _training_stack_missing() -> str | None:
    for mod in ("edge_ser_train", "sklearn", "skl2onnx", "tensorflow", "tf2onnx"):
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def _close(a, b, rtol: float = 1e-5) -> bool:
    """Equal, with floats (e.g. speaker_norm's statistics) equal within ``rtol``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and bool(np.isclose(a, b, rtol=rtol))
    return a == b


@pytest.mark.slow
def test_script_makes_the_fixtures_again(tmp_path):
    """Regenerate into a tmp folder and compare with the committed files: names, labels, formats, inputs,
    frontend; the same top-1 on fresh tones and probabilities within 0.05 (the same machine and library versions
    give byte-identical files; another CPU or TensorFlow build need not, so bytes are only printed)."""
    missing = _training_stack_missing()
    if missing:
        pytest.skip(f"regenerating the fixtures needs the training distribution (pip install -e ./export): "
                    f"{missing} is not installed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        [str(REPO), str(REPO / "export"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    identical = {}
    for name, (task, formats, _) in EXPECTED.items():
        old, new = read_manifest(FIXTURE_MODELS / name, verify=True), read_manifest(tmp_path / name, verify=True)
        for field in ("name", "kind", "task", "labels", "formats", "input", "frontend", "window_seconds"):
            assert _close(getattr(new, field), getattr(old, field)), f"{name}: {field} differs"
        clips, _ = _fresh(name, seed=11)
        for fmt in formats:
            p_old, p_new = _probs(FIXTURE_MODELS / name, fmt, clips), _probs(tmp_path / name, fmt, clips)
            assert (p_old.argmax(axis=1) == p_new.argmax(axis=1)).all(), f"{name}/{fmt}: top-1 differs"
            assert float(np.abs(p_old - p_new).max()) <= 0.05, f"{name}/{fmt}: probabilities differ"
            f = MODEL_FILES[fmt]
            identical[f"{name}/{f}"] = (tmp_path / name / f).read_bytes() == (FIXTURE_MODELS / name / f).read_bytes()
    print("byte-identical to the committed files:", json.dumps(identical))  # shown with -rP

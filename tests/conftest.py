"""Shared fixtures: the real-data folder, synthetic signals, and tiny REAL models (committed in
``tests/fixtures/models/``, trained on synthetic harmonic tones by ``scripts/make_test_models.py``) so the runner
tests cover the ONNX and TFLite (float32 and int8) paths without the shipped default models and without the
training distribution."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# A suite started in the background (`cmd &` in a script, nohup, some CI runners) inherits SIGINT *ignored*, and
# Python keeps it ignored: Ctrl-C tests would then wait forever, in this process and in the CLI subprocesses it
# starts (an ignored signal stays ignored across exec).  Put Python's Ctrl-C handler back.
signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
SR = 16000  # = tones.SR


def data_root() -> Path:
    return Path(os.environ.get("EDGE_SER_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real corpora (``$EDGE_SER_DATA`` or ``<repo>/../shared/data``); skips when absent."""
    root = data_root()
    if not (root / "cremad" / "AudioWAV").is_dir():
        pytest.skip(f"real audio not available: {root}/cremad/AudioWAV is absent (set EDGE_SER_DATA)")
    return root


@pytest.fixture(scope="session")
def cremad_clips(data_dir) -> list[Path]:
    """A few real CREMA-D clips of different actors and emotions (sorted, deterministic)."""
    names = ["1001_IEO_ANG_HI", "1012_IEO_HAP_HI", "1015_IEO_SAD_LO", "1020_DFA_NEU_XX", "1033_ITS_FEA_XX"]
    audio_dir = data_dir / "cremad" / "AudioWAV"
    clips = [p for n in names for p in [audio_dir / f"{n}.flac", audio_dir / f"{n}.wav"] if p.is_file()]
    if len(clips) < 3:
        clips = sorted(audio_dir.glob("*.flac"))[:5]
    return clips


def run_cli(*args: str, env: dict | None = None, timeout: float = 120, input: str | None = None):
    """Run ``python -m edge_ser.cli ARGS`` in a subprocess; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "edge_ser.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(REPO), input=input)


# --- synthetic signals (tests/tones.py; re-exported here for the tests that import them from conftest) -------

from tones import harmonic_tone, tone_dataset, tone_f0  # noqa: E402,F401


# --- tiny real models ----------------------------------------------------------------------------------

FIXTURE_MODELS = Path(__file__).resolve().parent / "fixtures" / "models"
TINY_MODELS = {"rfc": "tiny-rfc", "cnn": "tiny-cnn", "cnn_int8": "tiny-cnn-int8", "cnn_dual": "tiny-cnn-dual",
               "rfc_adapt": "tiny-rfc-adapt"}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Directories of the tiny real models committed in ``tests/fixtures/models/`` (made by
    ``scripts/make_test_models.py`` on synthetic tones; nothing is trained at test time, so a runtime-only install
    runs every test that uses them): ``rfc`` (ONNX, basic6), ``cnn`` (TFLite float32, fine15, dynamic batch),
    ``cnn_int8`` (TFLite int8 tensors, fixed batch 1), ``cnn_dual`` (the float CNN as ONNX and TFLite),
    ``rfc_adapt`` (ONNX, basic6, speaker-normalised, trained on ``adapt_corpus``'s clips).

    A session copy of the committed directories (same names, ~100 KB), so that no test can change the committed
    files; tests/test_fixtures.py checks the committed ones themselves."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {key: Path(shutil.copytree(FIXTURE_MODELS / name, root / name)) for key, name in TINY_MODELS.items()}


ADAPT_CORPUS = dict(actors=(1, 2, 3, 4, 5, 6), seconds=1.2)  # = scripts/make_test_models.py's


@pytest.fixture(scope="session")
def adapt_corpus(tmp_path_factory) -> Path:
    """The generated RAVDESS-layout corpus ``tiny-rfc-adapt`` was trained on (tests/corpus_factory.py)."""
    from corpus_factory import make_ravdess
    return make_ravdess(tmp_path_factory.mktemp("adapt-corpus") / "ravdess", **ADAPT_CORPUS)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


FAKES = Path(__file__).resolve().parent / "fakes"


@pytest.fixture
def fault_sd(monkeypatch):
    """The fault-simulating fake PortAudio (tests/fakes/sounddevice.py) in place of sounddevice, for this test."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("sounddevice", FAKES / "sounddevice.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return module

"""Shared fixtures: the real-data folder, synthetic signals, and tiny REAL models (trained here, on synthetic
harmonic tones, converted with skl2onnx / the TFLite converter) so the runner tests cover the ONNX and TFLite
(float32 and int8) paths without the shipped default models."""
from __future__ import annotations

import os
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
SR = 16000

# The tiny models' frontend: small so that training them takes seconds.
TINY_FRONTEND = dict(sample_rate=SR, n_fft=512, hop_length=256, n_mels=32, fmin=0.0, fmax=None, top_db=None)
TINY_WINDOW_S = 1.0


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


# --- synthetic signals ---------------------------------------------------------------------------------

def harmonic_tone(f0: float, seconds: float, rng: np.random.Generator, amp: float = 0.3, noise: float = 0.003,
                  sr: int = SR) -> np.ndarray:
    """A voiced-speech-like harmonic complex (decaying harmonics up to 4 kHz) with a little vibrato and noise."""
    t = np.arange(int(seconds * sr)) / sr
    vib = 1.0 + 0.01 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * f0 * np.cumsum(vib) / sr
    y = np.zeros_like(t)
    for k in range(1, int(4000 // f0) + 1):
        y += np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    y *= amp / (np.abs(y).max() + 1e-9)
    y += noise * rng.standard_normal(len(t))
    return y.astype(np.float32)


def tone_f0(class_index: int) -> float:
    return 120.0 + 70.0 * class_index


def tone_dataset(n_classes: int, per_class: int, seed: int, seconds=(0.8, 1.6)):
    rng = np.random.default_rng(seed)
    clips, ys = [], []
    for c in range(n_classes):
        for _ in range(per_class):
            f0 = tone_f0(c) * rng.uniform(0.98, 1.02)
            clips.append(harmonic_tone(f0, rng.uniform(*seconds), rng, amp=rng.uniform(0.05, 0.5)))
            ys.append(c)
    return clips, np.array(ys)


# --- tiny real models ----------------------------------------------------------------------------------

def _window_features(clips, features_name, params, n_frames, hop_frames):
    from edge_ser import features
    from edge_ser.frontend import log_mel
    fe = {k: v for k, v in TINY_FRONTEND.items() if k != "top_db"}
    xs, idx = [], []
    for i, y in enumerate(clips):
        db = log_mel(y, top_db=None, **fe)
        for w in features.clip_windows(db, n_frames, hop_frames):
            xs.append(features.compute(w, features_name, params))
            idx.append(i)
    return np.stack(xs), np.array(idx)


def _manifest(name, kind, task, input_spec):
    from edge_ser.labels import TASKS
    from edge_ser.manifest import Manifest
    return Manifest(name=name, kind=kind, task=task, labels=list(TASKS[task]), formats=[], input=input_spec,
                    frontend=dict(TINY_FRONTEND), window_seconds=TINY_WINDOW_S,
                    trained_on={"corpus": "synthetic harmonic tones (tests/conftest.py)"}, metrics={})


def build_rfc(out: Path) -> Path:
    """basic6 random forest on log-mel statistics of tones (class k = f0 120 + 70k Hz), exported with skl2onnx."""
    from sklearn.ensemble import RandomForestClassifier
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from edge_ser.frontend import FrontendConfig
    from edge_ser.manifest import write_manifest

    n_frames = FrontendConfig(**TINY_FRONTEND).frames_for(int(TINY_WINDOW_S * SR))
    params = {"n_frames": n_frames, "top_db": 80.0, "bands": 32}
    clips, ys = tone_dataset(6, 8, seed=1)
    x, idx = _window_features(clips, "log_mel_stats", params, n_frames, 8)
    clf = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(x, ys[idx])
    onx = convert_sklearn(clf, initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          options={id(clf): {"zipmap": False}}, target_opset=17)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    m = _manifest("tiny-rfc", "rfc", "basic6",
                  {"features": "log_mel_stats", "params": params, "shape": [int(x.shape[1])], "dtype": "float32"})
    write_manifest(out, m)
    return out


def build_cnn(out_float: Path, out_int8: Path) -> tuple[Path, Path]:
    """fine15 tiny CNN on log-mel images of tones, converted to TFLite float32 (dynamic batch) and int8
    (fixed batch 1, int8 input and output tensors)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from edge_ser.frontend import FrontendConfig
    from edge_ser.manifest import write_manifest

    keras.utils.set_random_seed(0)
    n_frames = FrontendConfig(**TINY_FRONTEND).frames_for(int(TINY_WINDOW_S * SR))
    params = {"n_frames": n_frames, "top_db": 80.0, "norm": "utterance"}
    clips, ys = tone_dataset(15, 6, seed=2)
    x, idx = _window_features(clips, "log_mel_image", params, n_frames, 16)
    shape = x.shape[1:]

    def net(batch_size=None):
        inp = keras.Input(shape=shape, batch_size=batch_size)
        h = keras.layers.Conv2D(8, 3, activation="relu", padding="same")(inp)
        h = keras.layers.MaxPooling2D(2)(h)
        h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inp, keras.layers.Dense(15, activation="softmax")(h))

    model = net()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, ys[idx], epochs=40, batch_size=32, verbose=0)

    def convert(keras_model, int8: bool) -> bytes:
        from edge_ser_train.kinds.cnn import to_tflite  # the converter the shipped models go through

        if not int8:
            return to_tflite(keras_model)
        fixed = net(batch_size=1)  # also covers the runner's batch-1 path
        fixed.set_weights(keras_model.get_weights())
        return to_tflite(fixed, "int8", x[::4], integer_io=True)  # int8 tensors in and out: the runner's path

    spec = {"features": "log_mel_image", "params": params, "shape": [int(s) for s in shape], "dtype": "float32"}
    for out, int8, name in ((out_float, False, "tiny-cnn"), (out_int8, True, "tiny-cnn-int8")):
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.tflite").write_bytes(convert(model, int8))
        write_manifest(out, _manifest(name, "cnn", "fine15", dict(spec)))
    return out_float, out_int8


_BUILD_SCRIPT = """
import sys; from pathlib import Path
sys.path.insert(0, sys.argv[1])
import conftest
root = Path(sys.argv[2])
conftest.build_rfc(root / 'tiny-rfc')
conftest.build_cnn(root / 'tiny-cnn', root / 'tiny-cnn-int8')
"""


def _tiny_models_key() -> str:
    """Changes whenever the models would: this file, the frontend/features code, the ML library versions."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version
    h = hashlib.sha256()
    for f in (Path(__file__), REPO / "edge_ser" / "frontend.py", REPO / "edge_ser" / "features.py",
              REPO / "edge_ser" / "manifest.py", REPO / "edge_ser" / "labels.py", REPO / "export" / "edge_ser_train" / "kinds" / "cnn.py"):
        h.update(f.read_bytes())
    for pkg in ("scikit-learn", "skl2onnx", "tensorflow-cpu", "tensorflow", "keras", "onnx"):
        try:
            h.update(f"{pkg}={version(pkg)}".encode())
        except PackageNotFoundError:
            pass
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_models(request, tmp_path_factory) -> dict[str, Path]:
    """Directories of three tiny real models: ``rfc`` (ONNX, basic6), ``cnn`` (TFLite float32, fine15, dynamic
    batch), ``cnn_int8`` (TFLite int8, fixed batch 1).  Trained in a subprocess so that TensorFlow and
    scikit-learn never enter the test process (whose runtime imports are checked).  The trained models are kept in
    pytest's cache under a key of the code and library versions that made them (rebuilt when any changes)."""
    from edge_ser.errors import ModelError
    from edge_ser.manifest import read_manifest
    names = {"rfc": "tiny-rfc", "cnn": "tiny-cnn", "cnn_int8": "tiny-cnn-int8"}
    cache = request.config.cache.mkdir("edge-ser-tiny-models") / _tiny_models_key()
    try:
        for n in names.values():
            read_manifest(cache / n, verify=True)
        return {k: cache / n for k, n in names.items()}
    except ModelError:
        pass
    pytest.importorskip("sklearn", reason="the tiny test models need the 'train' extra (scikit-learn)")
    pytest.importorskip("skl2onnx", reason="the tiny test models need the 'train' extra (skl2onnx)")
    root = tmp_path_factory.mktemp("models")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, str(Path(__file__).parent), str(root)],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"building the tiny models failed:\n{proc.stderr[-4000:]}")
    try:  # publish atomically; a concurrent session may have won the race, then use its copy
        import shutil
        staging = cache.parent / f".{cache.name}.{os.getpid()}"
        shutil.copytree(root, staging)
        os.rename(staging, cache)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    target = cache if all((cache / n / "manifest.json").is_file() for n in names.values()) else root
    return {k: target / n for k, n in names.items()}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

"""The model manifest (``manifest.json`` beside ``model.onnx`` / ``model.tflite``): every number a model needs at
run time, written by export/ and verified by the runtime before a model file is opened."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, features
from .errors import ModelError
from .frontend import FrontendConfig
from .labels import TASKS

# 2 added the optional input.speaker_norm (edge_ser.adapt); a runtime that ignored it would feed such a model
# unnormalised inputs, so version-1 runtimes must refuse version 2.  3 added input.pad = "repeat" (a clip shorter
# than the window fills it with its own frames repeated, `features.PADS`; "stretch" is read too, a runtime that does
# not know it refuses the model); a runtime that ignored it would pad such a model's short clips with silence.  Older
# manifests are still read (no input.pad: "silence").
MANIFEST_VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
MODEL_FILES = {"onnx": "model.onnx", "tflite": "model.tflite"}


@dataclass
class Manifest:
    name: str
    kind: str
    task: str
    labels: list[str]
    formats: list[str]
    input: dict  # {features, params, shape, dtype}
    frontend: dict
    window_seconds: float
    trained_on: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    sha256: dict = field(default_factory=dict)
    edge_ser_version: str = __version__
    manifest_version: int = MANIFEST_VERSION
    hop_seconds: float = 0.5
    extra: dict = field(default_factory=dict)

    @property
    def frontend_config(self) -> FrontendConfig:
        return FrontendConfig.from_dict(self.frontend)

    @property
    def n_frames(self) -> int:
        """Frames in one model window."""
        return self.frontend_config.frames_for(int(round(self.window_seconds * self.frontend_config.sample_rate)))

    @property
    def pad(self) -> str:
        """How a clip shorter than the window fills it (`features.PADS`): ``silence`` for manifests without it."""
        return self.input.get("pad", "silence")

    def speaker_norm(self):
        """The input's `edge_ser.adapt.SpeakerNorm`, or None for a model trained without speaker normalisation."""
        spec = self.input.get("speaker_norm")
        if spec is None:
            return None
        from .adapt import SpeakerNorm
        try:
            if not isinstance(spec, dict):
                raise ValueError("must be an object")
            return SpeakerNorm.from_manifest(spec, self.input.get("shape", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{self.name}: input.speaker_norm is invalid ({exc})") from None

    def to_dict(self) -> dict:
        return asdict(self)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(model_dir: Path, manifest: Manifest) -> Path:
    """Fill in ``formats`` and ``sha256`` from the model files present and write ``manifest.json``."""
    model_dir = Path(model_dir)
    # the oldest version that describes the model, so older runtimes still run models they can run
    manifest.manifest_version = (3 if manifest.pad != "silence" else
                                 2 if manifest.input.get("speaker_norm") is not None else 1)
    manifest.formats = [fmt for fmt, fname in MODEL_FILES.items() if (model_dir / fname).exists()]
    manifest.sha256 = {MODEL_FILES[f]: sha256_of(model_dir / MODEL_FILES[f]) for f in manifest.formats}
    path = model_dir / "manifest.json"
    path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def read_manifest(model_dir: Path, verify: bool = True) -> Manifest:
    """Read and check a model directory's manifest.  Raises ModelError with a one-line reason."""
    model_dir = Path(model_dir)
    path = model_dir / "manifest.json"
    if not path.is_file():
        raise ModelError(f"{model_dir}: no manifest.json (not a model directory)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: manifest is not a JSON object")
    version = data.get("manifest_version", MANIFEST_VERSION)
    if version not in SUPPORTED_VERSIONS:
        raise ModelError(f"{path}: manifest_version {version!r} is not supported by edge-ser {__version__} "
                         f"(reads {', '.join(map(str, SUPPORTED_VERSIONS))})")
    known = set(Manifest.__dataclass_fields__)
    try:
        m = Manifest(**{k: v for k, v in data.items() if k in known})
    except TypeError as exc:
        raise ModelError(f"{path}: incomplete manifest ({exc})") from None
    _check_types(m, path)
    if verify:
        verify_manifest(model_dir, m)
    return m


def _check_types(m: Manifest, path: Path) -> None:
    """A manifest edited by hand or corrupted: wrong JSON types become a ModelError, not a crash later."""
    def bad(field: str, want: str):
        raise ModelError(f"{path}: {field} must be {want}")

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if not isinstance(m.name, str) or not isinstance(m.kind, str) or not isinstance(m.task, str):
        bad("name, kind and task", "strings")
    if not isinstance(m.labels, list) or not all(isinstance(x, str) for x in m.labels):
        bad("labels", "a list of strings")
    if not isinstance(m.formats, list) or not all(isinstance(x, str) for x in m.formats):
        bad("formats", "a list of strings")
    if not isinstance(m.sha256, dict) or not all(isinstance(v, str) for v in m.sha256.values()):
        bad("sha256", "an object of file -> hex digest")
    if not isinstance(m.input, dict) or not isinstance(m.input.get("params", {}), dict):
        bad("input", "an object with params as an object")
    shape = m.input.get("shape", [])
    if not isinstance(shape, list) or not all(isinstance(x, int) and x > 0 for x in shape):
        bad("input.shape", "a list of positive integers")
    if not isinstance(m.frontend, dict):
        bad("frontend", "an object")
    for key in ("sample_rate", "n_fft", "hop_length", "n_mels"):
        if key in m.frontend and not (isinstance(m.frontend[key], int) and not isinstance(m.frontend[key], bool)):
            bad(f"frontend.{key}", "an integer")
    for key in ("window_seconds", "hop_seconds"):
        value = getattr(m, key)
        if not number(value) or not 0 < value < float("inf"):
            bad(key, "a positive number of seconds")
    for key in ("trained_on", "metrics", "parity", "extra"):
        if not isinstance(getattr(m, key), dict):
            bad(key, "an object")


def verify_manifest(model_dir: Path, m: Manifest) -> None:
    where = f"{model_dir}"
    try:
        m.frontend_config
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: frontend does not match what this runtime computes: {exc}") from None
    if m.task in TASKS and list(m.labels) != list(TASKS[m.task]):
        raise ModelError(f"{where}: labels {m.labels} do not match task {m.task!r}")
    if not m.labels:
        raise ModelError(f"{where}: manifest lists no labels")
    if m.input.get("features") not in features.FEATURES:
        raise ModelError(f"{where}: unknown input features {m.input.get('features')!r}")
    if m.pad not in features.PADS:
        raise ModelError(f"{where}: input.pad must be one of {', '.join(features.PADS)}, got {m.pad!r}")
    if m.input.get("speaker_norm") is not None:
        m.speaker_norm()  # shapes and values
    if not (isinstance(m.window_seconds, (int, float)) and 0 < m.window_seconds <= 30):
        raise ModelError(f"{where}: window_seconds must be in (0, 30]")
    if not m.formats:
        raise ModelError(f"{where}: manifest lists no model formats")
    for fmt in m.formats:
        fname = MODEL_FILES.get(fmt)
        if fname is None:
            raise ModelError(f"{where}: unknown model format {fmt!r}")
        fpath = Path(model_dir) / fname
        if not fpath.is_file():
            raise ModelError(f"{where}: {fname} is missing")
        expected = m.sha256.get(fname)
        if not expected:
            raise ModelError(f"{where}: no sha256 for {fname} in the manifest")
        if sha256_of(fpath) != expected:
            raise ModelError(f"{where}: {fname} does not match its sha256 in the manifest (corrupt or tampered)")

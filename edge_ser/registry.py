"""Model registry: find a model by name or directory, verify its manifest, open it with a runner.

A model is a directory with ``manifest.json`` and ``model.onnx`` and/or ``model.tflite`` (see `edge_ser.manifest`).
The manifest is verified (file hashes, frontend, labels) before any model file is opened.  Names are the
directories of the package's default models and of ``$EDGE_SER_MODELS`` (searched first).
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelError
from .manifest import MODEL_FILES, Manifest, read_manifest
from .model import Model
from .paths import search_dirs
from .runners import OnnxRunner, TFLiteRunner

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"
MODELS_ENV = "EDGE_SER_MODELS"  # optional extra directory of models, searched before the defaults
FORMATS = tuple(MODEL_FILES)  # ("onnx", "tflite")


def models_dirs() -> list[Path]:
    return search_dirs(MODELS_ENV, DEFAULT_MODELS_DIR)


def _named_models() -> dict[str, Path]:
    """name -> directory for every model directory in the search path (first one wins)."""
    found: dict[str, Path] = {}
    for root in models_dirs():
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if (d / "manifest.json").is_file() and d.name not in found:
                found[d.name] = d
    return found


def list_models(verify: bool = False, errors: list | None = None) -> list[Manifest]:
    """Manifests of the installed models (the package's defaults and ``$EDGE_SER_MODELS``), sorted by name.

    A directory whose manifest cannot be read is left out (its one-line reason appended to ``errors`` if given);
    with ``verify`` the file hashes are checked too.
    """
    out = []
    for name, d in sorted(_named_models().items()):
        try:
            m = read_manifest(d, verify=verify)
        except ModelError as exc:
            if errors is not None:
                errors.append(str(exc))
            continue
        m.extra = dict(m.extra, path=str(d))  # the directory's name is what --model takes
        out.append(m)
    return out


def known_names() -> list[str]:
    return list(_named_models())


def resolve_model(spec: str | os.PathLike) -> Path:
    """A default model's name (``fine16-cnn``) or a model directory -> the model directory."""
    if spec is None or str(spec).strip() == "":
        raise ModelError("no model given")
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "manifest.json").is_file():
            raise ModelError(f"{p}: not a model directory (no manifest.json)")
        return p
    named = _named_models()
    if str(spec) in named:
        return named[str(spec)]
    if p.exists():
        raise ModelError(f"{p}: a model is a directory holding manifest.json and model.onnx/model.tflite")
    known = ", ".join(named) or f"none installed in {DEFAULT_MODELS_DIR}"
    looks_like_path = os.sep in str(spec) or str(spec).startswith(".")
    what = "no such model directory" if looks_like_path else "unknown model"
    raise ModelError(f"{what} {str(spec)!r} (known models: {known})")


def load_model(spec: str | os.PathLike, fmt: str | None = None, threads: int = 1) -> "Model":
    """Verify and open a model.  ``fmt`` None: ONNX if the model has it, else TFLite."""
    path = resolve_model(spec)
    manifest = read_manifest(path, verify=True)
    if threads is None:
        threads = 1
    if int(threads) < 1:
        raise ModelError(f"threads must be at least 1, got {threads}")
    if fmt is None:
        fmt = "onnx" if "onnx" in manifest.formats else manifest.formats[0]
    if fmt not in FORMATS:
        raise ModelError(f"unknown model format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt not in manifest.formats:
        raise ModelError(f"{path}: model has no {fmt} file (it has: {', '.join(manifest.formats)})")
    file = path / MODEL_FILES[fmt]
    runner = OnnxRunner(file, int(threads)) if fmt == "onnx" else TFLiteRunner(file, int(threads))
    return Model(manifest, path, fmt, runner)

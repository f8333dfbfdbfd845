"""Policy: what the runtime runs with, from ``--profile`` and the explicit options of ``listen``/``classify``/
``bench`` (`runtime_settings`).  Explicit options win over the profile, no profile gives the defaults, a device
bundle brings its own models, and ``auto`` (or ``auto:NAME``) calibrates on this machine with a short bench and picks
the most accurate model whose measured cost fits the budget (`choose`; the calibration is cached per machine and
model checksum, `CalibrationCache`).  `against_budget` compares a bench result with a profile's budget.

This is the one module that imports `edge_ser.bench` and `edge_ser.bundle`; `edge_ser.profiles` holds the schema.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import bench, bundle, registry, runners
from .errors import UserError
from .manifest import read_manifest
from .profiles import FORMATS, Profile, ProfileError, detect_profile, load_profile, read_profile

log = logging.getLogger("edge_ser.settings")

DEFAULT_MODEL = "fine16-linear"
DEFAULT_FORMAT = "onnx"
DEFAULT_THREADS = 1
DEFAULT_HOP_SECONDS = 0.5
AUTO = "auto"
# with neither --model nor --profile, when DEFAULT_MODEL is not installed: the first installed of these
FALLBACK_ORDER = ("fine16-linear", "fine16-cnn", "fine16-rfc", "fine15-cnn", "fine15-rfc", "basic6-cnn", "basic6-rfc")


@dataclass
class RuntimeSettings:
    """What the runtime runs with: the model (name or directory), format, threads and hop."""

    model: str
    fmt: str
    threads: int
    hop_seconds: float
    profile_name: str | None
    reason: str
    choice: dict = field(default_factory=dict)  # --profile auto: the calibration table behind the choice

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_profile(spec: str) -> tuple[Profile, Path | None]:
    """A profile by name, ``.toml`` path, or device bundle (an installed bundle folder or a ``.tar.gz``, checked
    by `edge_ser.bundle`); returns the profile and the bundle folder (None if not a bundle)."""
    if bundle.is_bundle(spec):
        installed = bundle.open_bundle(Path(spec))
        return read_profile(installed.profile_path), installed.path
    return load_profile(spec), None



def profile_toml(spec: str) -> str:
    """The TOML text of a profile (name, ``.toml`` file or device bundle), the starting point of a custom profile.
    A bundle's profile names its model by the bundle's model folder, so the copy runs the same model."""
    p, bundle_dir = resolve_profile(spec)
    text = Path(p.path).read_text(encoding="utf-8")
    folder = bundle_dir / "models" / p.model if bundle_dir is not None else None
    if folder is not None and folder.is_dir():
        import re
        try:  # an archive is unpacked into the user's cache, which may be cleared: keep the model's name there
            folder.resolve().relative_to(bundle.cache_dir().resolve())
            note = (f"# model {p.model!r} came with the bundle {spec}; this names it as installed models are named "
                    f"(edge-ser models); to use the bundle's copy, install it (edge-ser install-bundle) and give "
                    f"its folder: DIR/models/{p.model}\n")
            return note + text
        except ValueError:  # an installed bundle folder: the copy runs the bundle's own model file
            text = re.sub(r'(?m)^(model\s*=\s*)"[^"]*"', lambda m: m.group(1) + json.dumps(str(folder.resolve())),
                          text, count=1)
    return text


def _check_options(fmt, threads, hop_seconds):
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if threads is not None and threads < 1:
        raise UserError("--threads must be >= 1")
    if hop_seconds is not None and not (0 < hop_seconds <= 10):
        raise UserError("--hop must be in (0, 10] seconds")


def runtime_settings(profile: str | None, model: str | None = None, fmt: str | None = None,
                     threads: int | None = None, hop_seconds: float | None = None) -> RuntimeSettings:
    """Settings for listen/classify.  Explicit options override the profile; no profile gives the defaults
    (``fine16-linear``, onnx, 1 thread, 0.5 s); ``auto`` / ``auto:NAME`` calibrates here and chooses a model.

    Raises UserError for an unknown profile or a bad option.
    """
    _check_options(fmt, threads, hop_seconds)
    overridden = [f"{k}={v}" for k, v in (("model", model), ("format", fmt), ("threads", threads),
                                            ("hop", hop_seconds)) if v is not None]
    if profile is None or profile == "":
        chosen_fmt = fmt or DEFAULT_FORMAT
        reason = "defaults" + (f" with {', '.join(overridden)}" if overridden else "")
        if model is None and DEFAULT_MODEL not in registry.known_names():
            model = next((n for n in FALLBACK_ORDER if n in registry.known_names()), None)
            if model is not None:
                reason += f"; default {DEFAULT_MODEL} is not installed, using {model}"
        if fmt is None and model is not None:
            available = _available_formats(model)
            if available and chosen_fmt not in available:
                chosen_fmt = available[0]
                reason += f" ({model} has no {DEFAULT_FORMAT} file, using {chosen_fmt})"
        return RuntimeSettings(
            model=model or DEFAULT_MODEL, fmt=chosen_fmt, threads=threads or DEFAULT_THREADS,
            hop_seconds=hop_seconds or DEFAULT_HOP_SECONDS, profile_name=None, reason=reason)
    if profile == AUTO or profile.startswith(AUTO + ":"):
        target = profile[len(AUTO) + 1:] or None
        return choose(target, model=model, fmt=fmt, threads=threads, hop_seconds=hop_seconds)
    p, bundle_dir = resolve_profile(profile)
    if bundle_dir is not None:
        in_bundle = bundle_dir / "models"
        bundled = {d.name for d in in_bundle.iterdir() if d.is_dir()} if in_bundle.is_dir() else set()
        model = str(in_bundle / (model or p.model)) if (model or p.model) in bundled else model
        if model is None:
            raise ProfileError(f"{profile}: the bundle does not hold its profile's model {p.model!r}")
    reason = f"profile {p.name}{' from bundle ' + str(profile) if bundle_dir else ''}: preferred model {p.model} ({p.format}, {p.threads} thread(s), hop {p.hop_seconds} s)"
    if overridden:
        reason += f", overridden by {', '.join(overridden)}"
    chosen_model, chosen_fmt = model or p.model, fmt or p.format
    if fmt is None:
        available = _available_formats(chosen_model)
        if available and chosen_fmt not in available:
            reason += f"; {chosen_model} has no {chosen_fmt} file, using {available[0]}"
            chosen_fmt = available[0]
        if chosen_fmt == "tflite" and not runners.tflite_available() and available and "onnx" in available:
            note = (f"profile {p.name} prefers TFLite, but no TFLite runtime is installed: running the ONNX file "
                    "(pip install 'edge-ser[tflite]' for TFLite)")
            log.warning(note)  # the one line that says so (the reason names the format chosen)
            chosen_fmt = "onnx"
    return RuntimeSettings(
        model=chosen_model, fmt=chosen_fmt, threads=threads or p.threads,
        hop_seconds=hop_seconds or p.hop_seconds, profile_name=p.name, reason=reason)


def _available_formats(model: str) -> list[str] | None:
    """The formats a model (name or directory) has, or None if it cannot be resolved here (the runtime will
    report that when it loads the model)."""
    try:
        return list(read_manifest(registry.resolve_model(model), verify=False).formats) or None
    except (ImportError, AttributeError, UserError, OSError):
        return None


def choose(target: str | None = None, model: str | None = None, fmt: str | None = None, threads: int | None = None,
           hop_seconds: float | None = None, seconds: float = 8.0) -> RuntimeSettings:
    """``--profile auto``: calibrate every candidate model and format on this machine and pick the most accurate
    (by its manifest's cross-validated metric) whose measured cost fits the budget.  The cost per hop is the
    CPU time of a speech hop through the stream engine (`edge_ser.bench.calibrate`), the memory the peak RSS of
    the process that measured it.

    target None: the budget of the profile detected for this machine, costs as measured.  target NAME: that
    profile's budget, with the costs measured here scaled by ``speed(this machine) / speed(NAME)`` (the profiles'
    estimated CPU-speed factors).  Candidates: the task of ``model`` if given (that model only), else the task of
    the budget profile's preferred model; ``fmt`` restricts the formats.
    """
    host, how = detect_profile()
    budget_profile = load_profile(target) if target else host
    scale = host.hardware.cpu_speed_factor / budget_profile.hardware.cpu_speed_factor if target else 1.0
    hop = hop_seconds or budget_profile.hop_seconds
    n_threads = threads or budget_profile.threads
    rows = bench.calibrate(model=model, task_of=model or budget_profile.model, fmt=fmt, threads=n_threads,
                           hop_seconds=hop, seconds=seconds, cache=CalibrationCache())
    if not rows:
        raise UserError("--profile auto: no installed model can be calibrated "
                        f"(task of {model or budget_profile.model}{', format ' + fmt if fmt else ''})")
    allowed_ms = budget_profile.budget.hop_ms_allowed(hop)
    for r in rows:
        r["hop_ms_on_target"] = r["hop_ms"] * scale
        r["fits"] = (r["hop_ms_on_target"] <= allowed_ms and r["rss_mb"] <= budget_profile.budget.memory_mb)
    fitting = [r for r in rows if r["fits"]]

    def accuracy(r):
        return r["accuracy"] if r["accuracy"] is not None else -1.0

    if fitting:
        best = max(fitting, key=lambda r: (accuracy(r), -r["hop_ms_on_target"]))
        verdict = (f"the most accurate that fits ({_fmt_acc(best)}; "
                   f"{best['hop_ms_on_target']:.2f} ms per hop <= {allowed_ms:.1f} ms allowed, "
                   f"peak {best['rss_mb']:.0f} MB <= {budget_profile.budget.memory_mb:.0f} MB)")
    else:
        best = min(rows, key=lambda r: r["hop_ms_on_target"])
        verdict = (f"NO candidate fits {allowed_ms:.1f} ms per hop / {budget_profile.budget.memory_mb:.0f} MB: "
                   f"using the cheapest ({best['hop_ms_on_target']:.2f} ms per hop, peak {best['rss_mb']:.0f} MB)")
    where = (f"budget of {budget_profile.name}" + (f" (this machine: {how})" if not target else
             f", costs measured on this machine ({how}, speed factor {host.hardware.cpu_speed_factor}) "
             f"scaled x{scale:.2f} to {budget_profile.name}'s estimated speed {budget_profile.hardware.cpu_speed_factor}"))
    reason = f"auto: chose {best['model']} ({best['format']}), {verdict}; {where}; {len(rows)} candidate(s) calibrated"
    return RuntimeSettings(
        model=best["path"], fmt=best["format"], threads=n_threads, hop_seconds=hop,
        profile_name=f"auto:{budget_profile.name}", reason=reason,
        choice={"budget_profile": budget_profile.name, "host_profile": host.name, "host_detected_by": how,
                "scale": scale, "allowed_hop_ms": allowed_ms, "memory_mb": budget_profile.budget.memory_mb,
                "chosen": best["model"], "candidates": rows})


def _fmt_acc(row: dict) -> str:
    return "accuracy unknown" if row["accuracy"] is None else f"{row['metric']} {row['accuracy']:.3f}"


def against_budget(result: dict, profile) -> dict:
    """Compare a bench result with a profile's budget.  Measured here; when this machine is not that board, the
    per-hop cost is scaled by the ratio of the profiles' estimated CPU-speed factors (an estimate, said so)."""
    host, how = detect_profile()
    same = host.name == profile.name
    scale = 1.0 if same else host.hardware.cpu_speed_factor / profile.hardware.cpu_speed_factor
    hop_ms = result["hop_ms"] * scale
    allowed = profile.budget.hop_ms_allowed(result["hop_seconds"])
    fits_cpu = hop_ms <= allowed
    fits_mem = result["peak_rss_mb"] <= profile.budget.memory_mb
    basis = ("measured on this board" if same else
             f"estimated: measured here ({how}) x{scale:.2f} (speed factor {host.hardware.cpu_speed_factor} -> "
             f"{profile.hardware.cpu_speed_factor}, estimates from public specs)")
    verdict = (f"{'fits' if fits_cpu and fits_mem else 'does NOT fit'}: {hop_ms:.2f} ms per hop "
               f"{'<=' if fits_cpu else '>'} {allowed:.1f} ms allowed, peak {result['peak_rss_mb']:.0f} MB "
               f"{'<=' if fits_mem else '>'} {profile.budget.memory_mb:.0f} MB ({basis})")
    return {"profile": profile.name, "hop_ms_on_board": round(hop_ms, 4), "allowed_hop_ms": allowed,
            "memory_mb": profile.budget.memory_mb, "fits": fits_cpu and fits_mem, "scale": round(scale, 4),
            "basis": basis, "verdict": verdict}


class CalibrationCache:
    """``--profile auto``'s measurements, kept per machine and model: one JSON file per candidate under
    ``$XDG_CACHE_HOME/edge-ser/calibration/`` (or ``EDGE_SER_CALIBRATION_CACHE``), keyed by this machine (CPU,
    cores, board, architecture, library versions), the model's file checksums, the format, threads, hop and audio
    length.  A model retrained, a library upgraded or another board gives another key; ``EDGE_SER_RECALIBRATE=1``
    measures again.  A cache that cannot be read or written is skipped (measured, not cached)."""

    ENV = "EDGE_SER_CALIBRATION_CACHE"

    def __init__(self, root: Path | None = None):
        if root is None:
            base = os.environ.get(self.ENV) or os.path.join(
                os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "edge-ser", "calibration")
            root = Path(base)
        self.root = Path(root)
        self.refresh = os.environ.get("EDGE_SER_RECALIBRATE", "") not in ("", "0")

    @staticmethod
    def key(manifest, fmt: str, threads: int, hop_seconds: float, seconds: float) -> str:
        from . import __version__
        m = bench.machine()
        machine = {k: m.get(k) for k in ("arch", "cpu", "board", "cores", "versions")}
        text = json.dumps({"machine": machine, "sha256": manifest.sha256, "format": fmt, "threads": threads,
                           "hop": hop_seconds, "seconds": seconds, "edge_ser": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, key: str) -> dict | None:
        if self.refresh:
            return None
        try:
            return json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, row: dict) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(row))
            os.replace(tmp, self.root / f"{key}.json")
        except OSError as exc:
            log.debug("calibration not cached: %s", exc)

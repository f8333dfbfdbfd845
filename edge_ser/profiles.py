"""Firmware profiles: one TOML file per board with its budget and the model it runs.

The profiles ship inside the package (``edge_ser/assets/profiles/*.toml``; the repository's ``firmware_profiles/``
points there, so there is one copy).  A profile holds the board's cores and RAM, a CPU-speed factor against a
reference x86 core (an estimate from public specs, not a measurement), the recogniser's budget (compute per hop,
share of one core, peak memory) and the preferred model, format, threads and hop.

`runtime_settings` turns ``--profile`` and the explicit options of ``listen``/``classify`` into the settings the
runtime uses: explicit options win over the profile, no profile gives the defaults, and ``auto`` (or
``auto:NAME``) calibrates on this machine with a short bench and picks the most accurate model whose measured
cost fits the budget (see `choose`).
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UserError
from .paths import search_dirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:  # the profiles need a TOML reader; 3.10 users install tomli
        tomllib = None

PROFILES_DIR = Path(__file__).resolve().parent / "assets" / "profiles"
PROFILES_ENV = "EDGE_SER_PROFILES"  # extra folder of *.toml profiles, searched before the shipped ones

DEFAULT_MODEL = "fine15-cnn"
DEFAULT_FORMAT = "onnx"
DEFAULT_THREADS = 1
DEFAULT_HOP_SECONDS = 0.5
FORMATS = ("onnx", "tflite")
AUTO = "auto"


class ProfileError(UserError):
    """An unknown or malformed firmware profile."""


@dataclass(frozen=True)
class Hardware:
    arch: str
    cores: int
    ram_mb: float
    cpu_speed_factor: float  # single-core speed against the reference x86 core (1.0)
    cpu_speed_factor_is: str = "estimate from public specs"


@dataclass(frozen=True)
class Budget:
    hop_latency_ms: float  # compute for one hop, end to end
    cpu_share: float  # average fraction of ONE core
    memory_mb: float  # peak resident memory of `edge-ser listen`

    def hop_ms_allowed(self, hop_seconds: float) -> float:
        """The per-hop compute both limits allow: the latency budget and the CPU share of one hop."""
        return min(self.hop_latency_ms, self.cpu_share * hop_seconds * 1000.0)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    hardware: Hardware
    budget: Budget
    model: str
    format: str
    threads: int
    hop_seconds: float
    path: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path
        return d


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


# --- reading profiles ---------------------------------------------------------------------------------------

def _search_dirs() -> list[Path]:
    return search_dirs(PROFILES_ENV, PROFILES_DIR)


def profile_paths() -> dict[str, Path]:
    """Profile name -> file, the shipped profiles overridden by those in ``$EDGE_SER_PROFILES``."""
    found: dict[str, Path] = {}
    for d in reversed(_search_dirs()):
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found[p.stem] = p
    return dict(sorted(found.items()))


def profile_names() -> list[str]:
    return list(profile_paths())


def list_profiles() -> list[Profile]:
    return [read_profile(p) for p in profile_paths().values()]


def _need(table: dict, key: str, kind, where: str):
    if key not in table:
        raise ProfileError(f"{where}: missing '{key}'")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProfileError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}")
    return value


def parse_profile(data: dict, where: str, path: str = "") -> Profile:
    """Validate a profile's TOML table; raise ProfileError naming the first problem."""
    for section in ("hardware", "budget", "runtime"):
        if not isinstance(data.get(section), dict):
            raise ProfileError(f"{where}: missing [{section}] table")
    hw, bu, rt = data["hardware"], data["budget"], data["runtime"]
    hardware = Hardware(
        arch=_need(hw, "arch", str, where + " [hardware]"),
        cores=_need(hw, "cores", int, where + " [hardware]"),
        ram_mb=_need(hw, "ram_mb", float, where + " [hardware]"),
        cpu_speed_factor=_need(hw, "cpu_speed_factor", float, where + " [hardware]"),
        cpu_speed_factor_is=str(hw.get("cpu_speed_factor_is", "estimate from public specs")),
    )
    budget = Budget(
        hop_latency_ms=_need(bu, "hop_latency_ms", float, where + " [budget]"),
        cpu_share=_need(bu, "cpu_share", float, where + " [budget]"),
        memory_mb=_need(bu, "memory_mb", float, where + " [budget]"),
    )
    profile = Profile(
        name=_need(data, "name", str, where),
        description=str(data.get("description", "")),
        hardware=hardware,
        budget=budget,
        model=_need(rt, "model", str, where + " [runtime]"),
        format=_need(rt, "format", str, where + " [runtime]"),
        threads=_need(rt, "threads", int, where + " [runtime]"),
        hop_seconds=_need(rt, "hop_seconds", float, where + " [runtime]"),
        path=path,
    )
    checks = [
        (hardware.cores >= 1, "[hardware] cores must be >= 1"),
        (hardware.ram_mb > 0, "[hardware] ram_mb must be > 0"),
        (hardware.cpu_speed_factor > 0, "[hardware] cpu_speed_factor must be > 0"),
        (budget.hop_latency_ms > 0, "[budget] hop_latency_ms must be > 0"),
        (0 < budget.cpu_share <= hardware.cores, "[budget] cpu_share must be in (0, cores]"),
        (0 < budget.memory_mb <= hardware.ram_mb, "[budget] memory_mb must be in (0, ram_mb]"),
        (profile.format in FORMATS, f"[runtime] format must be one of {', '.join(FORMATS)}"),
        (1 <= profile.threads <= hardware.cores, "[runtime] threads must be in [1, cores]"),
        (0 < profile.hop_seconds <= 10, "[runtime] hop_seconds must be in (0, 10]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ProfileError(f"{where}: {message}")
    return profile


def read_profile(path: Path) -> Profile:
    path = Path(path)
    if tomllib is None:  # pragma: no cover
        raise ProfileError("reading firmware profiles needs Python >= 3.11 or the 'tomli' package")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    return parse_profile(data, str(path), str(path))


def load_profile(name: str) -> Profile:
    """A profile by name (``pi4b``) or by path to a ``.toml`` file."""
    if name.endswith(".toml") or os.sep in name:
        p = Path(name)
        if p.is_dir():  # not a bundle folder (resolve_profile checks those first)
            if (p / "profile.toml").is_file():
                raise ProfileError(f"{name}: not an installed bundle (no bundle.json); to use its profile give "
                                   f"{p / 'profile.toml'}")
            raise ProfileError(f"{name}: folder has no profile.toml (give a profile's .toml file or an installed "
                               "bundle folder)")
        if not p.is_file():
            raise ProfileError(f"{name}: no such profile file")
        return read_profile(p)
    paths = profile_paths()
    if name not in paths:
        raise ProfileError(f"unknown profile {name!r} (known: {', '.join(paths) or 'none'}, auto)")
    return read_profile(paths[name])


def resolve_profile(spec: str) -> tuple[Profile, Path | None]:
    """A profile by name, ``.toml`` path, or device bundle (an installed bundle folder or a ``.tar.gz``, checked
    by `edge_ser.bundle`); returns the profile and the bundle folder (None if not a bundle)."""
    from . import bundle
    if bundle.is_bundle(spec):
        installed = bundle.open_bundle(Path(spec))
        return read_profile(installed.profile_path), installed.path
    return load_profile(spec), None


# --- this machine ---------------------------------------------------------------------------------------------

_BOARD_PATTERNS = (  # /proc/device-tree/model text -> profile
    ("Raspberry Pi Zero 2", "pi-zero-2w"),
    ("Raspberry Pi 3", "pi3b"),
    ("Raspberry Pi 4", "pi4b"),
    ("Raspberry Pi 5", "pi5"),
    ("Orin Nano", "jetson-orin-nano"),
)


def board_model() -> str | None:
    """The board's model string from the device tree (ARM boards), or None."""
    for p in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            return Path(p).read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or None
        except OSError:
            continue
    return None


def detect_profile() -> tuple[Profile, str]:
    """The shipped profile closest to this machine and how it was recognised."""
    board = board_model()
    if board:
        for pattern, name in _BOARD_PATTERNS:
            if pattern in board:
                return load_profile(name), f"board {board!r}"
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return load_profile("x86-server"), f"{machine} CPU"
    return load_profile("pi4b"), f"unrecognised {machine} board {board or ''!s} (assumed pi4b-class)".replace("  ", " ")


# --- settings -------------------------------------------------------------------------------------------------

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
    (``fine15-cnn``, onnx, 1 thread, 0.5 s); ``auto`` / ``auto:NAME`` calibrates here and chooses a model.

    Raises UserError for an unknown profile or a bad option.
    """
    _check_options(fmt, threads, hop_seconds)
    overridden = [f"{k}={v}" for k, v in (("model", model), ("format", fmt), ("threads", threads),
                                            ("hop", hop_seconds)) if v is not None]
    if profile is None or profile == "":
        chosen_fmt = fmt or DEFAULT_FORMAT
        reason = "defaults" + (f" with {', '.join(overridden)}" if overridden else "")
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
    reason = f"profile {p.name}{' from bundle ' + str(bundle_dir) if bundle_dir else ''}: preferred model {p.model} ({p.format}, {p.threads} thread(s), hop {p.hop_seconds} s)"
    if overridden:
        reason += f", overridden by {', '.join(overridden)}"
    chosen_model, chosen_fmt = model or p.model, fmt or p.format
    if fmt is None:
        available = _available_formats(chosen_model)
        if available and chosen_fmt not in available:
            reason += f"; {chosen_model} has no {chosen_fmt} file, using {available[0]}"
            chosen_fmt = available[0]
    return RuntimeSettings(
        model=chosen_model, fmt=chosen_fmt, threads=threads or p.threads,
        hop_seconds=hop_seconds or p.hop_seconds, profile_name=p.name, reason=reason)


def _available_formats(model: str) -> list[str] | None:
    """The formats a model (name or directory) has, or None if it cannot be resolved here (the runtime will
    report that when it loads the model)."""
    try:
        from . import models
        from .manifest import read_manifest
        return list(read_manifest(models.resolve_model(model), verify=False).formats) or None
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
    from . import bench  # the calibration measures with the bench code (runtime-only imports)

    host, how = detect_profile()
    budget_profile = load_profile(target) if target else host
    scale = host.hardware.cpu_speed_factor / budget_profile.hardware.cpu_speed_factor if target else 1.0
    hop = hop_seconds or budget_profile.hop_seconds
    n_threads = threads or budget_profile.threads
    rows = bench.calibrate(model=model, task_of=model or budget_profile.model, fmt=fmt, threads=n_threads,
                           hop_seconds=hop, seconds=seconds)
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

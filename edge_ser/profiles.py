"""Firmware profiles: one TOML file per board with its budget and the model it runs (the schema, reading, and
which board this is).  What the runtime does with a profile is `edge_ser.settings`.

The profiles ship inside the package (``edge_ser/assets/profiles/*.toml``; the repository's ``firmware_profiles/``
points there, so there is one copy).  A profile holds the board's cores and RAM, a CPU-speed factor against a
reference x86 core (an estimate from public specs, not a measurement), the recogniser's budget (compute per hop,
share of one core, peak memory) and the preferred model, format, threads and hop.

"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
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

FORMATS = ("onnx", "tflite")


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

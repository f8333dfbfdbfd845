"""Device bundles: one ``.tar.gz`` with a profile, its model(s), their manifests, sha256 checksums and a README.

Layout inside the archive (no top folder; regular files and folders only)::

    bundle.json           what is inside: profile, models, edge-ser version, sha256 of every file
    SHA256SUMS            the same checksums in ``sha256sum -c`` format
    README.md             how to run it on the device
    profile.toml          the firmware profile
    models/NAME/...       manifest.json + model.onnx / model.tflite

`install` refuses an archive with a member that is not a regular file or folder (symlinks, hard links,
devices), an absolute path or ``..``, a file not listed in the checksums or a checksum that fails, and any
model whose manifest does not verify.  It extracts to a temporary folder beside the target and moves the
files into place only when everything checks; it never overwrites existing files without ``force``.
A directory holding ``bundle.json`` (an installed bundle) or a ``.tar.gz`` bundle can be given as ``--profile``
(see `edge_ser.settings.runtime_settings`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import __version__
from .errors import UserError
from .manifest import read_manifest, sha256_of
from .paths import check_output_file

BUNDLE_VERSION = 1
INDEX = "bundle.json"
SUMS = "SHA256SUMS"
PROFILE_FILE = "profile.toml"
MAX_MEMBERS = 1000
MAX_BYTES = 2 << 30  # 2 GiB unpacked: a bundle holds a few small models


class BundleError(UserError):
    """A bundle that cannot be built, trusted or installed."""


@dataclass
class Installed:
    path: Path
    index: dict

    @property
    def profile_path(self) -> Path:
        return self.path / PROFILE_FILE

    def model_dir(self, name: str) -> Path:
        return self.path / "models" / name


# --- building ---------------------------------------------------------------------------------------------------

_README = """# edge-ser bundle for {profile}

{description}

Contents: the firmware profile `profile.toml`, the model(s) {models} under `models/`, `bundle.json` and
`SHA256SUMS` (sha256 of every file).  Built {created} with edge-ser {version}.

On the device (the runtime install only: `pip install 'edge-ser[tflite,mic]'`):

```
edge-ser install-bundle {name} --to ~/edge-ser-bundle     # checks every checksum, refuses unsafe members
edge-ser listen --profile ~/edge-ser-bundle                # the profile's model from the bundle
edge-ser bench --profile ~/edge-ser-bundle                 # measure it on this board against the budget
```

`sha256sum -c SHA256SUMS` inside the folder checks the files by hand.
Budget of this profile: {budget}.
"""


def _tar_add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(mtime)
    tar.addfile(info, io.BytesIO(data))


def build(profile_name: str, out: Path, models: list[str] | None = None, force: bool = False) -> dict:
    """Write a bundle for a firmware profile: its preferred model plus ``models``.  Returns the bundle index."""
    from . import registry
    from .profiles import load_profile

    if profile_name == "auto" or profile_name.startswith("auto:"):
        raise BundleError("package needs a named profile (auto chooses on the device itself)")
    out = check_output_file(out, force, BundleError)
    profile = load_profile(profile_name)
    specs = [profile.model] + [m for m in (models or []) if m != profile.model]
    files: dict[str, Path] = {}
    names = []
    for spec in specs:
        path = registry.resolve_model(spec)
        manifest = read_manifest(path, verify=True)  # never package a model that does not verify
        name = manifest.name if spec == manifest.name or not Path(spec).is_dir() else Path(path).name
        if name in names:
            raise BundleError(f"two models named {name!r}")
        names.append(name)
        files[f"models/{name}/manifest.json"] = path / "manifest.json"
        for fname in manifest.sha256:
            files[f"models/{name}/{fname}"] = path / fname
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    readme = _README.format(
        profile=profile.name, description=profile.description, models=", ".join(f"`{n}`" for n in names),
        created=created, version=__version__, name=out.name,
        budget=(f"{profile.budget.hop_latency_ms:g} ms per {profile.hop_seconds:g} s hop, {profile.budget.cpu_share:g}"
                f" of one core, {profile.budget.memory_mb:g} MB; runs {profile.model} ({profile.format}, "
                f"{profile.threads} thread(s))"))
    texts = {PROFILE_FILE: Path(profile.path).read_bytes(), "README.md": readme.encode()}
    sha = {name: sha256_of(p) for name, p in files.items()}
    sha.update({name: hashlib.sha256(data).hexdigest() for name, data in texts.items()})
    index = {"bundle_version": BUNDLE_VERSION, "profile": profile.name, "model": names[0], "models": names,
             "format": profile.format, "created": created, "edge_ser_version": __version__,
             "sha256": dict(sorted(sha.items()))}
    index_bytes = (json.dumps(index, indent=2) + "\n").encode()
    sums = "".join(f"{h}  {n}\n" for n, h in sorted({**sha, INDEX: hashlib.sha256(index_bytes).hexdigest()}.items()))
    mtime = time.time()
    tmp = out.with_name(out.name + ".part")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _tar_add_bytes(tar, INDEX, index_bytes, mtime)
            _tar_add_bytes(tar, SUMS, sums.encode(), mtime)
            for name, data in texts.items():
                _tar_add_bytes(tar, name, data, mtime)
            for name, p in sorted(files.items()):
                _tar_add_bytes(tar, name, p.read_bytes(), mtime)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dict(index, path=str(out), bytes=out.stat().st_size, bundle_sha256=sha256_of(out))


# --- checking and installing ------------------------------------------------------------------------------------

def _safe_name(name: str, where: str) -> str:
    """The member's normalised relative path, or raise (naming ``where``, the bundle) for an absolute or escaping
    one."""
    if not name or "\\" in name or "\0" in name:
        raise BundleError(f"{where}: unsafe member name {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/"):
        raise BundleError(f"{where}: member {name!r} has an absolute path (refused)")
    parts = [part for part in p.parts if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise BundleError(f"{where}: member {name!r} would extract outside the target folder (refused)")
    return "/".join(parts)


def _is_top(name: str) -> bool:
    """True for the archive's own top folder as tar writes it (``.``, ``./``)."""
    return bool(name) and all(part == "." for part in PurePosixPath(name).parts) and not name.startswith("/")


def check_members(tar: tarfile.TarFile, where: str) -> list[tuple[tarfile.TarInfo, str]]:
    """Every member, validated: regular files and folders only, relative paths inside the target, no duplicates.
    Errors start with ``where`` (the bundle's path)."""
    members = []
    seen = set()
    total = 0
    try:  # reads the whole archive: a truncated or corrupt .tar.gz fails here
        infos = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BundleError(f"{where}: damaged archive ({exc})") from None
    for info in infos:
        if len(members) >= MAX_MEMBERS:
            raise BundleError(f"{where}: more than {MAX_MEMBERS} members (refused)")
        if info.isdir() and _is_top(info.name):  # `tar -czf b.tar.gz -C dir .` adds the folder itself as "."
            continue
        name = _safe_name(info.name, where)
        if info.issym() or info.islnk():
            raise BundleError(f"{where}: member {info.name!r} is a {'symbolic' if info.issym() else 'hard'} link (refused)")
        if not (info.isfile() or info.isdir()):
            raise BundleError(f"{where}: member {info.name!r} is not a regular file or folder (refused)")
        if name in seen:
            raise BundleError(f"{where}: member {name!r} appears twice (refused)")
        seen.add(name)
        total += max(0, info.size)
        if total > MAX_BYTES:
            raise BundleError(f"{where}: unpacked size exceeds 2 GiB (refused)")
        members.append((info, name))
    return members


def _open(bundle: Path) -> tarfile.TarFile:
    bundle = Path(bundle)
    if not bundle.is_file():
        raise BundleError(f"{bundle}: no such bundle file")
    try:
        return tarfile.open(bundle, "r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{bundle}: not a readable bundle ({exc})") from None


def _verify_tree(root: Path, where: str) -> dict:
    """Check an extracted bundle: every file listed with a matching sha256, nothing unlisted, models verify."""
    index_path = root / INDEX
    if not index_path.is_file():
        raise BundleError(f"{where}: no {INDEX} (not an edge-ser bundle)")
    try:
        index = json.loads(index_path.read_text())
        sha = dict(index["sha256"])
        models = list(index["models"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{where}: unreadable {INDEX} ({exc})") from None
    if index.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"{where}: bundle_version {index.get('bundle_version')!r} is not supported")
    sums_path = root / SUMS
    if not sums_path.is_file():
        raise BundleError(f"{where}: no {SUMS}")
    sums = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            h, _, name = line.partition("  ")
            sums[name.strip()] = h.strip()
    if sums.get(INDEX) != sha256_of(index_path):
        raise BundleError(f"{where}: {INDEX} does not match its checksum in {SUMS} (tampered)")
    for name, h in sha.items():
        if sums.get(name) != h:
            raise BundleError(f"{where}: {name}: {INDEX} and {SUMS} disagree (tampered)")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    unlisted = sorted(present - set(sha) - {INDEX, SUMS})
    if unlisted:
        raise BundleError(f"{where}: {unlisted[0]} is not listed in the checksums (refused)")
    for name, h in sorted(sha.items()):
        p = root / _safe_name(name, where)
        if p.is_symlink() or not p.is_file():
            raise BundleError(f"{where}: {name} is missing")
        if sha256_of(p) != h:
            hint = ""
            if name == PROFILE_FILE:  # an edited profile: the supported way is a copy outside the bundle
                hint = (f"; to customise a profile, leave the bundle as it is and copy the profile: edge-ser "
                        f"profiles {index.get('profile', 'NAME')} --toml > mine.toml (or from an unedited bundle: "
                        "edge-ser profiles BUNDLE --toml), edit mine.toml, run with --profile mine.toml")
            raise BundleError(f"{where}: {name} does not match its sha256 (corrupt or tampered){hint}")
    if not (root / PROFILE_FILE).is_file():
        raise BundleError(f"{where}: no {PROFILE_FILE}")
    for m in models:
        try:
            read_manifest(root / "models" / _safe_name(m, where), verify=True)
        except BundleError:
            raise
        except UserError as exc:  # name the bundle, and the model by its path inside it
            raise BundleError(f"{where}: {str(exc).replace(str(root) + os.sep, '')}") from None
    return index


def verify(path: Path) -> dict:
    """Check an installed bundle folder (checksums, manifests); returns its index."""
    path = Path(path)
    return _verify_tree(path, str(path))


def install(bundle: Path, to: Path, force: bool = False) -> Installed:
    """Check a bundle and extract it into ``to``.  Existing files are never overwritten without ``force``."""
    bundle, to = Path(bundle), Path(to)
    with _open(bundle) as tar:
        members = check_members(tar, str(bundle))
        blocker = next((p for p in (to, *to.parents) if p.exists()), None)  # the target or its nearest parent
        if blocker is not None and not blocker.is_dir():
            raise BundleError(f"{bundle}: cannot install into {to}: {blocker} exists and is not a folder")
        if to.is_dir() and not force:
            clashes = [n for info, n in members if info.isfile() and (to / n).exists()]
            if clashes:
                raise BundleError(f"{bundle}: {to / clashes[0]} already exists (use --force to overwrite)")
        try:
            to.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".edge-ser-bundle-", dir=to.parent))
        except OSError as exc:
            raise BundleError(f"{bundle}: cannot install into {to}: {exc.strerror or exc}") from None
        try:
            for info, name in members:
                dest = staging / name
                if info.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(info)
                if src is None:
                    raise BundleError(f"{bundle}: member {name!r} cannot be read")
                with src, open(dest, "wb") as f:
                    shutil.copyfileobj(src, f)
            index = _verify_tree(staging, str(bundle))
            to.mkdir(parents=True, exist_ok=True)
            for p in sorted(staging.rglob("*")):
                if p.is_file():
                    dest = to / p.relative_to(staging)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(p, dest)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise BundleError(f"{bundle}: damaged archive ({exc})") from None
        except OSError as exc:  # a full disk, a read-only or clashing target folder
            raise BundleError(f"{bundle}: cannot install into {to}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Installed(to, index)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-ser" / "bundles"


def open_bundle(path: Path) -> Installed:
    """A bundle as the runtime uses it: an installed folder (checked) or a ``.tar.gz`` (checked and extracted
    once into the user's cache, keyed by the archive's sha256)."""
    path = Path(path)
    if path.is_dir():
        return Installed(path, verify(path))
    if not path.is_file():
        raise BundleError(f"{path}: no such bundle")
    target = cache_dir() / sha256_of(path)
    if (target / INDEX).is_file():
        try:
            return Installed(target, verify(target))
        except UserError:
            shutil.rmtree(target, ignore_errors=True)
    return install(path, target, force=False)


def is_bundle(spec: str) -> bool:
    p = Path(spec)
    return (p.is_dir() and (p / INDEX).is_file()) or (p.is_file() and p.name.endswith((".tar.gz", ".tgz")))

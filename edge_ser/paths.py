"""Where edge-ser looks for its files and how it writes the user's.

- `search_dirs`: a shipped asset folder, with an optional folder named by an environment variable searched first
  (models: ``$EDGE_SER_MODELS``, profiles: ``$EDGE_SER_PROFILES``).
- `check_output_file` / `check_output_dir`: the one rule for a file (or a folder) the user asks us to write:
  never overwrite without ``force``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def search_dirs(env_var: str, default: Path) -> list[Path]:
    """``[$env_var (if set), default]``: the user's folder first, then the shipped one."""
    extra = os.environ.get(env_var)
    return ([Path(extra)] if extra else []) + [Path(default)]


def check_output_file(path, force: bool = False, error: type[UserError] = UserError, hint: str = "") -> Path:
    """Refuse to write ``path`` if it exists (unless ``force``), is a directory, or its folder does not exist.
    Raises ``error`` (a UserError) with a one-line reason; ``hint`` is added to the directory message."""
    path = Path(path)
    if path.exists() and not force:
        raise error(f"{path}: already exists (use --force to overwrite)")
    if path.is_dir():
        raise error(f"{path}: is a directory" + (f" ({hint})" if hint else ""))
    if not path.parent.is_dir():
        raise error(f"{path.parent}: no such directory")
    return path


def check_output_dir(path, force: bool = False, files=None, error: type[UserError] = UserError) -> Path:
    """The same rule for a folder the user asks us to write into: refuse if ``path`` is a file, or if it already
    holds any of ``files`` (``None``: anything at all) unless ``force``.  A missing or empty folder is fine."""
    path = Path(path)
    existing = path  # the folder itself or, if it does not exist yet, its nearest existing parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise error(f"{existing}: is a file, not a directory")
    if path.is_dir() and not force:
        if files is None:
            if any(path.iterdir()):
                raise error(f"{path}: exists (use --force to overwrite)")
        else:
            present = [f for f in files if (path / f).exists() or (path / f).is_symlink()]
            if present:
                raise error(f"{path}: already holds {', '.join(present)} (use --force to overwrite)")
    for f in files or ():
        if (path / f).is_dir():
            raise error(f"{path / f}: is a directory")
    return path

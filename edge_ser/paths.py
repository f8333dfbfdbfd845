"""Where edge-ser looks for its files and how it writes the user's.

- `search_dirs`: a shipped asset folder, with an optional folder named by an environment variable searched first
  (models: ``$EDGE_SER_MODELS``, profiles: ``$EDGE_SER_PROFILES``).
- `check_output_file`: the one rule for a file the user asks us to write: never overwrite without ``force``.
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

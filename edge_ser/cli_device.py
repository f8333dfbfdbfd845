"""Device commands: ``profiles``, ``bench``, ``package`` and ``install-bundle`` (registered on edge_ser.cli.app)."""
from __future__ import annotations

import json
from typing import Optional

import typer

from .cli import app
from . import profiles as _profiles


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


@app.command("profiles")
def profiles_cmd(
    name: Optional[str] = typer.Argument(None, help="A profile to show (default: list them all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """List the firmware profiles or show one: board, budget, preferred model."""
    if name is not None:
        p = _profiles.load_profile(name)
        if as_json:
            _print_json(p.to_dict())
            return
        hw, b = p.hardware, p.budget
        print(f"{p.name}: {p.description}")
        print(f"  hardware: {hw.arch}, {hw.cores} cores, {hw.ram_mb:g} MB RAM, "
              f"CPU speed {hw.cpu_speed_factor:g}x the reference x86 core ({hw.cpu_speed_factor_is})")
        print(f"  budget:   {b.hop_latency_ms:g} ms per hop, {b.cpu_share:g} of one core, {b.memory_mb:g} MB peak "
              f"(allows {b.hop_ms_allowed(p.hop_seconds):g} ms of compute per {p.hop_seconds:g} s hop)")
        print(f"  runs:     {p.model} ({p.format}), {p.threads} thread(s), hop {p.hop_seconds:g} s")
        print(f"  file:     {p.path}")
        return
    items = _profiles.list_profiles()
    if as_json:
        _print_json([p.to_dict() for p in items])
        return
    print(f"{'name':18} {'cores':>5} {'RAM MB':>7} {'speed':>6} {'hop ms':>7} {'share':>6} {'mem MB':>7}  model")
    for p in items:
        print(f"{p.name:18} {p.hardware.cores:5d} {p.hardware.ram_mb:7g} {p.hardware.cpu_speed_factor:6.2f} "
              f"{p.budget.hop_latency_ms:7g} {p.budget.cpu_share:6.2f} {p.budget.memory_mb:7g}  "
              f"{p.model} ({p.format}, {p.threads}t, hop {p.hop_seconds:g} s)")
    print("speed: estimated single-core speed against a reference x86 core (from public specs, not measured); "
          "`--profile auto` measures on this machine.")

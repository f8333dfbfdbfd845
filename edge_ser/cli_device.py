"""Device commands: ``profiles``, ``bench``, ``package`` and ``install-bundle`` (registered on edge_ser.cli.app)."""
from __future__ import annotations

import json
from typing import Optional

import typer

from .cli import app
from . import profiles as _profiles
from .errors import UserError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


@app.command("profiles")
def profiles_cmd(
    name: Optional[str] = typer.Argument(None, help="A profile to show (default: list them all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    as_toml: bool = typer.Option(False, "--toml", help="Print the profile's TOML file, to customise it: "
                                 "edge-ser profiles pi4b --toml > mine.toml, edit, then --profile mine.toml."),
):
    """List the firmware profiles or show one: board, budget, preferred model."""
    if as_toml:
        if name is None:
            raise UserError("--toml shows one profile: edge-ser profiles NAME --toml")
        from .settings import profile_toml
        print(profile_toml(name), end="")
        return
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


@app.command("bench")
def bench_cmd(
    model: Optional[str] = typer.Option(None, "--model", help="Model name or directory (default: the profile's, "
                                        "else fine16-linear)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="A firmware profile, or 'auto' / 'auto:NAME' "
                                          "to calibrate here and choose the model that fits the budget."),
    seconds: float = typer.Option(20.0, "--seconds", help="Seconds of audio to stream through the model (at least "
                                  "its window + 3 hops: 4 s for the default models at a 0.5 s hop)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads (default: profile's, "
                                          "else 1)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite (default: profile's, else onnx if "
                                      "the model has it)."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Hop in seconds (default: profile's, else 0.5)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Measure on this machine: per-hop cost, real-time factor, peak memory, cold start, model size."""
    import sys
    from . import bench
    from . import settings as _settings
    settings = _settings.runtime_settings(profile, model=model, fmt=fmt, threads=threads, hop_seconds=hop)
    if settings.profile_name and settings.profile_name.startswith("auto"):
        print(settings.reason, file=sys.stderr if as_json else sys.stdout)
    result = bench.run(settings.model, fmt=settings.fmt, threads=settings.threads,
                       hop_seconds=settings.hop_seconds, seconds=seconds)
    result["settings"] = {k: v for k, v in settings.to_dict().items() if k != "choice"}
    if settings.choice:
        result["auto_choice"] = settings.choice
    if profile and not profile.startswith("auto"):
        result["budget"] = _settings.against_budget(result, _settings.resolve_profile(profile)[0])
    if as_json:
        _print_json(result)
        return
    m = result["machine"]
    print(f"{result['model']} ({result['format']}, {result['threads']} thread(s)) on {m['cpu']} "
          f"({m['arch']}, {m['cores']} cores, load {m['loadavg_1_5_15']})")
    print(f"  per {result['hop_seconds']:g} s hop: frontend {result['frontend_ms']:.3f} ms, features "
          f"{result['features_ms']:.3f} ms, inference {result['inference_ms']:.3f} ms; whole hop "
          f"{result['hop_ms']:.3f} ms" + (f" (p95 {result['hop_ms_p95']:.3f})" if "hop_ms_p95" in result else ""))
    print(f"  real-time factor {result['rtf']:.5f}; peak RSS {result['peak_rss_mb']:.1f} MB; cold start "
          f"{result['cold_start_s']:.3f} s; model file {result['model_bytes']} bytes")
    if "budget" in result:
        b = result["budget"]
        print(f"  {b['profile']}: {b['verdict']}")
    print(f"  protocol: {result['protocol']}")


@app.command("package")
def package_cmd(
    profile: str = typer.Option(..., "--profile", help="The firmware profile to package (its preferred model)."),
    out: str = typer.Option(..., "--out", help="The bundle file to write (.tar.gz)."),
    model: Optional[list[str]] = typer.Option(None, "--model", help="Another model to include (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON."),
):
    """Bundle a profile's model(s), the profile, manifests, sha256 checksums and a device README."""
    from . import bundle
    index = bundle.build(profile, out, models=list(model or []), force=force)
    if as_json:
        _print_json(index)
        return
    print(f"wrote {index['path']} ({index['bytes']} bytes, sha256 {index['bundle_sha256'][:16]}...): profile "
          f"{index['profile']}, models {', '.join(index['models'])}, {len(index['sha256'])} checksummed files")
    print(f"on the device: edge-ser install-bundle {index['path']} --to DIR && edge-ser listen --profile DIR")


@app.command("install-bundle")
def install_bundle_cmd(
    bundle_file: str = typer.Argument(..., help="A bundle written by `edge-ser package`."),
    to: str = typer.Option(..., "--to", help="The folder to install into."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist in --to."),
    as_json: bool = typer.Option(False, "--json", help="Print the bundle manifest as JSON."),
):
    """Check a bundle (checksums, safe member paths, model manifests) and install it into a folder."""
    from pathlib import Path
    from . import bundle
    installed = bundle.install(Path(bundle_file), Path(to), force=force)
    if as_json:
        _print_json(dict(installed.index, path=str(installed.path)))
        return
    print(f"installed {bundle_file} into {installed.path}: profile {installed.index['profile']}, models "
          f"{', '.join(installed.index['models'])}; all {len(installed.index['sha256'])} checksums verified")
    print(f"run: edge-ser listen --profile {installed.path}")

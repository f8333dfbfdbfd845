"""Where `edge-ser listen`'s memory goes: resident (VmRSS) and peak (VmHWM) memory of the real
``edge-ser listen --input FILE --fast --json`` command at each stage, a fresh process per model and format.

    python -m benchmarks.listen_memory [--model NAME_OR_DIR]... [--format onnx|tflite] [--seconds 30] [--json]

The child process runs the CLI itself (``edge_ser.cli.main``) with hooks that only read /proc/self/status:

- ``start``: the interpreter, before anything of edge_ser is imported;
- ``cli parsed``: typer (which coerces the options with pydantic), numpy, edge_ser, the settings resolved;
- ``runtime imported``: onnxruntime (or LiteRT) imported, as ``load_model`` would;
- ``model loaded``: manifest verified, session/interpreter built (for the random forests this is where the
  peak is: onnxruntime builds its tree tables from several copies of the tree attributes, then frees them);
- ``engine built``: the stream engine and its warm-up call (the features' first call, and its imports);
- ``first event`` / ``last event``: streaming the file.

``peak_at`` names the first stage at whose end VmHWM had reached its final value.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "#listen-memory "


def _status() -> tuple[float, float]:
    rss = hwm = float("nan")
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024.0
    return rss, hwm


def _mark(stage: str) -> None:
    rss, hwm = _status()
    sys.stderr.write(PREFIX + json.dumps({"stage": stage, "rss_mb": round(rss, 1), "hwm_mb": round(hwm, 1)}) + "\n")
    sys.stderr.flush()


def _child(args: dict) -> int:
    """Run ``edge-ser listen`` in this process with stage marks (nothing of edge_ser is imported before)."""
    import atexit
    _mark("start")
    from edge_ser import recognizer, registry as models, stream

    load_model, engine_init = models.load_model, stream.Engine.__init__
    engine_events = recognizer.Recognizer.events  # what `listen` streams through

    def hooked_load(spec, fmt=None, threads=1):
        _mark("cli parsed")
        if fmt == "tflite":
            from edge_ser import runners
            runners._tflite_interpreter_class()
        else:
            import onnxruntime  # noqa: F401  (load_model imports it first thing for an ONNX model)
        _mark("runtime imported")
        model = load_model(spec, fmt=fmt, threads=threads)
        _mark("model loaded")
        return model

    def hooked_init(self, *a, **k):
        engine_init(self, *a, **k)
        _mark("engine built")

    def hooked_events(self, *a, **k):
        first = True
        for event in engine_events(self, *a, **k):
            yield event
            if first:
                _mark("first event")
                first = False
        _mark("last event")

    models.load_model = hooked_load
    stream.Engine.__init__ = hooked_init
    recognizer.Recognizer.events = hooked_events
    atexit.register(_mark, "exit")
    sys.argv = ["edge-ser", "listen", "--input", args["wav"], "--fast", "--json", "--quiet", "--model",
                args["model"], "--threads", str(args.get("threads", 1))] + (
        ["--format", args["format"]] if args.get("format") else [])
    from edge_ser.cli import main
    return main()


def stages(model: str, fmt: str | None, wav: Path, threads: int = 1) -> dict:
    """Per-stage RSS/HWM of one ``edge-ser listen --input WAV --fast`` in a fresh process."""
    import subprocess
    child = json.dumps({"model": str(model), "format": fmt, "wav": str(wav), "threads": threads})
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.listen_memory", "--child", child],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    marks = [json.loads(line[len(PREFIX):]) for line in proc.stderr.splitlines() if line.startswith(PREFIX)]
    if proc.returncode != 0 or not marks:
        errors = [line for line in proc.stderr.splitlines() if not line.startswith(PREFIX)]
        return {"model": str(model), "format": fmt, "error": (errors or ["no output"])[-1]}
    peak = marks[-1]["hwm_mb"]
    peak_at = next(m["stage"] for m in marks if m["hwm_mb"] >= peak)
    return {"model": Path(str(model)).name, "format": fmt, "stages": marks, "peak_rss_mb": peak, "peak_at": peak_at,
            "protocol": "edge-ser listen --input WAV --fast --json in a fresh process; VmRSS/VmHWM from "
                        "/proc/self/status at the end of each stage (benchmarks/listen_memory.py)"}


def replay_wav(folder: Path, seconds: float = 30.0) -> Path:
    """The harness's replay file: the shipped sample clip looped to ``seconds``, 16-bit WAV."""
    import numpy as np
    import soundfile as sf

    from edge_ser import bench
    from edge_ser.audio import load_audio

    wav = Path(folder) / "replay.wav"
    sf.write(wav, np.resize(load_audio(bench.SAMPLE_CLIP), int(seconds * bench.SAMPLE_RATE)), bench.SAMPLE_RATE,
             subtype="PCM_16")
    return wav


def table(results: list[dict]) -> str:
    ok = [r for r in results if "stages" in r]
    if not ok:
        return "\n".join(f"{r['model']} {r['format']}: error: {r['error']}" for r in results)
    names = [m["stage"] for m in ok[0]["stages"]]
    head = "| stage | " + " | ".join(f"{r['model']} {r['format'] or ''}".strip() for r in ok) + " |"
    rows = [head, "|---" * (len(ok) + 1) + "|"]
    for i, name in enumerate(names):
        cells = []
        for r in ok:
            m = r["stages"][i] if i < len(r["stages"]) else None
            cells.append(f"{m['rss_mb']:.1f} / {m['hwm_mb']:.1f}" if m else "–")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows.append("| **peak (stage)** | " + " | ".join(f"**{r['peak_rss_mb']:.1f}** ({r['peak_at']})" for r in ok)
                + " |")
    errors = [f"{r['model']} {r['format']}: error: {r['error']}" for r in results if "error" in r]
    return "\n".join(rows + errors) + "\n\nMB resident / peak (VmRSS / VmHWM) at the end of each stage."


def main(argv=None) -> int:
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(prog="python -m benchmarks.listen_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="model name or directory (repeatable; default: the four "
                    "default models, every format they have)")
    ap.add_argument("--format", choices=("onnx", "tflite"), help="only this format")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the replayed file (default 30)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    from edge_ser.manifest import read_manifest
    from edge_ser.registry import resolve_model

    from .run import DEFAULT_NAMES
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = replay_wav(Path(tmp), args.seconds)
        for spec in args.model or [n for n in DEFAULT_NAMES]:
            d = resolve_model(spec)
            for fmt in read_manifest(d).formats:
                if args.format in (None, fmt):
                    results.append(stages(str(d), fmt, wav, args.threads))
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:  # the measured process: no argparse, nothing else imported first
        sys.exit(_child(json.loads(sys.argv[2])))
    else:
        sys.exit(main())

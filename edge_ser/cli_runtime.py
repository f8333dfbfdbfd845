"""Runtime commands: ``classify``, ``listen``, ``devices``, ``models`` (registered on edge_ser.cli.app)."""
from __future__ import annotations

import json
import os

import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from .cli import app
from .errors import UserError

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus", ".caf", ".w64"}


def _json_line(obj) -> None:
    print(json.dumps(obj, default=str), flush=True)


def _bar(p: float | None, width: int = 10) -> str:
    p = 0.0 if p is None else min(1.0, max(0.0, p))
    full = int(round(p * width))
    return "#" * full + "." * (width - full)


def _settings(profile, model, fmt, threads, hop=None):
    from .settings import runtime_settings
    return runtime_settings(profile, model=model, fmt=fmt, threads=threads, hop_seconds=hop)


def _expand(paths: List[Path]) -> List[Path]:
    """Files as given; a directory stands for the audio files under it (sorted)."""
    out = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            out.extend(found or [p])  # an empty directory is reported as an error below
        else:
            out.append(p)
    return out


ADAPT_MODES = ("file", "together", "none")


@app.command("classify")
def classify_cmd(
    paths: List[Path] = typer.Argument(..., help="Audio files (wav, flac, ... any rate/channels) or directories.",
                                       show_default=False, readable=False),  # checked per file: the batch goes on
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name (see `edge-ser models`) or model "
                                        "directory. Default: the profile's, else fine15-cnn."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Firmware profile (or 'auto') choosing "
                                          "model, format and threads."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite (default: onnx if the model has it)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (default 1)."),
    adapt: str = typer.Option("file", "--adapt", help="Speaker adaptation of models trained with it: 'file' "
                              "(each file adapts to itself), 'together' (the files are one speaker: adapt to all "
                              "of them first), 'none' (the training population's statistics)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line per file."),
):
    """Predict the emotion (and intensity) of whole audio files; a file with nothing as loud as listen's speech
    gate requires (-55 dBFS) is reported as silence."""
    from .registry import load_model
    from .stream import GateConfig, LoudestFrame

    if adapt not in ADAPT_MODES:
        raise UserError(f"--adapt must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
    s = _settings(profile, model, fmt, threads)
    m = load_model(s.model, fmt=s.fmt, threads=s.threads)
    if profile:  # what the profile chose, and why (stderr: stdout stays one result per file)
        print(f"model {m.name} ({m.format}, {s.threads} thread(s)) [{s.reason}]", file=sys.stderr, flush=True)
    files = list(_expand(paths))
    shared = None
    if adapt == "together" and m.speaker_norm is not None:
        shared = m.speaker_stats()
        for path in files:
            try:
                if not path.is_dir():
                    own, loudest = m.speaker_stats(), LoudestFrame()
                    m.adapt_file(path, own, listener=loudest)
                    if loudest.level_db > GateConfig().min_level_db:  # a silent file says nothing of the voice
                        shared.merge(own)
            except UserError:
                pass  # reported below, when the file is classified
    failed = 0
    for path in files:
        try:
            if path.is_dir():
                raise UserError(f"{path}: no audio files in this directory")
            # block by block: bounded memory for any length; the loudest frame is measured alongside
            loudest = LoudestFrame()
            probs, seconds = m.classify_file(path, stats=shared, update=adapt == "file", listener=loudest)
        except UserError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr, flush=True)
            continue
        level = loudest.level_db
        silent = not level > GateConfig().min_level_db  # no frame the speech gate could call active: no emotion
        result = dict.fromkeys(("label", "emotion", "intensity", "confidence", "scores")) if silent \
            else m.describe(probs)
        duration = round(seconds, 3)
        if as_json:
            _json_line({"path": str(path), **{k: result[k] for k in ("label", "emotion", "intensity",
                                                                     "confidence", "scores")},
                        "silent": silent, "loudest_dbfs": round(level, 1), "model": m.name, "format": m.format,
                        "duration_s": duration, "adapt": adapt if m.speaker_norm is not None else None})
        elif silent:
            print(f"{path}: {'silence':14} nothing above {GateConfig().min_level_db:g} dBFS (loudest {level:.1f}; "
                  f"{duration:.1f} s, {m.name}/{m.format})", flush=True)
        else:
            second = sorted(result["scores"].items(), key=lambda kv: -kv[1])[1]
            what = result["emotion"] + (f" {result['intensity']}" if result["intensity"] else "")
            print(f"{path}: {what:14} {_bar(result['confidence'])} {result['confidence']:.2f}  "
                  f"(next: {second[0]} {second[1]:.2f}; {duration:.1f} s, {m.name}/{m.format})", flush=True)
    if failed:
        raise typer.Exit(2)


def _event_line(e) -> str:
    head = f"{e.t:7.1f} s "
    if not e.speech:
        return f"{head} -  silence            {'':10}       level {e.level_db:6.1f} dBFS"
    what = e.emotion + (f" {e.intensity}" if e.intensity else "")
    return (f"{head} >  {what:18} {_bar(e.confidence)} {e.confidence:.2f}  level {e.level_db:6.1f} dBFS"
            f"  {e.latency_ms:5.1f} ms")


@app.command("listen")
def listen_cmd(
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Replay this audio file instead of the "
                                         "microphone (real time; --fast: as fast as possible)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Input device index or name substring "
                                         "(see `edge-ser devices`). Default: the system's default input."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Firmware profile, or 'auto' to measure "
                                          "this machine and choose the model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name or directory."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (default 1)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds of audio."),
    fast: bool = typer.Option(False, "--fast", help="With --input: replay as fast as possible."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Seconds between events (default 0.5 or the "
                                        "profile's)."),
    adapt: bool = typer.Option(True, "--adapt/--no-adapt", help="Speaker adaptation (models trained with it): "
                               "standardise by the statistics of the speech heard so far in this session."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line per hop."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No header or summary on stderr."),
):
    """Stream the microphone (or replay a file): every hop, is someone speaking, which emotion, how strongly."""
    from .registry import load_model
    from .stream import Engine

    if duration is not None and not duration > 0:
        raise UserError("--duration must be positive")
    if hop is not None and not 0.05 <= hop <= 10:
        raise UserError("--hop must be between 0.05 and 10 seconds")
    if fast and input is None:
        raise UserError("--fast needs --input FILE (the microphone runs in real time)")
    if input is not None and device is not None:
        raise UserError("give either --input or --device, not both")

    s = _settings(profile, model, fmt, threads, hop)
    m = load_model(s.model, fmt=s.fmt, threads=s.threads)
    engine = Engine(m, hop_seconds=s.hop_seconds, adapt=adapt)
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if input is not None:
        from .sources import FileSource
        source = FileSource(input, realtime=not fast)
        where = f"{input} ({source.duration:.1f} s, {'fast' if fast else 'real time'})"
    else:
        from .sources import MicrophoneSource
        source = MicrophoneSource(device, on_status=lambda msg: print(f"warning: {msg}", file=sys.stderr,
                                                                      flush=True))
        d = source.device
        where = (f"input device {d['index']}: {d['name']} at {source.sample_rate} Hz"
                 + ("" if source.sample_rate == 16000 else " resampled to 16000 Hz"))
    say(f"listening: {where}; model {m.name} ({m.format}, {s.threads} thread(s)), hop {s.hop_seconds:g} s, "
        f"window {m.window_seconds:g} s"
        + ("" if m.speaker_norm is None else (", adapting to the speaker" if adapt else
                                              ", speaker adaptation off (--no-adapt)"))
        + f" [{s.reason}]" + ("" if input is not None else "; Ctrl-C to stop"))

    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None) and _main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    n = speech = 0
    labels: Counter = Counter()
    latencies = []
    started = time.monotonic()
    interrupted = False
    try:
        for e in engine.events(source, duration):
            n += 1
            latencies.append(e.latency_ms)
            if e.speech:
                speech += 1
                labels[e.label] += 1
            if as_json:
                _json_line(e.to_dict())
            else:
                print(_event_line(e), flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        source.close()
        if _main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    overflows = getattr(source, "overflows", 0)
    top = ", ".join(f"{lab} {c}" for lab, c in labels.most_common(3)) or "none"
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
    summary = (f"{'stopped' if interrupted else 'done'}: {engine.seconds:.1f} s of audio in "
               f"{time.monotonic() - started:.1f} s, {n} hops, {speech} with speech (most: {top}); "
               f"latency p95 {p95:.1f} ms; overflows {overflows}")
    restarts = getattr(getattr(source, "stats", None), "restarts", 0)
    if restarts:
        summary += f"; device restarts {restarts}"
    if not quiet or interrupted:
        print(summary, file=sys.stderr, flush=True)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _terminate(signum, frame):
    raise KeyboardInterrupt


@app.command("devices")
def devices_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")):
    """List audio input devices (index, name, channels, default sample rate)."""
    from .sources import list_input_devices
    devices = list_input_devices()
    if as_json:
        _json_line(devices)
        return
    if not devices:
        print("no audio input devices found")
        return
    for d in devices:
        mark = "*" if d["default"] else " "
        print(f"{mark}{d['index']:3d}  {d['name']}  ({d['channels']} ch, {d['default_samplerate']:g} Hz, "
              f"{d['hostapi']})")
    print("* = default input; pass --device INDEX or a part of the name to `edge-ser listen`")


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON list of manifests."),
               verify: bool = typer.Option(False, "--verify", help="Also check every model file's sha256.")):
    """List the installed models (the package's defaults and $EDGE_SER_MODELS)."""
    from .registry import DEFAULT_MODELS_DIR, MODELS_ENV, list_models
    broken: list = []
    found = list_models(verify=verify, errors=broken)
    for reason in broken:  # a tampered or unreadable model is named, not silently left out
        print(f"error: {reason}", file=sys.stderr, flush=True)
    if as_json:
        _json_line([{**m.to_dict(), "model": Path(m.extra["path"]).name, "path": m.extra["path"]} for m in found])
        if broken:
            raise typer.Exit(2)
        return
    if not found:
        print(f"no models installed in {DEFAULT_MODELS_DIR}" +
              (f" or ${MODELS_ENV}={os.environ[MODELS_ENV]}" if os.environ.get(MODELS_ENV) else "") +
              " (run `make models`)")
    else:
        print(f"{'name':14} {'task':8} {'kind':5} {'formats':12} {'window':>6}  trained on / score")
        for m in found:  # named as --model takes them (the directory); a different manifest name is shown too
            name = Path(m.extra["path"]).name
            print(f"{name:14} {m.task:8} {m.kind:5} {','.join(m.formats):12} {m.window_seconds:5g}s  "
                  f"{_summary(m)}" + (f" [manifest name {m.name}]" if m.name != name else ""))
    if broken:
        raise typer.Exit(2)


def _summary(m) -> str:
    """A one-line description of what a model was trained on and how it scored (whatever its manifest holds)."""
    parts = []
    trained = m.trained_on or {}
    corpora = trained.get("corpora") or trained.get("corpus") or trained.get("data")
    if corpora:
        parts.append(corpora if isinstance(corpora, str) else "+".join(map(str, corpora)))
    metrics = m.metrics or {}
    for key in ("balanced_accuracy", "macro_f1", "accuracy"):
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            protocol = metrics.get("protocol")
            parts.append(f"{key} {value:.3f}" + (f" ({protocol})" if isinstance(protocol, str) else ""))
            break
    return "; ".join(parts)

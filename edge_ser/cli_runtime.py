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

def _json_line(obj) -> None:
    print(json.dumps(obj, default=str), flush=True)


def _seconds(x: float) -> str:
    """A clip's duration for people: 2.9 s, 0.05 s (a short clip is not rounded up to 0.1 s)."""
    return f"{x:.1f} s" if x >= 1 else f"{x:.2g} s"


def _bar(p: float | None, width: int = 10) -> str:
    p = 0.0 if p is None else min(1.0, max(0.0, p))
    full = int(round(p * width))
    return "#" * full + "." * (width - full)


@app.command("classify")
def classify_cmd(
    paths: List[Path] = typer.Argument(..., help="Audio files (wav, flac, ... any rate/channels) or directories.",
                                       show_default=False, readable=False),  # checked per file: the batch goes on
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name (see `edge-ser models`) or model "
                                        "directory. Default: the profile's, else fine16-linear."),
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
    gate requires (-70 dBFS) is reported as silence, and one with less than 0.75 s that loud gets no emotion
    (too short to tell)."""
    from .recognizer import ADAPT_MODES, Recognizer

    if adapt not in ADAPT_MODES:
        raise UserError(f"--adapt must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
    rec = Recognizer(model, profile, format=fmt, threads=threads, warmup=False)
    m, s = rec.model, rec.settings
    if profile:  # what the profile chose, and why (stderr: stdout stays one result per file)
        print(f"model {m.name} ({m.format}, {s.threads} thread(s)) [{s.reason}]", file=sys.stderr, flush=True)
    failed = 0
    min_level = rec.engine.gate.config.min_level_db
    for path, r in rec.classify_files(paths, adapt=adapt):
        if isinstance(r, UserError):
            failed += 1
            print(f"error: {r}", file=sys.stderr, flush=True)
            continue
        if as_json:
            _json_line(r.to_dict())
        elif r.silent:
            print(f"{path}: {'silence':14} nothing above {min_level:g} dBFS (loudest {r.loudest_dbfs:.1f}; "
                  f"{_seconds(r.duration_s)}, {r.model}/{r.format})", flush=True)
        elif r.label is None:  # too little speech to tell
            need = rec.engine.gate.config.min_speech_seconds
            print(f"{path}: {'too short':14} {r.speech_seconds:.2f} s above {min_level:g} dBFS, {need:g} s needed "
                  f"({_seconds(r.duration_s)}, {r.model}/{r.format})", flush=True)
        else:
            second = sorted(r.scores.items(), key=lambda kv: -kv[1])[1]
            what = r.emotion + (f" {r.intensity}" if r.intensity else "")
            print(f"{path}: {what:14} {_bar(r.confidence)} {r.confidence:.2f}  "
                  f"(next: {second[0]} {second[1]:.2f}; {_seconds(r.duration_s)}, {r.model}/{r.format})", flush=True)
    if failed:
        raise typer.Exit(2)


def _event_line(e) -> str:
    head = f"{e.t:7.1f} s "
    if not e.speech:
        return f"{head} -  silence            {'':10}       level {e.level_db:6.1f} dBFS"
    if e.label is None:  # speech, not enough of it yet to tell an emotion
        heard = f"speech {getattr(e, 'speech_seconds', 0.0):.2f} s"
        return f"{head} >  {heard:18} {'':10}       level {e.level_db:6.1f} dBFS  {e.latency_ms:5.1f} ms"
    what = e.emotion + (f" {e.intensity}" if e.intensity else "")
    return (f"{head} >  {what:18} {_bar(e.confidence)} {e.confidence:.2f}  level {e.level_db:6.1f} dBFS"
            f"  {e.latency_ms:5.1f} ms")


def _status_line(status) -> str:
    """A status on stderr: ``listening: ...`` when things are well again, else ``warning: ...``."""
    from .sources import RECOVERY_STATES
    return f"{'listening' if status.state in RECOVERY_STATES else 'warning'}: {status.message}"


@app.command("listen")
def listen_cmd(
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Replay this audio file instead of the "
                                        "microphone (real time; --fast: as fast as possible), or '-' to read a "
                                        "WAV stream (or raw PCM, see --raw-format) from stdin as it comes, e.g. "
                                        "`arecord -f S16_LE -r 16000 -c 1 | edge-ser listen --input -`."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="Input device index or name substring "
                                         "(see `edge-ser devices`). Default: the system's default input."),
    wait_device: bool = typer.Option(False, "--wait-device", help="Wait for the microphone (--device, or any) to "
                                     "appear instead of exiting when there is none, and keep retrying one that "
                                     "will not open."),
    raw_format: Optional[str] = typer.Option(None, "--raw-format", help="With --input -: stdin is headerless PCM "
                                             "of this sample format: s16le, s32le, f32le (also u8, s16be, s24le, "
                                             "s32be, f32be, f64le)."),
    rate: Optional[int] = typer.Option(None, "--rate", help="With --raw-format: sample rate in Hz (default "
                                       "16000)."),
    channels: Optional[int] = typer.Option(None, "--channels", help="With --raw-format: interleaved channels "
                                           "(default 1; averaged)."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Firmware profile, or 'auto' to measure "
                                          "this machine and choose the model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name or directory."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Inference threads (default 1)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds of audio."),
    fast: bool = typer.Option(False, "--fast", help="With --input FILE: replay as fast as possible."),
    hop: Optional[float] = typer.Option(None, "--hop", help="Seconds between events (default 0.5 or the "
                                        "profile's)."),
    adapt: bool = typer.Option(True, "--adapt/--no-adapt", help="Speaker adaptation (models trained with it): "
                               "standardise by the statistics of the speech heard so far in this session."),
    vad: str = typer.Option("spectral", "--vad", help="Speech detector: 'spectral' (per-band noise floors on the "
                            "log-mel frames; holds in fan noise) or 'energy' (frame level against the noise floor; "
                            "the original gate). See docs/room.md."),
    gate_margin: Optional[float] = typer.Option(None, "--gate-margin", help="dB above the noise a frame must "
                                                "rise to count as speech (default: spectral 2, energy 8)."),
    min_level: float = typer.Option(-70.0, "--min-level", help="dBFS below which nothing is speech."),
    min_speech: float = typer.Option(0.75, "--min-speech", help="Seconds of speech in an utterance before an "
                                     "emotion is given (events before say speech with label null)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line per hop, and one per status "
                                 "({\"type\": \"status\", \"state\": ...}: device_lost, reconnecting, "
                                 "reconnected, overflow, ...)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No header or summary on stderr."),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", help="Also publish to MQTT: "
                                       "mqtt://[user:pass@]host[:port]/prefix (PREFIX/event, retained PREFIX/state, "
                                       "PREFIX/status, Home Assistant discovery). Extra: mqtt."),
    serve: Optional[str] = typer.Option(None, "--serve", help="Serve the events on ws://HOST:PORT/events and a "
                                        "live dashboard on http://HOST:PORT/ (HOST defaults to 127.0.0.1; "
                                        "port 0: a free one). Extra: ws."),
    token: Optional[str] = typer.Option(None, "--token", help="With --serve: every client must send this token "
                                        "(?token=T or 'Authorization: Bearer T'); required for a non-loopback "
                                        "HOST.", envvar="EDGE_SER_TOKEN", show_envvar=True),
    ros2: bool = typer.Option(False, "--ros2", help="Also publish on ROS 2 topics /edge_ser/event and "
                              "/edge_ser/state (std_msgs/String JSON; needs rclpy)."),
):
    """Stream the microphone (or replay a file, or read stdin): every hop, is someone speaking, which emotion,
    how strongly."""
    from .recognizer import Recognizer
    from .sources import RawFormat, open_source
    from .stream import GateConfig, StatusEvent

    gate = GateConfig(vad=vad, margin_db=gate_margin, min_level_db=min_level,
                      min_speech_seconds=min_speech).validate()
    if duration is not None and not duration > 0:
        raise UserError("--duration must be positive")
    if hop is not None and not 0.05 <= hop <= 10:
        raise UserError("--hop must be between 0.05 and 10 seconds")
    if input == "":
        raise UserError("--input needs a file name, or '-' for stdin")
    if fast and input is None:
        raise UserError("--fast needs --input FILE (the microphone runs in real time)")
    if input is not None and device is not None:
        raise UserError("give either --input or --device, not both")
    raw = None
    if raw_format is not None or rate is not None or channels is not None:
        if input != "-":
            raise UserError("--raw-format/--rate/--channels describe headerless audio on stdin: use them with "
                            "--input -")
        if raw_format is None:
            raise UserError("--rate/--channels need --raw-format (a WAV stream's header gives them)")
        raw = RawFormat(raw_format, 16000 if rate is None else rate, 1 if channels is None else channels)
    if token is not None and not serve and os.environ.get("EDGE_SER_TOKEN") == token:
        token = None  # a token in the environment is for when --serve is given, not an error without it
    sink_options = _sink_options(mqtt, serve, token, ros2)  # a bad URL or address: an error before anything loads

    rec = Recognizer(model, profile, hop, format=fmt, threads=threads, adapt=adapt, gate=gate)
    m, s = rec.model, rec.settings
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    source = open_source(input, device, raw=raw, realtime=not fast, wait_device=wait_device,
                         target_rate=rec.sample_rate,
                         **({} if input is not None else {"on_status": None, "capture_stderr": "always"}))
    try:
        sinks = _open_sinks(sink_options, rec, input, source)
    except BaseException:
        source.close()
        raise
    for sink in sinks.sinks:
        if getattr(sink, "url", None):
            say(f"serving: dashboard {sink.url}, events ws://{sink.url[len('http://'):]}events")
    say(f"listening: {source.describe()}; model {m.name} ({m.format}, {s.threads} thread(s)), hop {rec.hop:g} s, "
        f"window {m.window_seconds:g} s"
        + ("" if m.speaker_norm is None else (", adapting to the speaker" if adapt else
                                              ", speaker adaptation off (--no-adapt)"))
        + f", {vad} speech detector [{s.reason}]"
        + ("" if input is not None and input != "-" else "; Ctrl-C to stop"))

    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None) and _main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    n = speech = 0
    labels: Counter = Counter()
    latencies = []
    started = time.monotonic()
    interrupted = False
    try:
        for e in rec.events(source, duration):
            if isinstance(e, StatusEvent):
                if e.state != "backend":  # the audio library's own lines: in the JSON stream only
                    print(_status_line(e), file=sys.stderr, flush=True)
                if as_json:
                    _json_line(e.to_dict())
                if sinks:
                    sinks.status(e.to_dict())
                continue
            n += 1
            latencies.append(e.latency_ms)
            if e.speech:
                speech += 1
                if e.label is not None:  # not yet enough speech: no label to count
                    labels[e.label] += 1
            if sinks:
                d = e.to_dict()
                sinks.publish(d)
                for status in sinks.drain():  # the sinks' own status events (a broker lost, ...)
                    _sink_status_line(status, as_json)
            if as_json:
                _json_line(d if sinks else e.to_dict())
            else:
                print(_event_line(e), flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        source.close()
        for status in sinks.drain():
            _sink_status_line(status, as_json)
        sinks.close()
        if _main_thread():
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    overflows = getattr(source, "overflows", 0)
    top = ", ".join(f"{lab} {c}" for lab, c in labels.most_common(3)) or "none"
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else 0.0
    summary = (f"{'stopped' if interrupted else 'done'}: {rec.engine.seconds:.1f} s of audio in "
               f"{time.monotonic() - started:.1f} s, {n} hops, {speech} with speech (most: {top}); "
               f"latency p95 {p95:.1f} ms; overflows {overflows}")
    restarts = getattr(getattr(source, "stats", None), "restarts", 0)
    if restarts:
        summary += f"; device restarts {restarts}"
    if sinks.summary():
        summary += "; " + sinks.summary()
    if not quiet or interrupted:
        print(summary, file=sys.stderr, flush=True)


@app.command("ros2", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def ros2_cmd(ctx: typer.Context):
    """Run listen as the ROS 2 node `edge_ser` (topics /edge_ser/event and /edge_ser/state, std_msgs/String JSON):
    `edge-ser ros2 [LISTEN OPTIONS] [--ros-args -p model:=NAME -p profile:=P -p device:=D -p hop:=S ...]`.
    Parameters model, profile, device, hop, format and input set the listen option of that name (the parameter
    wins over the option); the other ROS arguments (remapping, namespace, log level) go to the node.  Needs rclpy
    (the ROS 2 installation, or on x86_64: pip install 'ros-rclpy[fastrtps]' ros-std-msgs)."""
    from .sinks import ros2 as ros2_sink
    listen_args, ros_args, from_params = ros2_sink.split_ros_args(list(ctx.args))
    ros2_sink.DEFAULT_ARGS = ros_args
    try:
        return app(args=["listen", "--ros2", *listen_args, *from_params], prog_name="edge-ser",
                   standalone_mode=False)
    finally:
        ros2_sink.DEFAULT_ARGS = []


def _sink_options(mqtt, serve, token, ros2):
    """The sinks' options, checked (None: no sink asked for)."""
    if not (mqtt or serve or ros2 or token is not None):
        return None
    from .sinks import SinkOptions
    options = SinkOptions(mqtt=mqtt, serve=serve, token=token, ros2=ros2)
    options.check()
    return options


def _open_sinks(options, rec, input, source):
    """Start the sinks listen was asked for; they are told what runs (the dashboard and the ROS node show it)."""
    from .sinks import FanOut, open_sinks
    if options is None:
        return FanOut()
    device = getattr(source, "device", None)
    info = {**rec.info(), "hop": rec.hop, "window": rec.model.window_seconds,
            "input": ("stdin" if input == "-" else str(input)) if input is not None
            else (device or {}).get("name"),
            "device": None if not device else device.get("index")}
    return open_sinks(options, info)


def _sink_status_line(status: dict, as_json: bool) -> None:
    """A sink's status event: a JSON line with --json, and (like the input's) a line on stderr."""
    from .sources import RECOVERY_STATES
    if as_json:
        _json_line(status)
    word = "listening" if status.get("state") in RECOVERY_STATES else "warning"
    print(f"{word}: {status.get('sink', 'sink')}: {status.get('message') or status.get('state')}", file=sys.stderr,
          flush=True)


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
        # named as --model takes them (the directory); a different manifest name is shown too
        rows = [(Path(m.extra["path"]).name, m.task, m.kind, ",".join(m.formats), m) for m in found]
        width = [max(len(head), *(len(r[i]) for r in rows)) for i, head in enumerate(("name", "task", "kind",
                                                                                      "formats"))]
        print(" ".join(h.ljust(w) for h, w in zip(("name", "task", "kind", "formats"), width))
              + f" {'window':>6}  trained on / score")
        for *cells, m in rows:
            print(" ".join(c.ljust(w) for c, w in zip(cells, width)) + f" {m.window_seconds:5g}s  "
                  f"{_summary(m)}" + (f" [manifest name {m.name}]" if m.name != cells[0] else ""))
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

"""Measure the runtime on the machine it runs on, with the runtime install only (numpy, onnxruntime, LiteRT).

`bench` runs one model in a fresh subprocess (``python -m edge_ser.bench``), as ``edge-ser listen`` would:
cold start (process start to the first event), then the streaming cost per hop — frontend (a streaming
update of one hop of audio), features, inference, and the whole hop through the stream engine — over
``seconds`` of audio fed hop by hop as fast as possible, and the process's peak RSS.  `calibrate` measures the
per-hop cost of every installed candidate in this process (for ``--profile auto``).

Timings are medians over the hops, single call per hop (the way the engine runs); ``rtf`` is the hop's compute
divided by the hop's duration.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .errors import UserError

SAMPLE_RATE = 16000
SAMPLE_CLIP = Path(__file__).resolve().parent / "assets" / "sample.wav"
FIELDS = ("model", "format", "frontend_ms", "inference_ms", "hop_ms", "rtf", "peak_rss_mb", "cold_start_s",
          "model_bytes")


# --- machine and memory ---------------------------------------------------------------------------------------

def _status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux) in MB, or None where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident memory of this process (MB)."""
    current = _status_mb("VmRSS")
    return current if current is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB): VmHWM of its current address space (``ru_maxrss`` would also
    count the memory of the parent it was forked from before exec)."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip().lower()
            if key in ("model name", "hardware", "cpu model"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from .profiles import board_model
    ram_mb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_mb = round(int(line.split()[1]) / 1024.0)
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version
        versions["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:
        pass
    return {"arch": platform.machine(), "cpu": cpu, "board": board_model(), "cores": os.cpu_count(),
            "ram_mb": ram_mb, "os": f"{platform.system()} {platform.release()}", "loadavg_1_5_15": load,
            "versions": versions}


# --- test audio ---------------------------------------------------------------------------------------------

def test_audio(seconds: float) -> np.ndarray:
    """``seconds`` of speech: the shipped sample clip looped, or (without it) a deterministic voiced signal."""
    n = max(1, int(round(seconds * SAMPLE_RATE)))
    if SAMPLE_CLIP.is_file():
        from .audio import load_audio
        clip = load_audio(SAMPLE_CLIP)
        if clip.size:
            return np.resize(clip, n).astype(np.float32)
    rng = np.random.default_rng(0)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 140.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    y = sum(np.sin(k * phase) / k for k in range(1, 25))
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t)) * (np.sin(2 * np.pi * 0.25 * t) > -0.6)
    y = 0.2 * y / np.abs(y).max() * syllables + 0.003 * rng.standard_normal(n)
    return y.astype(np.float32)


# --- the per-hop measurement ----------------------------------------------------------------------------------

MIN_TIMED_HOPS = 3  # hops timed after the first window has filled: a median needs a few (and JSON has no NaN)


def _warm_hops(window_seconds: float, hop_seconds: float) -> int:
    """Hops that fill the first window; they are fed but not timed."""
    return max(1, int(np.ceil(window_seconds / hop_seconds)))


def min_seconds(window_seconds: float, hop_seconds: float) -> float:
    """The least audio that times MIN_TIMED_HOPS hops: the warm-up window, then the timed hops."""
    hop = max(1, int(round(hop_seconds * SAMPLE_RATE)))
    return (_warm_hops(window_seconds, hop_seconds) + MIN_TIMED_HOPS) * hop / SAMPLE_RATE


def _median_ms(values: list[float]) -> float | None:
    return round(1000.0 * statistics.median(values), 4) if values else None


def time_components(model, audio: np.ndarray, hop_seconds: float, max_hops: int | None = None,
                    max_seconds: float | None = None) -> dict:
    """Per-hop cost of the streaming pipeline's parts: frontend (StreamingLogMel.push of one hop), features
    (the window's model input) and inference (one window), medians in ms."""
    from .frontend import StreamingLogMel
    cfg = model.frontend
    fe = StreamingLogMel(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                         n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax, top_db=None)
    hop = max(1, int(round(hop_seconds * cfg.sample_rate)))
    n_frames = model.n_frames
    ring = np.full((cfg.n_mels, n_frames), -100.0, dtype=np.float32)
    # warm up: fill one window and run the model twice (first calls allocate)
    warm = _warm_hops(model.window_seconds, hop_seconds)
    pos = 0
    for _ in range(warm):
        frames = fe.push(audio[pos:pos + hop])
        pos += hop
        ring = np.concatenate([ring, frames], axis=1)[:, -n_frames:]
    stats = model.speaker_stats()  # a speaker-normalised model adapts hop by hop, as `listen` does
    x = model.input_for(ring)[None]
    model.predict(model.normalize(x, stats))
    model.predict(model.normalize(x, stats))
    t_fe, t_feat, t_inf = [], [], []
    start = time.perf_counter()
    while pos + hop <= len(audio):
        t0 = time.perf_counter()
        frames = fe.push(audio[pos:pos + hop])
        t1 = time.perf_counter()
        ring = np.concatenate([ring, frames], axis=1)[:, -n_frames:]
        x = model.input_for(ring)[None]
        if stats is not None:
            stats.update(x)
        x = model.normalize(x, stats)
        t2 = time.perf_counter()
        model.predict(x)
        t3 = time.perf_counter()
        t_fe.append(t1 - t0)
        t_feat.append(t2 - t1)
        t_inf.append(t3 - t2)
        pos += hop
        if max_hops and len(t_fe) >= max_hops:
            break
        if max_seconds and time.perf_counter() - start >= max_seconds and len(t_fe) >= 5:
            break
    return {"frontend_ms": _median_ms(t_fe), "features_ms": _median_ms(t_feat), "inference_ms": _median_ms(t_inf),
            "components_ms": round(1000 * statistics.median([a + b + c for a, b, c in zip(t_fe, t_feat, t_inf)]), 4)
            if t_fe else None,
            "components_ms_min": round(1000 * min(a + b + c for a, b, c in zip(t_fe, t_feat, t_inf)), 4)
            if t_fe else None, "hops_timed": len(t_fe)}


def time_engine(model, audio: np.ndarray, hop_seconds: float) -> dict:
    """Per-hop cost through the stream engine (gate, model, smoothing, events): feed one hop at a time.
    ``hop_ms`` is the median over the hops the gate passed as speech (those run the model), after the first
    window has filled; ``hop_ms_silent`` the median of the others."""
    from .stream import Engine
    engine = Engine(model, hop_seconds=hop_seconds)
    hop = max(1, int(round(hop_seconds * SAMPLE_RATE)))
    warm = _warm_hops(model.window_seconds, hop_seconds)
    speech, silent, cpu, events, first_event_audio_s = [], [], [], 0, None
    for i, pos in enumerate(range(0, len(audio) - hop + 1, hop)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = engine.feed(audio[pos:pos + hop])
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        events += len(out)
        if out and first_event_audio_s is None:
            first_event_audio_s = (pos + hop) / SAMPLE_RATE
        if i >= warm:
            is_speech = any(getattr(e, "speech", True) for e in out)
            (speech if is_speech else silent).append(dt)
            if is_speech or not speech:
                cpu.append((is_speech, dc))
    timed = speech or silent
    cpu_times = [c for sp, c in cpu if sp] or [c for _, c in cpu]
    return {"hop_ms": _median_ms(timed), "hop_ms_min": round(1000 * min(timed), 4) if timed else None,
            "hop_cpu_ms": _median_ms(cpu_times),
            "hop_ms_p95": round(1000 * float(np.percentile(timed, 95)), 4)
            if timed else None, "hop_ms_silent": _median_ms(silent), "speech_hops": len(speech),
            "silent_hops": len(silent), "events": events, "first_event_audio_s": first_event_audio_s}


def _model_bytes(model) -> int:
    from .manifest import MODEL_FILES
    return (Path(model.path) / MODEL_FILES[model.format]).stat().st_size


def _worker(args: dict) -> None:
    """The subprocess: load, stream to the first event (cold start), then measure; JSON lines on stdout."""
    from .registry import load_model
    hop_seconds = float(args["hop_seconds"])
    model = load_model(args["model"], fmt=args.get("format"), threads=int(args.get("threads", 1)))
    audio = test_audio(float(args["seconds"]))
    # cold start: the first event of a fresh engine (the parent times process start -> this line)
    try:
        from .stream import Engine
        engine = Engine(model, hop_seconds=hop_seconds)
        hop = max(1, int(round(hop_seconds * SAMPLE_RATE)))
        pos = 0
        while pos < len(audio):
            if engine.feed(audio[pos:pos + hop]):
                break
            pos += hop
        first = "engine event"
    except ImportError:  # pragma: no cover - the stream engine is part of the runtime
        x = model.input_for(model.frames(audio[: int(model.window_seconds * SAMPLE_RATE)]))
        model.predict(model.normalize(x[None]))
        first = "first window's prediction"
    print(json.dumps({"first_event": first}), flush=True)
    result = {"model": model.name, "model_path": str(model.path), "format": model.format,
              "threads": int(args.get("threads", 1)), "hop_seconds": hop_seconds,
              "window_seconds": model.window_seconds, "model_bytes": _model_bytes(model),
              "audio_seconds": round(len(audio) / SAMPLE_RATE, 3)}
    result.update(time_components(model, audio, hop_seconds))
    try:
        result.update(time_engine(model, audio, hop_seconds))
        result["hop_ms_is"] = ("Engine.feed per speech hop (frontend + gate + features + model + smoothing), "
                              "wall clock, median over the hops the gate passed as speech; hop_cpu_ms: the same "
                              "hops' CPU time (process_time), unaffected by other processes")
    except ImportError:  # pragma: no cover
        result["hop_ms"] = result["components_ms"]
        result["hop_ms_is"] = "frontend + features + inference (no stream engine installed)"
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(json.dumps(result), flush=True)


def run(model: str, fmt: str | None = None, threads: int = 1, hop_seconds: float = 0.5, seconds: float = 20.0,
        timeout: float = 600.0) -> dict:
    """Bench one model in a fresh subprocess; returns the contract's fields plus details."""
    from .manifest import read_manifest
    from .registry import resolve_model
    window = read_manifest(resolve_model(model), verify=False).window_seconds
    least = min_seconds(window, hop_seconds)
    if not seconds >= least - 1e-9:  # NaN too
        raise UserError(f"--seconds must be at least {least:g} for {model} (its {window:g} s window, then "
                        f"{MIN_TIMED_HOPS} timed hops of {hop_seconds:g} s)")
    args = {"model": str(model), "format": fmt, "threads": threads, "hop_seconds": hop_seconds,
            "seconds": float(seconds)}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent.parent)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    t0 = time.perf_counter()
    # Unbuffered bytes: a buffered text readline() may read the result line ahead into Python's buffer, where
    # communicate() (which reads the pipe itself) never sees it.
    proc = subprocess.Popen([sys.executable, "-m", "edge_ser.bench", json.dumps(args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, bufsize=0, env=env)
    first_line = proc.stdout.readline().decode("utf-8", "replace")
    cold = time.perf_counter() - t0
    try:
        rest, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise UserError(f"bench of {model} did not finish within {timeout:.0f} s") from None
    rest, err = rest.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if proc.returncode != 0 or not first_line:
        msg = (err or "").strip().splitlines()
        msg = [m for m in msg if m.startswith("error:")] or msg
        raise UserError(f"bench of {model} failed: {msg[-1] if msg else 'no output'}".replace("error: ", ""))
    result = json.loads(rest.strip().splitlines()[-1])
    if not result.get("hops_timed"):  # min_seconds makes this impossible; never report medians of nothing
        raise UserError(f"bench of {model}: no hop was timed (--seconds {seconds:g} too short)")
    result["cold_start_s"] = round(cold, 3)
    result["cold_start_is"] = "process start -> model loaded -> first event (" + json.loads(first_line)[
        "first_event"] + ")"
    result["rtf"] = round(result["hop_ms"] / (1000.0 * hop_seconds), 6)
    result["protocol"] = (f"{seconds:g} s of audio fed hop by hop ({hop_seconds:g} s) as fast as possible in a "
                          f"fresh process, {threads} thread(s); medians over {result['hops_timed']} hops")
    result["machine"] = machine()
    ordered = {k: result[k] for k in FIELDS}
    ordered.update({k: v for k, v in result.items() if k not in ordered})
    return ordered


# --- calibration for --profile auto -----------------------------------------------------------------------------

ACCURACY_KEYS = ("balanced_accuracy", "macro_f1", "accuracy")


def manifest_accuracy(metrics: dict) -> tuple[float | None, str]:
    """The model's cross-validated accuracy from its manifest's ``metrics``: the first of balanced accuracy,
    macro F1, accuracy, looked up as (1) ``{key: {"mean": x}}`` (mean over cross-validation folds, as export/
    writes it), (2) under an entry whose name contains ``cv``, (3) a plain top-level number, (4) anywhere else
    (e.g. ``validation``).  Returns (value, where it was found) or (None, reason)."""
    metrics = metrics or {}

    def walk(d, path):
        if isinstance(d, dict):
            for k, v in d.items():
                yield from walk(v, path + (str(k),))
        elif isinstance(d, (int, float)) and not isinstance(d, bool):
            yield path, float(d)

    found = [(p, v) for p, v in walk(metrics, ())
             if not any(s in part.lower() for part in p for s in ("std", "per_class", "chance", "seed000"))]
    for key in ACCURACY_KEYS:
        value = metrics.get(key)
        if isinstance(value, dict) and isinstance(value.get("mean"), (int, float)):
            return float(value["mean"]), f"{key} (cv mean over folds)"
        for prefer in (lambda p: any("cv" in part.lower() for part in p[:-1]), lambda p: len(p) == 1,
                       lambda p: True):
            hits = [(p, v) for p, v in found if (p[-1] == key or p[-2:] == (key, "mean")) and prefer(p)]
            if hits:
                p, v = hits[0]
                where = ".".join(p)
                if len(p) == 1 and isinstance(metrics.get("protocol"), str):
                    where += f" ({metrics['protocol']})"
                return v, where
    return None, "no accuracy in manifest"


def calibrate(model: str | None = None, task_of: str | None = None, fmt: str | None = None, threads: int = 1,
              hop_seconds: float = 0.5, seconds: float = 8.0, cache=None) -> list[dict]:
    """Measure every candidate (``model`` alone if given, else every installed model of ``task_of``'s task) in
    every format (or ``fmt``), each with `run` in a fresh process over ``seconds`` of audio: the per-hop cost
    through the stream engine as CPU time (median over speech hops; CPU time, so that other processes' load on
    this machine does not decide — the wall-clock median is kept too) and the process's peak resident memory.
    ``cache``: an object with ``key(manifest, fmt, threads, hop, seconds)``, ``get(key)`` and ``put(key, row)``
    (`edge_ser.settings.CalibrationCache`); a cached measurement is used instead of running again."""
    from . import registry as models
    from .manifest import read_manifest
    if model is not None:
        path = models.resolve_model(model)
        candidates = [(model, read_manifest(path, verify=False), path)]
    else:
        task = None
        if task_of is not None:
            try:
                task = read_manifest(models.resolve_model(task_of), verify=False).task
            except UserError:
                task = task_of.split("-")[0]
        candidates = [(Path(m.extra["path"]).name, m, Path(m.extra["path"]))  # named as --model takes them
                      for m in models.list_models() if task in (None, m.task)]
    rows = []
    for name, manifest, path in candidates:
        for f in manifest.formats:
            if fmt is not None and f != fmt:
                continue
            length = max(seconds, min_seconds(manifest.window_seconds, hop_seconds))
            key = cache.key(manifest, f, threads, hop_seconds, length) if cache is not None else None
            r = cache.get(key) if cache is not None else None
            if r is None:
                try:
                    r = run(str(path), fmt=f, threads=threads, hop_seconds=hop_seconds, seconds=length)
                except UserError:
                    continue
                if cache is not None:
                    cache.put(key, r)
            acc, metric = manifest_accuracy(manifest.metrics)
            spec = name if _resolves_to(models, name, path) else str(path)
            rows.append({"model": name, "path": spec, "format": f,
                         "hop_ms": r.get("hop_cpu_ms", r["hop_ms"]), "hop_ms_wall_median": r["hop_ms"],
                         "inference_ms": r["inference_ms"], "frontend_ms": r["frontend_ms"],
                         "rss_mb": r["peak_rss_mb"], "cold_start_s": r["cold_start_s"], "accuracy": acc,
                         "metric": metric, "model_bytes": r["model_bytes"]})
    return rows


def _resolves_to(models, name: str, path: Path) -> bool:
    try:
        return models.resolve_model(name).resolve() == Path(path).resolve()
    except UserError:
        return False


if __name__ == "__main__":
    try:
        _worker(json.loads(sys.argv[1]))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

"""End to end: cost per hop and real-time factor through the stream engine (`edge_ser.bench.run`, a fresh
process per model and format), and `edge-ser listen --input FILE --fast` itself: peak RSS and cold start to the
first event line."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge_ser import bench

REPO = Path(__file__).resolve().parent.parent


def hop_cost(model: str, fmt: str, threads: int, seconds: float) -> dict:
    r = bench.run(model, fmt=fmt, threads=threads, hop_seconds=0.5, seconds=seconds)
    keep = ("model", "format", "frontend_ms", "features_ms", "inference_ms", "hop_ms", "hop_ms_p95", "hop_cpu_ms", "rtf",
            "peak_rss_mb", "cold_start_s", "model_bytes", "speech_hops", "hops_timed", "hop_ms_is", "protocol")
    return {k: r[k] for k in keep if k in r}


def listen_run(model: str, fmt: str, wav: Path, threads: int = 1) -> dict:
    """One ``edge-ser listen --input WAV --fast --json`` in a fresh process: wall time to the first event line,
    total time, events, and the process's peak RSS (``wait4`` rusage of that child alone)."""
    cmd = [sys.executable, "-m", "edge_ser.cli", "listen", "--input", str(wav), "--fast", "--json",
           "--model", model, "--format", fmt, "--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO), text=True)
    hwm = {"kb": 0}
    done = threading.Event()

    def sample():  # VmHWM of the child's own address space (rusage would count this big parent's, from the fork)
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        hwm["kb"] = max(hwm["kb"], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first = proc.stdout.readline()
    t_first = time.perf_counter() - t0
    rest = proc.stdout.read()
    err = proc.stderr.read()
    # read the high-water mark one last time while the child is a zombie-to-be: stop sampling only after exit
    proc.wait()
    total = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode != 0 or not first.strip():
        return {"error": (err.strip().splitlines() or ["no output"])[-1], "command": " ".join(cmd[1:])}
    events = [json.loads(line) for line in [first] + rest.splitlines() if line.strip().startswith("{")]
    return {"cold_start_s": round(t_first, 3), "total_s": round(total, 3), "events": len(events),
            "speech_events": sum(bool(e.get("speech")) for e in events),
            "peak_rss_mb": round(hwm["kb"] / 1024.0, 1),
            "peak_rss_is": "VmHWM of the listen process, sampled every 2 ms until it exits", "command": "edge-ser " + " ".join(cmd[3:])}


def listen(model: str, fmt: str, wav: Path, runs: int = 3, threads: int = 1) -> dict:
    rs = [listen_run(model, fmt, wav, threads) for _ in range(runs)]
    ok = [r for r in rs if "error" not in r]
    if not ok:
        return {"error": rs[0]["error"], "command": rs[0].get("command")}
    return {"cold_start_s_median": round(statistics.median(r["cold_start_s"] for r in ok), 3),
            "cold_start_s_runs": [r["cold_start_s"] for r in ok],
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in ok), "events": ok[0]["events"],
            "speech_events": ok[0]["speech_events"], "replay_s": ok[0]["total_s"], "command": ok[0]["command"],
            "runs": len(ok)}


def blas_threads(model: str, fmt: str, seconds: float = 10.0) -> dict:
    """The stream engine's hop with numpy's BLAS on every core (what numpy does by default) against one thread
    (edge_ser's default since it sets OPENBLAS_NUM_THREADS=1): the frontend's mel matmul is tiny, and spreading it
    over busy cores stalls it."""
    out = {}
    for label, n in (("all_cores", str(os.cpu_count() or 1)), ("one_thread", "1")):
        saved = {v: os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")}
        try:
            for v in saved:
                os.environ[v] = n
            r = bench.run(model, fmt=fmt, threads=1, hop_seconds=0.5, seconds=seconds)
        finally:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old
        out[label] = {"blas_threads": int(n), "hop_ms": r["hop_ms"], "hop_ms_p95": r.get("hop_ms_p95"),
                      "frontend_ms": r["frontend_ms"], "load": bench.machine()["loadavg_1_5_15"]}
    return out

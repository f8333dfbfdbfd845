"""Soak test: stream a long run of audio through the streaming engine, faster than real time, and record memory
growth and dropped hops.

The audio is real speech (CREMA-D and RAVDESS clips from ``$EDGE_SER_DATA`` or ``../shared/data``, shuffled and
looped) separated by silence gaps of 0.3-4 s with a quiet noise floor, cut into device-like blocks of random
size (5-250 ms), so the engine sees speech onsets, pauses, long silences and every chunk alignment.  Without the
corpora, speech-like harmonic bursts are generated instead (the JSON says which).

Measured, per run:
- ``dropped_hops``: hops the engine should have produced for the audio consumed (``ceil(samples / hop)``) minus
  the events it produced; every event's ``t`` must also be exactly its hop's end (``bad_timestamps``).
- RSS (``/proc/self/status`` VmRSS) every ``rss_every`` seconds of audio; ``rss_growth_mb`` is the last sample
  minus the sample after the warm-up (the first ``warmup`` seconds: allocator arenas, onnxruntime buffers),
  ``rss_max_growth_mb`` the largest sample minus that baseline.
- speed (audio seconds per wall second) and per-hop latency percentiles.

    python -m benchmarks.soak                       # 1 hour through the default model -> benchmarks/results/soak.json
    python -m benchmarks.soak --hours 0.1 --model fine15-rfc --out /tmp/soak.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SR = 16000


def data_root() -> Path:
    return Path(os.environ.get("EDGE_SER_DATA", REPO.parent / "shared" / "data")).resolve()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"arch": platform.machine(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform()}


def speech_clips(n: int, seed: int) -> tuple[list[np.ndarray], str]:
    """``n`` real clips (16 kHz mono float32) drawn from the corpora, or generated speech-like bursts."""
    from edge_ser.audio import load_audio

    root = data_root()
    files = sorted([*(root / "cremad" / "AudioWAV").glob("*.flac"), *(root / "ravdess").glob("Actor_*/*.flac")])
    if files:
        rng = np.random.default_rng(seed)
        pick = [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]
        return [load_audio(p) for p in pick], f"{len(pick)} real clips (CREMA-D + RAVDESS) from {root}"
    rng = np.random.default_rng(seed)
    clips = []
    for k in range(n):
        secs = rng.uniform(1.0, 3.5)
        t = np.arange(int(secs * SR)) / SR
        f0 = rng.uniform(100, 260) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
        phase = 2 * np.pi * np.cumsum(f0) / SR
        y = sum(np.sin(h * phase) / h for h in range(1, 15))
        env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None) ** 0.5
        clips.append((rng.uniform(0.05, 0.4) * env * y / 3).astype(np.float32))
    return clips, f"{n} generated speech-like bursts (no corpora at {root})"


def audio_blocks(clips: list[np.ndarray], seconds: float, seed: int, block_range=(0.005, 0.25)):
    """Device-like blocks: clip, silence gap (quiet noise), clip, ... until ``seconds`` of audio."""
    rng = np.random.default_rng(seed)
    total = int(round(seconds * SR))
    produced = 0
    pending = np.zeros(0, dtype=np.float32)
    lo, hi = (int(b * SR) for b in block_range)
    while produced < total:
        if pending.size < hi:
            clip = clips[int(rng.integers(len(clips)))]
            gap = (rng.standard_normal(int(rng.uniform(0.3, 4.0) * SR)) * 10 ** (rng.uniform(-75, -55) / 20))
            gain = 10 ** (rng.uniform(-12, 3) / 20)
            pending = np.concatenate([pending, np.clip(clip * gain, -1, 1), gap.astype(np.float32)])
        n = min(int(rng.integers(lo, hi + 1)), total - produced, pending.size)
        block, pending = pending[:n], pending[n:]
        produced += n
        yield block


def run_soak(model, seconds: float, clips: list[np.ndarray], seed: int = 0, hop_seconds: float = 0.5,
             rss_every: float = 60.0, warmup: float = 60.0, progress=None) -> dict:
    """Stream ``seconds`` of audio through an `Engine` of ``model``; returns the measurements (see module doc)."""
    from edge_ser.stream import Engine

    engine = Engine(model, hop_seconds=hop_seconds)
    hop = engine.hop_samples
    events = bad_t = speech = 0
    # preallocated, so that the harness's own bookkeeping does not show up as growth
    latencies = np.zeros(int(np.ceil(seconds * SR / hop)) + 2, dtype=np.float64)
    rss = [(0.0, round(rss_mb(), 2))]
    next_rss = rss_every
    baseline = None
    started = time.perf_counter()
    samples = 0
    for block in audio_blocks(clips, seconds, seed):
        samples += block.size
        for e in engine.feed(block):
            events += 1
            if abs(e.t - events * hop / SR) > 1e-9:
                bad_t += 1
            speech += e.speech
            latencies[min(events, len(latencies)) - 1] = e.latency_ms
        audio_s = samples / SR
        if audio_s >= next_rss:
            rss.append((round(audio_s, 1), round(rss_mb(), 2)))
            if baseline is None and audio_s >= warmup:
                baseline = rss[-1][1]
            next_rss += rss_every
            if progress:
                progress(audio_s, rss[-1][1], events)
    for e in engine.finish():
        events += 1
        latencies[min(events, len(latencies)) - 1] = e.latency_ms
        if abs(e.t - samples / SR) > 1e-9:
            bad_t += 1
    wall = time.perf_counter() - started
    rss.append((round(samples / SR, 1), round(rss_mb(), 2)))
    if baseline is None:
        baseline = rss[0][1]
    expected = -(-samples // hop)  # ceil: the partial last hop gives one more event
    lat = latencies[:max(1, min(events, len(latencies)))]
    after = [r for t, r in rss if t >= warmup] or [rss[-1][1]]
    return {
        "audio_seconds": round(samples / SR, 3), "wall_seconds": round(wall, 2),
        "speed_x_real_time": round(samples / SR / wall, 1), "hop_seconds": hop_seconds,
        "events": events, "expected_events": int(expected), "dropped_hops": int(expected - events),
        "bad_timestamps": bad_t, "speech_hops": speech,
        "rss_start_mb": rss[0][1], "rss_baseline_mb": baseline, "rss_end_mb": rss[-1][1],
        "rss_growth_mb": round(rss[-1][1] - baseline, 2), "rss_max_growth_mb": round(max(after) - baseline, 2),
        "warmup_seconds": warmup, "rss_every_seconds": rss_every, "rss_series": rss,
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 3), "p95": round(float(np.percentile(lat, 95)), 3),
                       "p99": round(float(np.percentile(lat, 99)), 3), "max": round(float(lat.max()), 3)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="fine15-cnn", help="model name or directory (default fine15-cnn)")
    ap.add_argument("--format", dest="fmt", default=None, help="onnx or tflite (default: onnx if present)")
    ap.add_argument("--hours", type=float, default=1.0, help="audio to stream (default 1 hour)")
    ap.add_argument("--clips", type=int, default=300, help="distinct speech clips to loop (default 300)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    args = ap.parse_args(argv)

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from edge_ser.errors import UserError
    from edge_ser.registry import load_model

    try:
        model = load_model(args.model, fmt=args.fmt)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    clips, source = speech_clips(args.clips, args.seed)
    seconds = args.hours * 3600

    def progress(audio_s, rss, events):
        if int(audio_s) % 600 < 60:
            print(f"  {audio_s / 60:5.0f} min of audio: RSS {rss:.1f} MB, {events} events", file=sys.stderr,
                  flush=True)

    print(f"soak: {seconds / 3600:g} h of audio through {model.name} ({model.format}); {source}", file=sys.stderr)
    result = run_soak(model, seconds, clips, seed=args.seed, progress=progress)
    result = {"benchmark": "soak", "model": model.name, "format": model.format, "model_path": str(model.path),
              "model_sha256": model.manifest.sha256,
              "threads": 1, "audio": source, "machine": machine(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "protocol": ("Engine.feed with device-like blocks of 5-250 ms (random) of shuffled real speech clips "
                           "with random gain (-12..+3 dB) separated by 0.3-4 s gaps of noise at -75..-55 dBFS, as "
                           "fast as the engine runs (one thread); RSS = VmRSS of this process, baseline after "
                           f"{result['warmup_seconds']:g} s of audio; dropped hops = ceil(samples/hop) - events"),
              "goal": {"rss_growth_mb": "<= 2", "dropped_hops": 0}, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['audio_seconds'] / 3600:.2f} h of audio in {result['wall_seconds']:.0f} s "
          f"({result['speed_x_real_time']:g}x real time): {result['events']} events, dropped hops "
          f"{result['dropped_hops']}, bad timestamps {result['bad_timestamps']}, RSS {result['rss_baseline_mb']:.1f} -> "
          f"{result['rss_end_mb']:.1f} MB (growth {result['rss_growth_mb']:+.2f} MB, max {result['rss_max_growth_mb']:+.2f}) "
          f"-> {args.out}")
    ok = result["dropped_hops"] == 0 and result["bad_timestamps"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Where the whole-clip frontend's time goes, stage by stage, against its floor (numpy's rfft of the same frames).

    python -m benchmarks.profile_frontend [--seconds S] [--json FILE]

Stages of `edge_ser.frontend.log_mel` per block of 64 frames, timed in interleaved rounds (min over calls):
window multiply, rfft, power of the used bins, mel projection (dense matmul, as the frontend does, and a
sparse alternative: the Slaney filters have ~2 non-zeros per FFT bin), dB.  Single-threaded.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

from edge_ser import bench  # noqa: E402
from edge_ser import frontend as F  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402

from .timing import compare  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile_frontend")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default: the sample clip as is)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args(argv)
    clip = load_audio(bench.SAMPLE_CLIP)
    if args.seconds:
        clip = np.resize(clip, int(args.seconds * 16000)).astype(np.float32)
    cfg = F.FrontendConfig()
    pad = cfg.n_fft // 2
    padded = np.zeros(len(clip) + 2 * pad, dtype=np.float64)  # the FFTs run in float64, as in log_mel
    padded[pad:pad + len(clip)] = clip
    n = cfg.frames_for(len(clip))
    frames = np.lib.stride_tricks.as_strided(padded, shape=(n, cfg.n_fft),
                                             strides=(padded.strides[0] * cfg.hop_length, padded.strides[0]))
    work = F._Workspace(cfg)
    B = work.block
    block = frames[:B]
    windowed = block * work.window
    spec = np.fft.rfft(windowed, axis=-1)
    power = (np.abs(spec[:, work.lo:work.hi]) ** 2).astype(np.float32)
    dense_t = np.zeros((work.hi - work.lo, cfg.n_mels), dtype=np.float32)
    for a, b, m0, m1, w in work.groups:
        dense_t[a:b, m0:m1] = w
    mel = F._mel_power_of_frames(block, work).copy()
    blocks = range(0, n, B)
    per_block = len(blocks)

    def db(m=mel):
        m = np.maximum(m, F.AMIN)
        return 10.0 * np.log10(m)

    def groups(p=power):
        out = np.zeros((p.shape[0], cfg.n_mels), dtype=np.float32)
        for a, b, m0, m1, w in work.groups:
            np.matmul(p[:, a:b], w, out=out[:, m0:m1])
        return out

    stages = {
        "log_mel (whole clip)": lambda: F.log_mel(clip),
        f"floor: rfft of the frames, blocks of {B}": lambda: [np.fft.rfft(frames[s:s + B], axis=-1) for s in blocks],
        "window multiply (1 block)": lambda: block * work.window,
        "rfft (1 block)": lambda: np.fft.rfft(windowed, axis=-1),
        "power of used bins (1 block)": lambda: (np.abs(spec[:, work.lo:work.hi]) ** 2).astype(np.float32),
        "mel: block-diagonal groups, as shipped (1 block)": groups,
        "mel: one dense matmul (1 block)": lambda: power @ dense_t,
        "dB (1 block)": db,
        "whole block as shipped: window..mel (1 block)": lambda: F._mel_power_of_frames(block, work),
    }
    t = compare(stages, rounds=args.rounds)
    floor = t[f"floor: rfft of the frames, blocks of {B}"]["min_ms"]
    total = t["log_mel (whole clip)"]["min_ms"]
    print(f"{len(clip) / 16000:.2f} s clip, {n} frames = {per_block} block(s) of <= {B}; "
          f"log_mel {total:.3f} ms = {total / floor:.2f}x its floor {floor:.3f} ms")
    print(f"{'stage':50} {'min ms':>8} {'x blocks':>9} {'share of log_mel':>17}")
    for name, v in t.items():
        scaled = v["min_ms"] * (per_block if "(1 block)" in name else 1) * (
            min(n, B) / B if "(1 block)" in name and n < B else 1)
        print(f"{name:50} {v['min_ms']:8.4f} {scaled:9.4f} {100 * scaled / total:16.0f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frames": n, "blocks": per_block, "timings": t, "machine": bench.machine()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

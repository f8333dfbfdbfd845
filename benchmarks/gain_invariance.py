"""Loudness invariance: does the emotion a model gives a clip change when the clip is 20 dB quieter?

Protocol: ``--n`` real clips (half CREMA-D, half RAVDESS, spread round-robin over the actors in ``--data``), each
classified as `edge-ser classify` does (the file alone, adapting to itself) at its recorded level and scaled by
``--gain-db``; and streamed through `listen`'s engine (0.5 s of low noise, the clip, 1 s of the same noise; the
label of the last speech event with a label).  Reports the share of clips whose emotion (and full label) agree.
The shipped models were trained on these speakers: this measures invariance, not accuracy.

    python -m benchmarks.gain_invariance [--model NAME] [--n 200] [--out FILE]

(default: listen's default model, written to benchmarks/results/gain_invariance-MODEL.json; --out '' prints only)
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from edge_ser.audio import load_audio
from edge_ser.labels import split_label
from edge_ser.registry import load_model
from edge_ser.settings import DEFAULT_MODEL
from edge_ser.stream import Engine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def spread(files: list[Path], actor, n: int) -> list[Path]:
    """``n`` files taken round-robin over actors (sorted, deterministic)."""
    by = defaultdict(list)
    for f in sorted(files):
        by[actor(f)].append(f)
    rng = np.random.default_rng(0)
    for k in by:
        rng.shuffle(by[k])
    out, i = [], 0
    while len(out) < n and any(len(v) > i for v in by.values()):
        for k in sorted(by):
            if i < len(by[k]) and len(out) < n:
                out.append(by[k][i])
        i += 1
    return out


def pick_clips(data: Path, n: int) -> list[Path]:
    crema = spread(list((data / "cremad" / "AudioWAV").glob("*.flac")), lambda f: f.name[:4], n // 2)
    rav = spread(list((data / "ravdess").glob("Actor_*/*.flac")), lambda f: f.parent.name, n - n // 2)
    return crema + rav


def last_event(model, audio, rng, noise_dbfs=None, **engine_options):
    """The last labelled event of `listen` over the clip, or None (``noise_dbfs``: with 0.5 s of white noise at that
    level before and 1 s after, and under the clip; ``engine_options``: `Engine`'s ``gate``, ``smoothing``)."""
    y = audio
    if noise_dbfs is not None:
        pad = np.zeros(int(0.5 * 16000), np.float32), np.zeros(16000, np.float32)
        y = np.concatenate([pad[0], audio, pad[1]])
        y = y + (10 ** (noise_dbfs / 20) * rng.standard_normal(len(y))).astype(np.float32)
    engine = Engine(model, hop_seconds=0.5, **engine_options)
    last = None
    for e in engine.feed(y) + engine.finish():
        if e.speech and e.label is not None:
            last = e
    return last


def listen_label(model, audio, rng, noise_dbfs=None):
    """The label of `last_event`, or None."""
    e = last_event(model, audio, rng, noise_dbfs)
    return None if e is None else e.label


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--gain-db", type=float, default=-20.0)
    ap.add_argument("--no-listen", action="store_true")
    ap.add_argument("--noise-dbfs", type=float, default=None, help="listen: add white noise at this level (the "
                    "same for both levels: the quiet clip has a 20 dB lower SNR)")
    ap.add_argument("--out", help="default benchmarks/results/gain_invariance-MODEL.json; '' prints only")
    a = ap.parse_args(argv)
    if not (a.data / "cremad").is_dir():
        print(f"skipped: no corpus folder at {a.data}", file=sys.stderr)
        return 0
    m = load_model(a.model)
    g = 10 ** (a.gain_db / 20)
    rows = []
    for f in pick_clips(a.data, a.n):
        y = load_audio(f, 16000)
        p0, p1 = m.classify_audio(y), m.classify_audio(g * y)
        row = {"clip": f.name, "loud": m.labels[int(np.argmax(p0))], "quiet": m.labels[int(np.argmax(p1))]}
        if not a.no_listen:
            row["listen_loud"] = listen_label(m, y, np.random.default_rng(1), a.noise_dbfs)
            row["listen_quiet"] = listen_label(m, g * y, np.random.default_rng(1), a.noise_dbfs)
        rows.append(row)

    def agree(k0, k1, emotion=True):
        pairs = [(r[k0], r[k1]) for r in rows if r.get(k0) is not None and r.get(k1) is not None]
        f = (lambda lab: split_label(lab)[0]) if emotion else (lambda lab: lab)
        return round(float(np.mean([f(x) == f(y) for x, y in pairs])), 4) if pairs else None, len(pairs)

    quiet_emotions = defaultdict(int)
    for r in rows:
        if split_label(r["loud"])[0] != split_label(r["quiet"])[0]:
            quiet_emotions[split_label(r["quiet"])[0]] += 1
    res = {"model": a.model, "n": len(rows), "gain_db": a.gain_db,
           "protocol": f"{len(rows)} clips (CREMA-D + RAVDESS, round-robin over actors, seed 0); classify_audio "
                       "(the file alone, as `classify`) at the recorded level and at gain_db; listen: Engine over "
                       "the clip (as `listen --input CLIP --fast`; with --noise-dbfs: 0.5 s before, 1 s after and "
                       "noise at that level throughout), the last labelled speech event",
           "noise_dbfs": a.noise_dbfs,
           "classify_emotion_agree": agree("loud", "quiet")[0], "classify_label_agree": agree("loud", "quiet", False)[0],
           "changed_to": dict(quiet_emotions)}
    if not a.no_listen:
        res["listen_emotion_agree"], res["listen_pairs"] = agree("listen_loud", "listen_quiet")
        res["listen_label_agree"] = agree("listen_loud", "listen_quiet", False)[0]
        res["listen_null"] = sum(r["listen_loud"] is None or r["listen_quiet"] is None for r in rows)
    print(json.dumps(res, indent=1))
    out = (Path(__file__).resolve().parent / "results" / f"gain_invariance-{a.model}.json" if a.out is None
           else Path(a.out) if a.out else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**res, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""python reports/room/fill/fill_sessions.py FILL CORPUS [--alpha A] [--context N]: the noisy-session benchmark
(`benchmarks.noisy_sessions`: its sessions, conditions and truth; spectral gate only, no Silero) with `listen`'s
window filled by FILL (`GateConfig.fill`: repeat | stretch | silence), fine16-cnn, 20 utterances per session, seed 0.
CORPUS: heldout (the model's validation speakers, as `make bench`), cremad / ravdess (development speakers); A: the
smoothing's alpha (`SmoothingConfig`, default 0.5); N: `GateConfig.context_frames` (default 2).  Writes
reports/room/fill/FILL-CORPUS[-alphaA][-contextN].json, which docs/room.md ("The fix: a window that a few edge
frames do not move") cites.  About 1 min per session."""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.stream import SmoothingConfig  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("fill")
ap.add_argument("corpus")
ap.add_argument("--alpha", type=float)
ap.add_argument("--context", type=int)
a = ap.parse_args()
fill, corpus, alpha, context = a.fill, a.corpus, a.alpha, a.context
gate = dataclasses.replace(ns.DETECTORS["spectral"], fill=fill)
if context is not None:
    gate = dataclasses.replace(gate, context_frames=context)
results, sessions = ns.spectral_run("fine16-cnn", corpus, gate=gate,
                                    smoothing=None if alpha is None else SmoothingConfig(alpha=alpha))
keys = ("recall", "false_alarms", "emotion_right_at_end", "flips_per_utterance", "hops_to_settle",
        "emotion_right_at_end_per_corpus", "utterances")
out = {k: {f: v.get(f) for f in keys} for k, v in results.items()}
tags = (f"-alpha{alpha:g}" if alpha is not None else "") + (f"-context{context}" if context is not None else "")
path = Path(__file__).with_name(f"{fill}-{corpus}{tags}.json")
path.write_text(json.dumps({"fill": fill, "corpus": corpus, "model": "fine16-cnn", "alpha": alpha,
                            "context_frames": context, "sessions": sessions, "results": out}, indent=1) + "\n")
for k, v in out.items():
    print(k.ljust(14), v["emotion_right_at_end"], v["flips_per_utterance"])

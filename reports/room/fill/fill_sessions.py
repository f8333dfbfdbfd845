"""python reports/room/fill/fill_sessions.py FILL CORPUS [ALPHA]: the noisy-session benchmark
(`benchmarks.noisy_sessions`: its sessions, conditions and truth; spectral gate only, no Silero) with `listen`'s
window filled by FILL (`GateConfig.fill`: repeat | stretch | silence), fine16-cnn, 20 utterances per session, seed 0.
CORPUS: heldout (the model's validation speakers, as `make bench`), cremad / ravdess (development speakers); ALPHA:
the smoothing's (`SmoothingConfig.alpha`, default 0.5).  Writes reports/room/fill/FILL-CORPUS[-alphaALPHA].json,
which docs/room.md ("The fix: a window that a few edge frames do not move") cites.  About 1 min per session."""
import dataclasses
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.stream import Engine, SmoothingConfig  # noqa: E402

fill, corpus = sys.argv[1], sys.argv[2]
alpha = float(sys.argv[3]) if len(sys.argv) > 3 else None
ns.DETECTORS["spectral"] = dataclasses.replace(ns.DETECTORS["spectral"], fill=fill)
if alpha is not None:
    ns.Engine = functools.partial(Engine, smoothing=SmoothingConfig(alpha=alpha))
summary, sessions = ns.run(ns.DATA, corpus, 20, "fine16-cnn", 0, None, detectors=("spectral",), silero=False)
keys = ("recall", "false_alarms", "emotion_right_at_end", "flips_per_utterance", "hops_to_settle",
        "emotion_right_at_end_per_corpus", "utterances")
out = {k: {f: v["spectral"].get(f) for f in keys} for k, v in summary.items()}
path = Path(__file__).with_name(f"{fill}-{corpus}" + (f"-alpha{alpha:g}" if alpha is not None else "") + ".json")
path.write_text(json.dumps({"fill": fill, "corpus": corpus, "model": "fine16-cnn", "alpha": alpha,
                            "sessions": sessions, "results": out}, indent=1) + "\n")
for k, v in out.items():
    print(k.ljust(14), v["emotion_right_at_end"], v["flips_per_utterance"])

"""python reports/room/variants/sessions.py MODEL OUT.json: the noisy-session benchmark (`benchmarks.noisy_sessions`,
held-out speakers of MODEL's manifest, 20 utterances per session, seed 0, spectral gate only, no Silero) for a model
directory; writes the per-condition summary.  About 11 min on 2 cores."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks import noisy_sessions as ns  # noqa: E402

model, out = sys.argv[1], sys.argv[2]
results, _ = ns.spectral_run(model)
Path(out).write_text(json.dumps({"model": str(model), "results": results}, indent=1, default=float) + "\n")
for c, v in results.items():
    print(f"{c:14s} {v['emotion_right_at_end']}")

"""python reports/room/fill/edge_cuts.py: how much a few frames at a window's edges move the default model's answer.

The 200 clips of `benchmarks/gain_invariance.py` (CREMA-D + RAVDESS, round-robin over actors, seed 0), each streamed
through `listen`'s engine at its recorded level; the speech frames its ring held at the last labelled event are
scored again with 4 frames cut from the end, 4 from the start, 8 from the end and 4 from both (clips with at least 30
such frames), the window filled by ``repeat`` or ``stretch`` (`features.fit_frames`), adapted as the engine was.
Reports the share of clips whose six-emotion answer (the emotion of the top label) stays.  Writes edge_cuts.json
beside this file; docs/room.md cites it."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.gain_invariance import DATA, pick_clips  # noqa: E402
from edge_ser import features  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.labels import split_label  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser.stream import Engine, GateConfig  # noqa: E402

model = load_model("fine16-cnn")
CUTS = {"end4": (0, 4), "start4": (4, 0), "end8": (0, 8), "both4": (4, 4)}


def emotion(p):
    return split_label(model.labels[int(np.argmax(p))])[0]


result = {}
clips = [load_audio(f, 16000) for f in pick_clips(DATA, 200)]
for fill in ("repeat", "stretch"):
    kept = {k: [] for k in CUTS}
    for y in clips:
        engine = Engine(model, hop_seconds=0.5, gate=GateConfig(fill=fill))
        window = None
        # one hop per call: the ring restarts at an utterance's end, so read it right after each labelled hop
        for i in range(0, len(y) + 8000, 8000):
            events = engine.feed(y[i:i + 8000]) if i < len(y) else engine.finish()
            if any(e.speech and e.label is not None for e in events):
                window = engine.ring.window()
        if window is None or window.shape[1] < 30:
            continue

        def answer(w):
            x = model.input_for(features.fit_frames(w, model.n_frames, fill))[None]
            return emotion(model.predict(model.normalize(x, engine.adaptation))[0])

        base = answer(window)
        for k, (a, b) in CUTS.items():
            kept[k].append(answer(window[:, a:window.shape[1] - b]) == base)
    result[fill] = {k: {"kept": round(float(np.mean(v)), 4), "clips": len(v)} for k, v in kept.items()}
print(json.dumps(result, indent=1))
protocol = __doc__.split("\n\n")[1].replace("\n", " ")
Path(__file__).with_name("edge_cuts.json").write_text(
    json.dumps({"protocol": protocol, "model": "fine16-cnn", "results": result}, indent=1) + "\n")

"""python reports/room/fill/gain_variants.py '[{"context_frames": 12}, {"smoothing": {"alpha": 1.0}}]' [--noise
'[null, -90, -60]'] [--marginal]: `listen`'s loudness invariance (as `benchmarks/gain_invariance.py`: its 200 clips,
each alone and 20 dB quieter, the emotion of the last labelled event) for variants of the engine's options, a few
seconds each.  Each variant is a JSON object of `GateConfig` fields, with ``smoothing`` holding `SmoothingConfig`
fields; ``--noise``: white noise levels (dBFS, null = none) under both copies, 0.5 s before and 1 s after, as
``--noise-dbfs``; ``--marginal``: the emotion as the most likely of the summed intensities instead of the top label's.
A development tool for docs/room.md's "Loudness invariance" (the shipped model trained on these speakers: this
measures invariance, not accuracy)."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.gain_invariance import DATA, last_event, pick_clips  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.labels import collapse_matrix, task_labels  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser.stream import GateConfig, SmoothingConfig  # noqa: E402


def last_emotion(model, y, noise, gate, smoothing, marginal):
    e = last_event(model, y, np.random.default_rng(1), noise, gate=gate, smoothing=smoothing)
    if e is None or not marginal:
        return None if e is None else e.emotion
    p = np.array([e.scores[lab] for lab in model.labels])
    return task_labels("basic6")[int(np.argmax(p @ collapse_matrix(model.labels, "basic6")))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="?", default="[{}]")
    ap.add_argument("--noise", default="[null, -90]")
    ap.add_argument("--model", default="fine16-cnn")
    ap.add_argument("--marginal", action="store_true")
    a = ap.parse_args()
    model = load_model(a.model)
    clips = [load_audio(f, 16000) for f in pick_clips(DATA, 200)]
    for v in json.loads(a.variants):
        smoothing = SmoothingConfig(**v.pop("smoothing", {}))
        gate = GateConfig(**v)
        for noise in json.loads(a.noise):
            pairs = [(last_emotion(model, y, noise, gate, smoothing, a.marginal),
                      last_emotion(model, 0.1 * y, noise, gate, smoothing, a.marginal)) for y in clips]
            pairs = [(x, q) for x, q in pairs if x is not None and q is not None]
            print(json.dumps({"gate": v, "smoothing": smoothing.__dict__, "noise_dbfs": noise, "marginal": a.marginal,
                              "listen_emotion_agree": round(float(np.mean([x == q for x, q in pairs])), 4),
                              "pairs": len(pairs)}), flush=True)


if __name__ == "__main__":
    main()

"""python reports/room/fill/decoding.py [MODEL]: `classify` (each file alone) on the model's validation speakers'
clips (its manifest; CREMA-D, RAVDESS, ESD, EMOVO clips with one of the six emotions).  Six-emotion accuracy with the
emotion read two ways: the emotion of the most likely of the model's labels (what `classify` and `listen` report)
and the most likely emotion with its intensities summed (`labels.collapse_matrix`, as `evaluate --task basic6`
scores); and the confusion of the first reading (truth -> answer).  Writes decoding.json beside this file;
docs/room.md ("Loudness invariance", "What is not solved") cites it."""
import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "export")]
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.labels import collapse_matrix, split_label, task_labels  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "fine16-cnn"
model = load_model(name)
validation = ns.heldout_speakers(name)
clips, _ = load_corpora([ns.DATA / c for c in ("cremad", "ravdess", "esd", "emovo")])
clips = [c for c in clips if c.speaker in validation and c.label("basic6") is not None]
six = task_labels("basic6")
collapse = collapse_matrix(model.labels, "basic6")
res: dict = {}
confusion: collections.Counter = collections.Counter()
for c in clips:
    p = np.asarray(model.classify_audio(load_audio(c.path, 16000)))
    top = split_label(model.labels[int(np.argmax(p))])[0]
    summed = six[int(np.argmax(p @ collapse))]
    r = res.setdefault(c.corpus, [0, 0, 0])
    r[0] += 1
    r[1] += top == c.emotion
    r[2] += summed == c.emotion
    confusion[(c.emotion, top)] += 1
res["pooled"] = list(np.sum(list(res.values()), axis=0).tolist())
accuracy = {k: {"clips": n, "top_label": round(a / n, 4), "intensities_summed": round(b / n, 4)}
            for k, (n, a, b) in sorted(res.items())}
matrix = {t: {p: confusion[(t, p)] for p in six if confusion[(t, p)]} for t in six}
Path(__file__).with_name("decoding.json").write_text(json.dumps(
    {"model": name, "six_emotion_accuracy": accuracy, "top_label_truth_to_answer": matrix}, indent=1) + "\n")
for k, v in accuracy.items():
    print(f"{k:8s} {v['clips']:4d} clips  top label {v['top_label']:.3f}  intensities summed {v['intensities_summed']:.3f}")
print({t: f"{row.get(t, 0)}/{sum(row.values())}" for t, row in matrix.items()})

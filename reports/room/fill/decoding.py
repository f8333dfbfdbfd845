"""python reports/room/fill/decoding.py [MODEL]: six-emotion accuracy of `classify` (each file alone) on the model's
validation speakers' clips (its manifest; CREMA-D, RAVDESS, ESD, EMOVO clips with one of the six emotions), with the
emotion read two ways: the emotion of the most likely of the model's labels (what `classify` and `listen` report)
and the most likely emotion with its intensities summed (`labels.collapse_matrix`, as `evaluate --task basic6`
scores).  docs/room.md ("Loudness invariance") cites it."""
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "export")]
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.labels import collapse_matrix, split_label, task_labels  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "fine16-cnn"
model = load_model(name)
manifest = (ROOT / "edge_ser" / "assets" / "models" / name / "manifest.json").read_text()
validation = set(json.loads(re.search(r'"validation_speakers": (\[[^\]]*\])', manifest).group(1)))
data = ROOT.parent / "shared" / "data"
clips, _ = load_corpora([data / c for c in ("cremad", "ravdess", "esd", "emovo")])
clips = [c for c in clips if c.speaker in validation and c.label("basic6") is not None]
six = task_labels("basic6")
collapse = collapse_matrix(model.labels, "basic6")
res: dict = {}
for c in clips:
    p = np.asarray(model.classify_audio(load_audio(c.path, 16000)))
    top = split_label(model.labels[int(np.argmax(p))])[0]
    summed = six[int(np.argmax(p @ collapse))]
    r = res.setdefault(c.corpus, [0, 0, 0])
    r[0] += 1
    r[1] += top == c.emotion
    r[2] += summed == c.emotion
total = np.sum(list(res.values()), axis=0)
for corpus, (n, a, b) in sorted(res.items()) + [("pooled", tuple(total))]:
    print(f"{corpus:8s} {n:4d} clips  top label {a / n:.3f}  intensities summed {b / n:.3f}")

"""python reports/room/end_confusion.py [MODEL]: which emotion `listen` gives at the end of each utterance of the
noisy-session benchmark's held-out sessions (clean condition; `benchmarks.noisy_sessions`: its sessions, seed 0, 20
utterances per speaker), against the truth, per corpus; and, beside it, what `classify` gives the same speakers'
whole clips (every clip of the model's validation speakers with one of the six emotions).  Writes end_confusion.json
beside this file; docs/room.md ("What is not solved") cites it."""
import collections
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "export")]
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.labels import split_label, task_labels  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser.stream import Engine  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "fine16-cnn"
model = load_model(name)
six = list(task_labels("basic6"))
hop = int(ns.HOP * ns.SR)
listen: dict = collections.defaultdict(collections.Counter)
for speaker, _, speech, mask, spans, babble in ns.built_sessions(ns.DATA, "heldout", 20, name, 0, None):
    y, _ = ns.condition("clean", speech, mask, babble, np.random.default_rng(1), False)
    events = Engine(model, hop_seconds=ns.HOP).feed(y)
    for a, b, emotion in spans:
        if emotion not in six:
            continue
        first, last = a // hop, min(len(events) - 1, b // hop + 1)
        said = [events[k].emotion for k in range(first, last + 1) if events[k].speech and events[k].emotion]
        listen[re.match(r"[a-z]+", speaker).group(0)][(emotion, said[-1] if said else "none")] += 1
manifest = (ROOT / "edge_ser" / "assets" / "models" / name / "manifest.json").read_text()
validation = set(json.loads(re.search(r'"validation_speakers": (\[[^\]]*\])', manifest).group(1)))
clips, _ = load_corpora([ns.DATA / c for c in ("cremad", "ravdess", "emovo")])
classify: collections.Counter = collections.Counter()
for c in clips:
    if c.speaker in validation and c.label("basic6") is not None:
        p = model.classify_audio(load_audio(c.path, 16000))
        classify[(c.emotion, split_label(model.labels[int(np.argmax(p))])[0])] += 1


def matrix(counter):
    cols = six + ["none"]
    return {t: {p: counter[(t, p)] for p in cols if counter[(t, p)]} for t in six}


out = {"model": name, "truth_to_answer": {"listen_end_clean": {c: matrix(v) for c, v in sorted(listen.items())},
                                          "classify_whole_clips": matrix(classify)}}
Path(__file__).with_name("end_confusion.json").write_text(json.dumps(out, indent=1) + "\n")
for part, m in [("listen " + c, matrix(v)) for c, v in sorted(listen.items())] + [("classify", matrix(classify))]:
    print(part, {t: f"{row.get(t, 0)}/{sum(row.values())}" for t, row in m.items()})

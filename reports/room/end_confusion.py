"""python reports/room/end_confusion.py [MODEL]: which emotion `listen` gives at the end of each utterance of the
noisy-session benchmark's held-out sessions (clean condition; `benchmarks.noisy_sessions`: its sessions, seed 0, 20
utterances per speaker, the emotion of the last labelled hop through one hop after the utterance, as its "emotion
right at the end"), against the truth, per corpus.  What `classify` gives the same speakers' whole clips:
reports/room/fill/decoding.py.  Writes end_confusion.json beside this file; docs/room.md ("What is not solved")
cites it."""
import collections
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.labels import task_labels  # noqa: E402
from edge_ser.registry import load_model  # noqa: E402
from edge_ser.stream import Engine  # noqa: E402

name = sys.argv[1] if len(sys.argv) > 1 else "fine16-cnn"
model = load_model(name)
six = list(task_labels("basic6"))
listen: dict = collections.defaultdict(collections.Counter)
for speaker, _, speech, mask, spans, babble in ns.built_sessions(ns.DATA, "heldout", 20, name, 0, None):
    y, _ = ns.condition("clean", speech, mask, babble, np.random.default_rng(1), False)
    events = Engine(model, hop_seconds=ns.HOP).feed(y)
    for emotion, _, said in ns.utterance_emotions(events, spans, 0, set(six)):
        listen[re.match(r"[a-z]+", speaker).group(0)][(emotion, said[-1][1] if said else "none")] += 1


def matrix(counter):
    return {t: {p: counter[(t, p)] for p in six + ["none"] if counter[(t, p)]} for t in six}


out = {"model": name, "truth_to_answer": {"listen_end_clean": {c: matrix(v) for c, v in sorted(listen.items())}}}
Path(__file__).with_name("end_confusion.json").write_text(json.dumps(out, indent=1) + "\n")
for corpus, counter in sorted(listen.items()):
    print("listen", corpus, {t: f"{row.get(t, 0)}/{sum(row.values())}" for t, row in matrix(counter).items()})

"""python reports/room/variants/prior.py calibrate | apply: an emotion-level prior correction for `listen`, measured.

``calibrate``: the shipped fine16-cnn through the clean development sessions (`benchmarks.noisy_sessions --corpus
cremad` 6 sessions, ``ravdess`` 4: training speakers, never the held-out ones), recording the six-emotion
probabilities of every window `listen` scores and the emotions of the utterances; per emotion, weight = its share
of the utterances / its mean probability (each the mean of the two corpora's), written to prior_calibration.json.
``apply``: the held-out sessions (`sessions.py`'s protocol) with every window's probabilities multiplied by its
emotion's weight and renormalised before the smoothing; writes prior.json.  A measurement, not an engine option:
docs/room.md ("What is not solved")."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import edge_ser.registry as registry  # noqa: E402
from benchmarks import noisy_sessions as ns  # noqa: E402
from edge_ser.labels import collapse_matrix, task_labels  # noqa: E402

HERE = Path(__file__).resolve().parent
SIX = task_labels("basic6")
_load = registry.load_model


def patch(wrap):
    """`noisy_sessions.run` loads its model through the registry at call time: wrap each model's predict."""
    def load(name, *a, **k):
        m = _load(name, *a, **k)
        m.predict = wrap(m.predict, collapse_matrix(m.labels, "basic6"))
        return m
    registry.load_model = load


def calibrate():
    seen, truth = [], []

    def wrap(predict, C):
        def p(x):
            out = predict(x)
            seen.append(out @ C)
            return out
        return p

    patch(wrap)
    utterances = ns.utterance_emotions

    def counted(*a):
        for u in utterances(*a):
            truth.append(u[0])
            yield u

    ns.utterance_emotions = counted
    ns.CONDITIONS = ("clean",)
    out = {}
    for corpus, n in (("cremad", 6), ("ravdess", 4)):
        seen.clear()
        truth.clear()
        results, _ = ns.spectral_run("fine16-cnn", corpus, max_sessions=n)
        share = np.array([truth.count(e) for e in SIX], float)
        out[corpus] = {"mean_probability": dict(zip(SIX, np.concatenate(seen).mean(axis=0).round(4).tolist())),
                       "utterance_share": dict(zip(SIX, (share / share.sum()).round(4).tolist())),
                       "emotion_right_at_end": results["clean"]["emotion_right_at_end"]}
    share = np.mean([[c["utterance_share"][e] for e in SIX] for c in out.values()], axis=0)
    w = share / np.mean([[c["mean_probability"][e] for e in SIX] for c in out.values()], axis=0)
    out["weights"] = dict(zip(SIX, w.round(3).tolist()))
    (HERE / "prior_calibration.json").write_text(json.dumps(out, indent=1) + "\n")
    print(out["weights"])


def apply():
    weights = json.loads((HERE / "prior_calibration.json").read_text())["weights"]
    w6 = np.array([weights[e] for e in SIX])

    def wrap(predict, C):
        w = C @ w6

        def p(x):
            out = predict(x) * w
            return out / out.sum(axis=1, keepdims=True)
        return p

    patch(wrap)
    results, _ = ns.spectral_run("fine16-cnn")
    (HERE / "prior.json").write_text(json.dumps({"model": "fine16-cnn", "weights": weights, "results": results},
                                                indent=1, default=float) + "\n")
    for c, v in results.items():
        print(f"{c:14s} {v['emotion_right_at_end']}")


{"calibrate": calibrate, "apply": apply}[sys.argv[1]]()

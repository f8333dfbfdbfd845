"""python reports/embedding/baved_heads.py OUT.json: can BAVED's emotionless levels train the per-emotion intensity
heads without costing fine15?

Protocol: the probe's whole-clip hidden means (`probe.py`'s cache; int8 encoder, `compact.py`'s cache, with
``--int8``), each speaker standardised over all its clips; StandardScaler + LogisticRegression C 0.01.  Actor folds
(`splits.actor_folds`, 5, seed 0) over the fine15 clips (CREMA-D IEO + RAVDESS) and, separately, over BAVED's level
clips (its 60 speakers); each fold's test speakers are left out of every head.  An emotion head (the five emotions)
and one intensity head per emotion, trained on that emotion's clips with an intensity and, for BAVED's level clips
(low / high, no emotion): ``none`` (they train no head, as shipped), ``soft`` (each head gets every BAVED clip,
weighted by the emotion head's probability of that emotion for it: one EM step of the marginal likelihood
p(level | x) = sum_e p(e | x) p(level | e, x)), ``soft x0.2`` (the same, weights one fifth), ``hard`` (each clip goes to the head of its most probable emotion).
Scored: fine15 accuracy, and BAVED level accuracy of the composed model's intensity marginal (sum over emotions of
p(e) p(i | e)), low against high."""
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "export")]
from edge_ser_train.corpora import load_corpora  # noqa: E402
from edge_ser_train.splits import actor_folds  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--")]
int8 = "--int8" in sys.argv
clips, _ = load_corpora([REPO.parent / "shared" / "data" / c for c in ("cremad", "ravdess", "esd", "emovo", "baved")])
cache = Path(os.environ.get("EDGE_SER_CACHE", "cache")) / "embedding"
d = np.load(cache / ("ge2e_int8_first_float.npz" if int8 else "ge2e.npz"))
X = d["hid"].copy()
assert list(d["path"]) == [c.path for c in clips]
spk = np.array([c.speaker for c in clips])
for s in np.unique(spk):
    m = spk == s
    X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-6)
emo = np.array([c.emotion or "" for c in clips])
inten = np.array([c.intensity or "" for c in clips])
corpus = np.array([c.corpus for c in clips])
y15 = np.array([c.label("fine15") or "" for c in clips])
E5 = ["angry", "sad", "happy", "disgust", "fear"]
IN = ["low", "medium", "high"]
hasI = np.isin(inten, IN) & (emo != "neutral")
unknown = hasI & (emo == "")          # BAVED's level clips
print("BAVED level clips", int(unknown.sum()), dict(zip(*np.unique(inten[unknown], return_counts=True))))


def lr():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000))


def model(trmask, mode):
    em = trmask & np.isin(emo, E5)
    he = lr().fit(X[em], emo[em])
    ce = list(he.classes_)
    unk = np.flatnonzero(trmask & unknown)
    pu = he.predict_proba(X[unk]) if len(unk) else None
    heads = []
    for k, e in enumerate(ce):
        m = np.flatnonzero(trmask & hasI & (emo == e))
        idx, w = m, np.ones(len(m))
        if mode != "none" and len(unk):
            wu = pu[:, k] if mode.startswith("soft") else (pu.argmax(1) == k).astype(float)
            if mode == "soft x0.2":
                wu = 0.2 * wu
            keep = wu > 1e-3
            idx, w = np.r_[m, unk[keep]], np.r_[w, wu[keep]]
        h = lr().fit(X[idx], inten[idx], logisticregression__sample_weight=w)
        heads.append(h)
    return he, ce, heads


def predict(he, ce, heads, rows):
    pe = he.predict_proba(X[rows])
    p = np.zeros((len(rows), len(ce), len(IN)))
    for k, h in enumerate(heads):
        q = h.predict_proba(X[rows])
        for a, i in enumerate(IN):
            if i in h.classes_:
                p[:, k, a] = pe[:, k] * q[:, list(h.classes_).index(i)]
    return p


modes = ("none", "soft", "soft x0.2", "hard")
res = {m: {"fine15": [], "baved_level": [], "cremad_intensity": [], "ravdess_intensity": []} for m in modes}
f15 = np.flatnonzero(y15 != "")
for tr, te in actor_folds(y15[f15], spk[f15], 5, 0):
    rows = f15[te]
    trmask = ~np.isin(spk, list(set(spk[rows])))
    for mode in modes:
        p = predict(*model(trmask, mode), rows)
        ce = sorted(E5)
        lab = np.array([f"{e}_{i}" for e in ce for i in IN])
        res[mode]["fine15"].append(float(np.mean(lab[p.reshape(len(rows), -1).argmax(1)] == y15[rows])))
        pi = p.sum(1)
        for c in ("cremad", "ravdess"):
            r = corpus[rows] == c
            res[mode][f"{c}_intensity"].append(float(np.mean(np.array(IN)[pi[r].argmax(1)] == inten[rows][r])))
bv = np.flatnonzero(unknown)
for tr, te in actor_folds(inten[bv], spk[bv], 5, 0):
    rows = bv[te]
    trmask = ~np.isin(spk, list(set(spk[rows])))
    for mode in modes:
        pi = predict(*model(trmask, mode), rows).sum(1)
        res[mode]["baved_level"].append(float(np.mean(np.array(IN)[pi.argmax(1)] == inten[rows])))
summary = {m: {k: {"mean": round(float(np.mean(v)), 3), "folds": [round(x, 3) for x in v]} for k, v in r.items()}
           for m, r in res.items()}
for m, r in summary.items():
    print(m, {k: v["mean"] for k, v in r.items()})
Path(args[0]).write_text(json.dumps({"protocol": __doc__, "encoder": "int8" if int8 else "float",
                                     "results": summary}, indent=1) + "\n")

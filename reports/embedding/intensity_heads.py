"""python reports/embedding/intensity_heads.py OUT.json: how to factorise fine15 on the GE2E encoder's features.

Protocol: the probe's whole-clip hidden means (`probe.py`'s cache, $EDGE_SER_CACHE/embedding/ge2e.npz; run it
first), each speaker standardised over all its clips; StandardScaler + LogisticRegression C 0.01; actor folds
(`splits.actor_folds`, 5, seed 0) over the fine15 clips (CREMA-D IEO + RAVDESS), each fold's test speakers left out
of every head.  fine15 accuracy of: ``joint`` (one 15-way classifier on the fine15 clips), ``shared`` (an emotion
head on every clip with one of the five emotions x one intensity head on every clip with an intensity, BAVED's
levels included: the forest's factorisation), ``per_emotion`` (the emotion head x one intensity head per emotion on
that emotion's clips), ``per_emotion_plus_unknown`` (each of those heads also given BAVED's emotionless levels)."""
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "export")]
from edge_ser_train.corpora import load_corpora
from edge_ser_train.splits import actor_folds
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
clips, _ = load_corpora([REPO.parent / "shared" / "data" / c for c in ("cremad", "ravdess", "esd", "emovo", "baved")])
d = np.load(Path(os.environ.get("EDGE_SER_CACHE", "cache")) / "embedding" / "ge2e.npz"); X = d["hid"]
assert list(d["path"]) == [c.path for c in clips]
spk = np.array([c.speaker for c in clips])
for s in np.unique(spk):
    m = spk == s; X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-6)
emo = np.array([c.emotion or "" for c in clips]); inten = np.array([c.intensity or "" for c in clips])
f15 = np.array([c.label("fine15") is not None for c in clips])
y15 = np.array([c.label("fine15") or "" for c in clips])
E5 = ["angry", "sad", "happy", "disgust", "fear"]; EM = ["neutral"] + E5; IN = ["low", "medium", "high"]
hasE = np.isin(emo, EM); hasI = np.isin(inten, IN) & (emo != "neutral")
def lr(): return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000))
rows = np.flatnonzero(f15)
res = {"joint": [], "shared": [], "per_emotion": [], "per_emotion_plus_unknown": []}
for tr, te in actor_folds(y15[rows], spk[rows], 5, 0):
    te_idx = rows[te]; test_spk = set(spk[te_idx])
    trmask = ~np.isin(spk, list(test_spk))
    # joint fine15 on fine15 clips
    j = lr().fit(X[rows[tr]], y15[rows[tr]]); res["joint"].append(np.mean(j.predict(X[te_idx]) == y15[te_idx]))
    # emotion head on every clip with an emotion (5 emotions only, fine15 has no neutral)
    em = trmask & np.isin(emo, E5)
    he = lr().fit(X[em], emo[em]); pe = he.predict_proba(X[te_idx]); ce = list(he.classes_)
    im = trmask & hasI
    hi = lr().fit(X[im], inten[im]); pi = hi.predict_proba(X[te_idx]); ci = list(hi.classes_)
    lab = [f"{e}_{i}" for e in ce for i in ci]
    p = (pe[:, :, None] * pi[:, None, :]).reshape(len(te_idx), -1)
    res["shared"].append(np.mean(np.array(lab)[p.argmax(1)] == y15[te_idx]))
    p2 = np.zeros_like(p)
    for k, e in enumerate(ce):
        m = im & (emo == e)
        h = lr().fit(X[m], inten[m]); q = h.predict_proba(X[te_idx]); cq = list(h.classes_)
        for a, i in enumerate(ci):
            p2[:, k * len(ci) + a] = pe[:, k] * (q[:, cq.index(i)] if i in cq else 0)
    res["per_emotion"].append(np.mean(np.array(lab)[p2.argmax(1)] == y15[te_idx]))
    p3 = np.zeros_like(p)
    for k, e in enumerate(ce):
        m = im & ((emo == e) | (emo == ""))
        h = lr().fit(X[m], inten[m]); q = h.predict_proba(X[te_idx]); cq = list(h.classes_)
        for a, i in enumerate(ci):
            p3[:, k * len(ci) + a] = pe[:, k] * (q[:, cq.index(i)] if i in cq else 0)
    res["per_emotion_plus_unknown"].append(np.mean(np.array(lab)[p3.argmax(1)] == y15[te_idx]))
summary = {k: {"mean": round(float(np.mean(v)), 3), "std": round(float(np.std(v)), 3),
               "folds": [round(float(x), 3) for x in v]} for k, v in res.items()}
print(summary)
Path(sys.argv[1]).write_text(json.dumps({"protocol": __doc__, "fine15": summary}, indent=1) + "\n")

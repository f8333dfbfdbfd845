"""python reports/embedding/probe.py OUT.json [TASK,...] [--baseline]: how much emotion a pretrained speech encoder's features
hold for voices and corpora it never heard — linear probes on Resemblyzer's GE2E voice encoder (edge_ser.encoders).

Features: every clip of ../shared/data (CREMA-D, RAVDESS, ESD 0020, EMOVO, BAVED) whole, through the runtime's
frontend (n_fft 400, hop 160, 40 mels) and `edge_ser.encoders.ge2e` (level shifted to the encoder's -30 dBFS
speech, partial utterances of 1.6 s every 0.77 s, averaged): the 256-value speaker embedding, the 768 time-averaged
hidden states of the three LSTM layers, or both.  Cached in $EDGE_SER_CACHE/embedding/ge2e.npz.

Probe: StandardScaler + multinomial LogisticRegression (sklearn).  "speaker": each clip's features standardised
by its speaker's mean and std over all of that speaker's clips in ../shared/data (no labels; what `evaluate`'s
speaker-adapted protocol and `listen` after a while do); "clip": as they are (`classify FILE`).

Protocols (nested: the feature set and C, one of 3 x 4, are chosen on validation speakers inside the training part
(`splits.holdout`, 15 % of each corpus's speakers), never on the reported folds):
- actor-fold CV: `splits.actor_folds(labels, speakers, 5, seed 0)` over the task's clips of all five corpora,
  reported per fold, pooled, per corpus and on CREMA-D + RAVDESS;
- leave-one-corpus-out: trained on the other corpora, scored on every clip of the held-out one.

``--baseline``: the same probes on the runtime's own features instead of the encoder's, the forest's
`band_stats` (level-free band statistics, 32 bands, of the default frontend's log-mel of the whole clip): what the
encoder adds over a linear read-out of log-mel statistics.  Written under ``baseline/TASK/NORM``.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "export")]

from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.encoders import GE2E_FRONTEND, ge2e  # noqa: E402
from edge_ser.frontend import log_mel  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402
from edge_ser_train.dataset import default_cache_dir  # noqa: E402
from edge_ser_train.splits import actor_folds, holdout  # noqa: E402

CORPORA = ("cremad", "ravdess", "esd", "emovo", "baved")
CS = (0.003, 0.01, 0.03, 0.1)
FEATURE_SETS = ("embedding", "hidden_means", "both")


def embed(clips) -> dict:
    path = Path(default_cache_dir()) / "embedding" / "ge2e.npz"
    if path.exists():
        d = np.load(path)
        if list(d["path"]) == [c.path for c in clips]:
            return {"embedding": d["emb"], "hidden_means": d["hid"]}
    emb, hid = np.zeros((len(clips), 256), np.float32), np.zeros((len(clips), 768), np.float32)
    t = time.time()
    for k, c in enumerate(clips):
        db = log_mel(load_audio(c.path), top_db=None, **GE2E_FRONTEND)
        v = ge2e(db, db.shape[1], output="both")
        emb[k], hid[k] = v[:256], v[256:]
        if k % 1000 == 0:
            print(f"embedded {k}/{len(clips)} in {time.time() - t:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, emb=emb, hid=hid, path=np.array([c.path for c in clips]))
    return {"embedding": emb, "hidden_means": hid}


def baseline(clips) -> dict:
    """`edge_ser.features.band_stats` of each whole clip (default frontend), cached beside the encoder's."""
    from edge_ser.features import band_stats
    path = Path(default_cache_dir()) / "embedding" / "band_stats.npz"
    if path.exists():
        d = np.load(path)
        if list(d["path"]) == [c.path for c in clips]:
            return {"band_stats": d["x"]}
    rows = []
    for c in clips:
        db = log_mel(load_audio(c.path), top_db=None)
        rows.append(band_stats(db, db.shape[1], absolute=True))
    x = np.stack(rows).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, path=np.array([c.path for c in clips]))
    return {"band_stats": x}


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    args = [a for a in sys.argv[1:] if a != "--baseline"]
    use_baseline = "--baseline" in sys.argv
    out_path = Path(args[0])
    tasks = args[1].split(",") if len(args) > 1 else ["basic6", "fine15"]
    clips, _ = load_corpora([REPO.parent / "shared" / "data" / c for c in CORPORA])
    if use_baseline:
        feats = baseline(clips)
        grid = [("band_stats", C) for C in CS]
    else:
        grid = [(f, C) for f in FEATURE_SETS for C in CS]
        feats = embed(clips)
        feats["both"] = np.hstack([feats["embedding"], feats["hidden_means"]])
    allspk = np.array([c.speaker for c in clips])

    def spk_norm(X):
        X = X.copy()
        for s in np.unique(allspk):
            m = allspk == s
            X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-6)
        return X
    normed = {k: spk_norm(v) for k, v in feats.items()}

    def fit(f, C, Xs, tr, y):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(Xs[f][tr], y[tr])

    def select(Xs, tr, y, spk):
        r, v = holdout(y[tr], spk[tr], 0.15, 0, by="corpus")
        r, v = tr[r], tr[v]
        scores = {(f, C): float(np.mean(fit(f, C, Xs, r, y).predict(Xs[f][v]) == y[v])) for f, C in grid}
        best = max(scores, key=scores.get)
        return best[0], best[1], scores[best]

    out = json.loads(out_path.read_text()) if use_baseline and out_path.exists() else {}
    out.update({"protocol": __doc__, "clips": len(clips)})
    out.setdefault("results", {})
    for task in tasks:
        rows = np.array([i for i, c in enumerate(clips) if c.label(task) is not None])
        y = np.array([clips[i].label(task) for i in rows])
        spk, corp = allspk[rows], np.array([clips[i].corpus for i in rows])
        for norm, src in (("speaker", normed), ("clip", feats)):
            Xs = {k: v[rows] for k, v in src.items()}
            t = time.time()
            pred = np.empty(len(y), dtype=object)
            folds = []
            for tr, te in actor_folds(y, spk, 5, 0):
                f, C, val = select(Xs, tr, y, spk)
                pred[te] = fit(f, C, Xs, tr, y).predict(Xs[f][te])
                folds.append({"chosen": f"{f}/C={C}", "validation": round(val, 3), "test_speakers": len(set(spk[te])),
                              "accuracy": round(float(np.mean(pred[te] == y[te])), 3)})
            accs = [f["accuracy"] for f in folds]
            res = {"clips": int(len(y)), "cv_mean": round(float(np.mean(accs)), 3),
                   "cv_std": round(float(np.std(accs)), 3), "folds": folds,
                   "per_corpus": {c: {"accuracy": round(float(np.mean(pred[corp == c] == y[corp == c])), 3),
                                      "n": int(np.sum(corp == c))} for c in sorted(set(corp))}}
            both = np.isin(corp, ["cremad", "ravdess"])
            res["cremad+ravdess"] = round(float(np.mean(pred[both] == y[both])), 3)
            loco = {}
            for c in sorted(set(corp)):
                tr, te = np.flatnonzero(corp != c), np.flatnonzero(corp == c)
                if len(set(y[te])) < 2:
                    continue  # one label only (BAVED in basic6: neutral)
                f, C, _ = select(Xs, tr, y, spk)
                loco[c] = {"accuracy": round(float(np.mean(fit(f, C, Xs, tr, y).predict(Xs[f][te]) == y[te])), 3),
                           "n": int(len(te)), "chosen": f"{f}/C={C}"}
            res["leave_one_corpus_out"] = loco
            res["seconds"] = round(time.time() - t)
            out["results"][("baseline/" if use_baseline else "") + f"{task}/{norm}"] = res
            print(task, norm, res["cv_mean"], res["cremad+ravdess"], {c: v["accuracy"] for c, v in loco.items()},
                  flush=True)
            out_path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

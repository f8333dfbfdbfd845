"""Train the runtime's gender estimator (`edge_ser.gender`) and measure it on speakers it never heard.

    python -m edge_ser_train.gender_train --data ../shared/data/cremad --data ../shared/data/ravdess \
        [--extra ../shared/data/emovo ...] [--out edge_ser/assets/gender.json]

Labels: CREMA-D's VideoDemographics.csv (Sex), RAVDESS odd actors male / even female (the corpus loaders' ``sex``).
Inputs: 2.5 s windows (hop 1 s) of every clip, `edge_ser.features.band_stats` with the F0 cue (``pitch=True``).
Protocol: 5 folds disjoint by speaker (GroupKFold over speakers, stratified by sex through the speaker order);
window accuracy and clip accuracy (mean of window probabilities), per corpus; ``--extra`` corpora (never trained
on, genders from their loaders: EMOVO f/m folders, BAVED names, ESD 0020 male) are scored by the final model.
The final model (StandardScaler + LogisticRegression, C chosen on the folds) is written as JSON weights.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from edge_ser import features
from edge_ser.frontend import FrontendConfig

from . import corpora
from .dataset import LogMelCache

log = logging.getLogger("edge_ser.train.gender")
FEATURES = "band_stats"
PARAMS = {"top_db": 80.0, "bands": 32, "active_db": 35.0, "n_ceps": 13, "pitch": True}
WINDOW_FRAMES = FrontendConfig().frames_for(int(2.5 * 16000))  # 79
HOP_FRAMES = 31  # ~1 s


def clip_features(db: np.ndarray) -> np.ndarray:
    wins = features.clip_windows(db, WINDOW_FRAMES, HOP_FRAMES)
    return np.stack([features.compute(w, FEATURES, {**PARAMS, "n_frames": WINDOW_FRAMES}) for w in wins])


def sexed_clips(root: Path) -> list:
    """Clips of a corpus the loaders may not read yet, with the sex their names give (evaluation only): EMOVO
    ``{f1..m3}/`` folders, BAVED ``<spk>-<m|f>-<age>-...`` names, ESD speaker 0020 (male)."""
    root = Path(root)
    out = []
    for p in sorted(root.rglob("*.ogg")) + sorted(root.rglob("*.wav")) + sorted(root.rglob("*.flac")):
        rel = p.relative_to(root).parts
        if root.name == "emovo" or "emovo" in rel[:-1]:
            sex, spk, corpus = {"f": "female", "m": "male"}.get(p.parent.name[:1]), p.parent.name, "emovo"
        elif root.name == "baved":
            bits = p.stem.split("-")
            sex, spk, corpus = ({"f": "female", "m": "male"}.get(bits[1]) if len(bits) > 2 else None), bits[0], "baved"
        elif root.name in ("esd", "0020") and "0020" in p.stem:
            sex, spk, corpus = "male", "0020", "esd"
        else:
            continue
        if sex:
            out.append(corpora.Clip(str(p), corpus, f"{corpus}:{spk}", sex, "neutral", None))
    return out


def load(roots, cache: LogMelCache, loader=None):
    clips = loader(roots) if loader else corpora.load_corpora(roots)[0]
    clips = [c for c in clips if c.sex in ("male", "female")]
    xs, ys, owner, spk, corpus = [], [], [], [], []
    for k, c in enumerate(clips):
        db = cache.get(c)
        if db is None:
            continue
        x = clip_features(db)
        xs.append(x)
        ys.append(np.full(len(x), c.sex == "female", dtype=int))
        owner.append(np.full(len(x), len(spk)))
        spk.append(c.speaker)
        corpus.append(c.corpus)
    return (np.concatenate(xs), np.concatenate(ys), np.concatenate(owner), np.array(spk), np.array(corpus))


def _fit(X, y, C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X, y)


def _scores(p, y, owner, corpus_of_clip, n_clips):
    clip_p = np.bincount(owner, weights=p, minlength=n_clips) / np.maximum(np.bincount(owner, minlength=n_clips), 1)
    clip_y = np.zeros(n_clips, int)
    clip_y[owner] = y
    present = np.unique(owner)
    out = {"windows": int(len(y)), "window_accuracy": float(np.mean((p > 0.5) == y)),
           "clips": int(len(present)), "clip_accuracy": float(np.mean((clip_p[present] > 0.5) == clip_y[present]))}
    for name in sorted(set(corpus_of_clip[present].tolist())):
        sel = present[corpus_of_clip[present] == name]
        out[f"{name}_clip_accuracy"] = float(np.mean((clip_p[sel] > 0.5) == clip_y[sel]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", action="append", required=True, type=Path)
    ap.add_argument("--extra", action="append", default=[], type=Path)
    ap.add_argument("--out", type=Path, default=Path("edge_ser/assets/gender.json"))
    ap.add_argument("--report", type=Path, default=None, help="also write the measurement as JSON here")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = LogMelCache(a.cache_dir)
    X, y, owner, spk, corpus = load(a.data, cache)
    speakers = np.array(sorted(set(spk.tolist())))
    # folds by speaker, balanced by sex: speakers sorted by sex then dealt round-robin
    sex_of = {s: y[owner == np.flatnonzero(spk == s)[0]][0] for s in speakers}
    order = sorted(speakers, key=lambda s: (sex_of[s], s))
    fold_of = {s: i % a.folds for i, s in enumerate(order)}
    wfold = np.array([fold_of[spk[o]] for o in owner])
    results = {}
    for C in (0.01, 0.1, 1.0):
        per = []
        for f in range(a.folds):
            tr, te = wfold != f, wfold == f
            assert not set(spk[owner[tr]].tolist()) & set(spk[owner[te]].tolist())
            m = _fit(X[tr], y[tr], C)
            per.append(_scores(m.predict_proba(X[te])[:, 1], y[te], owner[te], corpus, len(spk)))
        results[C] = {k: float(np.mean([p[k] for p in per])) for k in per[0]}
        results[C]["clip_accuracy_std"] = float(np.std([p["clip_accuracy"] for p in per]))
        log.info("C=%g: window accuracy %.3f, clip accuracy %.3f ± %.3f (speaker-disjoint %d-fold CV)", C,
                 results[C]["window_accuracy"], results[C]["clip_accuracy"], results[C]["clip_accuracy_std"], a.folds)
    best = max(results, key=lambda c: results[c]["clip_accuracy"])
    model = _fit(X, y, best)
    scaler, lr = model.steps[0][1], model.steps[1][1]
    metrics = {"protocol": f"{a.folds}-fold CV disjoint by speaker ({len(speakers)} speakers of "
                           f"{', '.join(sorted(set(corpus.tolist())))}), 2.5 s windows every ~1 s, clip = mean of "
                           f"window probabilities; C chosen on these folds",
               "C": best, **{k: round(v, 4) for k, v in results[best].items()}}
    if a.extra:
        Xe, ye, oe, se, ce = load(a.extra, cache, lambda roots: [c for r in roots for c in sexed_clips(r)])
        metrics["unseen_corpora"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in
                                     _scores(model.predict_proba(Xe)[:, 1], ye, oe, ce, len(se)).items()}
        metrics["unseen_corpora"]["protocol"] = "final model on corpora never trained on (" + ", ".join(
            sorted(set(ce.tolist()))) + ")"
        log.info("unseen corpora: %s", metrics["unseen_corpora"])
    out = {"kind": "logistic regression (standardised inputs)", "features": FEATURES, "params": PARAMS,
           "output": "P(female); 0 male, 1 female", "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(),
           "coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0]),
           "trained_on": {"corpora": sorted(set(corpus.tolist())), "speakers": int(len(speakers)),
                          "clips": int(len(spk)), "windows": int(len(y)),
                          "labels": "CREMA-D VideoDemographics.csv Sex; RAVDESS odd actor male, even female"},
           "metrics": metrics}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(json.dumps({"all_C": {str(k): v for k, v in results.items()}, **metrics}, indent=2) + "\n")
    log.info("wrote %s (C=%g, clip accuracy %.3f on unseen speakers)", a.out, best, results[best]["clip_accuracy"])


if __name__ == "__main__":
    main()

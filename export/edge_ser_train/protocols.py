"""Evaluation protocols beyond one actor-fold CV, each number saying which protocol it comes from.

- Scores per task a model's labels collapse to (`task_scores`): a fine16 model is scored on ``fine16`` (clips with a
  full label), ``basic6`` (summed over intensities; every clip with one of the six emotions), ``fine15`` (the fine15
  clips, renormalised over those 15 labels), ``emotion5`` and ``intensity`` (low/medium/high summed over emotions,
  on every clip that carries an intensity: BAVED's levels included).  Per corpus as well as pooled
  (`pooled_breakdown`: the test predictions of every fold together).
- ``leave-one-corpus-out`` (`leave_one_corpus_out`): for each corpus, a model trained on all the others (a
  speaker-disjoint validation part of them for early stopping) and scored on every clip of the held-out corpus.
- ``nested`` (`nested_cv`): actor-fold CV in which the recipe is chosen inside each fold's training part, on its own
  validation speakers, and only the chosen recipe is scored on the fold's test speakers; the reported numbers never
  chose anything.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_ser.labels import INTENSITIES, collapse_matrix, split_label, task_labels

from . import metrics, splits
from .evaluate import collapse

INTENSITY_TASK = "intensity"
KEYS = ("n", *metrics.SUMMARY_KEYS)


def _tasks_for(model_labels) -> list[str]:
    """The tasks a model's labels can be scored on (its own first)."""
    model_labels = list(model_labels)
    out = []
    for task in ("fine16", "fine15", "basic6", "emotion5", "ravdess8"):
        target = task_labels(task)
        m = collapse_matrix(model_labels, task)
        if m.sum(axis=0).all() and (task != "ravdess8" or set(target) <= set(model_labels)):
            out.append(task)
    if any(split_label(lab)[1] in INTENSITIES for lab in model_labels):
        out.append(INTENSITY_TASK)
    return out


def _intensity_matrix(model_labels) -> np.ndarray:
    m = np.zeros((len(model_labels), len(INTENSITIES)), dtype=np.float32)
    for k, lab in enumerate(model_labels):
        i = split_label(lab)[1]
        if i in INTENSITIES:
            m[k, INTENSITIES.index(i)] = 1
    return m


def task_scores(probs, clips, model_labels, tasks=None) -> dict:
    """{task: {n, accuracy, balanced_accuracy, macro_f1}} of clip probabilities ``probs`` (model labels), each task
    scored on the clips that carry its label (tasks with no such clip are left out)."""
    model_labels = list(model_labels)
    probs = np.asarray(probs)
    out = {}
    for task in tasks or _tasks_for(model_labels):
        if task == INTENSITY_TASK:
            labels = list(INTENSITIES)
            truth = [c.intensity if c.intensity in INTENSITIES else None for c in clips]
            m = _intensity_matrix(model_labels)
        else:
            labels = list(task_labels(task))
            truth = [c.label(task) for c in clips]
            m = collapse_matrix(model_labels, task)
        keep = [k for k, t in enumerate(truth) if t is not None]
        if not keep:
            continue
        pred = collapse(probs[keep], m).argmax(1)
        s = metrics.scores([labels.index(truth[k]) for k in keep], pred, labels)
        out[task] = {k: s[k] for k in KEYS}
    return out


def by_corpus(probs, clips, model_labels) -> dict:
    """{corpus: task_scores} over the clips of each corpus."""
    out = {}
    for name in sorted({c.corpus for c in clips}):
        sel = [k for k, c in enumerate(clips) if c.corpus == name]
        out[name] = task_scores(np.asarray(probs)[sel], [clips[k] for k in sel], model_labels)
    return out


def pooled_breakdown(data, results) -> dict:
    """From the folds of a CV (each with ``test_idx``/``test_probs``/``tasks``): every task's mean ± std over folds,
    and per corpus the test predictions of all folds scored together."""
    out = {}
    tasks = sorted({t for r in results for t in r.get("tasks", {})})
    if tasks:
        out["tasks"] = {t: {k: {"mean": float(np.mean([r["tasks"][t][k] for r in results if t in r["tasks"]])),
                                "std": float(np.std([r["tasks"][t][k] for r in results if t in r["tasks"]]))}
                            for k in metrics.SUMMARY_KEYS} for t in tasks}
    if all("test_idx" in r for r in results):
        idx = np.concatenate([r["test_idx"] for r in results])
        probs = np.concatenate([r["test_probs"] for r in results])
        out["per_corpus"] = by_corpus(probs, [data.clips[i] for i in idx], data.labels)
        out["per_corpus_protocol"] = "the test clips of every fold scored together (each by its fold's model)"
    return out


def leave_one_corpus_out(data, cfg, log=print, corpora=None) -> dict:
    """For each corpus (or those named): train on every other corpus in ``data`` (a speaker-disjoint validation
    part of them for early stopping; augmentation of that training part only) and score every clip of it."""
    from .train import _fit, predict_clips, warm_variants
    names = sorted({c.corpus for c in data.clips})
    per = " (each corpus's, a one-speaker corpus trains)" if cfg.val_split == "corpus" else ""
    out = {"protocol": "leave-one-corpus-out: trained on every other training corpus (speaker-disjoint validation "
                       f"part {cfg.val_fraction:.0%} of their speakers{per} for early stopping, augmentation "
                       f"({', '.join(cfg.augment) or 'none'}) of the training part only), scored on every clip of "
                       "the held-out corpus as the runtime does", "held_out": {}}
    corpus_of = np.array([c.corpus for c in data.clips])
    for k, name in enumerate(corpora or names):
        te = np.flatnonzero(corpus_of == name)
        rest = np.flatnonzero(corpus_of != name)
        if not len(te) or not len(rest):
            continue
        tr_part, va_part = splits.holdout(data.y[rest], data.speakers[rest], cfg.val_fraction, cfg.seed + 300 + k,
                                           cfg.val_split)
        tr, va = rest[tr_part], rest[va_part]
        splits.check_disjoint(data.speakers, tr, va, te)
        data.warm(tr, warm_variants(cfg), f"LOCO {name}: augmented features")
        data.set_population(tr)
        model = _fit(data, cfg, tr, va, None, cfg.seed + 300 + k)
        p, ok = predict_clips(model, data, te)
        scores = task_scores(p, [data.clips[i] for i in ok], data.labels)
        out["held_out"][name] = {"n_train_clips": int(len(tr)), "train_corpora": sorted(set(corpus_of[tr])),
                                 **scores}
        log(f"leave-one-corpus-out {name}: " + ", ".join(f"{t} {s['accuracy']:.3f} (n={s['n']})"
                                                         for t, s in scores.items()))
    return out


def nested_cv(data, cfg, recipes: dict, log=print, score_task: str | None = None) -> dict:
    """Actor-fold CV with the recipe chosen inside each fold: every recipe (``{name: TrainConfig overrides}``) is
    trained on the fold's training part minus validation speakers and scored on those validation speakers
    (``score_task``'s balanced accuracy, default the model's task); the best is retrained on the whole training part
    (the same validation speakers for early stopping) and scored on the fold's test speakers."""
    from .train import _fit, fold_parts, predict_clips, score_fold, warm_variants
    folds = splits.actor_folds(data.y, data.speakers, cfg.folds, cfg.seed)
    score_task = score_task or cfg.task
    results, chosen = [], []
    for k, (tr, te) in enumerate(folds):
        tr_idx, va_idx = fold_parts(data, cfg, tr, te, k)
        # the inner split: recipes compete on validation speakers the inner training part has not seen
        inner, sel = splits.holdout(data.y[tr_idx], data.speakers[tr_idx], cfg.val_fraction, cfg.seed + 200 + k,
                                     cfg.val_split)
        in_tr, in_va = tr_idx[inner], tr_idx[sel]
        splits.check_disjoint(data.speakers, in_tr, in_va, va_idx, te)
        data.set_population(in_tr)
        inner_scores = {}
        for name, overrides in recipes.items():
            rcfg = replace(cfg, **overrides)
            data.warm(in_tr, warm_variants(rcfg), f"fold {k + 1} recipe {name}")
            model = _fit(data, rcfg, in_tr, va_idx, None, cfg.seed + k)
            p, ok = predict_clips(model, data, in_va)
            s = task_scores(p, [data.clips[i] for i in ok], data.labels, [score_task]).get(score_task)
            inner_scores[name] = s["balanced_accuracy"] if s else float("nan")
        best = max(inner_scores, key=lambda n: (np.nan_to_num(inner_scores[n], nan=-1.0), -list(recipes).index(n)))
        bcfg = replace(cfg, **recipes[best])
        data.warm(tr_idx, warm_variants(bcfg), f"fold {k + 1} chosen {best}")
        data.set_population(tr_idx)
        model = _fit(data, bcfg, tr_idx, va_idx, None, cfg.seed + k)
        m = score_fold(model, data, te, k, tr_idx)
        m["chosen"], m["inner_scores"] = best, inner_scores
        inner = ", ".join(f"{n} {v:.3f}" for n, v in inner_scores.items())
        log(f"nested fold {k + 1}/{cfg.folds}: chose {best} ({inner}"
            f" on inner validation speakers); test accuracy {m['accuracy']:.3f}")
        results.append(m)
        chosen.append(best)
    summary = metrics.mean_std(results)
    summary.update(pooled_breakdown(data, results))
    return {"protocol": f"nested actor-fold CV: {cfg.folds} folds disjoint by speaker; in each fold the recipe is "
                        f"chosen by {score_task} balanced accuracy on validation speakers inside the training part, "
                        "then retrained on the training part and scored once on the test speakers",
            "recipes": {n: {k: list(v) if isinstance(v, tuple) else v for k, v in r.items()}
                        for n, r in recipes.items()},
            "chosen": chosen, **summary,
            "per_fold": [{k: v for k, v in r.items() if k not in ("confusion", "per_class", "labels", "test_idx",
                                                                  "test_probs")} for r in results]}

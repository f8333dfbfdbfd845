"""Classification metrics with the contract's field names (accuracy, balanced_accuracy, macro_f1, confusion,
per_class), and mean ± std over folds."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support

SUMMARY_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


def scores(y_true, y_pred, labels: list[str]) -> dict:
    """Metrics for integer label indices ``y_true``/``y_pred`` over ``labels``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    idx = list(range(len(labels)))
    present = sorted(set(y_true.tolist()))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=idx, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                            "support": int(s[i])} for i, lab in enumerate(labels)},
    }


def mean_std(folds: list[dict], keys=SUMMARY_KEYS) -> dict:
    return {k: {"mean": float(np.mean([f[k] for f in folds])), "std": float(np.std([f[k] for f in folds]))}
            for k in keys}


def pooled(folds: list[dict]) -> np.ndarray:
    return np.sum([np.asarray(f["confusion"]) for f in folds], axis=0)

"""Training targets for clips that carry part of a label (fine16: an emotion only, an intensity only, or both).

A clip's targets are its candidate labels (`Clip.targets`).  As integers: a label index ``< n_labels`` for a full
label, or ``n_labels + j`` for the candidate set ``groups[j]`` (a partial label).  A kind with partial-label support
trains on them either

- factorised (``factorised=True``, fine16's default): two heads, emotion over `FINE16_EMOTIONS` (neutral + the five
  fine emotions) and intensity over low/medium/high, composed into the 16 labels as ``p(neutral) = p_e(neutral)``,
  ``p(e_i) = p_e(e) * p_i(i)``.  `head_targets` turns each target into (emotion index or -1, intensity index or -1):
  a missing part is masked in its head's loss, so a clip without intensity moves only the emotion head (and the
  shared layers) and a BAVED clip with a level only moves only the intensity head;
- or over the 16 outputs with the marginal likelihood of the candidate set (``partial_groups`` alone: minus the log of
  the summed probability of the candidates).
"""
from __future__ import annotations

import numpy as np

from edge_ser.labels import FINE16_EMOTIONS, INTENSITIES, split_label

MASKED = -1


def encode(candidate_sets, labels) -> tuple[np.ndarray, list[list[int]]]:
    """Integer targets for candidate label tuples: a label index for one candidate, ``len(labels) + j`` for the
    j-th distinct set of several (returned as lists of label indices, in order of first appearance)."""
    labels = list(labels)
    groups: list[tuple[int, ...]] = []
    y = np.empty(len(candidate_sets), dtype=np.int64)
    for k, cands in enumerate(candidate_sets):
        idx = tuple(sorted(labels.index(c) for c in cands))
        if not idx:
            raise ValueError("a clip without any candidate label cannot be a target")
        if len(idx) == 1:
            y[k] = idx[0]
            continue
        if idx not in groups:
            groups.append(idx)
        y[k] = len(labels) + groups.index(idx)
    return y, [list(g) for g in groups]


def head_tables(labels, groups) -> tuple[np.ndarray, np.ndarray]:
    """For every integer target (labels, then groups): its emotion-head index and intensity-head index (MASKED
    when the candidates do not agree on it, e.g. a BAVED level has no emotion, neutral has no intensity)."""
    labels = list(labels)
    emo, inten = [], []
    for cands in [[i] for i in range(len(labels))] + [list(g) for g in groups]:
        parts = [split_label(labels[i]) for i in cands]
        es = {e for e, _ in parts}
        ins = {i for _, i in parts}
        emo.append(FINE16_EMOTIONS.index(es.pop()) if len(es) == 1 and next(iter(es)) in FINE16_EMOTIONS
                   else MASKED)
        one = next(iter(ins)) if len(ins) == 1 else None
        inten.append(INTENSITIES.index(one) if one in INTENSITIES else MASKED)
    return np.asarray(emo, dtype=np.int64), np.asarray(inten, dtype=np.int64)


def head_targets(y, labels, groups) -> tuple[np.ndarray, np.ndarray]:
    """(emotion index, intensity index) per integer target ``y``; MASKED where the clip does not carry it."""
    emo, inten = head_tables(labels, groups)
    y = np.asarray(y, dtype=np.int64)
    return emo[y], inten[y]


def check_factorisable(labels) -> None:
    """A factorised model composes neutral + the five fine emotions x three intensities, in fine16's order."""
    want = ["neutral"] + [f"{e}_{i}" for e in FINE16_EMOTIONS[1:] for i in INTENSITIES]
    if list(labels) != want:
        raise ValueError(f"a factorised (emotion x intensity) model needs fine16's labels, got {list(labels)}")


def composition() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed linear maps (weights, biases) that compose fine16 from the two heads: ``E = p_e @ We + be`` and
    ``I = p_i @ Wi + bi`` (both 16 wide) with ``p = E * I`` (neutral: ``p_e(neutral) * 1``; e_i: ``p_e(e) p_i(i)``)."""
    n_e, n_i = len(FINE16_EMOTIONS), len(INTENSITIES)
    we = np.zeros((n_e, 1 + (n_e - 1) * n_i), np.float32)
    wi = np.zeros((n_i, 1 + (n_e - 1) * n_i), np.float32)
    bi = np.zeros(1 + (n_e - 1) * n_i, np.float32)
    we[0, 0] = 1.0
    bi[0] = 1.0
    for e in range(1, n_e):
        for i in range(n_i):
            col = 1 + (e - 1) * n_i + i
            we[e, col] = 1.0
            wi[i, col] = 1.0
    return we, np.zeros_like(bi), wi, bi


def conditional_composition() -> np.ndarray:
    """The intensity map when each of the five emotions has its own intensity head: ``I = p_ie @ Wc + bi`` with
    ``p_ie`` the five heads side by side ``(N, 15)`` in FINE16_EMOTIONS[1:] order, so ``p(e_i) = p_e(e) p_i(i | e)``
    (the emotion map and ``bi`` as in `composition`)."""
    n_e, n_i = len(FINE16_EMOTIONS), len(INTENSITIES)
    wc = np.zeros(((n_e - 1) * n_i, 1 + (n_e - 1) * n_i), np.float32)
    wc[np.arange(wc.shape[0]), 1 + np.arange(wc.shape[0])] = 1.0
    return wc


def compose(p_emotion: np.ndarray, p_intensity: np.ndarray) -> np.ndarray:
    """fine16 probabilities ``(N, 16)`` from the emotion head ``(N, 6)`` and the intensity head ``(N, 3)``, or five
    intensity heads, one per emotion, side by side ``(N, 15)`` (`conditional_composition`)."""
    we, be, wi, bi = composition()
    p_intensity = np.asarray(p_intensity)
    if p_intensity.shape[1] != wi.shape[0]:
        wi = conditional_composition()
    return ((np.asarray(p_emotion) @ we + be) * (p_intensity @ wi + bi)).astype(np.float32)


def balanced_weights(targets: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-row weight of a head: the row's weight times sklearn's "balanced" class weight (over the rows whose
    target is known), 0 where the target is MASKED; scaled to mean 1 over the known rows."""
    known = targets >= 0
    out = np.zeros(len(targets), dtype=np.float64)
    if not known.any():
        return out
    per_class = np.bincount(targets[known], weights=weights[known], minlength=n_classes)
    cw = np.where(per_class > 0, weights[known].sum() / (n_classes * np.maximum(per_class, 1e-12)), 0.0)
    out[known] = weights[known] * cw[targets[known]]
    out[known] /= out[known].mean()
    return out


def head_rows(y, groups, w=None) -> np.ndarray:
    """Factorised fine16 targets for the masked loss (`kinds.cnn.heads_loss`): rows (emotion index, its weight,
    intensity index, its weight), a weight 0 where the clip does not carry that part.  ``w`` None: weights 1 where
    known (validation); else the sample weights balanced per head (`balanced_weights`)."""
    from edge_ser.labels import TASKS
    ye, yi = head_targets(y, TASKS["fine16"], groups)
    if w is None:
        we, wi = (ye >= 0).astype(np.float64), (yi >= 0).astype(np.float64)
    else:
        w = np.asarray(w, dtype=np.float64)
        we, wi = balanced_weights(ye, w, len(FINE16_EMOTIONS)), balanced_weights(yi, w, len(INTENSITIES))
    return np.stack([ye, we, yi, wi], axis=1).astype(np.float32)

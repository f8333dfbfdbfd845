"""Speaker-disjoint splits: K actor folds and train/validation/test, stratified by label
(scikit-learn's StratifiedGroupKFold with the speaker as the group).  No speaker is ever on two sides."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


@dataclass
class Split:
    train: np.ndarray  # indices
    val: np.ndarray
    test: np.ndarray


def actor_folds(labels, speakers, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K (train_idx, test_idx) pairs; each speaker is in exactly one test fold."""
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    n_spk = len(set(speakers.tolist()))
    if k < 2 or k > n_spk:
        raise ValueError(f"need 2 <= folds <= number of speakers ({n_spk}), got {k}")
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(len(labels)), labels, speakers)]


VAL_SPLITS = ("pooled", "corpus")


def holdout(labels, speakers, fraction: float, seed: int = 0, by: str = "pooled") -> tuple[np.ndarray, np.ndarray]:
    """(rest_idx, held_idx): about ``fraction`` of the clips held out, whole speakers, stratified by label.

    ``by="pooled"``: one stratified group split over every speaker (a large single-speaker corpus such as ESD 0020,
    ~1300 clips, can be the held-out part's majority, or all of it the rest never sees).  ``by="corpus"``: the
    same split inside each corpus (the prefix of ``"corpus:speaker"``), so every corpus with two or more speakers
    gives ~``fraction`` of its clips; a corpus of one speaker stays whole in the rest."""
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    if by not in VAL_SPLITS:
        raise ValueError(f"holdout by {by!r}: expected one of {', '.join(VAL_SPLITS)}")
    if by == "corpus":
        corpus = np.array([s.split(":", 1)[0] if ":" in s else "" for s in speakers.tolist()])
        held = []
        for c in sorted(set(corpus.tolist())):
            idx = np.flatnonzero(corpus == c)
            if len(set(speakers[idx].tolist())) >= 2:
                held.append(idx[holdout(labels[idx], speakers[idx], fraction, seed)[1]])
        if held:
            held_idx = np.sort(np.concatenate(held))
            return np.setdiff1d(np.arange(len(labels)), held_idx), held_idx
    n_spk = len(set(speakers.tolist()))
    k = int(min(max(2, round(1.0 / fraction)), n_spk))
    return next(iter(actor_folds(labels, speakers, k, seed)))


def train_val_test(labels, speakers, val: float = 0.15, test: float = 0.15, seed: int = 0) -> Split:
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    rest, te = holdout(labels, speakers, test, seed)
    r_tr, r_va = holdout(labels[rest], speakers[rest], val / (1.0 - test), seed + 1)
    return Split(rest[r_tr], rest[r_va], te)


def check_disjoint(speakers, *parts) -> None:
    """Raise AssertionError if a speaker appears in two of the index sets."""
    speakers = np.asarray(speakers)
    sets = [set(speakers[np.asarray(p, dtype=int)].tolist()) for p in parts]
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            both = sets[i] & sets[j]
            if both:
                raise AssertionError(f"speakers on two sides of a split: {sorted(both)[:5]}")

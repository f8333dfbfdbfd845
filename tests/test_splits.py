"""edge_ser_train.splits: speakers never cross a split; folds cover every speaker once; labels stratified."""
import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from edge_ser_train.splits import actor_folds, check_disjoint, holdout, train_val_test  # noqa: E402


def _data(n_spk=20, per=30, n_labels=5, seed=0):
    rng = np.random.default_rng(seed)
    speakers = np.repeat([f"s{i:02d}" for i in range(n_spk)], per)
    labels = rng.integers(0, n_labels, len(speakers))
    return labels, speakers


def test_actor_folds_disjoint_and_cover_every_speaker():
    y, spk = _data()
    folds = actor_folds(y, spk, k=5, seed=1)
    assert len(folds) == 5
    seen = []
    for tr, te in folds:
        assert not set(spk[tr]) & set(spk[te])
        assert len(tr) + len(te) == len(y)
        seen += sorted(set(spk[te]))
    assert sorted(seen) == sorted(set(spk))  # each speaker tested exactly once


def test_folds_are_stratified_and_reproducible():
    y, spk = _data(n_spk=30)
    a = actor_folds(y, spk, 5, seed=3)
    b = actor_folds(y, spk, 5, seed=3)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b))
    overall = np.bincount(y) / len(y)
    for _, te in a:
        share = np.bincount(y[te], minlength=len(overall)) / len(te)
        assert np.abs(share - overall).max() < 0.1


def test_train_val_test_disjoint():
    y, spk = _data(n_spk=20)
    s = train_val_test(y, spk, val=0.15, test=0.15, seed=0)
    check_disjoint(spk, s.train, s.val, s.test)
    assert len(s.train) + len(s.val) + len(s.test) == len(y)
    assert min(len(s.val), len(s.test)) > 0


def test_holdout_and_check_disjoint_detects_leaks():
    y, spk = _data(n_spk=10)
    rest, held = holdout(y, spk, 0.2, seed=0)
    check_disjoint(spk, rest, held)
    with pytest.raises(AssertionError, match="two sides"):
        check_disjoint(spk, np.arange(0, 40), np.arange(20, 60))


def test_too_many_folds_is_an_error():
    y, spk = _data(n_spk=3)
    with pytest.raises(ValueError):
        actor_folds(y, spk, k=4)


def test_holdout_by_corpus_draws_from_every_corpus_and_keeps_a_lone_speaker_in_training():
    rng = np.random.default_rng(0)
    # a big corpus of 20 speakers, a small one of 6, and one speaker with as many clips as the big corpus
    spk = np.array([f"big:{i:02d}" for i in range(20) for _ in range(30)]
                   + [f"small:{i}" for i in range(6) for _ in range(20)] + ["lone:0"] * 600)
    y = rng.integers(0, 4, len(spk))
    rest, held = holdout(y, spk, 0.15, seed=3, by="corpus")
    check_disjoint(spk, rest, held)
    assert len(rest) + len(held) == len(spk) and len(np.intersect1d(rest, held)) == 0
    corpus = np.array([s.split(":")[0] for s in spk])
    assert set(corpus[held]) == {"big", "small"}                 # every corpus of two or more speakers gives some
    assert not np.any(corpus[held] == "lone")                    # the one-speaker corpus trains
    share = {c: np.mean(corpus[held] == c) * len(held) / np.sum(corpus == c) for c in ("big", "small")}
    assert 0.1 <= share["big"] <= 0.25 and 0.1 <= share["small"] <= 0.25
    assert holdout(y, spk, 0.15, seed=3, by="corpus")[1].tolist() == held.tolist()  # seeded: the same split again
    with pytest.raises(ValueError, match="holdout by"):
        holdout(y, spk, 0.15, by="speaker")

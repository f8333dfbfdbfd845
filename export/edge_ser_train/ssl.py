"""Semi-supervised pseudo-labelling (seed 000, section 3.7), measured on unseen speakers.

Set 1 is the labelled fine15 data.  The *pool* is every clip whose emotion is one of the five fine15 emotions but
whose intensity is unknown (CREMA-D's ``XX`` clips; neutral is never in the pool).  A model trained on set 1 labels
the pool; a clip is *accepted* when the predicted label's emotion equals the clip's known emotion and the predicted
label's probability (the confidence, as ``edge-ser classify`` reports it) is at least a threshold.  Set 2 = set 1 +
the accepted clips with their pseudo labels; the model is retrained on set 2.  With ``rounds > 1`` the set-2 model
labels the clips not yet accepted, and so on.

The threshold is chosen on the validation speakers (``threshold=None``, "auto"): their labelled clips of the pool's
corpora are treated as a pool (same acceptance rule), and the threshold is the one of `THRESHOLD_GRID` that
maximises (correctly labelled - wrongly labelled) accepted clips, i.e. a clip is accepted when its pseudo label is
more likely right than wrong.  It needs no retraining, so it is cheap for the CNN too.

Leakage: inside actor-fold CV, each fold's hook trains its pseudo-labeller on the fold's training speakers only and
labels only pool clips of those speakers; `edge_ser_train.train` also refuses extra clips of validation/test speakers.

Entry points: `make_ssl_hook` (for ``edge-ser train --ssl`` / `edge_ser_train.train.run`), `pseudo_label` (``edge-ser
pseudo-label``: an exported model through ``edge_ser.registry.load_model`` labels a pool), `write_csv`,
`crowd_agreement` (the independent check against CREMA-D's crowd-rated VoiceLevel), and ``python -m edge_ser_train.ssl``
(the before/after experiment and its report, see `main`).
"""
from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ser.errors import UserError
from edge_ser.labels import FINE_EMOTIONS, INTENSITIES, split_label, task_labels
from edge_ser.paths import check_output_file

from . import corpora

CSV_FIELDS = ("path", "label", "emotion", "intensity", "confidence", "accepted", "round", "speaker",
              "predicted_emotion", "expected_intensity")
THRESHOLD_GRID = tuple(round(x, 2) for x in np.arange(0.0, 0.951, 0.05))
# Default thresholds of `edge-ser pseudo-label` per model kind (no validation speakers there): the median of the
# per-fold choices on validation speakers with the shipped (speaker-normalised) recipes ("chosen_thresholds" in
# reports/ssl/fine15-rfc.json: 0.75 0.00 0.25 0.35 0.00; reports/ssl/fine15-cnn.json: 0.80 0.40 0.00 0.25 0.20).
DEFAULT_THRESHOLDS = {"rfc": 0.25, "cnn": 0.25}
LEVEL = {i: k for k, i in enumerate(INTENSITIES)}  # low 0, medium 1, high 2


HARD_RULE = "accepted = predicted emotion equals the known emotion and confidence >= threshold"
SOFT_RULE = ("soft: every pool clip, its target the labeller's intensity distribution within the known emotion "
             "(CSV: the most likely of those intensities and its probability)")


class SslError(UserError):
    """Bad SSL input (no pool, wrong task, existing output)."""


# --- the pool and the acceptance rule ------------------------------------------------------------------------

def is_pool(clip) -> bool:
    return clip.emotion in FINE_EMOTIONS and clip.intensity is None


def pool_of(clips) -> list:
    """The unlabelled pool: clips of a fine15 emotion with no intensity (CREMA-D XX; neutral excluded)."""
    return [c for c in clips if is_pool(c)]


@dataclass
class Decisions:
    """Per clip: predicted fine15 label index, its probability, the pseudo intensity, acceptance."""
    pred: np.ndarray
    confidence: np.ndarray
    predicted_emotion: list
    intensity: list
    accepted: np.ndarray
    expected: np.ndarray  # expected intensity level (0 low .. 2 high) within the known emotion

    def label_index(self, k: int) -> int:
        return int(self.pred[k])


def decide(probs: np.ndarray, emotions, labels, threshold: float) -> Decisions:
    """The acceptance rule: argmax label's emotion == the known emotion and its probability >= threshold.
    Unreadable clips (NaN rows) are never accepted."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = list(labels)
    ok = np.isfinite(probs).all(axis=1)
    safe = np.where(ok[:, None], probs, 0.0)
    pred = safe.argmax(axis=1)
    conf = np.where(ok, safe[np.arange(len(safe)), pred], np.nan)
    pe = [split_label(labels[p])[0] if o else None for p, o in zip(pred, ok)]
    inten = [split_label(labels[p])[1] if o else None for p, o in zip(pred, ok)]
    accepted = np.array([bool(o) and e == known and c >= threshold - 1e-9
                         for o, e, known, c in zip(ok, pe, emotions, conf)], dtype=bool)
    expected = np.array([expected_level(safe[k], labels, emotions[k]) if ok[k] else np.nan
                         for k in range(len(safe))])
    return Decisions(pred, conf, pe, inten, accepted, expected)


def decide_soft(probs: np.ndarray, emotions, labels) -> tuple[Decisions, np.ndarray]:
    """Soft pseudo labels: every readable clip is accepted with, as its target, the model's distribution over the
    three intensities *within its known emotion* (the known emotion's labels renormalised; 0 elsewhere).  The
    decisions record the most likely of those intensities and its probability as the clip's pseudo label and
    confidence; ``predicted_emotion`` stays the model's own argmax.  Returns (decisions, targets N x labels)."""
    labels = list(labels)
    d = decide(probs, emotions, labels, 0.0)
    ok = np.isfinite(np.asarray(probs, np.float64)).all(axis=1)
    targets = np.zeros((len(ok), len(labels)), np.float32)
    for k in np.flatnonzero(ok):
        cols = [labels.index(f"{emotions[k]}_{i}") for i in INTENSITIES]
        w = np.asarray(probs[k], np.float64)[cols]
        targets[k, cols] = w / w.sum() if w.sum() > 0 else 1.0 / len(cols)
    pred = targets.argmax(axis=1)
    conf = np.where(ok, targets.max(axis=1), np.nan)
    inten = [split_label(labels[p])[1] if o else None for p, o in zip(pred, ok)]
    return Decisions(pred, conf, d.predicted_emotion, inten, ok.copy(), d.expected), targets


def expected_level(p: np.ndarray, labels, emotion: str) -> float:
    """E[intensity level] (low 0, medium 1, high 2) under the model's probabilities of the known emotion's labels."""
    w = np.array([p[labels.index(f"{emotion}_{i}")] for i in INTENSITIES], dtype=np.float64)
    s = w.sum()
    return float(np.dot(w, [0, 1, 2]) / s) if s > 0 else float("nan")


def choose_threshold(probs: np.ndarray, y_true, labels, grid=THRESHOLD_GRID) -> tuple[float, list]:
    """The threshold maximising (correct - wrong) accepted pseudo labels on labelled clips (validation speakers)
    treated as a pool.  Ties go to the lower threshold (more clips).  Returns (threshold, table per threshold)."""
    labels = list(labels)
    y_true = np.asarray(y_true)
    emotions = [split_label(labels[i])[0] for i in y_true]
    d = decide(probs, emotions, labels, 0.0)
    correct = d.pred == y_true
    table, best = [], None
    for t in grid:
        acc = d.accepted & (d.confidence >= t - 1e-9)
        n, good = int(acc.sum()), int((acc & correct).sum())
        row = {"threshold": float(t), "accepted": n, "correct": good, "net": good - (n - good),
               "precision": good / n if n else None}
        table.append(row)
        if best is None or row["net"] > best["net"]:
            best = row
    return best["threshold"], table


def rows_for(clips, d: Decisions, round_: int) -> list[dict]:
    rows = []
    for k, c in enumerate(clips):
        conf = d.confidence[k]
        rows.append({"path": c.path, "label": f"{c.emotion}_{d.intensity[k]}" if d.accepted[k] else "",
                     "emotion": c.emotion, "intensity": d.intensity[k] or "",
                     "confidence": "" if not np.isfinite(conf) else round(float(conf), 4),
                     "accepted": int(d.accepted[k]), "round": round_, "speaker": c.speaker,
                     "predicted_emotion": d.predicted_emotion[k] or "",
                     "expected_intensity": "" if not np.isfinite(d.expected[k]) else round(float(d.expected[k]), 4)})
    return rows


def write_csv(rows: list[dict], path: Path, force: bool = False) -> Path:
    """The grown dataset (every pool clip; ``accepted`` 1 for the pseudo-labelled ones).  Never overwrites an
    existing file unless ``force``."""
    path = check_output_file(path, force, SslError)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
    return path


def summarise(rows: list[dict]) -> dict:
    acc = [r for r in rows if int(r["accepted"])]
    return {"pool": len(rows), "accepted": len(acc), "accepted_share": len(acc) / len(rows) if rows else 0.0,
            "accepted_intensity": {i: sum(r["intensity"] == i for r in acc) for i in INTENSITIES},
            "accepted_emotion": {e: sum(r["emotion"] == e for r in acc) for e in FINE_EMOTIONS},
            "accepted_by_round": dict(sorted(Counter(int(r["round"]) for r in acc).items())),
            "emotion_correct": sum(r["predicted_emotion"] == r["emotion"] for r in rows),
            "unreadable": sum(r["confidence"] == "" for r in rows)}


# --- self-training inside edge_ser_train.train (the SSL hook) --------------------------------------------------------

@dataclass
class SslConfig:
    threshold: float | None = None  # None: chosen on the validation speakers (auto)
    rounds: int = 1
    # True: every readable pool clip joins with a soft target (`decide_soft`; kinds with ``soft_targets``, the
    # CNN), unaugmented; no threshold, one round
    soft: bool = False


def self_train(ctx, pool: list, scfg: SslConfig, log=print) -> tuple[list, dict]:
    """One fold (or the final model): set-1 model -> pseudo labels on the pool clips of the training speakers ->
    accepted clips (``rounds`` times).  Returns (extra clips [(Clip, label index or soft target vector)], record)."""
    from .train import predict_clips

    data, labels = ctx.data, list(ctx.data.labels)
    train_spk = {data.clips[i].speaker for i in ctx.train_idx}
    clips = [c for c in pool if c.speaker in train_spk and c.speaker not in ctx.excluded_speakers]
    model = ctx.fit(ctx.train_idx)
    record = {"set1_model": model, "pool": len(clips), "pool_speakers": sorted({c.speaker for c in clips}),
              "train_speakers": sorted(train_spk), "excluded_speakers": sorted(ctx.excluded_speakers)}
    threshold = 0.0 if scfg.soft else scfg.threshold
    if threshold is None:
        corp = {c.corpus for c in clips}
        val = [i for i in (ctx.val_idx if ctx.val_idx is not None else []) if data.clips[i].corpus in corp]
        if not val:
            raise SslError("the SSL threshold is chosen on validation speakers, but there are none of the pool's "
                           "corpora: give a fixed threshold")
        p, ok = predict_clips(model, data, np.asarray(val))
        threshold, table = choose_threshold(p, data.y[ok], labels)
        record.update(threshold_table=table, threshold_val_clips=int(len(ok)))
    record["threshold"] = float(threshold)
    extra, rows, left = [], {}, list(range(len(clips)))
    for r in range(1, scfg.rounds + 1):
        if not left:
            break
        todo = [clips[k] for k in left]
        probs = ctx.predict_clips(model, todo)
        if scfg.soft:
            d, targets = decide_soft(probs, [c.emotion for c in todo], labels)
        else:
            d = decide(probs, [c.emotion for c in todo], labels, threshold)
        for j, (k, row) in enumerate(zip(left, rows_for(todo, d, r))):
            rows[k] = row
            if d.accepted[j]:
                extra.append((clips[k], targets[j] if scfg.soft else d.label_index(j)))
        left = [k for j, k in enumerate(left) if not d.accepted[j]]
        log(f"SSL round {r}: {int(d.accepted.sum())} of {len(todo)} pool clips accepted ("
            + ("soft labels" if scfg.soft else f"threshold {threshold:.2f}") + f"; {len(extra)} in set 2 so far)")
        if r < scfg.rounds and d.accepted.any():
            model = ctx.fit(ctx.train_idx, extra)
    record["rows"] = [rows[k] for k in sorted(rows)]
    record.update(summarise(record["rows"]))
    return extra, record


class SslHook:
    """Callable for `edge_ser_train.train` (``ssl=``): one `self_train` per fold and for the final model; keeps a record
    of each call in ``records`` (fold order, the final model last)."""

    def __init__(self, pool: list, scfg: SslConfig, log=print, keep_models: bool = False):
        if not pool:
            raise SslError("no unlabelled pool clips (clips of angry/sad/happy/disgust/fear without intensity, "
                           "e.g. CREMA-D *_XX) in the --data folders")
        self.pool, self.scfg, self.log, self.keep_models = pool, scfg, log, keep_models
        self.records: list[dict] = []

    def __call__(self, ctx) -> list:
        extra, record = self_train(ctx, self.pool, self.scfg, self.log)
        if not self.keep_models:
            record.pop("set1_model")
        self.records.append(record)
        return extra

    def finish(self, out: Path, force: bool = False) -> dict:
        """After `edge_ser_train.train.run`: write the final model's grown dataset (out/pseudo_labels.csv) and return
        its summary (+ the per-fold summaries)."""
        if not self.records:
            return {}
        final = self.records[-1]
        path = write_csv(final["rows"], Path(out) / "pseudo_labels.csv", force=force)
        keys = ("pool", "accepted", "accepted_share", "accepted_intensity", "threshold")
        return {"csv": str(path), "soft": self.scfg.soft, **{k: final[k] for k in keys},
                "folds": [{k: r[k] for k in keys} for r in self.records[:-1]]}


def check_config(cfg, scfg: SslConfig) -> None:
    """Refuse what SSL cannot do with ``cfg``; with soft labels, make the pool join unaugmented (it is larger than
    the labelled set; ``cfg.extra_augment`` False)."""
    if cfg.task != "fine15":
        raise SslError(f"--ssl grows the fine15 set (intensity pseudo labels); task {cfg.task} has nothing to grow")
    if scfg.rounds < 1:
        raise SslError("--rounds must be at least 1")
    if scfg.threshold is not None and not 0.0 <= scfg.threshold <= 1.0:
        raise SslError("--threshold must be between 0 and 1")
    if scfg.soft:
        from . import kinds
        if not getattr(kinds.kind_class(cfg.kind), "soft_targets", False):
            raise SslError(f"soft pseudo labels need a model kind that trains on probabilities (cnn), not {cfg.kind}")
        if cfg.partial:
            raise SslError("soft pseudo labels and partial labels (the pool with its emotion only) do not mix")
        if scfg.threshold is not None or scfg.rounds != 1:
            raise SslError("soft pseudo labels take every pool clip in one round: no --threshold or --rounds")
        cfg.extra_augment = False


def make_ssl_hook(roots, cfg, threshold: float | None = None, rounds: int = 1, log=print,
                  keep_models: bool = False, soft: bool = False) -> SslHook:
    """The hook `edge-ser train --ssl` passes to `edge_ser_train.train.run`: the pool comes from the same --data roots.
    See `check_config` (it may set ``cfg.extra_augment``)."""
    scfg = SslConfig(threshold, rounds, soft)
    check_config(cfg, scfg)
    clips, _ = corpora.load_corpora(roots, cfg.corpus)
    return SslHook(pool_of(clips), scfg, log, keep_models)


# --- pseudo-label with an exported model ---------------------------------------------------------------------

def pseudo_label(model_spec, roots, threshold: float | None = None, corpus: str | None = None,
                 fmt: str | None = None, progress: bool = True, cluster=None) -> tuple[list[dict], dict]:
    """Label the pool of ``roots`` with an exported fine15 model (as `edge-ser classify` runs it).  ``cluster``
    (`edge_ser_train.cluster.Cluster`, `--cluster`): one task per clip on its workers, the in-process rows."""
    from tqdm import tqdm

    from edge_ser.errors import AudioError
    from edge_ser.registry import load_model

    model = load_model(model_spec, fmt=fmt)
    if list(model.labels) != list(task_labels("fine15")):
        raise SslError(f"model {model.name} predicts {model.manifest.task}, not fine15: pseudo-labelling needs "
                       "emotion x intensity labels")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS.get(model.manifest.kind, 0.0)
    if not 0.0 <= threshold <= 1.0:
        raise SslError("--threshold must be between 0 and 1")
    clips, summaries = corpora.load_corpora(roots, corpus)
    pool = pool_of(clips)
    if not pool:
        raise SslError("no unlabelled pool clips (clips of angry/sad/happy/disgust/fear without intensity, e.g. "
                       f"CREMA-D *_XX) in {', '.join(map(str, roots))}")
    probs = np.full((len(pool), len(model.labels)), np.nan, np.float32)
    unreadable = {}
    stats = {}
    if cluster is not None:
        from . import cluster_tasks
        ref = cluster_tasks.model_ref(model, model_spec)
    if model.speaker_norm is not None:
        # speaker adaptation: each speaker's statistics over their labelled fine15 clips (CREMA-D's IEO sentence),
        # as training computed them, or over their pool clips when the --data folders hold none of those
        labelled, _, _ = corpora.for_task(clips, "fine15")
        pool_speakers = {c.speaker for c in pool}
        by_speaker: dict = {}
        for c in labelled:
            if c.speaker in pool_speakers:
                by_speaker.setdefault(c.speaker, []).append(c)
        no_labelled = pool_speakers - set(by_speaker)
        for c in pool:
            if c.speaker in no_labelled:
                by_speaker.setdefault(c.speaker, []).append(c)
        if cluster is not None:
            stats, _ = cluster_tasks.speaker_stats(cluster, model, ref, [(spk, c.path) for spk, members in
                                                                        by_speaker.items() for c in members],
                                                   "speaker statistics")
        for spk, members in tqdm(list(by_speaker.items()) if cluster is None else [], desc="speaker statistics",
                                 unit="speaker", disable=not progress, mininterval=2.0, leave=False):
            st = model.speaker_stats()
            for c in members:
                try:
                    model.adapt_file(c.path, st)
                except AudioError:
                    pass  # an unreadable pool clip is reported below
            stats[spk] = st
    if cluster is not None:
        scored = cluster_tasks.classify(cluster, ref, [(c.path, stats.get(c.speaker), False) for c in pool],
                                        "pseudo-label")
    for k, c in enumerate(tqdm(pool, desc="pseudo-label", unit="clip", disable=not progress or cluster is not None,
                               mininterval=2.0, leave=False)):
        try:  # block by block, as `edge-ser classify` (adapted to the clip's speaker)
            if cluster is None:
                probs[k] = model.classify_file(c.path, stats=stats.get(c.speaker), update=False)[0]
            elif isinstance(scored[k], cluster_tasks.Failed):
                raise AudioError(scored[k].reason)
            else:
                probs[k] = scored[k]
        except AudioError as exc:
            unreadable[c.path] = str(exc)
    d = decide(probs, [c.emotion for c in pool], model.labels, threshold)
    rows = rows_for(pool, d, 1)
    summary = {"model": model.name, "model_path": str(model.path), "format": model.format,
               "threshold": float(threshold), **summarise(rows), "unreadable": unreadable,
               "corpora": [s.to_dict() for s in summaries],
               "rule": "accepted = predicted emotion equals the known emotion and confidence >= threshold",
               "adapt": ("each clip standardised by its speaker's statistics (their labelled fine15 clips, else "
                         "their pool clips)") if model.speaker_norm is not None else None}
    levels = {}
    for root in roots:
        levels.update(crowd_levels(root))
    if levels:  # CREMA-D with summaryTable.csv: the independent check against the crowd's VoiceLevel
        summary["crowd_check"] = crowd_agreement(rows, levels, [c for c in clips if c.corpus == "cremad"])
    return rows, summary


# --- independent check: crowd-perceived intensity (CREMA-D summaryTable.csv VoiceLevel) ----------------------

_VOTE = {"A": "angry", "D": "disgust", "F": "fear", "H": "happy", "N": "neutral", "S": "sad"}


def crowd_levels(root) -> dict:
    """CREMA-D file stem -> (VoiceLevel 0-100, voted emotions).  Ties ("N:S", "37.2:58.6"): the level of the vote
    that names the clip's intended emotion if any, else the mean.  {} when summaryTable.csv is absent."""
    root = Path(root)
    for cand in [root / "summaryTable.csv", root.parent / "summaryTable.csv", *root.glob("**/summaryTable.csv")]:
        if cand.is_file():
            out = {}
            with open(cand, newline="") as f:
                for row in csv.DictReader(f):
                    name = (row.get("FileName") or "").strip()
                    try:
                        levels = [float(x) for x in row["VoiceLevel"].split(":")]
                    except (KeyError, ValueError):
                        continue
                    votes = [_VOTE.get(v.strip(), v) for v in (row.get("VoiceVote") or "").split(":")]
                    out[name] = (levels, votes)
            return out
    return {}


def _level_for(entry, emotion: str) -> float:
    levels, votes = entry
    if len(levels) == len(votes) and emotion in votes:
        return levels[votes.index(emotion)]
    return float(np.mean(levels))


def _spearman(a, b) -> dict:
    from scipy.stats import spearmanr
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return {"rho": None, "p": None, "n": int(keep.sum())}
    if len(set(a[keep].tolist())) < 2 or len(set(b[keep].tolist())) < 2:  # constant: rho undefined
        return {"rho": None, "p": None, "n": int(keep.sum())}
    r = spearmanr(a[keep], b[keep])
    return {"rho": float(r.statistic), "p": float(r.pvalue), "n": int(keep.sum())}


def crowd_agreement(rows: list[dict], levels: dict, labelled_clips=()) -> dict:
    """Agreement of pseudo intensities with the crowd's VoiceLevel on the pool, and the same statistic for the true
    LO/MD/HI labels of ``labelled_clips`` (CREMA-D IEO) as the reference.  Spearman over all clips and within each
    emotion (mean of the five), mean VoiceLevel per (pseudo) intensity."""
    def stem(p):
        return Path(p).stem

    def block(items):
        # items: (emotion, level ordinal or expected, VoiceLevel)
        if not items:
            return {"n": 0}
        em, x, v = zip(*items)
        em, x, v = np.array(em), np.array(x, float), np.array(v, float)
        within = {e: _spearman(x[em == e], v[em == e]) for e in FINE_EMOTIONS if (em == e).sum() >= 3}
        rhos = [w["rho"] for w in within.values() if w["rho"] is not None]
        means = {}
        for i, name in enumerate(INTENSITIES):
            sel = x == i
            means[name] = {"n": int(sel.sum()), "mean_voice_level": float(v[sel].mean()) if sel.any() else None}
        return {"n": int(len(x)), "spearman": _spearman(x, v), "spearman_within_emotion": within,
                "spearman_within_emotion_mean": float(np.mean(rhos)) if rhos else None,
                "mean_voice_level": means}

    acc, exp_all = [], []
    for r in rows:
        entry = levels.get(stem(r["path"]))
        if entry is None:
            continue
        v = _level_for(entry, r["emotion"])
        if int(r["accepted"]):
            acc.append((r["emotion"], LEVEL[r["intensity"]], v))
        if r["expected_intensity"] != "":
            exp_all.append((r["emotion"], float(r["expected_intensity"]), v))
    ref = []
    for c in labelled_clips:
        entry = levels.get(stem(c.path))
        if entry is not None and c.intensity in LEVEL and c.emotion in FINE_EMOTIONS:
            ref.append((c.emotion, LEVEL[c.intensity], _level_for(entry, c.emotion)))
    out = {"accepted_pseudo_intensity": block(acc), "reference_true_intensity": block(ref)}
    e = block(exp_all)
    out["expected_intensity_all_pool"] = {k: e[k] for k in ("n", "spearman", "spearman_within_emotion_mean")
                                          if k in e}
    return out


# --- the before/after experiment (python -m edge_ser_train.ssl) ------------------------------------------------------

def experiment(roots, cfg, scfg: SslConfig, log=print, checkpoint: Path | None = None) -> dict:
    """Actor-fold CV of ``cfg`` with SSL; "before" = each fold's set-1 model (trained exactly as plain CV trains
    it: same training/validation speakers, augmentation and seed), "after" = the fold's set-2 model, both scored
    on the same test fold's clips.  With ``checkpoint``, each finished fold is appended to that JSON file (so a
    long CNN run that must be stopped still leaves its finished folds)."""
    import re

    from . import kinds, metrics, splits
    from .train import cross_validate, load_data, predict_clips

    check_config(cfg, scfg)
    kind = kinds.make(cfg.kind, len(task_labels(cfg.task)), **cfg.kind_options)
    data = load_data(roots, cfg, kind)
    clips, _ = corpora.load_corpora(roots, cfg.corpus)
    hook = SslHook(pool_of(clips), scfg, log, keep_models=True)
    folds = splits.actor_folds(data.y, data.speakers, cfg.folds, cfg.seed)
    before, done = [], []

    def score_set1(k):
        tr, te = folds[k]
        rec = hook.records[k]
        assert not set(rec["pool_speakers"]) & set(data.speakers[te].tolist()), "pool clip of a test speaker"
        p, ok = predict_clips(rec.pop("set1_model"), data, te)
        before.append(metrics.scores(data.y[ok], p.argmax(1), list(data.labels)))

    def fold_log(msg: str):
        log(msg)
        m = re.match(r"fold (\d+)/\d+: accuracy ([0-9.]+) balanced ([0-9.]+) macro-F1 ([0-9.]+)", msg)
        if m and len(hook.records) == len(before) + 1:  # a fold just finished: its set-1 model is the last record
            k = len(before)
            score_set1(k)
            rec = hook.records[k]
            done.append({"fold": k + 1, "before": {x: before[k][x] for x in ("n", *metrics.SUMMARY_KEYS)},
                         "after": dict(zip(metrics.SUMMARY_KEYS, map(float, m.groups()[1:]))),
                         **{x: rec[x] for x in ("pool", "accepted", "accepted_share", "accepted_intensity",
                                                "threshold")}})
            log(f"fold {k + 1}: set 1 accuracy {before[k]['accuracy']:.3f} -> set 2 {float(m.group(2)):.3f} "
                f"({rec['accepted']} of {rec['pool']} pool clips accepted, threshold {rec['threshold']:.2f})")
            if checkpoint is not None:
                Path(checkpoint).write_text(json.dumps({"kind": cfg.kind, "task": cfg.task, "seed": cfg.seed,
                                                        "folds_done": done}, indent=1) + "\n")

    after = cross_validate(data, cfg, hook, fold_log)
    if len(before) != len(hook.records):  # each fold's set-1 model is scored as its fold ends (fold_log), while
        # the fold's population statistics are in place; scoring it now would use the last fold's
        raise RuntimeError(f"scored {len(before)} of {len(hook.records)} folds' set-1 models (fold log not parsed)")
    levels = {}
    for root in roots:
        levels.update(crowd_levels(root))
    ieo = [c for c in data.clips if c.corpus == "cremad"]
    per_fold_checks = [crowd_agreement(r["rows"], levels, ieo) for r in hook.records]
    diffs = {k: [a[k] - b[k] for a, b in zip(after["per_fold"], before)] for k in metrics.SUMMARY_KEYS}
    return {
        "task": cfg.task, "kind": cfg.kind, "kind_options": cfg.kind_options, "augment": list(cfg.augment),
        "seed": cfg.seed, "folds": cfg.folds, "protocol": after["protocol"],
        "train_hop_seconds": getattr(cfg, "train_hop_seconds", None),
        "ssl": {"rule": SOFT_RULE if scfg.soft else HARD_RULE,
                "threshold": ("none (soft)" if scfg.soft else "auto (per fold, on validation speakers)"
                              if scfg.threshold is None else scfg.threshold),
                "rounds": scfg.rounds, "weight": cfg.extra_weight, "soft": scfg.soft,
                "pool_augmented": cfg.extra_augment},
        "before": {**metrics.mean_std(before), "per_fold": [{k: b[k] for k in ("n", *metrics.SUMMARY_KEYS)}
                                                             for b in before]},
        "after": {k: after[k] for k in metrics.SUMMARY_KEYS} | {"per_fold": after["per_fold"]},
        "cv": after,  # the whole CV of the recipe with SSL (`edge_ser_train.train.run(cv=...)` takes it for a final model)
        "gain": {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_fold": v} for k, v in diffs.items()},
        "pool": [{k: r[k] for k in ("pool", "accepted", "accepted_share", "accepted_intensity", "accepted_emotion",
                                    "accepted_by_round", "emotion_correct", "threshold")} |
                 {"threshold_table": r.get("threshold_table")} for r in hook.records],
        "chosen_thresholds": [r["threshold"] for r in hook.records],
        "crowd_check": per_fold_checks,
        "rows_per_fold": [r["rows"] for r in hook.records],
    }


def _pm(d, k, scale=100.0):
    return f"{scale * d[k]['mean']:.1f} ± {scale * d[k]['std']:.1f}"


def write_report(res: dict, out_dir: Path) -> Path:
    """reports/ssl/<task>-<kind>.md + .json (+ the grown dataset of each fold as CSV)."""
    from . import metrics
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{res['task']}-{res['kind']}"
    rows = res.pop("rows_per_fold")
    for k, r in enumerate(rows):
        write_csv(r, out_dir / f"{name}-fold{k + 1}-pseudo_labels.csv", force=True)
    (out_dir / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    pools = res["pool"]
    extras = ("and pseudo-labelled clips" if res["ssl"].get("pool_augmented", True)
              else "only; pseudo-labelled clips as recorded")
    L = [f"# SSL (pseudo-labelling) for {name}: before/after on unseen speakers", "",
         f"Protocol: {res['protocol']}. Seed {res['seed']}. Model options {res['kind_options'] or 'default'}; "
         f"augmentation {', '.join(res['augment']) or 'none'} (training part {extras}); training "
         f"windows every {res.get('train_hop_seconds') or 'scoring hop'} s.", "",
         f"SSL: {res['ssl']['rule']}; threshold {res['ssl']['threshold']}; rounds {res['ssl']['rounds']}; "
         f"a pseudo-labelled clip weighs {res['ssl'].get('weight', 1.0)} (a labelled one 1). In each "
         "fold the pseudo-labeller is trained on that fold's training speakers only and labels only the pool clips "
         "of those speakers (CREMA-D XX clips, neutral excluded); 'before' is the fold's set-1 model (trained "
         "exactly as in plain CV), 'after' the set-2 model; both are scored on the same test fold.", "",
         "| metric (%) | set 1 (before) | set 2 (after) | gain, paired per fold |", "|---|---|---|---|"]
    for k in metrics.SUMMARY_KEYS:
        L.append(f"| {k} | {_pm(res['before'], k)} | {_pm(res['after'], k)} | {_pm(res['gain'], k)} |")
    L += ["", "mean ± std over the folds.", "",
          "| fold | test clips | set 1 acc | set 2 acc | pool (training speakers) | accepted | share | threshold | "
          "accepted low/medium/high |", "|---|---|---|---|---|---|---|---|---|"]
    for k, (b, a, p) in enumerate(zip(res["before"]["per_fold"], res["after"]["per_fold"], pools)):
        ai = p["accepted_intensity"]
        L.append(f"| {k + 1} | {b['n']} | {100 * b['accuracy']:.1f} | {100 * a['accuracy']:.1f} | {p['pool']} | "
                 f"{p['accepted']} | {100 * p['accepted_share']:.1f}% | {p['threshold']:.2f} | "
                 f"{ai['low']}/{ai['medium']}/{ai['high']} |")
    n_pool = [p["pool"] for p in pools]
    n_acc = [p["accepted"] for p in pools]
    L += ["", f"Pool per fold {np.mean(n_pool):.0f} clips on average; accepted {np.mean(n_acc):.0f} "
          f"({100 * np.mean([p['accepted_share'] for p in pools]):.1f}%); predicted emotion right for "
          f"{100 * np.mean([p['emotion_correct'] / max(p['pool'], 1) for p in pools]):.1f}% of the pool.", ""]
    cc = res["crowd_check"]

    def stat(path, fmt=".3f"):
        vals = []
        for c in cc:
            x = c
            for p in path:
                x = x.get(p) if isinstance(x, dict) else None
            if x is not None:
                vals.append(x)
        return (f"{np.mean(vals):{fmt}} ± {np.std(vals):{fmt}}" if vals else "n/a")
    L += ["## Independent check: crowd-perceived intensity (CREMA-D summaryTable.csv, VoiceLevel 0-100)", "",
          "Spearman correlation with VoiceLevel (mean ± std over the folds' pseudo-labelled pools):", "",
          "| what | clips | Spearman, all | Spearman within emotion (mean of 5) |", "|---|---|---|---|",
          f"| accepted clips: pseudo intensity (0/1/2) | {stat(['accepted_pseudo_intensity', 'n'], '.0f')} | "
          f"{stat(['accepted_pseudo_intensity', 'spearman', 'rho'])} | "
          f"{stat(['accepted_pseudo_intensity', 'spearman_within_emotion_mean'])} |",
          f"| whole pool: expected intensity within the known emotion | "
          f"{stat(['expected_intensity_all_pool', 'n'], '.0f')} | "
          f"{stat(['expected_intensity_all_pool', 'spearman', 'rho'])} | "
          f"{stat(['expected_intensity_all_pool', 'spearman_within_emotion_mean'])} |",
          f"| reference: true LO/MD/HI of the IEO clips | {stat(['reference_true_intensity', 'n'], '.0f')} | "
          f"{stat(['reference_true_intensity', 'spearman', 'rho'])} | "
          f"{stat(['reference_true_intensity', 'spearman_within_emotion_mean'])} |", "",
          "Mean VoiceLevel per intensity:", "",
          "| intensity | accepted pseudo-labelled clips | IEO clips, true label |", "|---|---|---|"]
    for i in INTENSITIES:
        L.append(f"| {i} | {stat(['accepted_pseudo_intensity', 'mean_voice_level', i, 'mean_voice_level'], '.1f')} | "
                 f"{stat(['reference_true_intensity', 'mean_voice_level', i, 'mean_voice_level'], '.1f')} |")
    L += ["", f"Per-fold pseudo-labelled pools: `{name}-foldK-pseudo_labels.csv`; all numbers: `{name}.json`.", ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(L) + "\n")
    return path


def main(argv=None) -> int:
    """python -m edge_ser_train.ssl --kind rfc|cnn [--data ../shared/data] [--folds 5] [--threshold T] [--rounds R]"""
    import argparse

    from .make_models import recipe_config

    repo = Path(__file__).resolve().parents[2]  # the checkout
    ap = argparse.ArgumentParser(description="SSL before/after experiment on actor folds (writes reports/ssl/)")
    ap.add_argument("--kind", choices=("rfc", "cnn"), required=True)
    ap.add_argument("--data", default=str(repo.parent / "shared" / "data"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=None, help="fixed threshold (default: auto per fold)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--options", default=None, help="JSON kind options overriding the shipped recipe's")
    ap.add_argument("--weight", type=float, default=1.0, help="weight of a pseudo-labelled clip (a labelled one: 1)")
    ap.add_argument("--soft", action="store_true", help="soft pseudo labels: every pool clip, unaugmented, its target "
                    "the labeller's intensity distribution within the known emotion (cnn)")
    ap.add_argument("--out", default=str(repo / "reports" / "ssl"))
    args = ap.parse_args(argv)
    if not 0.0 < args.weight <= 1.0:
        ap.error("--weight must be in (0, 1]")
    # the shipped recipe (its own SSL switch aside: this experiment is the SSL)
    cfg, _ = recipe_config(f"fine15-{args.kind}", json.loads(args.options) if args.options else None,
                           folds=args.folds, seed=args.seed, extra_weight=args.weight)
    roots = [Path(args.data) / "cremad", Path(args.data) / "ravdess"]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    out = Path(args.out)
    if args.threshold is not None or args.rounds != 1:
        out = out / f"t{args.threshold}-r{args.rounds}"
    if args.weight != 1.0:
        out = out / f"weight{args.weight}"
    if args.soft:
        out = out / "soft"
    try:
        check_config(cfg, SslConfig(args.threshold, args.rounds, args.soft))
    except SslError as e:
        ap.error(str(e))
    out.mkdir(parents=True, exist_ok=True)
    res = experiment(roots, cfg, SslConfig(args.threshold, args.rounds, args.soft), log,
                     checkpoint=out / f"fine15-{args.kind}.partial.json")
    path = write_report(res, out)
    log(f"report: {path}")
    print(json.dumps({k: res[k] for k in ("before", "after", "gain", "chosen_thresholds")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

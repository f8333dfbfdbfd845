"""The training loop: corpora -> task labels -> speaker-disjoint splits/folds -> features -> augmentation (training
part only, after the split) -> fit -> metrics; then the final model, its export and its manifest.

Protocols (every number says which one it comes from):
- ``actor-fold CV``: K folds disjoint by speaker, stratified by label (StratifiedGroupKFold); inside each fold's
  training part a speaker-disjoint validation part (for early stopping); augmented copies only of the training
  part's clips; test clips scored like the runtime (clip_windows, mean of window probabilities).
- ``final``: one model on all speakers but a speaker-disjoint validation part (early stopping, parity checks).
- ``seed000``: the seed paper's protocol, for comparison only: augmented copies are made of every clip *before* a
  random stratified 80/20 split of clips and copies, so speakers and copies of the same clip sit on both sides.
"""
from __future__ import annotations

import copy
import json
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from edge_ser.errors import UserError
from edge_ser.labels import task_labels
from edge_ser.manifest import Manifest, write_manifest

from . import corpora, kinds, metrics, splits, targets
from .augment import AugmentConfig
from .dataset import LogMelCache, clip_probs, windows_of

PROTOCOL_CV = ("actor-fold CV: {k} folds disjoint by speaker (StratifiedGroupKFold by label, seed {seed}); "
               "augmentation ({aug}) of the training part only, after the split; {val}; test clips scored as the runtime does (windows of {win} s every "
               "{hop} s, mean of window probabilities)")


@dataclass
class TrainConfig:
    task: str = "fine15"
    kind: str = "rfc"
    window_seconds: float = 2.5
    hop_seconds: float = 0.5
    train_hop_seconds: float | None = None  # hop between training windows (None: hop_seconds); a multiple of it
    augment: tuple = ("noise", "pitch")
    folds: int = 0
    val_fraction: float = 0.15
    # how the validation speakers (early stopping; the clips a final model leaves out) are drawn from a training
    # part: "pooled" (one stratified split over all speakers) or "corpus" (~val_fraction of each corpus's clips,
    # a one-speaker corpus kept in training); see `splits.holdout`
    val_split: str = "pooled"
    seed: int = 0
    kind_options: dict = field(default_factory=dict)
    cache_dir: str | None = None
    corpus: str | None = None
    # fine15 + a kind with partial labels (cnn): clips that carry the emotion but no intensity (CREMA-D XX) join
    # the training part with a partial label; their loss is the marginal likelihood of their emotion.
    partial: bool = False
    # speaker-normalised kinds: the adaptation regimes of the training windows and their shares (see `design`)
    adapt_mix: dict = field(default_factory=lambda: {"speaker": 0.5, "clip": 0.25, "few": 0.25})
    # True: one regime per clip and variant, drawn by share (no extra windows); None: the kind's default
    # (``sample_regimes``: the CNN samples, the forest takes every regime)
    adapt_sample: bool | None = None
    # weight of an extra clip (an SSL pseudo-labelled one) in each of its variants (as recorded, augmented copies);
    # a labelled clip weighs 1 in each of its variants
    extra_weight: float = 1.0
    # False: extra clips join as recorded only (no augmented copies), e.g. a large pool with soft targets
    extra_augment: bool = True


@dataclass
class Data:
    """The task's clips with their integer labels and speakers, and a cache of window inputs per clip/variant.

    With speaker normalisation (``spec.speaker_norm``), `inputs` are standardised by the statistics of the clip's
    speaker (`edge_ser.adapt`): over all the speaker's clips of the task in the same augmentation variant, shrunk
    toward the population statistics of the current training part (`set_population`, called per fold)."""
    clips: list
    y: np.ndarray
    speakers: np.ndarray
    labels: tuple
    summaries: list
    cache: LogMelCache
    spec: object
    partial: list = field(default_factory=list)  # [(Clip, label index >= n_labels)], see TrainConfig.partial
    norm: object = None  # edge_ser.adapt.SpeakerNorm of the current training part
    norm_seed: int = 0
    # fine16: the candidate sets of the partial labels; y >= len(labels) means groups[y - len(labels)] (see targets)
    groups: list = field(default_factory=list)
    _raw: dict = field(default_factory=dict)
    _inputs: dict = field(default_factory=dict)
    _stats: dict = field(default_factory=dict)

    def raw(self, i: int, variant: str = "") -> np.ndarray | None:
        """Model inputs (before speaker normalisation) of every window of clip i or its variant; None if unreadable."""
        key = (i, variant)
        if key not in self._raw:
            self._raw[key] = self._compute(self.clips[i], variant)
        return self._raw[key]

    def _compute(self, clip, variant: str) -> np.ndarray | None:
        db = self.cache.get(clip, variant)
        return None if db is None else self.windows(db)

    def windows(self, db: np.ndarray) -> np.ndarray:
        """Model inputs (before speaker normalisation) of every window of a clip's log-mel."""
        return np.stack([self.spec.compute(w) for w in windows_of(db, self.spec)])

    def with_seed(self, seed: int) -> "Data":
        """The same clips with the augmentation and draws of ``seed`` (a CV repeat of `cross_validate` with
        ``seeds`` > 1); the originals' inputs, which no seed changes, are shared.  ``self`` for its own seed."""
        if seed == self.norm_seed:
            return self
        cache = copy.copy(self.cache)  # the same folder and list of unreadable clips
        cache.seed = seed
        return replace(self, cache=cache, norm=None, norm_seed=seed, _inputs={}, _stats={},
                       _raw={k: v for k, v in self._raw.items() if not k[1]})

    def set_population(self, idx) -> None:
        """Fit the population statistics on the clips ``idx`` (a training part; originals only)."""
        if self.spec.speaker_norm is None:
            return
        from edge_ser.adapt import PRIOR_WINDOWS, SpeakerNorm
        xs = [x for x in (self.raw(i) for i in idx) if x is not None]
        self._inputs.clear()
        self._stats.clear()
        if not xs:  # nothing readable: `design` reports it
            self.norm = None
            return
        cfg = self.spec.speaker_norm
        self.norm = SpeakerNorm.fit_population(np.concatenate(xs), cfg.get("axes", ()),
                                               cfg.get("prior_windows", PRIOR_WINDOWS))
        # the level-invariant prior, exactly as the runtime applies it (edge_ser.model.Model): a clip or speaker
        # heard at another level is standardised against a prior moved by its level offset
        from edge_ser.adapt import gain_slopes
        self.norm.level_slope = gain_slopes(self.spec.compute, self.spec.frontend.n_mels, self.spec.n_frames,
                                            self.norm.axes)
        self.norm.set_level_ref(np.concatenate(xs))  # the offset from window levels noise hardly moves

    def speaker_stats(self, speaker, variant: str = ""):
        """The statistics of ``speaker``'s clips of the task in ``variant`` (None: no such clips)."""
        key = (speaker, variant)
        if key not in self._stats:
            st = self.norm.stats()
            for j in np.flatnonzero(self.speakers == speaker):
                x = self.raw(int(j), variant)
                if x is not None:
                    st.update(x)
            self._stats[key] = st if st.windows else None
        return self._stats[key]

    def normalize(self, x: np.ndarray, speaker, variant: str = "") -> np.ndarray:
        if self.spec.speaker_norm is None:
            return x
        if self.norm is None:
            raise RuntimeError("speaker normalisation needs set_population() first")
        return self.norm.apply(x, self.speaker_stats(speaker, variant))

    def inputs(self, i: int, variant: str = "") -> np.ndarray | None:
        """Model inputs of every window of clip i (or its augmented variant), as the model sees them."""
        key = (i, variant)
        if key not in self._inputs:
            x = self.raw(i, variant)
            self._inputs[key] = None if x is None else self.normalize(x, self.speakers[i], variant)
        return self._inputs[key]

    def regime_inputs(self, i: int, variant: str, regime: str) -> np.ndarray | None:
        """Clip i's inputs normalised as a listener who heard ``regime`` of its speaker would: ``speaker`` (all of
        the speaker's clips, = `inputs`), ``clip`` (the clip alone, like `edge-ser classify FILE`), ``few`` (the
        clip and two other clips of the speaker, drawn reproducibly: a listener some seconds into a session)."""
        if regime == "speaker" or self.spec.speaker_norm is None:
            return self.inputs(i, variant)
        x = self.raw(i, variant)
        if x is None:
            return None
        stats = self.norm.stats().update(x)
        if regime == "few":
            others = [int(j) for j in np.flatnonzero(self.speakers == self.speakers[i]) if j != i]
            rng = np.random.default_rng([self.norm_seed, i, _variant_id(variant)])
            for j in rng.permutation(others)[:2]:
                other = self.raw(int(j), variant)
                if other is not None:
                    stats.update(other)
        elif regime != "clip":
            raise ValueError(f"unknown adaptation regime {regime!r}")
        return self.norm.apply(x, stats)

    def external(self, clip, variant: str = "") -> np.ndarray | None:
        """Model inputs of a clip outside the task set (pseudo-labelled or partial), normalised by its speaker's
        statistics from the task set (or its own windows if the speaker has no clips there)."""
        x = self._compute(clip, variant)
        if x is None or self.spec.speaker_norm is None:
            return x
        stats = self.speaker_stats(clip.speaker, variant)  # None for a speaker without clips in the task set
        return self.norm.apply(x, stats if stats is not None else self.norm.stats().update(x))

    def warm(self, idx, variants=("",), desc="features", cluster=None, keep: bool = True):
        """Compute (and keep) the raw inputs of clips ``idx`` in ``variants``; with ``cluster`` (`--cluster`) one
        task per clip and variant on its workers (``keep`` False: only cache their log-mels here)."""
        todo = [(i, v) for v in variants for i in idx if (i, v) not in self._raw]
        if cluster is not None:
            from .cluster_tasks import warm
            warm(cluster, self, todo, desc, keep)
            return
        for i, v in tqdm(todo, desc=desc, unit="clip", leave=False, mininterval=2.0):
            self.raw(i, v)


def _variant_id(variant: str) -> int:
    """A stable integer per augmentation variant, for seeding its draws ("" -> 0)."""
    return zlib.crc32(variant.encode()) if variant else 0


def load_data(roots, cfg: TrainConfig, kind) -> Data:
    clips, summaries = corpora.load_corpora(roots, cfg.corpus)
    labels = task_labels(cfg.task)
    groups = []
    if cfg.task == "fine16":  # every clip with any fine16 label: full, emotion only, intensity only (targets.py)
        kept, cands, _left = corpora.for_task_partial(clips, cfg.task)
        if kept:
            y, groups = targets.encode(cands, labels)
        if groups and not getattr(kind, "supports_partial", False):
            raise UserError(f"kind {cfg.kind} cannot train on partial labels (an emotion or an intensity alone), "
                            "which fine16 needs")
    else:
        kept, labs, _left = corpora.for_task(clips, cfg.task)
        y = np.array([labels.index(l) for l in labs])
    if not kept:
        raise corpora.CorpusError(f"no clips for task {cfg.task} in {', '.join(map(str, roots))}")
    spk = np.array([c.speaker for c in kept])
    spec = kind.input_spec(cfg.window_seconds, cfg.hop_seconds)
    cache = LogMelCache(cfg.cache_dir, frontend=spec.frontend, aug=AugmentConfig(), seed=cfg.seed)
    partial = []
    if cfg.partial:
        if cfg.task != "fine15" or not getattr(kind, "supports_partial", False):
            raise ValueError("partial labels need task fine15 and a kind that supports them (cnn)")
        emotions = [lab.split("_")[0] for lab in labels[::3]]
        partial = [(c, len(labels) + emotions.index(c.emotion)) for c in clips
                   if c.intensity is None and c.emotion in emotions]
    return Data(kept, y, spk, labels, summaries, cache, spec, partial, norm_seed=cfg.seed, groups=groups)


def partial_groups(labels) -> list[list[int]]:
    """fine15: partial label j (emotion j, intensity unknown) stands for classes 3j, 3j+1, 3j+2."""
    return [[3 * j, 3 * j + 1, 3 * j + 2] for j in range(len(labels) // 3)]


def design(data: Data, idx, variants=("",), every: int = 1, mix: dict | None = None, sample: bool = False):
    """(X, y, sample_weight) over the windows of the clips ``idx`` and their variants (every ``every``-th window
    of `clip_windows`); each clip weighs 1 in total.

    ``mix`` (training parts of speaker-normalised models): ``{regime: share}`` — each clip's windows appear once per
    adaptation regime (`Data.regime_inputs`), weighted by its share, so the model works however much of the
    speaker the runtime has heard (one file, a few seconds of a session, a whole speaker).  ``sample``: instead,
    one regime per clip and variant, drawn with probability = share (reproducibly), at full weight."""
    xs, ys, ws = [], [], []
    regimes = mix if (mix and data.spec.speaker_norm is not None) else {"speaker": 1.0}
    names, shares = list(regimes), np.array(list(regimes.values()), dtype=np.float64)
    for v in variants:
        for i in idx:
            chosen = regimes.items()
            if sample and len(names) > 1:
                rng = np.random.default_rng([data.norm_seed, int(i), _variant_id(v), 7])
                chosen = [(names[rng.choice(len(names), p=shares / shares.sum())], 1.0)]
            for regime, share in chosen:
                x = data.regime_inputs(i, v, regime)
                if x is None:
                    continue
                x = x[::every]
                xs.append(x)
                ys.append(np.full(len(x), data.y[i]))
                ws.append(np.full(len(x), share / len(x)))
    if not xs:  # every clip asked for is unreadable
        failed = data.cache.failed
        raise UserError(f"none of the {len(idx)} clips needed here is readable ({len(failed)} unreadable clips"
                        + (f", e.g. {next(iter(failed.values()))})" if failed else ")"))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def predict_clips(model, data: Data, idx, variant: str = "", regime: str = "speaker") -> tuple[np.ndarray, np.ndarray]:
    """(probabilities per readable clip, the clip indices): mean of window probabilities as the runtime does
    (speaker-normalised models: adapted as ``regime`` says, see `Data.regime_inputs`)."""
    ok = [i for i in idx if data.raw(i, variant) is not None]
    xs = [data.regime_inputs(i, variant, regime) for i in ok]
    owner = np.concatenate([np.full(len(x), k) for k, x in enumerate(xs)])
    p = model.predict_proba(np.concatenate(xs))
    return clip_probs(p, owner, len(ok)), np.asarray(ok)


@dataclass
class FoldContext:
    """What an SSL hook gets for one fold: it may train on ``train_idx`` and must add nothing from
    ``excluded_speakers`` (the fold's validation and test speakers)."""
    data: Data
    cfg: TrainConfig
    train_idx: np.ndarray
    excluded_speakers: set
    fit: Callable  # fit(idx, extra=None) -> model (same kind, same augmentation)
    predict_clips: Callable  # predict_clips(model, clips: list[Clip]) -> probs
    val_idx: np.ndarray | None = None  # the fold's validation clips (labelled; e.g. to choose an SSL threshold)


# An SSL hook returns pseudo-labelled clips to add to a fold's training part: list[(Clip, label)], a label being a
# label index or (soft targets) a vector of probabilities over the labels.
SslHook = Callable[[FoldContext], list]


def _fit(data: Data, cfg: TrainConfig, train_idx, val_idx, extra=None, seed: int = 0):
    options = dict(cfg.kind_options)
    if any(np.ndim(label) for _, label in extra or []) and (
            data.partial or not getattr(kinds.kind_class(cfg.kind), "soft_targets", False)):
        raise UserError(f"soft pseudo labels need a kind that trains on probabilities (cnn) and no partial labels "
                        f"(kind {cfg.kind}, partial labels {'on' if data.partial else 'off'})")
    if data.partial:
        allowed = set(data.speakers[train_idx].tolist())
        extra = list(extra or []) + [p for p in data.partial if p[0].speaker in allowed]
        options["partial_groups"] = partial_groups(data.labels)
    if cfg.task == "fine16":  # two heads (emotion, intensity) with masked losses unless the recipe says otherwise
        options["partial_groups"] = data.groups
        options.setdefault("factorised", True)
    kind = kinds.make(cfg.kind, len(data.labels), **options)
    sample = cfg.adapt_sample if cfg.adapt_sample is not None else getattr(kind, "sample_regimes", False)
    variants = ("",) + train_variants(data, cfg, train_idx)
    X, y, w = design(data, train_idx, variants, _every(cfg), cfg.adapt_mix, sample)
    if extra:
        ex, ey, ew = _extra_design(data, extra, cfg)
        if ey.ndim == 2:  # soft targets (probabilities over the labels): the labelled part becomes one-hot rows
            y = np.eye(len(data.labels), dtype=np.float32)[y]
        X, y, w = np.concatenate([X, ex]), np.concatenate([y, ey]), np.concatenate([w, ew])
    validation = None
    if val_idx is not None and len(val_idx):
        Xv, yv, wv = design(data, val_idx)
        validation = (Xv, yv)
    t = time.time()
    kind.fit(X, y, sample_weight=w, validation=validation, seed=seed)
    kind.fit_seconds = time.time() - t
    kind.n_extra_clips = len(extra or [])
    kind.n_train_windows = int(len(X))
    return kind


def train_variants(data: Data, cfg: TrainConfig, train_idx) -> tuple:
    """The augmentation variants of a training part: ``cfg.augment``, with the kinds that mix in other speakers
    (babble) naming this part's pool (`LogMelCache.register_pool`), so they draw only its speakers."""
    from .augment import NEEDS_OTHERS
    if not any(k in NEEDS_OTHERS for k in cfg.augment):
        return tuple(cfg.augment)
    pid = data.cache.register_pool([data.clips[i] for i in train_idx])
    return tuple(f"{k}@{pid}" if k in NEEDS_OTHERS else k for k in cfg.augment)


def warm_variants(cfg: TrainConfig) -> tuple:
    """The variants `Data.warm` can compute before the training part is known (not babble: see
    `train_variants`; those are computed when the part's design is built)."""
    from .augment import NEEDS_OTHERS
    return tuple(k for k in cfg.augment if k not in NEEDS_OTHERS)


def _every(cfg: TrainConfig) -> int:
    if not cfg.train_hop_seconds:
        return 1
    return max(1, int(round(cfg.train_hop_seconds / cfg.hop_seconds)))


def _extra_design(data: Data, extra, cfg: TrainConfig):
    """Window inputs of extra (pseudo-labelled) clips and their augmented copies (``cfg.extra_augment``).  A label
    is a label index, or a vector of probabilities over the labels (a soft target; then y is 2-D)."""
    xs, ys, ws = [], [], []
    soft = any(np.ndim(label) for _, label in extra)
    variants = ("",) + (tuple(cfg.augment) if cfg.extra_augment else ())
    for clip, label in extra:
        target = np.asarray(label, np.float32) if soft else label
        for v in variants:
            x = data.external(clip, v)
            if x is None:
                continue
            x = x[::_every(cfg)]
            xs.append(x)
            ys.append(np.repeat(target[None], len(x), 0) if soft else np.full(len(x), label))
            ws.append(np.full(len(x), cfg.extra_weight / len(x)))
    if not xs:
        y0 = np.zeros((0, len(data.labels)), np.float32) if soft else np.zeros(0, int)
        return np.zeros((0,) + data.inputs(0).shape[1:], np.float32), y0, np.zeros(0)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)


def _predict_external(data: Data, model, clips) -> np.ndarray:
    """Clip probabilities (mean over windows) of clips outside ``data``; NaN rows for unreadable clips.
    All windows go through one predict_proba call (a Keras call per clip costs ~50 ms of overhead)."""
    out = np.full((len(clips), len(data.labels)), np.nan, np.float32)
    xs, owner = [], []
    for k, c in enumerate(clips):
        x = data.external(c)
        if x is None:
            continue
        xs.append(x)
        owner.append(np.full(len(xs[-1]), k))
    if xs:
        owner = np.concatenate(owner)
        p = clip_probs(model.predict_proba(np.concatenate(xs)), owner, len(clips))
        read = np.unique(owner)
        out[read] = p[read]
    return out


def validation_text(cfg: TrainConfig) -> str:
    """How the validation part is drawn, for protocol texts."""
    if cfg.val_split == "corpus":
        return (f"{cfg.val_fraction:.0%} of each training corpus's speakers held out for validation (a corpus of one "
                "speaker trains)")
    return f"{cfg.val_fraction:.0%} of the training speakers held out for validation"


def fold_parts(data: Data, cfg: TrainConfig, tr, te, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """A CV fold's training and validation clips: the speaker-disjoint validation part of its training clips ``tr``
    (seed ``cfg.seed + 100 + fold``), checked disjoint from the test clips ``te``.  Every protocol on the CV's folds
    (nested, SSL) takes its validation part from here, so they compare like with like."""
    rest, va = splits.holdout(data.y[tr], data.speakers[tr], cfg.val_fraction, cfg.seed + 100 + fold,
                              cfg.val_split)
    tr_idx, va_idx = tr[rest], tr[va]
    splits.check_disjoint(data.speakers, tr_idx, va_idx, te)
    return tr_idx, va_idx


def _fold(data: Data, cfg: TrainConfig, tr, te, fold: int, ssl: SslHook | None):
    tr_idx, va_idx = fold_parts(data, cfg, tr, te, fold)
    data.set_population(tr_idx)
    extra = None
    if ssl is not None:
        excluded = set(data.speakers[va_idx].tolist()) | set(data.speakers[te].tolist())
        ctx = FoldContext(data, cfg, tr_idx, excluded,
                          fit=lambda idx, extra=None: _fit(data, cfg, idx, va_idx, extra, cfg.seed + fold),
                          predict_clips=lambda m, clips: _predict_external(data, m, clips), val_idx=va_idx)
        extra = ssl(ctx)
        bad = [c for c, _ in extra if c.speaker in excluded]
        if bad:
            raise AssertionError(f"SSL hook added {len(bad)} clips of validation/test speakers")
    model = _fit(data, cfg, tr_idx, va_idx, extra, cfg.seed + fold)
    return score_fold(model, data, te, fold, tr_idx)


def score_fold(model, data: Data, te, fold: int, tr_idx) -> dict:
    """A fold's metrics on its test clips with a full label, and (`protocols.task_scores`) every task the labels
    collapse to, on the test clips that carry it (a fine16 model: basic6, fine15, emotion5, intensity)."""
    from . import protocols
    p, ok = predict_clips(model, data, te)
    f = data.y[ok] < len(data.labels)
    m = metrics.scores(data.y[ok][f], p[f].argmax(1), list(data.labels))
    m.update(fold=fold, test_speakers=sorted(set(data.speakers[te].tolist())), n_train_clips=int(len(tr_idx)),
             n_extra=model.n_extra_clips, fit_seconds=round(model.fit_seconds, 1))
    m["tasks"] = protocols.task_scores(p, [data.clips[i] for i in ok], data.labels)
    m["test_idx"], m["test_probs"] = ok, p  # for results per corpus pooled over folds (not kept in the manifest)
    if data.spec.speaker_norm is not None:  # what `edge-ser classify FILE` gives: each clip adapted to itself
        p, ok = predict_clips(model, data, te, regime="clip")
        f = data.y[ok] < len(data.labels)
        mc = metrics.scores(data.y[ok][f], p[f].argmax(1), list(data.labels))
        m["clip_adapt"] = {k: mc[k] for k in metrics.SUMMARY_KEYS}
    return m


def cross_validate(data: Data, cfg: TrainConfig, ssl: SslHook | None = None, log=print, seeds: int = 1,
                   cluster=None) -> dict:
    """Actor-fold CV; with ``seeds`` S > 1, repeated for seeds cfg.seed .. cfg.seed + S - 1 (each repeat is the CV
    ``--seed s`` runs: its own folds, augmentation and initialisation), K x S fits, mean ± std over all of them.
    ``cluster`` (`edge_ser_train.cluster.Cluster`): features one task per clip, then one task per fold x seed."""
    seed_list = [cfg.seed + j for j in range(seeds)]
    plans = [(s, k, tr, te) for s in seed_list
             for k, (tr, te) in enumerate(splits.actor_folds(data.y, data.speakers, cfg.folds, s))]
    every = [i for i in range(len(data.clips))]
    data.warm(every, ("",), "features", cluster=cluster)
    results, seeded = [], {cfg.seed: data}
    if cluster is not None:
        results = _cross_validate_on(cluster, data, cfg, ssl, plans)
    for j, (s, k, tr, te) in enumerate(plans):
        if cluster is None:
            d = seeded[s] if s in seeded else seeded.setdefault(s, data.with_seed(s))
            d.warm(tr, warm_variants(cfg), f"fold {k + 1}/{cfg.folds} augmented features")
            results.append(_fold(d, replace(cfg, seed=s) if s != cfg.seed else cfg, tr, te, k, ssl))
        m = results[j]
        log((f"seed {s} " if seeds > 1 else "")
            + f"fold {k + 1}/{cfg.folds}: accuracy {m['accuracy']:.3f} balanced {m['balanced_accuracy']:.3f} "
            f"macro-F1 {m['macro_f1']:.3f} (n={m['n']}, {m['fit_seconds']} s)"
            + (f"; each clip adapted to itself: accuracy {m['clip_adapt']['accuracy']:.3f}" if "clip_adapt" in m else "")
            + "".join(f"; {t} {v['accuracy']:.3f}" for t, v in m.get("tasks", {}).items() if t != cfg.task))
    summary = metrics.mean_std(results)
    if all("clip_adapt" in r for r in results):
        summary["clip_adapt"] = metrics.mean_std([r["clip_adapt"] for r in results])
    from . import protocols
    summary.update(protocols.pooled_breakdown(data, results))  # every collapsed task, and per corpus
    protocol = PROTOCOL_CV.format(k=cfg.folds, seed=cfg.seed, aug=", ".join(cfg.augment) or "none",
                                  val=validation_text(cfg), win=cfg.window_seconds, hop=cfg.hop_seconds)
    out = {"protocol": protocol, "folds": cfg.folds, **summary,
           "pooled_confusion": metrics.pooled(results).tolist(), "labels": list(data.labels),
           "per_fold": [{k: v for k, v in r.items() if k not in ("confusion", "per_class", "labels", "test_idx",
                                                                 "test_probs")}
                        for r in results]}
    if seeds > 1:
        for (s, *_), row in zip(plans, out["per_fold"]):
            row["seed"] = s
        per_seed = [metrics.mean_std([r for (s2, *_), r in zip(plans, results) if s2 == s]) for s in seed_list]
        out.update(
            protocol=protocol.replace(f"seed {cfg.seed})", f"seeds {seed_list[0]}..{seed_list[-1]})")
            + f"; repeated with {seeds} seeds (folds, augmentation, validation part and initialisation differ per "
              f"seed); mean ± std over all {cfg.folds} x {seeds} fits",
            seeds=seed_list, fits=len(results),
            per_seed=[{"seed": s, **p} for s, p in zip(seed_list, per_seed)],
            between_seeds={k: {"std_of_seed_means": float(np.std([p[k]["mean"] for p in per_seed]))}
                           for k in metrics.SUMMARY_KEYS})
    return out


def _cross_validate_on(cluster, data: Data, cfg: TrainConfig, ssl, plans) -> list:
    """The fold x seed fits of `cross_validate` on a cluster (the same `_fold` calls, in the same order of
    results; the SSL hook's per-fold records and unreadable clips come back in that order)."""
    from .cluster_tasks import fold_job, fold_task
    for s in sorted({p[0] for p in plans}):  # augmented copies of every clip in some training part, per seed
        train_part = sorted({int(i) for p in plans if p[0] == s for i in p[2]})
        data.with_seed(s).warm(train_part, warm_variants(cfg), f"seed {s} augmented features", cluster=cluster,
                               keep=s == cfg.seed)
    job = cluster.shared(fold_job(data, cfg, ssl, cluster.token))
    answers = cluster.map(fold_task, plans, f"{len(plans)} fits", job=job)
    results = []
    for m, records, failed in answers:
        results.append(m)
        if ssl is not None:
            ssl.records.extend(records)
        for path, reason in failed.items():
            data.cache.failed.setdefault(path, reason)
    return results


def seed_protocol(data: Data, cfg: TrainConfig, repeats: int = 1, log=print) -> dict:
    """Seed 000's protocol (leaky, for comparison): augment every clip, then a random stratified 80/20 split."""
    from sklearn.model_selection import train_test_split
    variants = ("",) + tuple(cfg.augment)
    data.warm(range(len(data.clips)), variants, "features (all variants)")
    data.set_population(range(len(data.clips)))
    samples = [(i, v) for v in variants for i in range(len(data.clips)) if data.inputs(i, v) is not None]
    sy = np.array([data.y[i] for i, _ in samples])
    results = []
    for r in range(repeats):
        tr, te = train_test_split(np.arange(len(samples)), test_size=0.2, stratify=sy, random_state=cfg.seed + r)
        xs = [data.inputs(*samples[j])[::_every(cfg)] for j in tr]
        X = np.concatenate(xs)
        y = np.concatenate([np.full(len(x), sy[j]) for x, j in zip(xs, tr)])
        w = np.concatenate([np.full(len(x), 1.0 / len(x)) for x in xs])
        kind = kinds.make(cfg.kind, len(data.labels), **cfg.kind_options)
        # the seed stops nothing on held-out speakers: validation is a random 10% of the training samples
        vsel = np.random.default_rng(cfg.seed).random(len(X)) < 0.1
        kind.fit(X[~vsel], y[~vsel], sample_weight=w[~vsel], validation=(X[vsel], y[vsel]), seed=cfg.seed + r)
        txs = [data.inputs(*samples[j]) for j in te]
        owner = np.concatenate([np.full(len(x), k) for k, x in enumerate(txs)])
        p = clip_probs(kind.predict_proba(np.concatenate(txs)), owner, len(te))
        m = metrics.scores(sy[te], p.argmax(1), list(data.labels))
        log(f"seed000 protocol repeat {r + 1}: accuracy {m['accuracy']:.3f}")
        results.append(m)
    return {"protocol": "seed 000: augmentation (" + ", ".join(cfg.augment) + ") of every clip before a random "
            "stratified 80/20 split of clips and copies (speakers and copies of one clip on both sides)",
            "repeats": repeats, **metrics.mean_std(results)}


def train_final(data: Data, cfg: TrainConfig, ssl: SslHook | None = None, log=print, cluster=None):
    """The shipped model: all speakers except a speaker-disjoint validation part."""
    tr, va = splits.holdout(data.y, data.speakers, cfg.val_fraction, cfg.seed + 7, cfg.val_split)
    splits.check_disjoint(data.speakers, tr, va)
    data.warm(range(len(data.clips)), ("",), "features", cluster=cluster)
    data.warm(tr, warm_variants(cfg), "augmented features", cluster=cluster)
    data.set_population(tr)
    extra = None
    if ssl is not None:
        excluded = set(data.speakers[va].tolist())
        ctx = FoldContext(data, cfg, tr, excluded,
                          fit=lambda idx, extra=None: _fit(data, cfg, idx, va, extra, cfg.seed),
                          predict_clips=lambda m, clips: _predict_external(data, m, clips), val_idx=va)
        extra = ssl(ctx)
    model = _fit(data, cfg, tr, va, extra, cfg.seed)
    p, ok = predict_clips(model, data, va)
    f = data.y[ok] < len(data.labels)  # clips with a full label (fine16's partial ones: in "tasks")
    val = metrics.scores(data.y[ok][f], p[f].argmax(1), list(data.labels))
    from . import protocols
    val["tasks"] = protocols.task_scores(p, [data.clips[i] for i in ok], data.labels)
    log(f"final model: {len(tr)} training clips (+ augmented copies, {model.n_train_windows} windows), validation "
        f"accuracy {val['accuracy']:.3f} on {len(ok)} clips of {len(set(data.speakers[va].tolist()))} held-out "
        f"speakers")
    return model, tr, va, val, extra


def trained_on(data: Data, cfg: TrainConfig, tr, va, extra=None) -> dict:
    return {
        "corpora": [s.corpus for s in data.summaries],
        "corpus_details": [{"corpus": s.corpus, "root": Path(s.root).name, "clips": s.found,
                            "speakers": s.speakers} for s in data.summaries],
        "task_clips": int(len(data.clips)), "speakers": int(len(set(data.speakers.tolist()))),
        "train_clips": int(len(tr)), "validation_clips": int(len(va)),
        "validation_speakers": sorted(set(data.speakers[va].tolist())),
        "augment": list(cfg.augment), "augment_config": AugmentConfig().to_dict(), "seed": cfg.seed,
        "pseudo_labelled_clips": len(extra or []),
        "labels_carried": dict(sorted(Counter(_carried(data, i) for i in range(len(data.clips))).items())),
    }


def _carried(data: Data, i: int) -> str:
    """What clip i trains with: a full label, an emotion without intensity, or an intensity without emotion."""
    if data.y[i] < len(data.labels):
        return "full label"
    c = data.clips[i]
    return "emotion only" if c.emotion is not None else "intensity only"


def run(roots, cfg: TrainConfig, out: Path, name: str | None = None, ssl: SslHook | None = None,
        seed_protocol_repeats: int = 0, log=print, cv: dict | None = None, seeds: int = 1, cluster=None,
        protocols=None) -> dict:
    """Train (CV if ``cfg.folds``), fit the final model, export every format with parity checks, write the
    manifest.  Returns the result dict (CV metrics, validation metrics, sizes, parity).  ``cv``: the
    `cross_validate` result of this same configuration (and SSL) computed before, e.g. the "after" of
    ``python -m edge_ser_train.ssl`` (its JSON's ``cv``); it is used instead of running the folds again.
    ``seeds``: CV repeats (see `cross_validate`); ``cluster``: run features and fits on a Dask cluster
    (`edge_ser_train.cluster`), with the in-process results.
    ``protocols``: ``protocols(data) -> dict`` merged into the result (leave-one-corpus-out, nested CV, ...)."""
    from . import convert

    out = Path(out)
    kind = kinds.make(cfg.kind, len(task_labels(cfg.task)), **cfg.kind_options)
    data = load_data(roots, cfg, kind)
    for s in data.summaries:
        log(s.text())
    log(f"task {cfg.task}: {len(data.clips)} clips of {len(set(data.speakers.tolist()))} speakers; window "
        f"{cfg.window_seconds} s = {data.spec.n_frames} frames; features {data.spec.features}")
    result = {"task": cfg.task, "kind": cfg.kind}
    if cv is not None and (cv.get("labels") != list(data.labels) or cv.get("per_fold") is None):
        raise UserError("the CV given to run() is not a CV of this task's labels")
    if cv is not None or cfg.folds:
        result["cv"] = cv if cv is not None else cross_validate(data, cfg, ssl, log, seeds=seeds, cluster=cluster)
        cv = result["cv"]
        log("CV: " + ", ".join(f"{k} {cv[k]['mean']:.3f} ± {cv[k]['std']:.3f}" for k in metrics.SUMMARY_KEYS))
    if seed_protocol_repeats:
        result["seed000"] = seed_protocol(data, cfg, seed_protocol_repeats, log)
    if protocols is not None:  # more protocols on the same data (edge_ser_train.protocols), e.g. make_models --loco
        result.update(protocols(data))
    model, tr, va, val, extra = train_final(data, cfg, ssl, log, cluster=cluster)
    out.mkdir(parents=True, exist_ok=True)
    native = out / "native"
    native.mkdir(exist_ok=True)
    model.save(native)
    # parity windows spread over every validation speaker (the first 512 covered only 3 of basic6's 10), in every
    # adaptation regime the runtime produces (whole speaker, the clip alone, a few clips)
    Xv, yv, _ = design(data, va, mix=cfg.adapt_mix)
    pick = np.unique(np.linspace(0, len(Xv) - 1, min(len(Xv), 2048)).round().astype(int))
    np.savez_compressed(native / "heldout.npz", X=Xv[pick], y=yv[pick])
    Xr, _, _ = design(data, tr[np.random.default_rng(cfg.seed).permutation(len(tr))[:200]], mix=cfg.adapt_mix,
                      sample=True)
    np.save(native / "representative.npy", Xr[:400])
    metrics_block = {"validation": {k: val[k] for k in ("n", *metrics.SUMMARY_KEYS)},
                     "validation_protocol": "final model, speaker-disjoint validation part "
                                            f"({len(set(data.speakers[va].tolist()))} speakers)",
                     "validation_tasks": val["tasks"]}
    if "cv" in result:
        cv = result["cv"]
        for k in metrics.SUMMARY_KEYS:
            metrics_block[k] = cv[k]["mean"]
            metrics_block[f"{k}_std"] = cv[k]["std"]
        if "clip_adapt" in cv:  # the same folds, each test clip adapted to itself (as `classify FILE` does)
            metrics_block["clip_adapt"] = cv["clip_adapt"]
        metrics_block.update(protocol=f"{cv['folds']}-fold actor CV, speaker-disjoint (mean over folds"
                                      + (f" and {len(cv['seeds'])} seeds)" if cv.get("seeds") else ")"),
                             protocol_details=cv["protocol"], folds=cv["folds"], per_fold=cv["per_fold"],
                             pooled_confusion=cv["pooled_confusion"])
        for key in ("tasks", "per_corpus", "per_corpus_protocol"):
            if key in cv:
                metrics_block[key] = cv[key]
    if "seed000" in result:
        metrics_block["seed000_protocol"] = result["seed000"]
    if "loco" in result:
        metrics_block["leave_one_corpus_out"] = result["loco"]
    if "nested" in result:
        metrics_block["nested_cv"] = {k: v for k, v in result["nested"].items() if k != "per_fold"}
    manifest = Manifest(
        name=name or out.name, kind=cfg.kind, task=cfg.task, labels=list(data.labels), formats=[],
        input=data.spec.manifest_input(Xv.shape[1:], data.norm), frontend=data.spec.frontend.to_dict(),
        window_seconds=cfg.window_seconds, hop_seconds=cfg.hop_seconds, trained_on=trained_on(data, cfg, tr, va, extra),
        metrics=metrics_block, extra={"model": model.describe(), "train_config": _jsonable(asdict(cfg))})
    (native / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    result["validation"] = metrics_block["validation"]
    result["export"] = convert.export_all(out, model, manifest, log=log)
    result["out"] = str(out)
    result["unreadable"] = dict(data.cache.failed)  # clips skipped because their audio could not be read
    return result


def _jsonable(d):
    return json.loads(json.dumps(d, default=list))

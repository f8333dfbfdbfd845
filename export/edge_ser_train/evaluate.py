"""Score an exported model (the real artifact, through ``edge_ser.registry.load_model``) on any corpus.

Each clip is classified as the runtime classifies a file (`Model.classify_audio`: log-mel over the clip, windows
cut by `features.clip_windows`, mean of window probabilities).  A model can be scored on another task whose labels its
own cover, by collapsing its output (`edge_ser.labels.collapse_matrix`, then renormalised over the task's labels):
a fine16 model on ``basic6`` (each emotion's probability summed over its intensities), on ``fine15`` (the fine15
clips only, renormalised over those 15 labels: neutral left out) or ``emotion5``; a fine15 model on ``emotion5``.

A model trained with speaker normalisation (`edge_ser.adapt`) is scored with ``adapt``: ``speaker`` (default) adapts
to each speaker's statistics over all of that speaker's clips being scored (unlabelled: no label is used), as the
training did; ``clip`` adapts each clip to itself, as `edge-ser classify FILE` does; ``none`` uses the training
population's statistics.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from edge_ser.errors import AudioError, UserError
from edge_ser.labels import collapse_matrix, task_labels

from . import corpora, metrics


def collapse(probs: np.ndarray, mapping: np.ndarray | None) -> np.ndarray:
    """A model's probabilities as the task's: ``probs @ mapping`` renormalised to sum 1 (labels the task does not
    have, e.g. neutral for fine15, drop out); unchanged when ``mapping`` is None."""
    if mapping is None:
        return probs
    q = np.asarray(probs, dtype=np.float64) @ mapping
    total = q.sum(axis=-1, keepdims=True)
    return np.where(total > 0, q / np.where(total > 0, total, 1.0), 1.0 / mapping.shape[1])


ADAPT_MODES = ("speaker", "clip", "none")


def evaluate(model_spec, roots, task: str | None = None, corpus: str | None = None, fmt: str | None = None,
             limit: int | None = None, progress: bool = True, adapt: str = "speaker", cluster=None) -> dict:
    """``cluster`` (`edge_ser_train.cluster.Cluster`, `--cluster`): one task per clip on its workers (speaker
    statistics, then scores), with the in-process results."""
    from edge_ser.registry import load_model

    if adapt not in ADAPT_MODES:
        raise UserError(f"adapt must be one of {', '.join(ADAPT_MODES)}, got {adapt!r}")
    model = load_model(model_spec, fmt=fmt)
    task = task or model.manifest.task
    try:
        labels = list(task_labels(task))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if task != model.manifest.task:
        mapping = collapse_matrix(model.labels, task)  # e.g. fine16 -> basic6
        if not (mapping.sum(axis=0) > 0).all():
            raise UserError(f"model {model.name} ({model.manifest.task}) cannot be scored on task {task} "
                            f"(its labels do not cover {task}'s)")
    else:
        mapping = None
    clips, summaries = corpora.load_corpora(roots, corpus)
    kept, labs, left = corpora.for_task(clips, task)
    if not kept:
        raise UserError(f"no clips of task {task} in {', '.join(map(str, roots))}")
    if limit:
        rng = np.random.default_rng(0)
        sel = np.sort(rng.permutation(len(kept))[:limit])
        kept, labs = [kept[i] for i in sel], [labs[i] for i in sel]
    adapting = model.speaker_norm is not None
    stats = {}
    if cluster is not None:
        from . import cluster_tasks
        ref = cluster_tasks.model_ref(model, model_spec)
    if adapting and adapt == "speaker":  # first pass: each speaker's statistics over all their clips
        if cluster is not None:
            stats, _ = cluster_tasks.speaker_stats(cluster, model, ref, [(c.speaker, c.path) for c in kept],
                                                   "speaker statistics")
        for c in tqdm(kept if cluster is None else [], desc="speaker statistics", unit="clip",
                      disable=not progress, mininterval=2.0, leave=False):
            try:
                model.adapt_file(c.path, stats.setdefault(c.speaker, model.speaker_stats()))
            except AudioError:
                pass  # reported by the scoring pass
    y_true, y_pred, failed, corpus_of = [], [], {}, []
    if cluster is not None:
        scored = cluster_tasks.classify(cluster, ref, [(c.path, stats.get(c.speaker), adapt == "clip")
                                                       for c in kept], "evaluate")
    for k, (c, lab) in enumerate(tqdm(list(zip(kept, labs)), desc="evaluate", unit="clip",
                                      disable=not progress or cluster is not None, mininterval=2.0, leave=False)):
        try:  # block by block, exactly as `edge-ser classify` (bounded memory for a clip of any length)
            if cluster is None:
                p, _ = model.classify_file(c.path, stats=stats.get(c.speaker), update=adapt == "clip")
            elif isinstance(scored[k], cluster_tasks.Failed):
                raise AudioError(scored[k].reason)
            else:
                p = scored[k]
        except AudioError as exc:
            failed[c.path] = str(exc)
            continue
        p = collapse(p, mapping)
        y_true.append(labels.index(lab))
        y_pred.append(int(np.argmax(p)))
        corpus_of.append(c.corpus)
    if not y_true:
        raise UserError("no readable clips to evaluate")
    out = {"task": task, "model": model.name, "model_path": str(model.path), "format": model.format,
           "model_task": model.manifest.task}
    out.update(metrics.scores(y_true, y_pred, labels))
    out["speakers"] = len({c.speaker for c in kept})
    if len(set(corpus_of)) > 1:  # results per corpus beside the pooled ones
        yt, yp, sc = np.asarray(y_true), np.asarray(y_pred), np.asarray(corpus_of)
        out["per_corpus"] = {name: {k: v for k, v in metrics.scores(yt[sc == name], yp[sc == name], labels).items()
                                    if k in ("n", *metrics.SUMMARY_KEYS)} for name in sorted(set(corpus_of))}
    out["corpora"] = [s.to_dict() for s in summaries]
    out["left_out_by_task"] = dict(left)
    out["unreadable"] = failed
    out["adapt"] = adapt if adapting else None
    how = {"speaker": "standardised by each speaker's statistics over all of that speaker's clips scored here "
                      "(no labels used)",
           "clip": "each clip adapted to itself, like `edge-ser classify`",
           "none": "standardised by the training population's statistics"}
    out["protocol"] = ("every clip of the task in the given corpora, classified like `edge-ser classify` "
                       f"(windows of {model.window_seconds} s every {model.manifest.hop_seconds} s, mean of window "
                       "probabilities), with the exported model file"
                       + (f"; the {model.manifest.task} output collapsed to {task} (summed over intensities, "
                          "renormalised over the task's labels)" if mapping is not None else "")
                       + (f"; speaker normalisation: inputs {how[adapt]}" if adapting else ""))
    return out

"""What runs on the Dask workers of ``--cluster`` (see `edge_ser_train.cluster`), and the client-side halves that
send paths out and put the answers back where the in-process run would have computed them.

- `logmel_task`: one clip (path, augmentation variant) -> its log-mel, computed and cached by the worker exactly
  as `edge_ser_train.dataset.LogMelCache.get` computes it here.
- `fold_task`: one (seed, fold) of actor-fold CV -> its metrics (and the SSL hook's record), by
  `edge_ser_train.train._fold` on the worker, which reads the clips' inputs from its own cache.
- `adapt_task` / `classify_task`: one clip and an exported model (`evaluate`, `pseudo-label`): the clip's speaker
  statistics, or its probabilities, as `edge_ser.model.Model.classify_file` gives them.

A clip that a worker cannot open (not there, no permission) is `Unreadable`: the client stops with one error naming
the clip and the worker.  A clip that opens but does not decode is `Failed`, recorded as the in-process run records
it.  Every task is a module-level function of this installed package: workers need edge-ser-train installed.
"""
from __future__ import annotations

import copy
import os
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from distributed import WorkerPlugin

from edge_ser.errors import AudioError, UserError

from .cluster import SHARED_DATA_HINT, THREAD_ENV, ClusterError, logger, worker_name


class PinThreads(WorkerPlugin):
    """Worker plugin: the client's thread settings in every worker (before any TensorFlow model is built there)."""
    name = "edge-ser-pin-threads"
    idempotent = False

    def __init__(self, settings: dict):
        self.settings = settings

    def setup(self, worker=None):
        if self.settings.get("ignore_sigint"):  # local:N: Ctrl-C is the client's to answer
            import signal
            import threading
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        _private_random_for_dask()
        env = self.settings.get("env", {})
        for k in THREAD_ENV:  # unset here as on the client (a nanny sets OMP/MKL/OpenBLAS to 1 by default)
            if k not in env:
                os.environ.pop(k, None)
        os.environ.update(env)
        if self.settings.get("blas"):
            try:
                from threadpoolctl import threadpool_limits
                threadpool_limits(limits=dict(self.settings["blas"]))
            except Exception as exc:  # pragma: no cover - reported, not fatal
                logger.warning("could not pin BLAS threads: %s", exc)

    def teardown(self, worker=None):
        pass


def _private_random_for_dask() -> None:
    """Give the worker's own machinery (distributed, tornado: heartbeat jitter, back-off) a private
    `random.Random`, so its event-loop thread no longer draws from Python's global generator while a task runs.
    Keras draws its default seeds (dropout, initialisers) from that global generator after `set_random_seed`: a
    draw by another thread in between changed a CNN fit (measured: two folds 0.09/0.18 accuracy in-process,
    0.24/0.27 with a thread calling random.random() every millisecond)."""
    import random
    import sys
    private = random.Random()
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("distributed", "tornado", "dask") and getattr(module, "random", None) is random:
            module.random = private


def identity(x):
    return x


def run_chunk(chunk, fn, **kwargs) -> list:
    """Several items in one task (`Cluster.map` with ``per_task`` > 1): ``[fn(item, **kwargs) for item in chunk]``."""
    return [fn(item, **kwargs) for item in chunk]


@dataclass(frozen=True)
class Unreadable:
    """A clip this worker cannot open (the corpora are not where the client has them)."""
    path: str
    worker: str
    reason: str

    def message(self) -> str:
        hint = "" if os.path.isabs(self.path) else " (a relative path is read from each worker's working folder: " \
                                                   "give --data as an absolute path)"
        return f"worker {self.worker} cannot read {self.path} ({self.reason}): {SHARED_DATA_HINT}{hint}"


@dataclass(frozen=True)
class Failed:
    """A clip that opens but cannot be used (bad audio): the reason the in-process run would record."""
    reason: str


def check_unreadable(result) -> None:
    """`Cluster.map`'s check: stop the whole map at the first clip a worker cannot open."""
    if isinstance(result, Unreadable):
        raise ClusterError(result.message())


def _openable(path: str) -> Unreadable | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return Unreadable(str(path), worker_name(), exc.strerror or type(exc).__name__)


# --- log-mel per clip -----------------------------------------------------------------------------------------

def _worker_cache(cache):
    """The client's `LogMelCache` settings with a cache folder this worker can write: the worker's own
    ``$EDGE_SER_CACHE`` if it is set (e.g. a shared filesystem), else the client's folder (the same machine),
    else a folder under this worker's temp dir.  The folder only holds copies: the numbers do not depend on it."""
    if getattr(cache, "_worker_ok", False):
        return cache
    mine = os.environ.get("EDGE_SER_CACHE")
    for folder in ([Path(mine) / "logmel"] if mine else []) + [cache.dir,
                                                              Path(tempfile.gettempdir()) / "edge-ser-cache" / "logmel"]:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                cache.dir = folder
                break
        except OSError:
            continue
    cache._worker_ok = True
    return cache


def logmel_task(item, cache):
    """(path, variant) -> the clip's log-mel (float32, n_mels x frames), `Failed` or `Unreadable`."""
    path, variant = item
    bad = _openable(path)
    if bad is not None:
        return bad
    cache = _worker_cache(cache)
    db = cache.get(SimpleNamespace(path=path), variant)
    if db is None:
        return Failed(cache.failed.pop(path, f"{path}: unreadable"))
    return db


def warm(cluster, data, pairs, desc: str = "features", keep: bool = True) -> None:
    """Compute the inputs of ``pairs`` [(clip index, variant)] of `edge_ser_train.train.Data` on the cluster: the
    workers decode and compute log-mels, this process caches them (its LogMelCache) and, with ``keep``, keeps the
    window inputs in ``data`` as `Data.raw` would."""
    todo, local = [], []
    for i, v in pairs:
        (local if data.cache.has(data.clips[i].path, v) else todo).append((i, v))
    shipped = copy.copy(data.cache)
    shipped.dir, shipped.failed = Path(data.cache.dir).resolve(), {}
    results = cluster.map(logmel_task, [(data.clips[i].path, v) for i, v in todo], desc,
                          cache=cluster.shared(shipped), check=check_unreadable, per_task=cluster.per_task(len(todo)))
    for (i, v), r in zip(todo, results):
        path = data.clips[i].path
        if isinstance(r, Failed):
            data.cache.failed[path] = r.reason
            if keep:
                data._raw[(i, v)] = None
            continue
        data.cache.put(path, v, r)
        if keep:
            data._raw[(i, v)] = data.windows(r)
    if keep:
        for i, v in local:
            data.raw(i, v)


# --- one (seed, fold) of cross-validation --------------------------------------------------------------------

@dataclass
class FoldJob:
    """What every fold task shares: the task set without computed inputs, the config and the SSL hook."""
    data: object
    cfg: object
    ssl: object
    token: str


_MEMO: OrderedDict = OrderedDict()  # (run token, seed) -> {(clip, variant): raw inputs} of this worker process
_MEMO_RUNS = 4


def _memo(key) -> dict:
    if key not in _MEMO:
        # the originals' inputs (variant "") do not depend on the seed: start from another seed's of this run
        same_run = [m for (token, _), m in _MEMO.items() if token == key[0]]
        _MEMO[key] = {k: v for k, v in (same_run[-1] if same_run else {}).items() if not k[1]}
        while len(_MEMO) > _MEMO_RUNS:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    return _MEMO[key]


def fold_job(data, cfg, ssl, token: str) -> FoldJob:
    skeleton = replace(data, cache=copy.copy(data.cache), norm=None, _raw={}, _inputs={}, _stats={})
    skeleton.cache.dir, skeleton.cache.failed = Path(data.cache.dir).resolve(), {}
    return FoldJob(skeleton, cfg, ssl, token)


def fold_task(item, job: FoldJob):
    """(seed, fold, train indices, test indices) -> (metrics, SSL records, unreadable clips) of that fold, as
    `edge_ser_train.train.cross_validate` computes them in-process."""
    from .train import _fold

    seed, k, tr, te = item
    base = replace(job.data, cache=_worker_cache(copy.copy(job.data.cache)))
    data = replace(base.with_seed(seed), _raw=_memo((job.token, seed)), _inputs={}, _stats={}, norm=None)
    data.cache.failed = {}
    hook = None
    if job.ssl is not None:
        hook = copy.copy(job.ssl)
        hook.records = []
        hook.log = _quiet
    for i in set(np.asarray(tr).tolist()) | set(np.asarray(te).tolist()):
        bad = _openable(data.clips[i].path)
        if bad is not None:
            raise ClusterError(bad.message())
    m = _fold(data, replace(job.cfg, seed=seed), tr, te, k, hook)
    return m, (hook.records if hook is not None else []), dict(data.cache.failed)


def _quiet(msg: str) -> None:
    pass


# --- exported models, per clip (evaluate, pseudo-label) ----------------------------------------------------------

@dataclass(frozen=True)
class ModelRef:
    """An exported model as a worker loads it: a default model's name or an absolute directory, its format, and
    the hashes of its files (the worker checks it loaded the same model)."""
    spec: str
    fmt: str
    sha256: tuple


def model_ref(model, spec) -> ModelRef:
    spec = str(spec)
    where = str(Path(model.path).resolve()) if Path(spec).exists() else spec
    return ModelRef(where, model.format, tuple(sorted((model.manifest.sha256 or {}).items())))


_MODELS: dict = {}


def _load(ref: ModelRef):
    m = _MODELS.get(ref)
    if m is None:
        from edge_ser.registry import load_model
        try:
            m = load_model(ref.spec, fmt=ref.fmt)
        except UserError as exc:
            raise ClusterError(f"worker {worker_name()} cannot load the model {ref.spec}: {exc} (every worker needs "
                               "the model at the same path, or the same installed default models)") from None
        if tuple(sorted((m.manifest.sha256 or {}).items())) != ref.sha256:
            raise ClusterError(f"worker {worker_name()} has a different model at {ref.spec} (file hashes differ)")
        _MODELS[ref] = m
    return m


def stats_fields(st) -> tuple | None:
    return None if st is None else st.state()


def stats_from(model, fields):
    """A `edge_ser.adapt.SpeakerStats` of ``model`` holding ``fields`` (see `stats_fields`)."""
    return None if fields is None else model.speaker_norm.stats_from(fields)


def adapt_task(path: str, model: ModelRef):
    """A clip's contribution to its speaker's statistics (`Model.adapt_file` on fresh statistics): (fields,
    reason or None).  A clip that fails part-way keeps what it added before failing, as in-process."""
    bad = _openable(path)
    if bad is not None:
        return bad
    m = _load(model)
    st = m.speaker_stats()
    try:
        m.adapt_file(path, st)
    except AudioError as exc:
        return stats_fields(st), str(exc)
    return stats_fields(st), None


def classify_task(item, model: ModelRef):
    """(path, speaker statistics fields or None, update) -> the clip's probabilities (`Model.classify_file`)."""
    path, fields, update = item
    bad = _openable(path)
    if bad is not None:
        return bad
    m = _load(model)
    try:
        return m.classify_file(path, stats=stats_from(m, fields), update=update)[0]
    except AudioError as exc:
        return Failed(str(exc))


def speaker_stats(cluster, model, ref: ModelRef, clips_by_speaker: list, desc: str) -> tuple[dict, dict]:
    """{speaker: SpeakerStats} over [(speaker, path)] in that order, as a loop of ``model.adapt_file`` over the
    same clips would build them here (each clip's sums added in turn); also {path: reason} of clips that failed."""
    results = cluster.map(adapt_task, [p for _, p in clips_by_speaker], desc, model=cluster.shared(ref),
                          check=check_unreadable, per_task=cluster.per_task(len(clips_by_speaker)))
    stats, failed = {}, {}
    for (spk, path), (fields, reason) in zip(clips_by_speaker, results):
        stats.setdefault(spk, model.speaker_stats()).merge(stats_from(model, fields))
        if reason is not None:
            failed[path] = reason
    return stats, failed


def classify(cluster, ref: ModelRef, items: list, desc: str) -> list:
    """[(path, stats or None, update)] -> probabilities per clip, or `Failed`."""
    return cluster.map(classify_task, [(p, stats_fields(st), u) for p, st, u in items], desc,
                       model=cluster.shared(ref), check=check_unreadable, per_task=cluster.per_task(len(items)))

"""Scale-out on Dask (``dask.distributed``, the extra ``cluster``): ``--cluster local:N`` or ``--cluster
tcp://HOST:PORT`` for `train`, `evaluate` and `pseudo-label`.

This module holds what every parallel point shares: parsing the spec (`ClusterSpec`), opening a client
(`open_cluster`: a `LocalCluster` of N single-threaded worker processes bound to 127.0.0.1, or a running scheduler
reached within `ClusterOptions.connect_timeout`), pinning the workers' thread counts to this process's
(`edge_ser_train.cluster_tasks.PinThreads`), and `Cluster.map`: one future per item, retried on failure, results in input order, a tqdm bar on
stderr that follows completed futures, every future cancelled on Ctrl-C or on the first error.  The functions that
run on the workers are in `edge_ser_train.cluster_tasks`.

What makes a run on a cluster give the in-process results: tasks carry paths (never audio), every worker decodes
and computes with the same code; every seed belongs to a task (a fold's seed, a clip's augmentation seed), never to
a worker; thread counts that change floating-point results (TensorFlow's, BLAS's, onnxruntime's, the forest's
``n_jobs``) are the same in the workers as here.  Without ``--cluster`` dask is never imported
(`maybe_cluster` yields None).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from edge_ser.errors import UserError

logger = logging.getLogger("edge_ser.cluster")

# environment variables that set thread counts or kernels (and so, for TensorFlow and BLAS, floating-point
# summation orders): copied from the client into every worker
THREAD_ENV = ("EDGE_SER_TRAIN_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS")
SHARED_DATA_HINT = "every worker needs the corpora at the same path as this machine, or on a shared filesystem"


class ClusterError(UserError):
    """The cluster cannot be used: bad spec, unreachable scheduler, missing extra, tasks whose workers keep dying."""


@dataclass(frozen=True)
class ClusterSpec:
    """``local:N`` (a LocalCluster of N worker processes here) or ``tcp://HOST:PORT`` (a running scheduler)."""
    kind: str            # "local" or "tcp"
    workers: int = 0     # local: worker processes
    address: str = ""    # tcp: the scheduler's address

    @classmethod
    def parse(cls, text: str) -> "ClusterSpec":
        text = (text or "").strip()
        m = re.fullmatch(r"local:(\d+)", text)
        if m:
            n = int(m.group(1))
            if not 1 <= n <= 512:
                raise ClusterError(f"--cluster local:N needs 1 <= N <= 512, got {text!r}")
            return cls("local", workers=n)
        m = re.fullmatch(r"tcp://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d+)", text)
        if m and 0 < int(m.group(2)) < 65536:
            return cls("tcp", address=text)
        raise ClusterError(f"--cluster takes local:N or tcp://HOST:PORT, got {text!r}")

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.kind == "local" else self.address


@dataclass
class ClusterOptions:
    """How tasks are run.  Defaults are what the CLI uses."""
    connect_timeout: float = 5.0   # seconds to reach a tcp:// scheduler before `error: ...`
    retries: int = 3               # re-runs of a task that raised (a worker dying is rescheduled by the scheduler)
    progress: bool = True          # tqdm bar on stderr following completed futures
    # clips per task of the per-clip steps (features, evaluate, pseudo-label): None = auto, enough clips that the
    # scheduler's per-task cost (~1-10 ms, benchmarks/results/cluster.json) stays small against a clip's ~15 ms,
    # and at least 8 tasks per worker for balance; 1 = one task per clip
    clips_per_task: int | None = None
    max_clips_per_task: int = 32
    # worker processes of local:N: started with these thread settings (see `thread_settings`)
    local_memory_limit: str | None = None  # e.g. "4GB" per worker; None: dask's default (RAM / N)


def thread_settings() -> dict:
    """This process's thread settings, which the workers take over: the THREAD_ENV variables that are set, the BLAS
    thread counts (threadpoolctl) and TensorFlow's intra-op threads (EDGE_SER_TRAIN_THREADS, default 2)."""
    env = {k: os.environ[k] for k in THREAD_ENV if k in os.environ}
    env.setdefault("EDGE_SER_TRAIN_THREADS", "2")  # edge_ser_train.kinds.cnn's default
    blas = {}
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            blas.setdefault(info["user_api"], info["num_threads"])
    except Exception:  # threadpoolctl comes with scikit-learn; without it BLAS counts are left to the worker
        pass
    return {"env": env, "blas": blas}


def _need_dask():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError("--cluster needs Dask: pip install 'edge-ser-train[cluster]' (dask[distributed])") from None


def worker_name() -> str:
    """The worker running this task, for error messages: its address and host name."""
    import socket
    try:
        from distributed import get_worker
        return f"{get_worker().address} ({socket.gethostname()})"
    except (ImportError, ValueError):
        return f"this process ({socket.gethostname()})"


class Cluster:
    """A connected client and the options its maps run with."""

    def __init__(self, client, spec: ClusterSpec, options: ClusterOptions):
        self.client, self.spec, self.options = client, spec, options
        self.token = uuid.uuid4().hex[:12]  # names this run's futures (and the workers' per-run memos)
        self._n = 0

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def shared(self, obj):
        """``obj`` as a future every task may take: held by a task that returns it (not scattered), so a worker that
        dies with it loses nothing: the scheduler computes it again elsewhere."""
        from .cluster_tasks import identity
        self._n += 1
        return self.client.submit(identity, obj, key=f"edge-ser-shared-{self.token}-{self._n}", pure=False,
                                  retries=self.options.retries)

    def per_task(self, n_items: int) -> int:
        """Clips per task for a per-clip step of ``n_items`` clips (see `ClusterOptions.clips_per_task`)."""
        if self.options.clips_per_task:
            return max(1, int(self.options.clips_per_task))
        workers = max(1, self.workers())
        return int(max(1, min(self.options.max_clips_per_task, n_items // (8 * workers))))

    def map(self, fn, items, desc: str, check=None, per_task: int = 1, **kwargs) -> list:
        """``[fn(item, **kwargs) for item in items]`` on the cluster, in input order.  A task that raises is retried
        (``options.retries``), then its exception is raised here; a task whose workers die over and over (dask's
        KilledWorker) is a `ClusterError`; Ctrl-C (KeyboardInterrupt) cancels every future and is raised again.
        ``check(result)``, called as each result arrives, may raise to stop the map (the rest is cancelled).
        ``per_task`` > 1: that many consecutive items per task (the same results, fewer tasks)."""
        from distributed import as_completed
        from tqdm import tqdm

        items = list(items)
        if not items:
            return []
        self._n += 1
        name = getattr(fn, "__name__", "task")
        per_task = max(1, int(per_task))
        starts = list(range(0, len(items), per_task))
        keys = [f"edge-ser-{name}-{self.token}-{self._n}-{i}" for i in range(len(starts))]
        if per_task == 1:
            futures = self.client.map(fn, items, key=keys, pure=False, retries=self.options.retries, **kwargs)
        else:
            from .cluster_tasks import run_chunk
            futures = self.client.map(run_chunk, [items[i:i + per_task] for i in starts], key=keys, pure=False,
                                      retries=self.options.retries, fn=fn, **kwargs)
        where = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(items)
        try:
            with tqdm(total=len(items), desc=desc, unit="clip" if per_task > 1 else "task", file=sys.stderr,
                      disable=not self.options.progress, mininterval=1.0, leave=False) as bar:
                for fut in as_completed(futures):
                    j = where[fut.key]
                    res = _result(fut)
                    got = res if per_task > 1 else [res]
                    out[starts[j]:starts[j] + len(got)] = got
                    if check is not None:
                        for r in got:
                            check(r)
                    fut.release()
                    bar.update(len(got))
        except BaseException:  # Ctrl-C, a task's error, a lost cluster: nothing is left running for this map
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # pragma: no cover - the cluster may be gone already
                pass
            raise
        return out


def _result(fut):
    from distributed.scheduler import KilledWorker
    try:
        return fut.result()
    except KilledWorker as exc:
        raise ClusterError(f"a task kept killing its workers (dask KilledWorker: {exc}); see the workers' logs "
                           "(out of memory?)") from None
    except (OSError, TimeoutError) as exc:
        if type(exc).__module__.startswith(("distributed", "tornado")) or "connect" in str(exc).lower():
            raise ClusterError(f"lost the cluster: {exc}") from None
        raise


@contextmanager
def open_cluster(spec: str | ClusterSpec, options: ClusterOptions | None = None):
    """Yield a `Cluster` for ``spec``; a local one is shut down on exit.  An unreachable scheduler is a
    `ClusterError` after ``options.connect_timeout`` seconds."""
    spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.parse(spec)
    options = options or ClusterOptions()
    _need_dask()
    import dask
    from distributed import Client, LocalCluster

    from .cluster_tasks import PinThreads
    settings = thread_settings()
    if spec.kind == "local":
        # the nanny's pre-spawn environment (OMP/MKL/OpenBLAS = 1 by default) becomes this process's settings:
        # a thread variable unset here stays unset there (TensorFlow's oneDNN kernels follow OMP_NUM_THREADS)
        environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                   if k not in THREAD_ENV}
        environ.update(settings["env"])
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), _workers_ignore_ctrl_c():
            local = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None, silence_logs=logging.ERROR,
                                 memory_limit=options.local_memory_limit or "auto")
        try:
            client = Client(local, timeout=max(options.connect_timeout, 30.0))
        except BaseException:
            local.close()
            raise
    else:
        local = None
        try:
            client = Client(spec.address, timeout=options.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {spec.address} within "
                               f"{options.connect_timeout:g} s ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no answer'})") from None
    try:
        client.register_plugin(PinThreads(dict(settings, ignore_sigint=local is not None)), name=PinThreads.name)
        cluster = Cluster(client, spec, options)
        if local is None and cluster.workers() == 0:
            logger.warning("the scheduler at %s has no workers yet; tasks wait for one", spec.address)
        yield cluster
    finally:
        _close(client, local)


@contextmanager
def _workers_ignore_ctrl_c():
    """Worker processes started inside inherit an ignored SIGINT: Ctrl-C in a terminal reaches the whole process
    group, and only this process should answer it (cancel, shut the cluster down, exit 130) -- not N workers each
    printing a KeyboardInterrupt traceback.  (`edge_ser_train.cluster_tasks.PinThreads` does the same in a worker
    started later, e.g. one the nanny restarts.)"""
    import signal
    try:
        before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _close(client, local) -> None:
    import contextlib
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    if local is not None:
        with contextlib.suppress(Exception):
            local.close(timeout=10)


@contextmanager
def maybe_cluster(spec: str | None, progress: bool = True, **options):
    """`open_cluster` for a spec, or None (nothing imported) when ``spec`` is None: the CLI's one switch."""
    if spec is None:
        yield None
        return
    with open_cluster(spec, ClusterOptions(progress=progress, **options)) as c:
        yield c

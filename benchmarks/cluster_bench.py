"""--cluster on this machine: wall time of feature extraction and of a small multi-seed CV in-process and on
LocalClusters of 1 and 2 workers, and the per-task overhead of Dask (empty tasks), so a reader can predict a
larger cluster (docs/cluster.md).

    python -m benchmarks.cluster_bench [--data ../shared/data] [--every 4] [--workers 1,2] [--per-task 1|N|auto]
writes benchmarks/results/cluster.json (--out to choose)

- features: every ``--every``-th audio file under --data (all corpora, sorted paths), decoded and turned into the
  training log-mel (`edge_ser_train.cluster_tasks.logmel_task`, the function the workers run) into an empty cache;
  in-process = the same function in a loop here.  The log-mels from the cluster are checked equal to in-process.
- cv: fine15 random forest (``n_estimators`` 60, ``n_jobs`` 1 so one fit = one core) on CREMA-D + RAVDESS of
  --data, ``--folds`` x ``--seeds`` fits (`edge_ser_train.train.cross_validate`), features cached beforehand, so
  the time is the fits'; the metrics are checked equal to in-process.
- overhead: 2000 empty tasks through `Cluster.map` on 2 workers (throughput per task) and 50 sequential
  submit -> result round trips (latency).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AUDIO = (".flac", ".wav", ".ogg")


def _files(data: Path, every: int) -> list[str]:
    files = sorted(str(p) for p in data.rglob("*") if p.suffix.lower() in AUDIO)
    return files[::every]


def _cache(dirname: str):
    from edge_ser_train.augment import AugmentConfig
    from edge_ser_train.dataset import LogMelCache
    return LogMelCache(Path(dirname), aug=AugmentConfig(), seed=0)


def bench_features(files, workers, log, per_task: str = "1") -> dict:
    from edge_ser_train.cluster import open_cluster
    from edge_ser_train.cluster_tasks import Failed, logmel_task

    out = {"clips": len(files), "runs": []}
    with tempfile.TemporaryDirectory() as d:
        cache = _cache(os.path.join(d, "inproc"))
        t = time.perf_counter()
        ref = [logmel_task((f, ""), cache) for f in files]
        wall = time.perf_counter() - t
        frames = int(sum(r.shape[1] for r in ref if not isinstance(r, Failed)))
        out.update(failed=sum(isinstance(r, Failed) for r in ref), frames=frames,
                   audio_hours=round(frames * 512 / 16000 / 3600, 3))
        out["runs"].append({"where": "in-process", "wall_s": round(wall, 2), "ms_per_clip": round(1e3 * wall / len(files), 2)})
        log(f"features in-process: {wall:.1f} s for {len(files)} clips")
        for n in workers:
            t0 = time.perf_counter()
            with open_cluster(f"local:{n}") as c:
                up = time.perf_counter() - t0
                shipped = _cache(os.path.join(d, f"local{n}"))
                t = time.perf_counter()
                k = c.per_task(len(files)) if per_task == "auto" else int(per_task)
                got = c.map(logmel_task, [(f, "") for f in files], f"features local:{n}", cache=c.shared(shipped),
                            per_task=k)
                wall = time.perf_counter() - t
            same = all((isinstance(a, Failed) and isinstance(b, Failed)) or
                       (not isinstance(a, Failed) and not isinstance(b, Failed) and np.array_equal(a, b))
                       for a, b in zip(ref, got))
            out["runs"].append({"where": f"local:{n}", "clips_per_task": k, "wall_s": round(wall, 2), "startup_s": round(up, 2),
                                "ms_per_clip": round(1e3 * wall / len(files), 2), "identical_to_in_process": same})
            log(f"features local:{n}: {wall:.1f} s (+ {up:.1f} s startup), identical {same}")
    return out


def bench_cv(data: Path, folds: int, seeds: int, workers, log) -> dict:
    from edge_ser_train import kinds
    from edge_ser_train.cluster import open_cluster
    from edge_ser_train.train import TrainConfig, cross_validate, load_data

    cfg = TrainConfig(task="fine15", kind="rfc", augment=(), folds=folds,
                      kind_options={"n_estimators": 60, "n_jobs": 1})
    roots = [data / "cremad", data / "ravdess"]
    kind = kinds.make("rfc", 15, **cfg.kind_options)
    d = load_data(roots, cfg, kind)
    t = time.perf_counter()
    d.warm(range(len(d.clips)))
    warm = time.perf_counter() - t
    out = {"task": "fine15", "kind": "rfc", "kind_options": cfg.kind_options, "clips": len(d.clips),
           "folds": folds, "seeds": seeds, "fits": folds * seeds, "features_s": round(warm, 1), "runs": []}

    def strip(cv):
        cv = json.loads(json.dumps(cv))
        for f in cv["per_fold"]:
            f.pop("fit_seconds")
        return cv

    t = time.perf_counter()
    ref = cross_validate(d, cfg, log=lambda s: None, seeds=seeds)
    wall = time.perf_counter() - t
    out["accuracy"] = ref["accuracy"]
    out["runs"].append({"where": "in-process", "wall_s": round(wall, 1)})
    log(f"cv in-process: {wall:.1f} s, accuracy {ref['accuracy']['mean']:.3f} ± {ref['accuracy']['std']:.3f}")
    for n in workers:
        t0 = time.perf_counter()
        with open_cluster(f"local:{n}") as c:
            up = time.perf_counter() - t0
            d2 = load_data(roots, cfg, kind)
            d2.warm(range(len(d2.clips)))  # from the cache (the features were timed above)
            t = time.perf_counter()
            got = cross_validate(d2, cfg, log=lambda s: None, seeds=seeds, cluster=c)
            wall = time.perf_counter() - t
        same = strip(got) == strip(ref)
        out["runs"].append({"where": f"local:{n}", "wall_s": round(wall, 1), "startup_s": round(up, 2),
                            "identical_to_in_process": same})
        log(f"cv local:{n}: {wall:.1f} s (+ {up:.1f} s startup), identical {same}")
    return out


def bench_overhead(log, n_tasks: int = 2000, trips: int = 50) -> dict:
    from edge_ser_train.cluster import ClusterOptions, open_cluster
    from edge_ser_train.cluster_tasks import identity

    with open_cluster("local:2", ClusterOptions(progress=False)) as c:
        c.map(identity, range(50), "warm-up")
        t = time.perf_counter()
        c.map(identity, range(n_tasks), "empty tasks")
        per_task = (time.perf_counter() - t) / n_tasks
        lat = []
        for i in range(trips):
            t = time.perf_counter()
            c.client.submit(identity, i, pure=False).result()
            lat.append(time.perf_counter() - t)
    out = {"workers": 2, "tasks": n_tasks, "per_task_ms": round(1e3 * per_task, 3),
           "round_trip_ms": {"median": round(1e3 * float(np.median(lat)), 2),
                             "p90": round(1e3 * float(np.percentile(lat, 90)), 2)}}
    log(f"overhead: {out['per_task_ms']} ms per task in a map of {n_tasks}; one round trip "
        f"{out['round_trip_ms']['median']} ms (median)")
    return out


def main(argv=None) -> int:
    import sys
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--every", type=int, default=4, help="feature extraction: every N-th audio file")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--per-task", default="1", help="features: clips per task on the cluster, a number or auto "
                    "(what train/evaluate/pseudo-label use: ClusterOptions.clips_per_task)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: features,cv,overhead")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cluster.json")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    workers = [int(w) for w in args.workers.split(",") if w]
    skip = set(args.skip.split(","))
    res = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                       "note": "a 2-core machine shared with other engineers' jobs: wall times are noisy"},
           "data": str(args.data)}
    import dask
    res["dask"] = dask.__version__
    tmp = tempfile.TemporaryDirectory()  # the CV's feature cache: a fresh one, outside the checkout
    os.environ["EDGE_SER_CACHE"] = tmp.name
    if "overhead" not in skip:
        res["overhead"] = bench_overhead(log)
    if "features" not in skip:
        files = _files(args.data, args.every)
        res["features"] = {"subset": f"every {args.every}th audio file under {args.data} (sorted paths)",
                           **bench_features(files, workers, log, args.per_task)}
    if "cv" not in skip:
        res["cv"] = bench_cv(args.data, args.folds, args.seeds, workers, log)
    res["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

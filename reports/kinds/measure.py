"""Speaker-disjoint measurement of one kind on basic6 (CREMA-D + RAVDESS), actor-fold CV through the project's
training loop (edge_ser_train.train.cross_validate: the same folds as the shipped models for the same corpora and
seed).  Usage (from the repository root, PYTHONPATH=.:export):

    nice -n 10 python reports/kinds/measure.py NAME KIND '{"kind": "options"}' [--folds 5] [--augment noise,pitch]
        [--train-hop 1.0] [--data ../shared/data/cremad --data ../shared/data/ravdess]

writes reports/kinds/NAME.json (CV summary, per fold) and logs to stdout.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from edge_ser_train.train import TrainConfig, cross_validate, load_data
from edge_ser_train import kinds

ap = argparse.ArgumentParser()
ap.add_argument("name")
ap.add_argument("kind")
ap.add_argument("options", nargs="?", default="{}")
ap.add_argument("--folds", type=int, default=5)
ap.add_argument("--augment", default="")
ap.add_argument("--train-hop", type=float, default=1.0)
ap.add_argument("--data", action="append", default=None)
ap.add_argument("--cache-dir", default=None)
a = ap.parse_args()
roots = [Path(p) for p in (a.data or ["../shared/data/cremad", "../shared/data/ravdess"])]
opts = json.loads(a.options)
cfg = TrainConfig(task="basic6", kind=a.kind, augment=tuple(x for x in a.augment.split(",") if x), folds=a.folds,
                  train_hop_seconds=a.train_hop, kind_options=opts, cache_dir=a.cache_dir, seed=0)
t0 = time.time()
kind = kinds.make(a.kind, 6, **opts)
data = load_data(roots, cfg, kind)
print(f"{len(data.clips)} clips, {len(set(data.speakers.tolist()))} speakers", flush=True)
cv = cross_validate(data, cfg, log=lambda s: print(s, flush=True))
out = {"name": a.name, "kind": a.kind, "kind_options": opts, "task": "basic6", "corpora": [str(r) for r in roots],
       "train_config": {"folds": a.folds, "augment": list(cfg.augment), "train_hop_seconds": a.train_hop,
                        "window_seconds": cfg.window_seconds, "hop_seconds": cfg.hop_seconds, "seed": cfg.seed},
       "wall_seconds": round(time.time() - t0), "command": " ".join(sys.argv), "cv": cv}
Path(__file__).with_name(f"{a.name}.json").write_text(json.dumps(out, indent=1) + "\n")
print("CV accuracy %.3f ± %.3f, balanced %.3f" % (cv["accuracy"]["mean"], cv["accuracy"]["std"],
                                                  cv["balanced_accuracy"]["mean"]), flush=True)

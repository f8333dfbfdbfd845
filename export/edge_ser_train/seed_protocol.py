"""Seed 000's own protocol, run once for comparison with the speaker-independent numbers:
augmented copies (AWGN 20 dB, pitch shift) of every clip are made BEFORE a random stratified 80/20 split of clips and
copies, so the same speakers -- and copies of the same recording -- sit in training and test.

    python -m edge_ser_train.seed_protocol --data ../shared/data --kind rfc [--repeats 3]
writes reports/seed000/<task>-<kind>.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import kinds
from .make_models import CORPORA, REPO
from .train import TrainConfig, load_data, seed_protocol

# the seed's settings: RFC with sklearn defaults (unbounded depth), CNN as shipped
SEED_OPTIONS = {"rfc": {"max_leaf_nodes": None, "min_samples_leaf": 1}, "cnn": {}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--task", default="fine15")
    ap.add_argument("--kind", default="rfc", choices=sorted(SEED_OPTIONS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "reports" / "seed000"))
    args = ap.parse_args(argv)
    roots = [Path(args.data) / c for c in CORPORA]
    cfg = TrainConfig(task=args.task, kind=args.kind, augment=("noise", "pitch"), seed=args.seed,
                      train_hop_seconds=1.0 if args.kind == "cnn" else None, kind_options=SEED_OPTIONS[args.kind])
    kind = kinds.make(args.kind, 15 if args.task == "fine15" else 6, **cfg.kind_options)
    data = load_data(roots, cfg, kind)
    result = seed_protocol(data, cfg, args.repeats, log=lambda s: print(s, file=sys.stderr, flush=True))
    result.update(task=args.task, kind=args.kind, kind_options=cfg.kind_options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.task}-{args.kind}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("task", "kind", "accuracy", "balanced_accuracy", "macro_f1")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

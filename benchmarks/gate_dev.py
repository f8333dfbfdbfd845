"""Speech-gate development on cached sessions: recall and false alarms of the gate alone, per condition.

The noisy-session benchmark (`benchmarks.noisy_sessions`) builds its sessions anew and runs a model, Silero and
both detectors: minutes per run.  Tuning the detector needs many runs on *development* speakers (never the
held-out ones the benchmark reports), so this builds the sessions once with the benchmark's own builders, keeps
them in ``--cache`` (``.npz``, ~100 MB per corpus) and scores a `GateConfig` in ~10-20 s::

    python -m benchmarks.gate_dev --corpus cremad                      # the default gate
    python -m benchmarks.gate_dev --corpus cremad --gate margin_db=3   # a GateConfig field
    python -m benchmarks.gate_dev --corpus ravdess --set STEADY_DB=2   # an edge_ser.vad constant

``cremad``: every fifth CREMA-D actor, ``ravdess``: every third RAVDESS actor (the benchmark's development
speakers); ``heldout`` is there to confirm a choice made on those, not to make it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge_ser import vad
from edge_ser.errors import UserError
from edge_ser.stream import GateConfig

from . import noisy_sessions as ns

CONDITIONS = ("clean", "pink20", "pink10", "far", "babble")


def sessions(corpus: str, cache: Path, n_utt: int = 20, seed: int = 0, max_sessions: int = 6) -> list:
    """[(speaker, condition, audio, hop truth)] built as the benchmark builds them, cached."""
    path = cache / f"{corpus}-{n_utt}-{seed}-{max_sessions}-v{BUILDER_VERSION}.npz"
    if path.exists():
        return list(np.load(path, allow_pickle=True)["items"])
    items = []
    for name, _, speech, mask, _, babble in ns.built_sessions(ns.DATA, corpus, n_utt, "fine16-cnn", seed,
                                                               max_sessions):
        for cond in CONDITIONS:
            y, m = ns.condition(cond, speech, mask, babble, np.random.default_rng(seed + 1), False)
            items.append((name, cond, y, ns.hop_truth(m, len(y) // int(ns.HOP * ns.SR))))
        print(f"built {name}", file=sys.stderr, flush=True)
    if items:  # written whole, then renamed: an interrupted build leaves no half file behind
        cache.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.stem + ".part.npz")
        np.savez(part, items=np.array(items, dtype=object))
        part.replace(path)
    return items


def evaluate(cfg: GateConfig, items: list) -> dict:
    """Per condition: mean over sessions of speech-hop recall and gap false alarms."""
    acc: dict = {}
    for _, cond, y, truth in items:
        s = ns.gate_scores(ns.gate_hops(cfg, y), truth)
        acc.setdefault(cond, []).append((s["recall"], s["false_alarms"]))

    def mean(values):  # sessions without speech (or without gaps) have no recall (false alarms)
        values = [v for v in values if v is not None]
        return round(float(np.mean(values)), 3) if values else None
    return {c: {"recall": mean([r for r, _ in v]), "false_alarms": mean([f for _, f in v])} for c, v in acc.items()}


BUILDER_VERSION = 1  # in the cache's file name: bump it when the session builders change
NOT_SETTABLE = {"CLIP_LEVEL", "CLIP_SHARE"}  # read by edge_ser.stream at import: setting them here changes nothing


def _pairs(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"{item!r} is not NAME=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{item!r}: the value is not JSON (a number, true/false, a quoted string)") from None
    return out


def _check_constants(constants: dict) -> None:
    """Every name an upper-case numeric constant of edge_ser.vad, every value a number of its kind (ValueError)."""
    for name, value in constants.items():
        current = getattr(vad, name, None)
        if not name.isupper() or name in NOT_SETTABLE or not isinstance(current, (int, float)):
            raise ValueError(f"edge_ser.vad has no settable constant {name}")
        ok = isinstance(value, int) if isinstance(current, int) else isinstance(value, (int, float))
        if not ok or isinstance(value, bool):
            raise ValueError(f"{name} must be a {'whole number' if isinstance(current, int) else 'number'}, "
                             f"got {value!r}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="cremad", choices=("cremad", "ravdess", "heldout"))
    ap.add_argument("--cache", type=Path, default=Path("runs") / "gate_dev")
    ap.add_argument("--gate", nargs="*", default=[], metavar="FIELD=VALUE", help="GateConfig fields (JSON values)")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="edge_ser.vad constants")
    a = ap.parse_args(argv)
    try:
        constants, fields = _pairs(a.set), _pairs(a.gate)
        _check_constants(constants)
        cfg = GateConfig(**fields).validate()
    except (TypeError, ValueError, UserError) as exc:  # not NAME=JSON, an unknown name or field, a bad value
        print(f"error: --gate/--set: {exc}", file=sys.stderr)
        return 2
    needed = {"cremad": ["cremad"], "ravdess": ["cremad", "ravdess"], "heldout": ["cremad", "ravdess", "esd"]}
    missing = [c for c in needed[a.corpus] if not (ns.DATA / c).is_dir()]
    if missing:
        print(f"skipped: {', '.join(missing)} not at {ns.DATA}", file=sys.stderr)
        return 0
    for name, value in constants.items():  # all checked first: none is set when one is bad
        setattr(vad, name, value)
    try:
        items = sessions(a.corpus, a.cache)
    except (SystemExit, UserError, OSError) as exc:  # a model without held-out speakers, unreadable audio
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not items:
        print(f"error: no sessions of {a.corpus} speakers in {ns.DATA}", file=sys.stderr)
        return 2
    t = time.time()
    out = evaluate(cfg, items)
    print(f"{a.corpus} {' '.join(a.gate + a.set) or 'default'} ({time.time() - t:.0f} s)")
    for cond, s in out.items():
        print(f"  {cond:8s} recall {s['recall']}  false alarms {s['false_alarms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

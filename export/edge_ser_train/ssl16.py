"""Self-training at scale on fine16 (seed 000's idea, issue 15): the clips that carry part of a label become full.

fine16 already trains on every clip with the labels it carries (an emotion without intensity: CREMA-D XX, ESD,
EMOVO; a level without emotion: BAVED low/high), a missing part masked in the loss (`targets`).  Self-training fills
that part in: the set-1 model (trained on the fold's training part) gives each such clip the most likely of its
*candidate* labels (its known emotion at one of three intensities, or its known level under one of five emotions),
with a confidence = that label's probability renormalised over the candidates; clips at or above a threshold get
that label, and the model is trained again on the same clips (set 2).  The threshold is chosen on the fold's
validation speakers, whose full labels are hidden down to the emotion, as the one maximising correct minus wrong
pseudo labels (`choose_threshold`).

The experiment (`experiment`, ``python -m edge_ser_train.ssl16``) is paired: the same actor folds, the same
validation part, the same training seeds, with and without set 2; several training seeds per fold; each fold's test
speakers were in no part of the pseudo-labelling.  Report: ``reports/ssl/<recipe>-fine16.{json,md}``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge_ser.labels import split_label

from . import splits

GRID = tuple(round(x, 2) for x in np.arange(0.3, 0.951, 0.05))


def candidates(data, i: int) -> list[int]:
    """The label indices clip ``i`` may have: one for a full label, the candidate set for a partial one."""
    n = len(data.labels)
    y = int(data.y[i])
    return [y] if y < n else list(data.groups[y - n])


def pool(data, idx) -> np.ndarray:
    """The clips of ``idx`` with a partial label (their pseudo-labelling pool)."""
    idx = np.asarray(idx)
    return idx[data.y[idx] >= len(data.labels)]


def best_candidate(p: np.ndarray, cands: list[int]) -> tuple[int, float]:
    """The most likely candidate label and its probability renormalised over the candidates."""
    w = np.asarray(p, np.float64)[cands]
    s = w.sum()
    if not np.isfinite(s) or s <= 0:
        return cands[0], 0.0
    k = int(np.argmax(w))
    return int(cands[k]), float(w[k] / s)


def emotion_candidates(data, label: int) -> list[int]:
    """The labels sharing ``label``'s emotion (a validation clip's label hidden down to its emotion)."""
    e = split_label(data.labels[label])[0]
    return [j for j, lab in enumerate(data.labels) if split_label(lab)[0] == e]


def choose_threshold(probs: np.ndarray, data, val_ok: np.ndarray, grid=GRID) -> tuple[float, list]:
    """The threshold maximising (correct - wrong) pseudo intensities on validation clips with a full, non-neutral
    label, each hidden down to its emotion; ties go to the lower threshold.  Returns (threshold, table)."""
    rows = []
    for p, i in zip(probs, val_ok):
        y = int(data.y[i])
        if y >= len(data.labels) or split_label(data.labels[y])[1] is None:
            continue
        guess, conf = best_candidate(p, emotion_candidates(data, y))
        rows.append((conf, guess == y))
    table, best = [], None
    for t in grid:
        acc = [ok for c, ok in rows if c >= t - 1e-9]
        good = sum(acc)
        row = {"threshold": float(t), "accepted": len(acc), "correct": good, "net": 2 * good - len(acc)}
        table.append(row)
        if best is None or row["net"] > best["net"]:
            best = row
    return (best["threshold"] if best else 1.0), table


def grown_labels(data, model, tr_idx, va_idx, log=print) -> tuple[np.ndarray, dict]:
    """Set 2's integer targets: ``data.y`` with the accepted pool clips of ``tr_idx`` given full pseudo labels."""
    from .train import predict_clips
    pv, ok_v = predict_clips(model, data, va_idx)
    threshold, table = choose_threshold(pv, data, ok_v)
    members = pool(data, tr_idx)
    y2 = data.y.copy()
    accepted, by_corpus = 0, {}
    if len(members):
        p, ok = predict_clips(model, data, members)
        for row, i in zip(p, ok):
            label, conf = best_candidate(row, candidates(data, i))
            if conf >= threshold - 1e-9:
                y2[i] = label
                accepted += 1
                c = data.clips[i].corpus
                by_corpus[c] = by_corpus.get(c, 0) + 1
    record = {"threshold": threshold, "threshold_table": table, "pool": int(len(members)), "accepted": accepted,
              "accepted_by_corpus": by_corpus}
    log(f"SSL fine16: {accepted} of {len(members)} partial clips labelled (threshold {threshold:.2f}; "
        + ", ".join(f"{c} {n}" for c, n in sorted(by_corpus.items())) + ")")
    return y2, record


def experiment(data, cfg, seeds: int = 2, log=print, folds=None) -> dict:
    """Paired before/after on cfg's actor folds: per fold and training seed, set 1 and set 2 (`grown_labels`)
    trained with the same seed and scored on the fold's test speakers."""
    from .train import _fit, fold_parts, score_fold, warm_variants
    plans = list(enumerate(splits.actor_folds(data.y, data.speakers, cfg.folds, cfg.seed)))
    rows = []
    for k, (tr, te) in plans:
        if folds is not None and k not in folds:
            continue
        tr_idx, va_idx = fold_parts(data, cfg, tr, te, k)
        data.warm(tr, warm_variants(cfg), f"fold {k + 1}/{cfg.folds} augmented features")
        data.set_population(tr_idx)
        for s in range(seeds):
            seed = cfg.seed + k + 1000 * s
            before = _fit(data, cfg, tr_idx, va_idx, None, seed)
            y2, record = grown_labels(data, before, tr_idx, va_idx, log)
            after = _fit(replace(data, y=y2), cfg, tr_idx, va_idx, None, seed)
            row = {"fold": k, "seed": seed, **record}
            for name, model in (("before", before), ("after", after)):
                m = score_fold(model, data, te, k, tr_idx)
                row[name] = {t: v["accuracy"] for t, v in m["tasks"].items()}
            rows.append(row)
            log(f"fold {k + 1} seed {seed}: " + ", ".join(
                f"{t} {row['before'][t]:.3f} -> {row['after'][t]:.3f}" for t in row["before"]))
    tasks = sorted({t for r in rows for t in r["before"]})
    diff = {t: [r["after"][t] - r["before"][t] for r in rows if t in r["after"]] for t in tasks}
    summary = {t: {"before": float(np.mean([r["before"][t] for r in rows])),
                   "after": float(np.mean([r["after"][t] for r in rows])),
                   "gain_mean": float(np.mean(d)), "gain_std": float(np.std(d)),
                   "higher_in": int(sum(x > 0 for x in d)), "fits": len(d)} for t, d in diff.items()}
    return {"protocol": f"paired: actor folds of the recipe ({cfg.folds} folds, seed {cfg.seed}), the same "
                        f"validation part, {seeds} training seed(s) per fold, set 1 and set 2 trained with the same "
                        "seed; pool = the fold's training clips with a partial label; threshold chosen on the fold's "
                        "validation speakers; scored on the fold's test speakers (each clip speaker-adapted)",
            "summary": summary, "rows": rows}


def report_md(name: str, result: dict) -> str:
    lines = [f"# Self-training on fine16: {name}", "", f"Protocol: {result['protocol']}.", "",
             "| task | before | after | gain (mean ± std over fits) | higher in |", "|---|---|---|---|---|"]
    for t, s in result["summary"].items():
        lines.append(f"| {t} | {100 * s['before']:.1f} % | {100 * s['after']:.1f} % | "
                     f"{100 * s['gain_mean']:+.1f} ± {100 * s['gain_std']:.1f} | {s['higher_in']} of {s['fits']} |")
    lines += ["", "| fold | seed | pool | accepted | threshold |", "|---|---|---|---|---|"]
    lines += [f"| {r['fold'] + 1} | {r['seed']} | {r['pool']} | {r['accepted']} | {r['threshold']:.2f} |"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from .make_models import RECIPE_CORPORA, REPO, recipe_config
    from .train import load_data
    from . import kinds
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="fine16-rfc", choices=sorted(RECIPE_CORPORA), help="a fine16 recipe")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--folds", type=int, nargs="*", help="only these folds (0-based)")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "ssl")
    a = ap.parse_args(argv)
    cfg, _ = recipe_config(a.recipe, folds=5)
    roots = [a.data / c for c in RECIPE_CORPORA[a.recipe]]
    missing = [r for r in roots if not r.is_dir()]
    if missing:
        print(f"error: {missing[0]}: no such corpus folder (the experiment needs ../shared/data)", file=sys.stderr)
        return 2
    t = time.time()
    data = load_data(roots, cfg, kinds.make(cfg.kind, 16, factorised=True))
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    result = experiment(data, cfg, a.seeds, log, set(a.folds) if a.folds else None)
    result["seconds"] = round(time.time() - t)
    a.out.mkdir(parents=True, exist_ok=True)
    for r in result["rows"]:
        r.pop("threshold_table", None)
    (a.out / f"{a.recipe}.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / f"{a.recipe}.md").write_text(report_md(a.recipe, result))
    print(report_md(a.recipe, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

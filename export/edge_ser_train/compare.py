"""Side-by-side tables of models trained by `make_models` on the same folds and seed, read from their reports
(``reports/<name>/metrics.json``): actor-fold CV per task, per corpus, and leave-one-corpus-out.

    python -m edge_ser_train.compare fine16-cnn fine16-rfc fine16-timnet ... [--reports reports] [--out FILE]

Every number is copied from a report, so a table cannot drift from what was measured.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .make_models import REPO

TASKS = ("basic6", "emotion5", "fine15", "intensity", "fine16")
ENGLISH = ("cremad", "ravdess", "esd")


def _pct(x) -> str:
    return f"{100 * x:.1f}"


def _ms(d: dict | None) -> str:
    return "—" if not d else f"{_pct(d['mean'])} ± {_pct(d['std'])}"


def load(reports: Path, names) -> dict:
    out = {}
    for n in names:
        f = reports / n / "metrics.json"
        if f.is_file():
            out[n] = json.loads(f.read_text())
    return out


def tables(results: dict) -> str:
    names = list(results)
    first = next(iter(results.values()))
    lines = [f"Protocol (every column): {first['cv']['protocol']}.", "",
             "**Actor-fold CV**, speaker-adapted, accuracy per task (the fine16 output collapsed; fine16: balanced "
             "accuracy, as neutral dominates its clips), mean ± std over the folds:", "",
             "| model | " + " | ".join(TASKS[:-1]) + " | fine16 balanced | made in |",
             "|---|" + "---|" * (len(TASKS) + 1)]
    for n in names:
        t = results[n]["cv"].get("tasks", {})
        secs = results[n].get("seconds")
        lines.append(f"| `{n}` | " + " | ".join(_ms(t.get(k, {}).get("accuracy")) for k in TASKS[:-1])
                     + f" | {_ms(t.get('fine16', {}).get('balanced_accuracy'))} | "
                     + (f"{secs / 60:.0f} min" if secs else "—") + " |")
    corpora = sorted({c for r in results.values() for c in r["cv"].get("per_corpus", {})})
    lines += ["", "**Per corpus** (actor-fold CV, the test clips of every fold scored together), basic6 accuracy "
              "(BAVED: its neutral clips only):", "", "| model | " + " | ".join(corpora) + " |",
              "|---|" + "---|" * len(corpora)]
    for n in names:
        pc = results[n]["cv"].get("per_corpus", {})
        lines.append(f"| `{n}` | " + " | ".join(_pct(pc[c]["basic6"]["accuracy"]) if "basic6" in pc.get(c, {})
                                                else "—" for c in corpora) + " |")
    with_loco = [n for n in names if "loco" in results[n]]
    if with_loco:
        held = sorted({c for n in with_loco for c in results[n]["loco"]["held_out"]})
        lines += ["", "**Leave-one-corpus-out** (trained on the other corpora, scored on every clip of the one left "
                  "out), basic6 accuracy; *mean*: over the corpora with six emotions (BAVED left out: neutral only):",
                  "", "| model | " + " | ".join(held) + " | mean |", "|---|" + "---|" * (len(held) + 1)]
        for n in with_loco:
            ho = results[n]["loco"]["held_out"]
            vals = {c: ho[c]["basic6"]["accuracy"] for c in held if "basic6" in ho.get(c, {})}
            six = [v for c, v in vals.items() if c != "baved"]
            lines.append(f"| `{n}` | " + " | ".join(_pct(vals[c]) if c in vals else "—" for c in held)
                         + f" | {_pct(sum(six) / len(six)) if six else '—'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--reports", type=Path, default=REPO / "reports")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    results = load(a.reports, a.names)
    if not results:
        print(f"error: no reports of {', '.join(a.names)} in {a.reports}", file=sys.stderr)
        return 2
    text = tables(results)
    if a.out:
        a.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Markdown evaluation reports with a confusion-matrix PNG (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

REPORT_FILES = ("report.md", "confusion.png")  # what write_report writes into its folder


def confusion_png(confusion, labels, path: Path, title: str = "") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(2.0 + 0.55 * n, 1.6 + 0.5 * n), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(result: dict, out_dir: Path, title: str | None = None) -> Path:
    """``out_dir/report.md`` + ``out_dir/confusion.png`` (REPORT_FILES) for an evaluation result
    (edge_ser_train.evaluate).  The caller checks ``out_dir`` first (edge_ser.paths.check_output_dir)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or f"{result['model']} on {result['task']}"
    confusion_png(result["confusion"], result["labels"], out_dir / "confusion.png", title)
    lines = [f"# {title}", "", f"Protocol: {result.get('protocol', '')}", "",
             f"Model: `{result['model']}` ({result.get('format', '')}), task `{result['task']}`, "
             f"{result['n']} clips of {result.get('speakers', '?')} speakers.", "",
             "| metric | value |", "|---|---|"]
    for k in ("accuracy", "balanced_accuracy", "macro_f1"):
        lines.append(f"| {k} | {result[k]:.3f} |")
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for lab, d in result["per_class"].items():
        lines.append(f"| {lab} | {d['precision']:.3f} | {d['recall']:.3f} | {d['f1']:.3f} | {d['support']} |")
    lines += ["", "![confusion matrix](confusion.png)", ""]
    for c in result.get("corpora", []):
        skipped = ", ".join(f"{k}: {v}" for k, v in c.get("skipped", {}).items()) or "none"
        lines.append(f"- corpus {c['corpus']}: {c['found']} clips of {c['speakers']} speakers (skipped: {skipped})")
    if result.get("unreadable"):
        lines.append(f"- unreadable clips: {len(result['unreadable'])}")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


SEED_NUMBERS = {  # seed 000's reported accuracies (random 80/20 split, augmentation before the split)
    "fine15-rfc": "69.1 % ± 1.0 (set 1) → 70.0 % ± 1.7 (with SSL)",
    "fine15-cnn": "82.0 % ± 1.5 (set 1) → 85.0 % ± 1.2 (with SSL)",
}


def results_markdown(reports: Path) -> str:
    """The README's results table, from ``reports/<model>/metrics.json`` and ``reports/seed000/*.json``."""
    import json
    reports = Path(reports)
    rows = ["| model | speaker-independent: accuracy | balanced acc. | macro-F1 | seed 000's protocol, "
            "our run | seed 000 paper |", "|---|---|---|---|---|---|"]
    for name in ("fine15-rfc", "fine15-cnn", "basic6-rfc", "basic6-cnn"):
        f = reports / name / "metrics.json"
        if not f.exists():
            continue
        cv = json.loads(f.read_text())["cv"]
        cells = [f"{100 * cv[k]['mean']:.1f} % ± {100 * cv[k]['std']:.1f}" for k in
                 ("accuracy", "balanced_accuracy", "macro_f1")]
        s = reports / "seed000" / f"{name}.json"
        leaky = "—"
        if s.exists():
            sd = json.loads(s.read_text())
            leaky = f"{100 * sd['accuracy']['mean']:.1f} %" + (
                f" ± {100 * sd['accuracy']['std']:.1f} ({sd['repeats']} splits)" if sd["repeats"] > 1 else "")
        rows.append(f"| `{name}` | {cells[0]} | {cells[1]} | {cells[2]} | {leaky} | "
                    f"{SEED_NUMBERS.get(name, '—')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys
    print(results_markdown(Path(sys.argv[1] if len(sys.argv) > 1 else "reports")))

"""Robustness report: a model's accuracy against SNR and RT60, on clips made reverberant and noisy on purpose.

Each clip is scored (with the exported model file, as `edge-ser classify` scores a file: windows, mean of window
probabilities, each clip adapted to itself) clean, with pink noise at each SNR of a grid, and reverberated at each
RT60 of a grid (`augment.synthetic_rir`, a seeded room per clip), and both at once (RT60 x SNR).  The output is
collapsed to ``task`` as `evaluate` does.  Which clips: by default the final model's own validation speakers
(``manifest.trained_on.validation_speakers``: speaker-disjoint from its training part), or all clips given.

    python -m edge_ser_train.robustness --model runs/models/fine16-rfc --data ../shared/data/cremad ... \
        --task basic6 --out reports/fine16-rfc/robustness
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge_ser.errors import AudioError, UserError
from edge_ser.labels import collapse_matrix, task_labels

from . import augment, corpora, metrics
from .evaluate import collapse

SNRS = (30.0, 20.0, 10.0, 5.0, 0.0)
RT60S = (0.3, 0.6, 0.9)


def conditions(snrs=SNRS, rt60s=RT60S) -> list[tuple[float | None, float | None]]:
    """(rt60, snr) pairs: clean, noise alone, reverberation alone, both."""
    out = [(None, None)] + [(None, s) for s in snrs] + [(r, None) for r in rt60s]
    return out + [(r, s) for r in rt60s for s in snrs]


def degrade(audio: np.ndarray, rt60: float | None, snr: float | None, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = audio
    if rt60 is not None:
        y = augment.reverberate(y, augment.synthetic_rir(rng, rt60))
    if snr is not None:
        y = augment.mix_at_snr(y, augment.coloured_noise(len(y), "pink", rng), snr)
    return y


def run(model_spec, roots, task: str | None = None, limit: int | None = None, heldout: bool = True,
        snrs=SNRS, rt60s=RT60S, seed: int = 0, log=print) -> dict:
    from edge_ser.audio import load_audio
    from edge_ser.registry import load_model
    model = load_model(model_spec)
    task = task or model.manifest.task
    labels = list(task_labels(task))
    mapping = None if task == model.manifest.task else collapse_matrix(model.labels, task)
    clips, _ = corpora.load_corpora(roots)
    if heldout:
        keep = set(model.manifest.trained_on.get("validation_speakers", []))
        if not keep:
            raise UserError(f"{model.name}: its manifest names no validation speakers (use --all-clips)")
        clips = [c for c in clips if c.speaker in keep]
    kept, labs, _ = corpora.for_task(clips, task)
    if not kept:
        raise UserError(f"no clips of task {task} (of the chosen speakers) in the given corpora")
    if limit and len(kept) > limit:
        sel = np.sort(np.random.default_rng(seed).permutation(len(kept))[:limit])
        kept, labs = [kept[i] for i in sel], [labs[i] for i in sel]
    conds = conditions(snrs, rt60s)
    preds = {c: [] for c in conds}
    truth = []
    for k, (clip, lab) in enumerate(zip(kept, labs)):
        try:
            audio = load_audio(clip.path, model.frontend.sample_rate)
        except AudioError:
            continue
        truth.append(labels.index(lab))
        for cond in conds:
            y = degrade(audio, *cond, seed=augment.variant_seed(seed, f"{clip.path}:{cond}"))
            preds[cond].append(int(np.argmax(collapse(model.classify_audio(y), mapping))))
        if (k + 1) % 100 == 0:
            log(f"robustness: {k + 1}/{len(kept)} clips")
    rows = []
    for cond in conds:
        s = metrics.scores(truth, preds[cond], labels)
        rows.append({"rt60_s": cond[0], "snr_db": cond[1], **{key: s[key] for key in ("n", *metrics.SUMMARY_KEYS)}})
    return {"model": model.name, "model_task": model.manifest.task, "task": task, "n": len(truth),
            "speakers": sorted({c.speaker for c in kept}),
            "protocol": ("robustness: " + ("the model's own validation speakers (speaker-disjoint from its training "
                                           "part)" if heldout else "every clip given") +
                         f", {len(truth)} clips; pink noise at SNR {', '.join(f'{s:g}' for s in snrs)} dB and/or "
                         f"synthetic room reverberation at RT60 {', '.join(f'{r:g}' for r in rt60s)} s (seeded "
                         "per clip); each clip classified with the exported file, adapted to itself, output "
                         f"collapsed to {task}"),
            "conditions": rows}


def plot(result: dict, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = result["conditions"]
    clean = next(r["accuracy"] for r in rows if r["rt60_s"] is None and r["snr_db"] is None)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for rt in sorted({r["rt60_s"] for r in rows}, key=lambda v: -1 if v is None else v):
        pts = sorted([(r["snr_db"], r["accuracy"]) for r in rows if r["rt60_s"] == rt and r["snr_db"] is not None])
        ax[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                   label="no reverberation" if rt is None else f"RT60 {rt:g} s")
    ax[0].axhline(clean, color="grey", ls="--", label="clean")
    ax[0].set_xlabel("SNR (dB, pink noise)")
    ax[0].set_ylabel(f"accuracy ({result['task']})")
    ax[0].invert_xaxis()
    ax[0].legend(fontsize=8)
    pts = [(0.0, clean)] + sorted((r["rt60_s"], r["accuracy"]) for r in rows
                                  if r["rt60_s"] is not None and r["snr_db"] is None)
    ax[1].plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
    ax[1].set_xlabel("RT60 (s, no noise; 0 = clean)")
    ax[1].set_ylabel(f"accuracy ({result['task']})")
    fig.suptitle(f"{result['model']}: {result['n']} clips of {len(result['speakers'])} held-out speakers",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(result: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    plot(result, out / "robustness.png")
    lines = [f"# {result['model']}: accuracy against SNR and RT60", "", f"Protocol: {result['protocol']}.", "",
             "| RT60 (s) | SNR (dB) | accuracy | balanced | macro-F1 |", "|---|---|---|---|---|"]
    for r in result["conditions"]:
        rt60 = "—" if r["rt60_s"] is None else r["rt60_s"]
        snr = "clean" if r["snr_db"] is None else r["snr_db"]
        lines.append(f"| {rt60} | {snr}"
                     f" | {r['accuracy']:.3f} | {r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} |")
    lines += ["", "![accuracy against SNR and RT60](robustness.png)", ""]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "robustness.json").write_text(json.dumps(result, indent=1) + "\n")
    return out / "report.md"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--task")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--all-clips", action="store_true", help="every clip given, not only the validation speakers")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        result = run(args.model, args.data, args.task, args.limit, not args.all_clips, seed=args.seed,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(write(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

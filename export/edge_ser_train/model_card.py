"""MODEL_CARD.md beside a model, generated from its manifest (so it cannot drift from the model it describes).

`make models` writes one for every shipped model; for models already installed:

    python -m edge_ser_train.model_card edge_ser/assets/models/*       # rewrite the cards
    python -m edge_ser_train.model_card --check edge_ser/assets/models/*   # exit 1 if a card is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_ser.manifest import MODEL_FILES, read_manifest

CARD = "MODEL_CARD.md"

# corpus -> (citation, licence of the audio, what the licence means for weights trained on it)
CORPORA = {
    "cremad": ("CREMA-D: H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova, R. Verma, \"CREMA-D: "
               "Crowd-sourced Emotional Multimodal Actors Dataset\", IEEE Transactions on Affective Computing, 2014",
               "Open Database License v1.0 / Database Contents License v1.0"),
    "ravdess": ("RAVDESS: S. R. Livingstone, F. A. Russo, \"The Ryerson Audio-Visual Database of Emotional Speech "
                "and Song (RAVDESS)\", PLoS ONE 13(5), 2018", "CC BY-NC-SA 4.0 (non-commercial, share-alike)"),
    "esd": ("ESD: K. Zhou, B. Sisman, R. Liu, H. Li, \"Emotional Voice Conversion: Theory, Databases and ESD\", "
            "Speech Communication, 2022", "research use only (non-commercial)"),
    "emovo": ("EMOVO: G. Costantini, I. Iaderola, A. Paoloni, M. Todisco, \"EMOVO Corpus: an Italian Emotional "
              "Speech Database\", LREC 2014", "free for research use"),
    "baved": ("BAVED: Basic Arabic Vocal Emotions Dataset (A. Aouf et al.)", "not for commercial use"),
    "tess": ("TESS: K. Dupuis, M. K. Pichora-Fuller, Toronto Emotional Speech Set, University of Toronto, 2010",
             "CC BY-NC-ND 4.0"),
    "savee": ("SAVEE: S. Haq, P. J. B. Jackson, Surrey Audio-Visual Expressed Emotion database, 2009",
              "free for research use"),
    "emodb": ("EmoDB: F. Burkhardt, A. Paeschke, M. Rolfes, W. Sendlmeier, B. Weiss, \"A Database of German "
              "Emotional Speech\", Interspeech 2005", "free for research use"),
}

TASKS = {
    "fine15": "five emotions (angry, sad, happy, disgust, fear) x three intensities (low, medium, high)",
    "fine16": "neutral + five emotions x three intensities",
    "basic6": "six basic emotions (neutral, happy, sad, angry, fear, disgust)",
    "emotion5": "five emotions without intensity",
    "ravdess8": "the eight RAVDESS emotions",
}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"


def _mean_std(metrics: dict, key: str) -> str:
    v = metrics.get(key)
    if isinstance(v, dict):
        v, sd = v.get("mean"), v.get("std")
    else:
        sd = metrics.get(f"{key}_std")
    if v is None:
        return "–"
    return _pct(v) + (f" ± {100 * float(sd):.1f}" if sd is not None else "")


def render(model_dir: Path) -> str:
    """The card's text for the model in ``model_dir`` (its manifest is read, not verified)."""
    model_dir = Path(model_dir)
    m = read_manifest(model_dir, verify=False)
    met, trained = m.metrics or {}, m.trained_on or {}
    files = []
    for fmt in m.formats:
        f = model_dir / MODEL_FILES[fmt]
        size = f"{f.stat().st_size / 1024:.0f} KB" if f.is_file() else "missing"
        q = (m.parity or {}).get(fmt, {}).get("quantize")
        files.append(f"`{MODEL_FILES[fmt]}` ({size}{', ' + q + ' quantised' if q and q != 'none' else ''})")
    corpora = list(trained.get("corpora", []))
    details = {d.get("corpus"): d for d in trained.get("corpus_details", [])}
    out = [f"# Model card: {m.name}", "",
           f"Generated from `manifest.json` by `python -m edge_ser_train.model_card` (run by `make models`); "
           "do not edit by hand.", "",
           "## What it is", "",
           f"- Task `{m.task}`: {TASKS.get(m.task, m.task)}; labels: {', '.join(f'`{x}`' for x in m.labels)}.",
           f"- Kind `{m.kind}`; files: {', '.join(files)}; sha256 of each in the manifest (the runtime refuses a "
           "file that does not match).",
           f"- Input: 16 kHz mono, log-mel (n_fft {m.frontend_config.n_fft}, hop {m.frontend_config.hop_length}, "
           f"{m.frontend_config.n_mels} mels) computed by `edge_ser.frontend`; features `{m.input.get('features')}` "
           f"of shape {m.input.get('shape')}; window {m.window_seconds:g} s, scored every {m.hop_seconds:g} s.",
           "- Speaker adaptation: inputs standardised by the statistics of the voice heard, shrunk toward the "
           "training population's." if m.input.get("speaker_norm") else "- No speaker adaptation."]
    if m.input.get("features") == "ge2e":
        from edge_ser.encoders import GE2E_FILES
        precision = m.input.get("params", {}).get("precision", "float")
        path = GE2E_FILES[precision][0]
        out.append(f"- Encoder (frozen, shipped once for every model that uses it: `edge_ser/assets/encoders/"
                   f"{path.name}`, {path.stat().st_size / 1e6:.1f} MB, its sha256 checked on load): "
                   "Resemblyzer's GE2E voice encoder (Apache-2.0; assets/ATTRIBUTION.md), a 3-layer LSTM trained for "
                   "speaker verification" + ("; its second and third layers quantised to int8" if precision == "int8"
                                             else "") + "; the model reads its time-averaged hidden "
                   "states (`edge_ser.encoders`).")
    out += ["", "## Training data", ""]
    held = {}
    for spk in trained.get("validation_speakers", []):
        held.setdefault(spk.split(":")[0], []).append(spk.split(":", 1)[-1])
    for c in corpora:
        d = details.get(c, {})
        cite = CORPORA.get(c, (c, "see the corpus"))[0]
        n_held = len(held.get(c, []))
        where = (f"; {n_held} of its speakers ({', '.join(sorted(held[c]))}) held out as validation, never trained on"
                 if n_held and n_held < d.get("speakers", 0) else
                 "; every speaker held out as validation (early stopping and reports), none trained on"
                 if n_held else "")
        out.append(f"- {cite}: {d.get('clips', '?')} clips of {d.get('speakers', '?')} speakers in the copy "
                   f"given{where}.")
    out += [f"- Clips used for this task: {trained.get('task_clips', '?')} ({trained.get('train_clips', '?')} "
            f"training, {trained.get('validation_clips', '?')} validation of "
            f"{len(trained.get('validation_speakers', []))} held-out speakers); augmentation: "
            f"{', '.join(trained.get('augment', [])) or 'none'}; seed {trained.get('seed', '?')}; pseudo-labelled "
            f"clips: {trained.get('pseudo_labelled_clips', 0)}.",
            "", "## Evaluation", "",
            f"Protocol: {met.get('protocol_details') or met.get('protocol') or 'not recorded'}.", ""]
    clip = met.get("clip_adapt", {})
    adapted = bool(m.input.get("speaker_norm"))  # without adaptation every clip is scored alone anyway
    out += (["| measure | speaker-adapted | each clip alone |", "|---|---|---|"] if adapted else
            ["| measure | every test clip (no adaptation) |", "|---|---|"])
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        out.append(f"| {key.replace('_', ' ')} | {_mean_std(met, key)} |"
                   + (f" {_mean_std(clip, key) if clip else '–'} |" if adapted else ""))
    tasks = {t: v for t, v in (met.get("tasks") or {}).items() if t != m.task}
    if tasks:
        out += ["", "The output collapsed to coarser tasks (basic6: summed over intensities; fine15: the fine15 clips, "
                "renormalised; intensity: summed over emotions), same folds"
                + (", speaker-adapted:" if adapted else ":"), "",
                "| task | accuracy | balanced accuracy |", "|---|---|---|"]
        out += [f"| {t} | {_mean_std(v, 'accuracy')} | {_mean_std(v, 'balanced_accuracy')} |"
                for t, v in tasks.items()]
    lo = (met.get("leave_one_corpus_out") or {}).get("held_out", {})
    if lo:
        cols = [t for t in ("basic6", "emotion5", "fine15", "intensity") if any(t in r for r in lo.values())]
        out += ["", "Leave-one-corpus-out (a model trained on the other corpora, scored on every clip of the one "
                "left out):", "", "| corpus left out | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        out += [f"| {c} | " + " | ".join(f"{_pct(r[t]['accuracy'])} (n = {r[t]['n']})" if t in r else "–"
                                          for t in cols) + " |" for c, r in lo.items()]
    val = met.get("validation", {})
    if val:
        out += ["", f"Final model on its validation speakers ({met.get('validation_protocol', '')}): accuracy "
                f"{_pct(val.get('accuracy'))}, balanced accuracy {_pct(val.get('balanced_accuracy'))} "
                f"(n = {val.get('n')})."]
    parity = {k: v for k, v in (m.parity or {}).items() if isinstance(v, dict) and "top1_agreement" in v}
    if parity:
        out += ["", "Conversion parity against the trained model: " + "; ".join(
            f"{k} ({v.get('quantize', 'none')}): top-1 agreement {_pct(v['top1_agreement'])}, max |diff| "
            f"{float(v.get('max_abs_diff', 0)):.2g} on {v.get('n')} windows" for k, v in parity.items()) + "."]
    out += ["", "The cross-validated numbers are on unseen speakers of the training corpora"
            + ("; the leave-one-corpus-out rows on a corpus the model never trained on" if lo else "")
            + "; other voices, rooms and corpora score lower (see `docs/results.md`).", "",
            "## Intended use and limits", "",
            "Coarse, real-time cues of a speaker's emotion for a companion robot's behaviour, as soft, smoothed "
            "signals. Not for decisions about people (hiring, health, policing, lie detection). Trained on acted "
            "emotion, which is exaggerated and clean; not validated for children, spontaneous speech, far-field or "
            "noisy rooms or telephone audio. Several people in one `listen` session are adapted to as one voice.",
            "", "## Licence of the weights", ""]
    lic = [f"- {c}: {CORPORA.get(c, (c, 'see the corpus'))[1]}" for c in corpora]
    out += lic + ["", "The weights derive from every corpus above: the most restrictive licence applies "
                  "(non-commercial where any is). The code is Apache-2.0."]
    return "\n".join(out) + "\n"


def write(model_dir: Path) -> Path:
    path = Path(model_dir) / CARD
    path.write_text(render(model_dir))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="model directories")
    ap.add_argument("--check", action="store_true", help="only check that each card matches its manifest")
    args = ap.parse_args(argv)
    stale = []
    for d in args.models:
        if not (d / "manifest.json").is_file():
            continue
        if args.check:
            card = d / CARD
            if not card.is_file() or card.read_text() != render(d):
                stale.append(str(d))
        else:
            print(write(d))
    if stale:
        print("stale or missing model cards: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training commands (`train`, `evaluate`, `export`; `pseudo-label` in `cli_ssl`): thin wrappers around
`edge_ser_train.*`, added to the ``edge-ser`` command line through the entry-point group ``edge_ser.commands``
(`register`).  The heavy modules (TensorFlow, scikit-learn) are imported inside each command body, so
``edge-ser --help`` stays fast."""
from __future__ import annotations

import json
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from edge_ser.errors import UserError
from edge_ser.labels import TASKS
from edge_ser.paths import check_output_dir

TASK_NAMES = tuple(TASKS)  # the runtime's task list, one definition


def _need_train_extra(what: str):
    """Import the training loop or fail with one line saying what is missing (a broken training install)."""
    try:
        import edge_ser_train.train
        return edge_ser_train.train
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise UserError(f"{what} needs the training distribution's dependencies ({missing} is not installed): "
                        "pip install edge-ser-train (from a checkout: pip install ./export)") from None


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_data(data: List[Path]) -> list[Path]:
    if not data:
        raise UserError("give at least one --data corpus folder")
    for d in data:
        if not d.exists():
            raise UserError(f"{d}: no such {'file' if d.suffix.lower() == '.csv' else 'directory'}")
        if not d.is_dir() and d.suffix.lower() != ".csv":
            raise UserError(f"{d}: not a directory (--data takes a corpus folder or a .csv manifest)")
    return list(data)


def _check_task(task: str) -> str:
    if task not in TASK_NAMES:
        raise UserError(f"unknown task {task!r} (known: {', '.join(TASK_NAMES)})")
    return task


CLUSTER_HELP = ("Run on Dask (extra `cluster`): local:N starts N worker processes here, tcp://HOST:PORT uses a "
                "running scheduler; the results are the in-process run's (docs/cluster.md).")


def _cluster_spec(spec: str | None):
    """--cluster, checked before any work (a bad spec is one error line); None when not given."""
    if spec is None:
        return None
    from edge_ser_train.cluster import ClusterSpec
    return ClusterSpec.parse(spec)


def _report_unreadable(failed: dict | None) -> None:
    """A batch went on past unreadable clips: one ``error:`` line each, then exit 2 at the end."""
    if not failed:
        return
    for path, reason in failed.items():
        print(f"error: {reason if str(path) in str(reason) else f'{path}: {reason}'}", file=sys.stderr)
    print(f"error: {len(failed)} unreadable clip(s) skipped", file=sys.stderr)
    raise typer.Exit(2)


def _is_training_output(d: Path) -> bool:
    """A folder `train` wrote before: its manifest.json (or native/manifest.json) is an edge-ser manifest."""
    for manifest in (d / "manifest.json", d / "native" / "manifest.json"):
        try:
            if "edge_ser_version" in json.loads(manifest.read_text()):
                return True
        except (OSError, ValueError, TypeError):
            continue
    return False


def _check_train_out(out: Path, force: bool) -> None:
    """--out: a new or empty folder, or (with --force) a previous training output; never a file or a user's folder."""
    check_output_dir(out, force=True)  # a file (or a file on the way) is refused, --force or not
    if out.is_dir() and any(out.iterdir()):
        if not _is_training_output(out):
            raise UserError(f"{out}: not a model directory (no edge-ser manifest.json), left alone; "
                            "choose another --out")
        if not force:
            raise UserError(f"{out}: exists (use --force to overwrite)")


@contextmanager
def _replacing(old: Path | None):
    """--force: the previous training output is moved aside while the new one is trained into its place, deleted
    when training succeeds, and put back when it fails or is interrupted (nothing is lost to a failed run)."""
    if old is None:
        yield
        return
    aside = old.with_name(f".{old.name}.replaced-{os.getpid()}")
    old.rename(aside)
    try:
        yield
    except BaseException:
        shutil.rmtree(old, ignore_errors=True)
        aside.rename(old)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _augmentations(augment: str) -> tuple:
    return tuple(a.strip() for a in augment.split(",") if a.strip() and a.strip() != "none")


def _recipe(name: str, task: str | None, model: str | None, augment: str) -> dict:
    """A shipped model's training recipe (`edge_ser_train.make_models.RECIPES`); --task, --model and --augment may only
    repeat what it says."""
    _need_train_extra("train --recipe")
    from edge_ser_train.make_models import RECIPES
    if name not in RECIPES:
        raise UserError(f"unknown recipe {name!r} (known: {', '.join(RECIPES)})")
    r = dict(RECIPES[name])
    for given, key, option in ((task, "task", "--task"), (model, "kind", "--model")):
        if given is not None and given != r[key]:
            raise UserError(f"{option} {given} contradicts --recipe {name} ({key} {r[key]}); leave {option} out")
    if augment.strip() != "auto" and _augmentations(augment) != tuple(r["augment"]):
        raise UserError(f"--augment {augment} contradicts --recipe {name} (augmentation "
                        f"{','.join(r['augment']) or 'none'}); leave --augment out")
    return r


def train_cmd(
    data: List[Path] = typer.Option(..., "--data", help="Corpus root in its released layout (repeatable)."),
    task: Optional[str] = typer.Option(None, "--task", help="fine15, basic6, emotion5 or ravdess8 [default: "
                                       "fine15, or the recipe's]."),
    model: Optional[str] = typer.Option(None, "--model", help="Model kind: rfc, cnn, timnet, fusion, aae, "
                                        "ensemble or linear (docs/kinds.md) [default: rfc, or the recipe's]."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Train with a shipped model's recipe (fine16-cnn, "
                                         "fine16-rfc, fine16-timnet, fine16-fusion, fine16-aae, fine16-ensemble, "
                                         "fine16-linear, fine15-rfc, fine15-cnn, basic6-rfc, basic6-cnn; "
                                         "export/edge_ser_train/make_models.py): its task, "
                                         "model kind, augmentation, model options and SSL switch; --window-seconds, "
                                         "--hop-seconds, --seed and --no-speaker-norm still apply."),
    out: Path = typer.Option(..., "--out", help="Model directory to write (refused if it exists, unless --force)."),
    ssl: bool = typer.Option(False, "--ssl", help="Grow the training set by pseudo-labelling (export/edge_ser_train/ssl.py); "
                             "writes the grown dataset to OUT/pseudo_labels.csv."),
    ssl_threshold: Optional[float] = typer.Option(None, "--threshold", help="With --ssl: accept a pseudo label "
                                                  "when its confidence is at least this (default: chosen per fold "
                                                  "on the validation speakers)."),
    rounds: int = typer.Option(1, "--rounds", help="With --ssl: pseudo-labelling rounds."),
    soft_labels: bool = typer.Option(False, "--soft-labels", help="With --ssl (cnn): every pool clip joins, "
                                     "its target the set-1 model's intensity distribution within its known emotion "
                                     "(no threshold, one round, no augmented copies)."),
    folds: int = typer.Option(0, "--folds", help="K actor folds of cross-validation before the final model (0: none)."),
    seeds: int = typer.Option(1, "--seeds", help="Repeat the K-fold CV with S seeds (--seed .. --seed+S-1: folds, "
                              "augmentation and initialisation differ): K x S fits, mean ± std over all of them."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help=CLUSTER_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed for splits, augmentation and training."),
    window_seconds: float = typer.Option(2.5, "--window-seconds", help="Model window length in seconds."),
    hop_seconds: float = typer.Option(0.5, "--hop-seconds", help="Hop between windows (training and scoring)."),
    augment: str = typer.Option("auto", "--augment",
                                help="Augmentations of the training part: noise,pitch,stretch,lowpass, 'none', or "
                                     "'auto' (cnn: noise,pitch; rfc: none — measured best)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Force the corpus type of every --data folder."),
    val_split: Optional[str] = typer.Option(None, "--val-split", help="How validation speakers (early stopping) "
                                            "are drawn from a training part: 'pooled' (over all speakers) or "
                                            "'corpus' (inside each corpus; a one-speaker corpus trains) [default: "
                                            "the recipe's, else pooled]."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name in the manifest (default: the folder's)."),
    seed_protocol: int = typer.Option(0, "--seed-protocol",
                                      help="Also run seed 000's leaky protocol (random 80/20 after augmentation) "
                                           "this many times, for comparison."),
    speaker_norm: Optional[bool] = typer.Option(None, "--speaker-norm/--no-speaker-norm", help="Standardise the "
                                                "model's inputs by each speaker's statistics (edge_ser.adapt); the "
                                                "runtime then adapts to the voice it hears [default: the kind's: on "
                                                "for rfc, cnn, timnet; off for fusion, aae, ensemble]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out model directory (one written by "
                               "`train`; any other folder is left alone)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
):
    """Train a model: speaker-disjoint CV, final model, ONNX/TFLite export with parity."""
    data = _check_data(data)
    shipped = _recipe(recipe, task, model, augment) if recipe is not None else {}
    task = _check_task(shipped.get("task", task or "fine15"))
    model = shipped.get("kind", model or "rfc")
    from edge_ser_train.kinds import KINDS as MODEL_KINDS  # the registry only: no TensorFlow import
    if model not in MODEL_KINDS:
        raise UserError(f"unknown model kind {model!r} (known: {', '.join(MODEL_KINDS)})")
    if folds < 0 or folds == 1:
        raise UserError("--folds must be 0 (no cross-validation) or at least 2")
    if seeds < 1:
        raise UserError("--seeds must be at least 1")
    if seeds > 1 and not folds:
        raise UserError("--seeds repeats the cross-validation: give --folds K (at least 2) too")
    cluster_spec = _cluster_spec(cluster)
    if not 0.5 <= window_seconds <= 10:
        raise UserError("--window-seconds must be between 0.5 and 10")
    if not 0.05 <= hop_seconds <= window_seconds:
        raise UserError("--hop-seconds must be between 0.05 and the window length")
    if augment.strip() == "auto":
        augment = ",".join(shipped["augment"]) if shipped else "noise,pitch" if model == "cnn" else "none"
    augs = _augmentations(augment)
    _check_train_out(out, force)
    train = _need_train_extra("train")
    from edge_ser_train.augment import KINDS
    bad = [a for a in augs if a not in KINDS]
    if bad:
        raise UserError(f"unknown augmentation {bad[0]!r} (known: {', '.join(KINDS)})")
    from edge_ser_train.corpora import CORPORA
    if corpus is not None and corpus not in CORPORA:
        raise UserError(f"unknown corpus {corpus!r} (known: {', '.join(CORPORA)})")
    hook = None
    if not ssl and (ssl_threshold is not None or rounds != 1 or soft_labels):
        raise UserError("--threshold, --rounds and --soft-labels go with --ssl")
    given = dict(window_seconds=window_seconds, hop_seconds=hop_seconds, augment=augs, folds=folds, seed=seed,
                 corpus=corpus)
    if val_split is not None:
        from edge_ser_train.splits import VAL_SPLITS
        if val_split not in VAL_SPLITS:
            raise UserError(f"--val-split must be one of {', '.join(VAL_SPLITS)}, got {val_split!r}")
        given["val_split"] = val_split
    norm = {} if speaker_norm is None else {"speaker_norm": speaker_norm}  # else the kind's own default
    if recipe is not None:  # the recipe's config and SSL switch (True or make_ssl_hook's options)
        from edge_ser_train.make_models import recipe_config
        cfg, recipe_ssl = recipe_config(recipe, norm, **given)
    else:
        cfg, recipe_ssl = train.TrainConfig(task=task, kind=model, kind_options=norm, **given), False
    ssl = ssl or bool(recipe_ssl)
    ssl_options = dict(recipe_ssl) if isinstance(recipe_ssl, dict) else {}  # the recipe's, then the options given
    if ssl_threshold is not None:
        ssl_options["threshold"] = ssl_threshold
    if rounds != 1:
        ssl_options["rounds"] = rounds
    if soft_labels:
        ssl_options["soft"] = True
    if ssl:
        try:
            from edge_ser_train import ssl as ssl_module
            make_hook = ssl_module.make_ssl_hook
        except (ImportError, AttributeError):
            raise UserError("--ssl is not available: export/edge_ser_train/ssl.py provides no make_ssl_hook") from None
        hook = make_hook(data, cfg, log=_log, **ssl_options)
    from edge_ser_train.cluster import maybe_cluster
    with _replacing(out if force and _is_training_output(out) else None), maybe_cluster(cluster_spec) as on:
        result = train.run(data, cfg, out, name=name, ssl=hook, seed_protocol_repeats=seed_protocol, log=_log,
                           seeds=seeds, cluster=on)
    if hook is not None:
        result["ssl"] = s = hook.finish(out)
        if s:
            how = "soft labels" if s.get("soft") else f"threshold {s['threshold']:.2f}"
            _log(f"SSL (final model): {s['accepted']} of {s['pool']} pool clips pseudo-labelled ({how}) -> {s['csv']}")
    if as_json:
        print(json.dumps(result, indent=None))
    else:
        cv = result.get("cv")
        if cv and seeds > 1:
            print(f"{task}-{model}: actor-fold CV ({folds} folds x {seeds} seeds = {cv['fits']} fits) accuracy "
                  f"{cv['accuracy']['mean']:.3f} ± {cv['accuracy']['std']:.3f}, balanced "
                  f"{cv['balanced_accuracy']['mean']:.3f} ± {cv['balanced_accuracy']['std']:.3f}, macro-F1 "
                  f"{cv['macro_f1']['mean']:.3f} ± {cv['macro_f1']['std']:.3f}; std of the {seeds} seeds' mean "
                  f"accuracies {cv['between_seeds']['accuracy']['std_of_seed_means']:.3f}")
        elif cv:
            print(f"{task}-{model}: actor-fold CV ({folds} folds) accuracy {cv['accuracy']['mean']:.3f} ± "
                  f"{cv['accuracy']['std']:.3f}, balanced {cv['balanced_accuracy']['mean']:.3f}, macro-F1 "
                  f"{cv['macro_f1']['mean']:.3f}")
        v = result["validation"]
        print(f"final model -> {out}: validation accuracy {v['accuracy']:.3f} on {v['n']} held-out-speaker clips")
    _report_unreadable(result.get("unreadable"))


def evaluate_cmd(
    model: str = typer.Option(..., "--model", help="A default model's name or a model directory."),
    data: List[Path] = typer.Option(..., "--data", help="Corpus root (repeatable)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task to score (default: the model's)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write report.md and confusion.png here (refused "
                                          "if the folder already holds them, unless --force)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite (default: onnx if present)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Force the corpus type."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Score a random subset of this many clips."),
    adapt: str = typer.Option("speaker", "--adapt", help="For models trained with speaker normalisation: "
                              "'speaker' adapts to each speaker's clips (no labels used), 'clip' adapts each clip "
                              "to itself like `classify`, 'none' uses the training population's statistics."),
    force: bool = typer.Option(False, "--force", help="Overwrite report.md/confusion.png in --report."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help=CLUSTER_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
):
    """Score a model on a corpus with the exported file (as `classify` runs it)."""
    data = _check_data(data)
    if task is not None:
        _check_task(task)
    if fmt is not None and fmt not in ("onnx", "tflite"):
        raise UserError(f"unknown format {fmt!r} (onnx or tflite)")
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    if report is not None:  # before the (long) evaluation
        from edge_ser_train.report import REPORT_FILES
        check_output_dir(report, force, files=REPORT_FILES)
    cluster_spec = _cluster_spec(cluster)
    _need_train_extra("evaluate")
    from edge_ser_train.cluster import maybe_cluster
    from edge_ser_train.evaluate import evaluate
    with maybe_cluster(cluster_spec, progress=not as_json) as on:
        result = evaluate(model, data, task, corpus=corpus, fmt=fmt, limit=limit, progress=not as_json, adapt=adapt,
                          cluster=on)
    if report is not None:
        from edge_ser_train.report import write_report
        path = write_report(result, report)
        result["report"] = str(path)
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} on {result['task']}: {result['n']} clips, accuracy {result['accuracy']:.3f}, "
              f"balanced accuracy {result['balanced_accuracy']:.3f}, macro-F1 {result['macro_f1']:.3f}")
        if report is not None:
            print(f"report: {result['report']}")
    _report_unreadable(result.get("unreadable"))


def export_cmd(
    model: Path = typer.Option(..., "--model", help="A model directory written by `edge-ser train`."),
    fmt: str = typer.Option(..., "--format", help="onnx or tflite."),
    quantize: str = typer.Option("none", "--quantize", help="none, dynamic or int8 (TFLite)."),
    as_json: bool = typer.Option(False, "--json", help="Print sizes and parity as JSON."),
):
    """Convert a trained model to ONNX or TFLite, with a parity check against the trained model."""
    if fmt not in ("onnx", "tflite"):
        raise UserError(f"unknown format {fmt!r} (onnx or tflite)")
    if quantize not in ("none", "dynamic", "int8"):
        raise UserError(f"unknown quantisation {quantize!r} (none, dynamic or int8)")
    if model.exists() and not model.is_dir():
        raise UserError(f"{model}: is a file, not a model directory")
    if not model.is_dir():
        raise UserError(f"{model}: no such model directory")
    if not (model / "native").is_dir():
        raise UserError(f"{model}: no native/ training output (export converts a directory written by "
                        "`edge-ser train`)")
    _need_train_extra("export")
    from edge_ser_train.convert import export_command
    try:
        result = export_command(model, fmt, quantize)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print(json.dumps(result))
    else:
        p = result["parity"]
        print(f"{result['file']}: {result['bytes'] / 1e3:.0f} KB, max |Δp| {p['max_abs_diff']:.2e}, top-1 "
              f"agreement {p['top1_agreement']:.3f} on {p['n']} held-out windows")


def register(app) -> None:
    """Entry point of the group ``edge_ser.commands``: add the training commands to the ``edge-ser`` app."""
    from . import cli_ssl
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("export")(export_cmd)
    app.command("pseudo-label")(cli_ssl.pseudo_label_cmd)

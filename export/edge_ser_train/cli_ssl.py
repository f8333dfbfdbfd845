"""`edge-ser pseudo-label`: the SSL step with an exported model (registered by `edge_ser_train.cli.register`).

``edge_ser_train.ssl`` is imported inside the command body only.  The other half of SSL, ``edge-ser train --ssl``, is
an option of the train command in `edge_ser_train.cli` (it calls `edge_ser_train.ssl.make_ssl_hook`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from edge_ser.errors import UserError
from edge_ser.paths import check_output_file


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pseudo_label_cmd(
    model: str = typer.Option(..., "--model", help="A fine15 model: default name (fine15-cnn) or model directory."),
    data: List[Path] = typer.Option(..., "--data", help="Corpus root holding the unlabelled pool (repeatable): "
                                                        "clips of angry/sad/happy/disgust/fear without intensity, "
                                                        "e.g. CREMA-D *_XX."),
    out: Path = typer.Option(..., "--out", help="CSV to write (refused if it exists, unless --force)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Accept a pseudo label when its confidence "
                                              "is at least this (0-1; default: the model kind's, chosen on "
                                              "validation speakers, see reports/ssl/)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="onnx or tflite (default: onnx if present)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="Force the corpus type of every --data folder."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out file."),
    cluster: Optional[str] = typer.Option(None, "--cluster", help="Run on Dask (extra `cluster`): local:N starts "
                                          "N worker processes here, tcp://HOST:PORT uses a running scheduler; the "
                                          "rows are the in-process run's (docs/cluster.md)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Label the unlabelled pool with a fine15 model: a clip is accepted when the predicted emotion equals its known
    emotion and the confidence passes --threshold.  Writes path, label, emotion, intensity, confidence, accepted,
    round (+ speaker, predicted_emotion, expected_intensity) for every pool clip."""
    if not data:
        raise UserError("give at least one --data corpus folder")
    for d in data:
        if not d.is_dir():
            raise UserError(f"{d}: no such directory" if not d.exists() else f"{d}: not a directory")
    check_output_file(out, force, hint="--out takes a CSV file name")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise UserError("--threshold must be between 0 and 1")
    if fmt is not None and fmt not in ("onnx", "tflite"):
        raise UserError(f"unknown format {fmt!r} (onnx or tflite)")
    from . import ssl
    from .cli import _cluster_spec
    from .cluster import maybe_cluster
    spec = _cluster_spec(cluster)
    with maybe_cluster(spec, progress=not as_json) as on:
        rows, summary = ssl.pseudo_label(model, data, threshold, corpus=corpus, fmt=fmt, progress=not as_json,
                                         cluster=on)
    ssl.write_csv(rows, out, force=force)
    summary["out"] = str(out)
    if as_json:
        print(json.dumps(summary))
    else:
        ai = summary["accepted_intensity"]
        print(f"{summary['model']}: {summary['accepted']} of {summary['pool']} pool clips accepted "
              f"({100 * summary['accepted_share']:.1f}%, threshold {summary['threshold']:.2f}; low {ai['low']}, "
              f"medium {ai['medium']}, high {ai['high']}) -> {out}")
    if summary["unreadable"]:  # the batch went on past them: one error line each, exit 2 at the end
        for reason in summary["unreadable"].values():
            _log(f"error: {reason}")
        _log(f"error: {len(summary['unreadable'])} unreadable clip(s) left unaccepted")
        raise typer.Exit(2)

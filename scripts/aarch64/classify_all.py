"""Classify clips with every installed model in every format; JSON lines (model, format, path, label, scores).

Run on x86 and under qemu-aarch64 by scripts/aarch64/run.sh, which compares the two outputs with compare.py.
Runtime imports only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_ser.audio import load_audio
from edge_ser.errors import UserError
from edge_ser.models import list_models, load_model


def main(clips: list[str]) -> int:
    audio = {c: load_audio(c) for c in clips}
    for m in list_models():
        for fmt in m.formats:
            try:
                model = load_model(m.extra["path"], fmt=fmt, threads=1)
            except UserError as exc:
                print(json.dumps({"model": m.name, "format": fmt, "error": str(exc)}), flush=True)
                continue
            for c in clips:
                probs = model.classify_audio(audio[c])
                d = model.describe(probs)
                print(json.dumps({"model": m.name, "format": fmt, "path": Path(c).name, "label": d["label"],
                                  "scores": [float(p) for p in probs]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

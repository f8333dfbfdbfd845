"""Classify clips with every model in a folder, in every format; JSON lines (model, format, path, label, scores).

Usage: python classify_all.py MODELS_DIR CLIP...

Run on x86 and under qemu-aarch64 by scripts/aarch64/run.sh, which compares the two outputs with compare.py.
Runtime imports only.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_ser.audio import load_audio
from edge_ser.errors import UserError
from edge_ser.manifest import read_manifest
from edge_ser.registry import load_model


def main(models_dir: str, clips: list[str]) -> int:
    audio = {c: load_audio(c) for c in clips}
    for d in sorted(p for p in Path(models_dir).iterdir() if (p / "manifest.json").is_file()):
        m = read_manifest(d, verify=False)
        for fmt in m.formats:
            try:
                model = load_model(d, fmt=fmt, threads=1)
            except UserError as exc:
                print(json.dumps({"model": m.name, "format": fmt, "error": str(exc)}), flush=True)
                continue
            for c in clips:
                probs = model.classify_audio(audio[c])
                described = model.describe(probs)
                print(json.dumps({"model": m.name, "format": fmt, "path": Path(c).name, "label": described["label"],
                                  "scores": [float(p) for p in probs]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))

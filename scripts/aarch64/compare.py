"""Compare classify_all.py outputs from two machines: same top-1 label, max |score difference| per model/format.

Usage: python compare.py X86.jsonl ARM.jsonl [--out RESULT.json]; exit 1 if a label differs or a model fails.
"""
from __future__ import annotations

import json
import sys


def load(path):
    rows = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            rows[(r["model"], r["format"], r.get("path"))] = r
    return rows


def main(argv):
    a, b = load(argv[0]), load(argv[1])
    per = {}
    ok = True
    for key in sorted(set(a) | set(b), key=str):
        name = f"{key[0]}/{key[1]}"
        s = per.setdefault(name, {"clips": 0, "same_label": 0, "max_abs_score_diff": 0.0, "errors": []})
        ra, rb = a.get(key), b.get(key)
        if ra is None or rb is None or "error" in ra or "error" in rb:
            s["errors"].append({"x86": (ra or {}).get("error", "missing" if ra is None else None),
                                "aarch64": (rb or {}).get("error", "missing" if rb is None else None)})
            ok = False
            continue
        s["clips"] += 1
        s["same_label"] += ra["label"] == rb["label"]
        s["max_abs_score_diff"] = max(s["max_abs_score_diff"],
                                      max(abs(x - y) for x, y in zip(ra["scores"], rb["scores"])))
        ok &= ra["label"] == rb["label"]
    result = {"all_labels_equal": ok, "per_model_format": per}
    text = json.dumps(result, indent=2)
    print(text)
    if "--out" in argv:
        open(argv[argv.index("--out") + 1], "w").write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

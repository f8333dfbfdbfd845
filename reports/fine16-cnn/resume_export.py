"""Finish the fine16-cnn run of make_models that stopped in its export step (an import mismatch: the running
process held the previous edge_ser.adapt): export and parity from runs/models/fine16-cnn/native, then the report,
from the metrics that run wrote into native/manifest.json. Training and protocols are not rerun."""
import json, sys, time
from pathlib import Path
sys.path.insert(0, "/work/main/export")
from edge_ser.manifest import Manifest
from edge_ser_train import convert, make_models
out = Path("/work/main/runs/models/fine16-cnn")
t = time.time()
native = convert.load_native(out)
m = json.loads((out / "native" / "manifest.json").read_text())
import dataclasses
known = {f.name for f in dataclasses.fields(Manifest)}
manifest = Manifest(**{k: v for k, v in m.items() if k in known})
export = convert.export_all(out, native, manifest, log=print)
met = m["metrics"]
cv = {k: met[k] for k in ("protocol", "folds", "per_fold", "pooled_confusion", "clip_adapt", "tasks", "per_corpus",
                          "per_corpus_protocol")}
cv["protocol"] = met["protocol_details"]
cv["labels"] = m["labels"]
for k in ("accuracy", "balanced_accuracy", "macro_f1"):
    cv[k] = {"mean": met[k], "std": met[f"{k}_std"]}
trained = float(sys.argv[1])  # seconds from the run's start to its stop (pid file and log times)
result = {"task": m["task"], "kind": m["kind"], "cv": cv, "loco": met["leave_one_corpus_out"],
          "validation": met["validation"], "export": export, "out": str(out),
          "seconds": round(trained + time.time() - t)}
make_models.cv_report(result, "fine16-cnn", Path("/work/main/reports/fine16-cnn"))
print("report written; seconds", result["seconds"])

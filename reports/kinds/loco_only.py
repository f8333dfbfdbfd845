"""python reports/kinds/loco_only.py RECIPE OUT.json [CORPUS,...]: leave-one-corpus-out of a shipped recipe alone
(no CV, no export): `edge_ser_train.protocols.leave_one_corpus_out` on the recipe's corpora from ../shared/data,
exactly as `make_models --loco` runs it (same recipe, seed, validation split).  For the recipes whose models were
shipped before their LOCO was measured (fine16-timnet, fine16-ensemble: reports/kinds/README.md)."""
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "export")]

from edge_ser.labels import task_labels  # noqa: E402
from edge_ser_train import kinds  # noqa: E402
from edge_ser_train.make_models import CORPORA, RECIPE_CORPORA, ensure_encoder, recipe_config, RECIPES  # noqa: E402
from edge_ser_train.protocols import leave_one_corpus_out  # noqa: E402
from edge_ser_train.train import load_data  # noqa: E402

name, out = sys.argv[1], Path(sys.argv[2])
data_root = REPO.parent / "shared" / "data"
if RECIPES[name].get("encoder"):
    ensure_encoder(data_root, 2.5)
cfg, _ = recipe_config(name, folds=0)
roots = [data_root / c for c in RECIPE_CORPORA.get(name, CORPORA)]
kind = kinds.make(cfg.kind, len(task_labels(cfg.task)), **cfg.kind_options)
t = time.time()
data = load_data(roots, cfg, kind)
res = leave_one_corpus_out(data, cfg, log=lambda m: print(m, flush=True),
                           corpora=sys.argv[3].split(",") if len(sys.argv) > 3 else None)
res["recipe"] = name
res["seconds"] = round(time.time() - t)
out.write_text(json.dumps(res, indent=1) + "\n")
print("done", res["seconds"], flush=True)

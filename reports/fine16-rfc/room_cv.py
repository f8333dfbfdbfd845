"""fine16-rfc recipe with room augmentation: the same actor folds as reports/fine16-rfc (seed 0), for a paired check."""
import sys
from pathlib import Path
from edge_ser_train.make_models import recipe_config
from edge_ser_train.train import run
cfg, _ = recipe_config("fine16-rfc", folds=5, augment=("room",))
roots = [Path("/work/shared/data") / c for c in ("cremad", "ravdess", "esd", "emovo", "baved")]
run(roots, cfg, Path("runs/fine16-rfc-room"), name="fine16-rfc-room", log=lambda m: print(m, file=sys.stderr, flush=True))

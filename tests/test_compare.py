"""`edge_ser_train.compare`: the side-by-side tables copy every number from the models' reports."""
import json

import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from edge_ser_train import compare  # noqa: E402


def _report(root, name, basic6, loco, protocol="actor-fold CV: 5 folds"):
    task = {"accuracy": {"mean": basic6, "std": 0.01}, "balanced_accuracy": {"mean": basic6 - 0.1, "std": 0.02}}
    result = {"cv": {"protocol": protocol, "tasks": {"basic6": task, "fine16": task},
                     "per_corpus": {"cremad": {"basic6": {"accuracy": basic6, "n": 10}}}},
              "loco": {"held_out": {c: {"basic6": {"accuracy": v, "n": 5}} for c, v in loco.items()}},
              "seconds": 600}
    (root / name).mkdir()
    (root / name / "metrics.json").write_text(json.dumps(result))


def test_tables_copy_the_reports(tmp_path, capsys):
    _report(tmp_path, "fine16-a", 0.6, {"cremad": 0.5, "emovo": 0.4, "baved": 0.2})
    _report(tmp_path, "fine16-b", 0.55, {"cremad": 0.45, "emovo": 0.35, "baved": 0.9})
    assert compare.main(["fine16-a", "fine16-b", "missing", "--reports", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| `fine16-a` | 60.0 ± 1.0 |" in out and "| `fine16-b` | 55.0 ± 1.0 |" in out
    assert "| `fine16-a` | 20.0 | 50.0 | 40.0 | 45.0 |" in out  # the mean leaves BAVED (neutral only) out
    assert "actor-fold CV: 5 folds" in out and "10 min" in out
    assert compare.main(["nothing", "--reports", str(tmp_path)]) == 2
    assert "Protocol (every column): actor-fold CV: 5 folds." in out


def test_differing_protocols_are_each_named(tmp_path, capsys):
    _report(tmp_path, "fine16-a", 0.6, {"cremad": 0.5}, protocol="CV, pooled validation")
    _report(tmp_path, "fine16-b", 0.55, {"cremad": 0.45}, protocol="CV, validation per corpus")
    _report(tmp_path, "fine16-c", 0.5, {"cremad": 0.4}, protocol="CV, pooled validation")
    assert compare.main(["fine16-a", "fine16-b", "fine16-c", "--reports", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "every column" not in out
    assert "- `fine16-a`, `fine16-c`: CV, pooled validation." in out
    assert "- `fine16-b`: CV, validation per corpus." in out

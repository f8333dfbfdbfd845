"""edge_ser_train.evaluate / `edge-ser evaluate`: the contract's JSON fields, reports, and one-line errors."""
import json

import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from corpus_factory import make_cremad, make_ravdess  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser_train import metrics  # noqa: E402
from edge_ser_train.train import TrainConfig, run  # noqa: E402

FIELDS = {"task", "model", "n", "accuracy", "balanced_accuracy", "macro_f1", "labels", "confusion", "per_class"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("ev")
    import os
    os.environ["EDGE_SER_CACHE"] = str(base / "cache")
    corpus = make_ravdess(base / "ravdess", actors=(1, 2, 3, 4), seconds=1.0)
    cfg = TrainConfig(task="fine15", kind="rfc", augment=(), window_seconds=1.0, kind_options={"n_estimators": 20})
    run([corpus], cfg, base / "fine15-rfc", log=lambda s: None)
    return base, corpus


def test_evaluate_json_fields_and_report(trained, tmp_path, capsys):
    base, corpus = trained
    code = main(["evaluate", "--model", str(base / "fine15-rfc"), "--data", str(corpus), "--json",
                 "--report", str(tmp_path / "rep")])
    assert code == 0
    r = json.loads(capsys.readouterr().out)
    assert FIELDS <= set(r)
    assert r["task"] == "fine15" and r["n"] == 4 * 10 and len(r["labels"]) == 15
    assert len(r["confusion"]) == 15 and sum(map(sum, r["confusion"])) == r["n"]
    assert set(r["per_class"]["angry_high"]) == {"precision", "recall", "f1", "support"}
    assert (tmp_path / "rep" / "report.md").read_text().startswith("# ")
    assert (tmp_path / "rep" / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_report_never_overwrites_without_force(trained, tmp_path, monkeypatch, capsys):
    """--report is checked before anything is evaluated: a file, or a folder holding a previous report, is refused
    (one line, exit 2, untouched) unless --force; --force then replaces the report."""
    base, corpus = trained
    import edge_ser_train.evaluate

    def no_evaluation(*a, **kw):
        raise AssertionError("evaluated before the --report check")

    a_file = tmp_path / "report-file"
    a_file.write_text("mine")
    old = tmp_path / "old"
    old.mkdir()
    (old / "confusion.png").write_bytes(b"old")
    argv = ["evaluate", "--model", str(base / "fine15-rfc"), "--data", str(corpus), "--json", "--report"]
    with monkeypatch.context() as m:
        m.setattr(edge_ser_train.evaluate, "evaluate", no_evaluation)
        for target, message in ((a_file, "is a file, not a directory"),
                                (old, "already holds confusion.png (use --force")):
            assert main([*argv, str(target)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"error: {target}: ") and message in err and err.count("\n") == 1
        assert main([*argv, str(a_file), "--force"]) == 2  # --force never turns a file into a folder
        assert "is a file" in capsys.readouterr().err
    assert a_file.read_text() == "mine" and (old / "confusion.png").read_bytes() == b"old"
    assert main([*argv, str(old), "--force"]) == 0
    capsys.readouterr()
    assert (old / "confusion.png").read_bytes()[:4] == b"\x89PNG" and (old / "report.md").is_file()


def test_fine15_model_scored_on_emotion5_of_another_corpus(trained, capsys, tmp_path):
    base, _ = trained
    crema = make_cremad(tmp_path / "crema", actors=(1001, 1002), seconds=1.0)
    assert main(["evaluate", "--model", str(base / "fine15-rfc"), "--data", str(crema), "--task", "emotion5",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["task"] == "emotion5" and r["labels"] == ["angry", "sad", "happy", "disgust", "fear"]
    assert r["n"] == 2 * 5 * 4  # LO/MD/HI and XX clips all carry an emotion


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--model", "no-such-model", "--data", "."], "unknown model"),
    (["evaluate", "--model", "x", "--data", "/no/such/dir"], "no such directory"),
    (["evaluate", "--model", "x", "--data", ".", "--task", "fine99"], "unknown task"),
])
def test_evaluate_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_evaluate_basic6_model_on_fine15_is_refused(trained, capsys):
    base, corpus = trained
    assert main(["evaluate", "--model", str(base / "fine15-rfc"), "--data", str(corpus), "--task", "basic6"]) == 2
    assert "cannot be scored" in capsys.readouterr().err


def test_metrics_scores_and_mean_std():
    s = metrics.scores([0, 0, 1, 2], [0, 1, 1, 2], ["a", "b", "c"])
    assert s["accuracy"] == 0.75 and s["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert abs(s["balanced_accuracy"] - (0.5 + 1 + 1) / 3) < 1e-9
    ms = metrics.mean_std([{"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5},
                           {"accuracy": 0.7, "balanced_accuracy": 0.5, "macro_f1": 0.5}])
    assert abs(ms["accuracy"]["mean"] - 0.6) < 1e-9 and abs(ms["accuracy"]["std"] - 0.1) < 1e-9


_WITHOUT_TRAINING = ("import sys, importlib.metadata as md\n"
                     "md.entry_points = lambda **k: []  # as on a runtime-only install: no edge_ser.commands plugin\n"
                     "from edge_ser.cli import main\nsys.exit(main(sys.argv[1:]))\n")


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "pseudo-label"])
def test_without_the_training_distribution_training_commands_say_what_to_install(command):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", _WITHOUT_TRAINING, command, "--model", "x", "--data", "."],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: 'edge-ser {command}' is a training command") and "pip install edge-ser-train" in r.stderr
    h = subprocess.run([sys.executable, "-c", _WITHOUT_TRAINING, "--help"], capture_output=True, text=True, timeout=60)
    assert h.returncode == 0 and "classify" in h.stdout and command not in h.stdout.split("Commands:")[1]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["fine15-rfc", "basic6-cnn"])
def test_shipped_model_on_real_clips(name, capsys):
    import os
    from pathlib import Path
    root = Path(os.environ.get("EDGE_SER_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    if not (root / "ravdess").is_dir():
        pytest.skip(f"real corpora not found in {root} (set EDGE_SER_DATA)")
    from edge_ser.registry import known_names
    if name not in known_names():
        pytest.skip(f"default model {name} not installed")
    assert main(["evaluate", "--model", name, "--data", str(root / "ravdess"), "--limit", "12", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == name and r["n"] == 12 and FIELDS <= set(r)

"""--cluster (edge_ser_train.cluster, Dask): the same results as in-process, on a real LocalCluster of worker
processes and on `dask scheduler` + `dask worker` subprocesses on 127.0.0.1; a worker killed mid-run; errors.

Tiny generated CREMA-D (LO/MD/HI + XX pool clips); the forest kind (rfc), the fastest.  One LocalCluster of two
worker processes serves the whole module."""
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("distributed", reason="--cluster needs the extra `cluster` (dask[distributed])")

from corpus_factory import CREMA_EMO, _write, make_cremad, tone  # noqa: E402

from edge_ser.cli import main  # noqa: E402
from edge_ser_train import cluster_tasks, ssl  # noqa: E402
from edge_ser_train.cluster import ClusterError, ClusterSpec, open_cluster  # noqa: E402
from edge_ser_train.evaluate import evaluate  # noqa: E402
from edge_ser_train.train import TrainConfig, run  # noqa: E402

ACTORS = tuple(range(1001, 1007))


@pytest.fixture(scope="module")
def crema(tmp_path_factory):
    root = make_cremad(tmp_path_factory.mktemp("crema") / "cremad", actors=ACTORS, seconds=1.0)
    for k, a in enumerate(ACTORS):  # a second XX sentence: a pool of 60 clips
        for e in ("angry", "sad", "happy", "disgust", "fear"):
            _write(root / "AudioWAV" / f"{a}_ITH_{CREMA_EMO[e]}_XX.wav", tone(e, None, 1.3, 16000, 500 + k), 16000)
    return root


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_SER_CACHE", str(tmp_path_factory.getbasetemp() / "cluster-cache"))
        yield


@pytest.fixture(scope="module")
def local2():
    with open_cluster("local:2") as c:
        yield c


def _cfg(**kw):
    base = dict(task="fine15", kind="rfc", augment=("noise",), window_seconds=1.0, folds=2,
                kind_options={"n_estimators": 8, "n_jobs": 1})
    return TrainConfig(**{**base, **kw})


def _cv(result):
    """A CV result without its timings (the only numbers that may differ)."""
    cv = json.loads(json.dumps(result["cv"]))
    for f in cv["per_fold"]:
        f.pop("fit_seconds")
    return cv


def _close(a, b, path="") -> None:
    """Equal JSON-like values, floats within 1e-6."""
    if isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= 1e-6, path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def in_process(crema, tmp_path_factory):
    out = tmp_path_factory.mktemp("inproc") / "fine15-rfc"
    return run([crema], _cfg(), out, log=lambda s: None, seeds=2), out


def _onnx_bytes(model_dir: Path) -> bytes:
    """model.onnx without its graph name (skl2onnx names each conversion with a fresh uuid)."""
    import onnx
    m = onnx.load(str(model_dir / "model.onnx"))
    m.graph.name = ""
    return m.SerializeToString()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- spec and errors ----------------------------------------------------------------------------------------

def test_spec_parsing():
    assert ClusterSpec.parse("local:3") == ClusterSpec("local", workers=3)
    assert ClusterSpec.parse("tcp://10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    for bad in ("local:0", "local", "tcp://host", "http://a:1", "tcp://a:99999", ""):
        with pytest.raises(ClusterError):
            ClusterSpec.parse(bad)


def test_bad_spec_and_unreachable_scheduler_are_one_error_line(crema, in_process, tmp_path, capsys):
    _, model = in_process
    assert main(["evaluate", "--model", str(model), "--data", str(crema), "--cluster", "local:zero"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cluster takes local:N or tcp://HOST:PORT") and err.count("\n") == 1
    t = time.time()
    port = _free_port()  # nothing listens there
    assert main(["pseudo-label", "--model", str(model), "--data", str(crema), "--out", str(tmp_path / "p.csv"),
                 "--cluster", f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}") and err.count("\n") == 1
    assert time.time() - t < 20 and not (tmp_path / "p.csv").exists()


def test_without_cluster_dask_is_never_imported(crema, in_process, tmp_path):
    """The commands' one switch (`maybe_cluster`) yields None without --cluster: no dask module is loaded."""
    _, model = in_process
    code = ("import sys; from edge_ser.cli import main; rc = main(sys.argv[1:]); "
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'dask imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "pseudo-label", "--model", str(model), "--data", str(crema),
                           "--out", str(tmp_path / "p.csv"), "--json"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]


# --- LocalCluster of processes ------------------------------------------------------------------------------

def test_train_folds_x_seeds_on_local_cluster_equals_in_process(crema, in_process, local2, tmp_path):
    a, out_a = in_process
    cv = a["cv"]
    assert cv["fits"] == 4 and cv["seeds"] == [0, 1] and len(cv["per_fold"]) == 4
    assert [f["seed"] for f in cv["per_fold"]] == [0, 0, 1, 1] and len(cv["per_seed"]) == 2
    accs = [f["accuracy"] for f in cv["per_fold"]]
    assert cv["accuracy"]["mean"] == pytest.approx(np.mean(accs)) and cv["accuracy"]["std"] == pytest.approx(np.std(accs))
    b = run([crema], _cfg(), tmp_path / "m", log=lambda s: None, seeds=2, cluster=local2)
    _close(_cv(a), _cv(b))
    _close(a["validation"], b["validation"])
    assert a["unreadable"] == b["unreadable"] == {}
    assert _onnx_bytes(out_a) == _onnx_bytes(tmp_path / "m")  # the same forest
    ha, hb = np.load(out_a / "native" / "heldout.npz"), np.load(tmp_path / "m" / "native" / "heldout.npz")
    assert np.array_equal(ha["X"], hb["X"])


def test_one_seed_output_is_todays(crema, tmp_path, capsys):
    """--seeds 1 (the default) keeps the CV block as it was: no seed fields."""
    assert main(["train", "--data", str(crema), "--task", "fine15", "--model", "rfc", "--out", str(tmp_path / "m"),
                 "--folds", "2", "--window-seconds", "1.0", "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)["cv"]
    assert "seeds" not in cv and "seed" not in cv["per_fold"][0] and len(cv["per_fold"]) == 2
    assert main(["train", "--data", str(crema), "--out", str(tmp_path / "n"), "--seeds", "2"]) == 2
    assert "--seeds repeats the cross-validation" in capsys.readouterr().err


def test_evaluate_and_pseudo_label_on_local_cluster_equal_in_process(crema, in_process, local2, tmp_path, capsys):
    _, model = in_process
    ref = evaluate(str(model), [crema], progress=False)
    args = ["evaluate", "--model", str(model), "--data", str(crema), "--json"]
    assert main(args + ["--cluster", "local:2"]) == 0
    got = json.loads(capsys.readouterr().out)
    _close(json.loads(json.dumps(ref)), got)
    assert got["adapt"] == "speaker" and got["n"] == len(ACTORS) * 15
    for what in ("clip", "none"):  # each clip adapted to itself / the population's statistics, on the workers
        _close(json.loads(json.dumps(evaluate(str(model), [crema], adapt=what, progress=False))),
               json.loads(json.dumps(evaluate(str(model), [crema], adapt=what, progress=False, cluster=local2))))
    plain, dist = tmp_path / "plain.csv", tmp_path / "dist.csv"
    base = ["pseudo-label", "--model", str(model), "--data", str(crema), "--threshold", "0", "--json"]
    assert main(base + ["--out", str(plain)]) == 0
    s1 = json.loads(capsys.readouterr().out)
    # the module's LocalCluster by its scheduler's address (starting another costs ~8 s here)
    assert main(base + ["--out", str(dist), "--cluster", local2.client.scheduler.address]) == 0
    s2 = json.loads(capsys.readouterr().out)
    assert _read(plain) == _read(dist) and len(_read(plain)) == len(ACTORS) * 10
    s1.pop("out"), s2.pop("out")
    _close(s1, s2)


def test_ctrl_c_cancels_the_futures(local2):
    """KeyboardInterrupt while a map waits: every future of the map is cancelled, the interrupt goes on."""
    timer = threading.Timer(1.0, lambda: __import__("_thread").interrupt_main())
    timer.start()
    t = time.time()
    with pytest.raises(KeyboardInterrupt):
        local2.map(time.sleep, [3.0] * 6, "sleep")
    assert time.time() - t < 3.0
    deadline = time.time() + 10
    while time.time() < deadline and any(k.startswith("edge-ser-sleep")
                                         for k in local2.client.run_on_scheduler(_task_keys)):
        time.sleep(0.2)
    assert not [k for k in local2.client.run_on_scheduler(_task_keys) if k.startswith("edge-ser-sleep")]


def _task_keys(dask_scheduler=None):
    return [str(k) for k in dask_scheduler.tasks]


# --- dask scheduler + dask worker subprocesses --------------------------------------------------------------

@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """`dask scheduler` and two `dask worker` (no nanny: killing one kills it) on 127.0.0.1, started in a folder
    of their own (relative paths do not resolve there); stopped at the end."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    tmp_path = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0",
                                      "--no-show"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr,
                                           "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                           "--host", "127.0.0.1"],
                                          cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(addr, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
        yield addr, procs[1:]
    finally:
        for p in procs[::-1]:  # workers first
            p.terminate()
        for p in procs:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(3)


def test_a_worker_that_cannot_read_a_clip_names_it(crema, in_process, scheduler, tmp_path, capsys, monkeypatch):
    """The workers run in another folder: a relative --data path does not resolve there."""
    addr, _ = scheduler
    _, model = in_process
    monkeypatch.chdir(crema.parent)
    assert main(["evaluate", "--model", str(model), "--data", crema.name, "--cluster", addr, "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: worker tcp://127.0.0.1:") and err.count("\n") == 1
    assert "cannot read cremad/AudioWAV/" in err and "same path" in err


def test_scheduler_and_workers_by_hand_with_a_worker_killed(crema, in_process, scheduler, tmp_path, capsys,
                                                            monkeypatch):
    addr, workers = scheduler
    _, model = in_process
    ref = json.loads(json.dumps(evaluate(str(model), [crema], progress=False)))
    assert main(["evaluate", "--model", str(model), "--data", str(crema), "--json", "--cluster", addr]) == 0
    _close(ref, json.loads(capsys.readouterr().out))

    # pseudo-label, one worker killed as soon as the first result is in: its tasks run on the other one
    original, killed = cluster_tasks.check_unreadable, []

    def kill_after_first(result):
        if not killed:
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            killed.append(time.time())
        original(result)

    plain, dist = tmp_path / "plain.csv", tmp_path / "dist.csv"
    base = ["pseudo-label", "--model", str(model), "--data", str(crema), "--threshold", "0", "--json"]
    assert main(base + ["--out", str(plain)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(cluster_tasks, "check_unreadable", kill_after_first)
    assert main(base + ["--out", str(dist), "--cluster", addr]) == 0
    capsys.readouterr()
    assert killed and workers[0].returncode == -signal.SIGKILL
    assert _read(plain) == _read(dist)

    # the training's features and fits on the one worker left: still the in-process results
    a, _ = in_process
    from edge_ser_train.cluster import open_cluster as oc
    with oc(addr) as c:
        assert c.workers() == 1
        b = run([crema], _cfg(), tmp_path / "m", log=lambda s: None, seeds=2, cluster=c)
    _close(_cv(a), _cv(b))

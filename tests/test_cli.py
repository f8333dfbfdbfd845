"""The runtime commands end to end (subprocesses): classify, listen --input --fast, models, devices; every user
mistake is one `error:` line, exit 2, no traceback."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, SR, harmonic_tone, run_cli, tone_f0

CLASSIFY_FIELDS = {"path", "label", "emotion", "intensity", "confidence", "scores", "model", "duration_s"}
LISTEN_FIELDS = {"t", "window", "speech", "label", "emotion", "intensity", "confidence", "latency_ms"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two tone clips (classes 3 and 11 of the tiny CNN) in different formats and rates, and a non-audio file."""
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    a = harmonic_tone(tone_f0(3), 2.2, rng, amp=0.3)
    b = harmonic_tone(tone_f0(11), 1.6, rng, amp=0.3)
    sf.write(d / "a.wav", a, SR, subtype="PCM_16")
    from edge_ser.audio import resample
    sf.write(d / "b.flac", np.stack([resample(b, SR, 44100)] * 2, axis=1), 44100, subtype="PCM_24")
    (d / "notes.txt").write_text("this is not audio\n")
    speechy = np.concatenate([np.zeros(SR // 2, np.float32), a, np.zeros(SR, np.float32)])
    # a room, not digital silence, around it: the speech detector's floor never learns from zeros (edge_ser.vad)
    speechy = speechy + (0.001 * rng.standard_normal(len(speechy))).astype(np.float32)
    sf.write(d / "speech_then_silence.wav", speechy, SR)
    return d


def assert_user_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_classify_json(tiny_models, clips):
    proc = run_cli("classify", str(clips / "a.wav"), str(clips / "b.flac"), "--model", str(tiny_models["cnn"]),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert set(row) >= CLASSIFY_FIELDS
        assert row["model"] == "tiny-cnn"
        assert abs(sum(row["scores"].values()) - 1) < 1e-3
        assert row["label"] == f"{row['emotion']}_{row['intensity']}"
        assert row["confidence"] == max(row["scores"].values())
    labels = [r["label"] for r in rows]
    from edge_ser.labels import TASKS
    assert labels == [TASKS["fine15"][3], TASKS["fine15"][11]]  # the tones the tiny CNN was trained on
    assert rows[0]["duration_s"] == pytest.approx(2.2, abs=0.01)
    assert rows[1]["duration_s"] == pytest.approx(1.6, abs=0.01)  # 44.1 kHz stereo 24-bit resampled to 16 kHz


def test_classify_human_and_onnx(tiny_models, clips):
    proc = run_cli("classify", str(clips / "a.wav"), "--model", str(tiny_models["rfc"]), "--threads", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{clips / 'a.wav'}: ") and "tiny-rfc/onnx" in proc.stdout


def test_classify_goes_on_past_bad_files(tiny_models, clips):
    proc = run_cli("classify", str(clips / "missing.wav"), str(clips / "a.wav"), str(clips / "notes.txt"),
                   "--model", str(tiny_models["cnn"]), "--json")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["path"].endswith("a.wav")
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    assert "missing.wav: no such file" in errors[0] and "notes.txt: not a readable audio file" in errors[1]


def test_classify_directory(tiny_models, clips):
    proc = run_cli("classify", str(clips), "--model", str(tiny_models["cnn"]), "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3  # the .wav/.flac files, not notes.txt


def test_listen_fast_json(tiny_models, clips):
    proc = run_cli("listen", "--input", str(clips / "speech_then_silence.wav"), "--fast", "--json",
                   "--model", str(tiny_models["cnn"]))
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["t"] for e in events] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 3.7])  # 3.7 s file
    for e in events:
        assert set(e) >= LISTEN_FIELDS
        assert len(e["window"]) == 2 and e["window"][0] <= e["window"][1] <= e["t"]
    speech = [e["speech"] for e in events]
    assert speech[1:5] == [True] * 4 and speech[-2:] == [False, False]
    assert all(e["label"] is None and e["confidence"] is None for e in events if not e["speech"])
    assert "done: 3.7 s of audio" in proc.stderr


def test_listen_duration_and_hop(tiny_models, clips):
    proc = run_cli("listen", "--input", str(clips / "a.wav"), "--fast", "--json", "--hop", "0.25",
                   "--duration", "1", "--model", str(tiny_models["rfc"]))
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(x)["t"] for x in proc.stdout.splitlines()] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_listen_real_time_replay_takes_real_time(tiny_models, clips):
    import time
    start = time.monotonic()
    proc = run_cli("listen", "--input", str(clips / "b.flac"), "--model", str(tiny_models["rfc"]), "-q")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 4  # 1.6 s: 0.5, 1.0, 1.5 and the last 0.1 s
    assert elapsed >= 1.5


def test_listen_ctrl_c_exits_0_with_summary(tiny_models, clips):
    import signal
    import time
    proc = subprocess.Popen([sys.executable, "-m", "edge_ser.cli", "listen", "--input", str(clips / "a.wav"),
                             "--model", str(tiny_models["rfc"]), "--json"], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # the first event: listening is under way
    assert json.loads(first)["t"] == 0.5
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped:" in err


@pytest.mark.parametrize("args,needle", [
    (["classify", "/nonexistent/x.wav", "--model", "{cnn}"], "no such file"),
    (["listen", "--input", "/nonexistent/x.wav", "--fast", "--model", "{cnn}"], "no such file"),
    (["classify", "{clips}/a.wav", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["listen", "--model", "/nonexistent/dir/"], "no such model directory"),
    (["classify", "{clips}/a.wav", "--frobnicate"], "No such option"),
    (["classify", "{clips}/a.wav", "--model", "{cnn}", "--format", "onnx"], "no onnx file"),
    (["classify", "{clips}/a.wav", "--model", "{cnn}", "--threads", "0"], "threads"),
    (["classify", "{clips}/a.wav", "--profile", "no-such-board"], "no-such-board"),
    (["listen", "--fast"], "--fast needs --input"),
    (["listen", "--input", "{clips}/a.wav", "--duration", "-1"], "--duration"),
    (["listen", "--input", "{clips}/a.wav", "--hop", "0"], "--hop"),
    (["listen", "--input", "{clips}/notes.txt", "--model", "{cnn}"], "not a readable audio file"),
    (["classify"], "Missing argument"),
])
def test_user_errors(tiny_models, clips, args, needle):
    args = [a.format(clips=clips, cnn=tiny_models["cnn"]) for a in args]
    assert_user_error(run_cli(*args), needle)


def test_bad_model_refused_by_cli(tiny_models, clips, tmp_path):
    import shutil
    d = tmp_path / "broken"
    shutil.copytree(tiny_models["cnn"], d)
    with open(d / "model.tflite", "ab") as f:
        f.write(b"\0")
    assert_user_error(run_cli("classify", str(clips / "a.wav"), "--model", str(d)), "sha256")


def test_models_and_devices_json(tiny_models, tmp_path):
    import shutil
    shutil.copytree(tiny_models["rfc"], tmp_path / "tiny-rfc")
    proc = run_cli("models", "--json", env={"EDGE_SER_MODELS": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    listed = {m["name"]: m for m in json.loads(proc.stdout)}
    m = listed["tiny-rfc"]
    for key in ("name", "kind", "task", "labels", "formats", "input", "frontend", "window_seconds", "trained_on",
                "metrics", "sha256", "edge_ser_version"):
        assert key in m
    # a copy under another directory name is listed by what --model takes, in order, with its manifest name shown
    shutil.copytree(tiny_models["rfc"], tmp_path / "a-copy")
    rows = json.loads(run_cli("models", "--json", env={"EDGE_SER_MODELS": str(tmp_path)}).stdout)
    names = [r["model"] for r in rows]
    assert names == sorted(names) and {"a-copy", "tiny-rfc"} <= set(names)
    assert next(r for r in rows if r["model"] == "a-copy")["name"] == "tiny-rfc"
    shipped = [r for r in rows if r["model"] in ("fine15-rfc", "basic6-cnn")]  # trained by edge_ser_train.train
    assert shipped and all(isinstance(r["extra"]["model"], dict) for r in shipped)  # its description is kept
    text = run_cli("models", env={"EDGE_SER_MODELS": str(tmp_path)}).stdout
    assert any(line.startswith("a-copy ") and "[manifest name tiny-rfc]" in line for line in text.splitlines())
    lines = text.splitlines()  # columns wide enough for every value: "kind" starts at the same place on every row
    at = lines[0].index(" kind ") + 1
    assert all(line[at - 1] == " " and line[at] != " " for line in lines[1:]), text
    assert any(" timnet " in line for line in lines) or "fine16-timnet" not in text
    proc = run_cli("classify", "--help")
    assert proc.returncode == 0 and "--model" in proc.stdout
    proc = run_cli("devices", "--json")
    if proc.returncode == 2 and "PortAudio" in proc.stderr:
        pytest.skip("PortAudio is not installed here")
    assert proc.returncode == 0, proc.stderr
    for d in json.loads(proc.stdout):
        assert {"index", "name", "channels", "default_samplerate"} <= set(d)


FORBIDDEN = ("tensorflow", "keras", "sklearn", "librosa", "torch", "pickle", "joblib")
_LOADED = ("import sys; {setup}; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r})))")


def _loaded(setup: str) -> list:
    proc = subprocess.run([sys.executable, "-c", _LOADED.format(setup=setup, forbidden=FORBIDDEN)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_runtime_imports_no_training_stack():
    """The runtime loads none of the training stack.  numpy itself (2.x) imports the standard library's pickle
    module, so pickle is allowed exactly when bare numpy loads it; edge_ser never imports it (checked below)."""
    baseline = _loaded("import numpy")
    assert set(baseline) <= {"pickle"}
    assert _loaded("import edge_ser.cli, edge_ser.registry, edge_ser.stream, edge_ser.sources") == baseline


def test_runtime_classify_imports_no_training_stack(tiny_models, clips):
    """Running classify through a TFLite model loads none of the training stack either."""
    baseline = _loaded("import numpy")
    setup = (f"from edge_ser.cli import main; "
             f"assert main(['classify', {str(clips / 'a.wav')!r}, '--model', {str(tiny_models['cnn'])!r}]) == 0")
    assert _loaded(setup) == baseline


SHIPPED_KINDS = sorted(p.name for p in (REPO / "edge_ser" / "assets" / "models").glob("fine16-*")
                       if (p / "manifest.json").exists())


@pytest.mark.parametrize("name", SHIPPED_KINDS)
def test_every_shipped_kind_listens_and_benches_on_the_runtime_alone(name, tmp_path):
    """Each shipped fine16 model (every kind) runs `listen` and `bench` in every format it ships with none of the
    training stack loaded, as on a robot's runtime-only install."""
    baseline = _loaded("import numpy")
    from edge_ser.manifest import read_manifest
    formats = read_manifest(REPO / "edge_ser" / "assets" / "models" / name, verify=False).formats
    sample = str(REPO / "edge_ser" / "assets" / "sample.wav")
    out = tmp_path / "events.jsonl"
    for fmt in formats:
        setup = ("import contextlib, io; from edge_ser.cli import main; buf = io.StringIO(); "
                 f"ctx = contextlib.redirect_stdout(buf); ctx.__enter__(); "
                 f"rc = main(['listen', '--input', {sample!r}, '--fast', '--json', '--model', {name!r}, "
                 f"'--format', {fmt!r}]); "
                 f"rc2 = main(['bench', '--model', {name!r}, '--format', {fmt!r}, '--seconds', '4', '--json']); "
                 f"ctx.__exit__(None, None, None); assert rc == 0 and rc2 == 0, (rc, rc2); "
                 f"open({str(out)!r}, 'w').write(buf.getvalue())")
        assert _loaded(setup) == baseline, (name, fmt)
        lines = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
        events = [e for e in lines if "speech" in e]
        assert events and any(e["label"] for e in events), (name, fmt)
        bench = [e for e in lines if "hop_ms" in e]
        assert bench and bench[-1]["hop_ms"] > 0, (name, fmt)


def test_runtime_sources_never_import_forbidden_modules():
    """Static check of every runtime module: no import of the training stack, pickle or joblib, except inside the
    training command modules' bodies (cli_train/cli_ssl import export.* lazily)."""
    import ast
    for path in sorted((REPO / "edge_ser").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        lazy_ok = path.name in ("cli_train.py", "cli_ssl.py")  # may import inside a command body, not at the top
        nodes = tree.body if lazy_ok else list(ast.walk(tree))
        for node in nodes:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"



def test_ctrl_c_during_a_runtime_import_stays_a_keyboard_interrupt(tmp_path, monkeypatch):
    """A C extension interrupted while it initialises (onnxruntime, LiteRT) reports ImportError; the runtime's
    import turns that back into KeyboardInterrupt (exit 130), not "onnxruntime is not installed"; a real
    ImportError stays one."""
    import signal
    from edge_ser.runners import _import
    (tmp_path / "interrupted_ext.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(1)\n"
        "except KeyboardInterrupt:\n"
        "    raise ImportError('initialization failed')\n")
    (tmp_path / "broken_ext.py").write_text("raise ImportError('no such library')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in the CLI
    try:
        with pytest.raises(KeyboardInterrupt):
            _import("interrupted_ext")
        with pytest.raises(ImportError, match="no such library"):
            _import("broken_ext")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # an application's own handler is left in place (and sees the signal)
        seen = []
        signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
        (tmp_path / "interrupted_again.py").write_text((tmp_path / "interrupted_ext.py").read_text())
        _import("interrupted_again")  # the handler only records it: the import completes
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)


def test_reader_closing_the_pipe_is_not_an_error(tiny_models, tmp_path):
    """`edge-ser listen --json | head -1`: once the reader has gone, the CLI stops quietly with exit 0 (more output
    than a pipe buffers, so the write after the close really fails)."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.wav", harmonic_tone(tone_f0(3), 240.0, rng, amp=0.3), SR)
    proc = subprocess.Popen([sys.executable, "-m", "edge_ser", "listen", "--model", str(tiny_models["rfc"]),
                             "--input", str(tmp_path / "long.wav"), "--fast", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert json.loads(first)["t"] == 0.5
    assert "Traceback" not in err and "error" not in err, err


def _training_installed() -> bool:
    """Whether the training distribution is installed (its ``edge_ser.commands`` entry point and its package)."""
    import importlib.util
    from importlib.metadata import entry_points

    from edge_ser.cli import COMMANDS_GROUP
    return bool(list(entry_points(group=COMMANDS_GROUP))) and importlib.util.find_spec("edge_ser_train") is not None


@pytest.mark.parametrize("command", ["train", "evaluate", "export", "pseudo-label"])
def test_training_commands_without_or_with_the_training_distribution(command, tmp_path):
    """Runtime-only install: a training command answers one ``error:`` line naming what to install (exit 2, also
    with its usual options), and ``--help`` lists the runtime commands only.  With edge-ser-train installed the
    command is the real one (its --help shows its options)."""
    if _training_installed():
        proc = run_cli(command, "--help")
        assert proc.returncode == 0 and "--model" in proc.stdout and "Traceback" not in proc.stderr, proc.stderr
        return
    proc = run_cli(command, "--data", str(tmp_path), "--task", "basic6", "--model", "rfc", "--out",
                   str(tmp_path / "o"))
    assert_user_error(proc, f"'edge-ser {command}' is a training command", "pip install edge-ser-train")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "o").exists()
    assert_user_error(run_cli(command, "--help"), "pip install edge-ser-train")
    listing = run_cli("--help")
    assert listing.returncode == 0 and "classify" in listing.stdout and "listen" in listing.stdout
    assert not re.search(rf"^[\s│|]*{command}\s", listing.stdout, re.M), listing.stdout  # hidden

"""Integration: `edge-ser listen` on a PulseAudio virtual microphone fed with real speech.

A private PulseAudio server (its own XDG_RUNTIME_DIR and HOME in a temp dir) gets a null sink whose monitor is the
default source; PortAudio reaches it through ALSA's pulse plugin.  A real CREMA-D clip from ../shared/data is
played into the sink with paplay while `edge-ser listen --duration 5 --json` runs in a subprocess.
Skipped, with the reason, only where PulseAudio cannot start.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.integration
SINK = "edge_ser_sink"


@pytest.fixture
def pulse():
    missing = [t for t in ("pulseaudio", "pactl", "paplay") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"PulseAudio cannot start: {', '.join(missing)} not installed (make sysdeps)")
    root = Path(tempfile.mkdtemp(prefix="edge-ser-pa-"))  # short path: the socket path must fit 108 bytes
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root), HOME=str(root), PULSE_RUNTIME_PATH=str(root / "pulse"))
    env.pop("PULSE_SERVER", None)
    cmd = ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=yes",
           "--system=false", "--log-target=stderr",
           "-L", f"module-null-sink sink_name={SINK} rate=16000 channels=1",
           "-L", "module-native-protocol-unix"]
    try:
        start = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PulseAudio cannot start: {exc}")
    ready = False
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            ready = True
            break
        time.sleep(0.1)
    pid_file = root / "pulse" / "pid"
    if not ready:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PulseAudio cannot start here (exit {start.returncode}): "
                    f"{(start.stderr or '').strip().splitlines()[-1:] or 'no server'}")
    subprocess.run(["pactl", "set-default-source", f"{SINK}.monitor"], env=env, check=True, capture_output=True)
    subprocess.run(["pactl", "set-default-sink", SINK], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (OSError, ValueError):
            pass
        shutil.rmtree(root, ignore_errors=True)


def test_listen_on_virtual_microphone(pulse, data_dir, tiny_models):
    clip = data_dir / "cremad" / "AudioWAV" / "1008_IEO_ANG_HI.flac"
    if not clip.is_file():
        clip = sorted((data_dir / "cremad" / "AudioWAV").glob("*_IEO_ANG_HI.flac"))[0]
    devices = subprocess.run([sys.executable, "-m", "edge_ser.cli", "devices", "--json"], env=pulse,
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert devices.returncode == 0, devices.stderr
    if not json.loads(devices.stdout):
        pytest.skip("PulseAudio runs but PortAudio sees no input device (no ALSA pulse plugin: libasound2-plugins)")

    proc = subprocess.Popen([sys.executable, "-m", "edge_ser.cli", "listen", "--duration", "5", "--json",
                             "--model", str(tiny_models["cnn"])], env=pulse, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        header = proc.stderr.readline()  # printed once the microphone is open
        assert header.startswith("listening:"), header + proc.stderr.read()
        time.sleep(0.7)
        t_play = time.monotonic()
        subprocess.run(["paplay", "--device", SINK, str(clip)], env=pulse, check=True, timeout=30)
        t_done = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]

    assert [e["t"] for e in events] == pytest.approx([0.5 * k for k in range(1, 11)])
    for e in events:
        assert set(e) >= {"t", "window", "speech", "label", "emotion", "intensity", "confidence", "latency_ms"}
        assert e["window"][1] <= e["t"] and e["window"][0] <= e["window"][1]
        if e["speech"] and e["label"] is None:  # not yet 0.75 s of speech in this utterance
            assert e["speech_seconds"] < 0.75 and e["emotion"] is None
        elif e["speech"]:
            assert e["label"] and e["emotion"] and e["intensity"] and 0 < e["confidence"] <= 1
        else:
            assert e["label"] is None and e["emotion"] is None and e["confidence"] is None
    speech = [e for e in events if e["speech"]]
    assert len(speech) >= 3, events  # the clip is 2.9 s of speech
    # speech was heard while the clip played, and the sink's monitor is silent after it
    assert not events[-1]["speech"]
    assert t_done - t_play >= 2.0
    assert "done: 5.0 s of audio" in err  # the summary line

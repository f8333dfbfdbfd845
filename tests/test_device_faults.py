"""Reliability (issue 5): `edge-ser listen` on a microphone that misbehaves.

A fake `sounddevice` (tests/fakes/sounddevice.py) simulates each fault: no input device, an unknown device, rates
the device refuses, overflows, transient open failures, a hung driver, the device vanishing mid-stream (coming back,
also with a new index, or never).  The CLI runs in-process with the fake in ``sys.modules`` (Ctrl-C raised in the
main thread from the microphone loop's clock, see `_CtrlCAt`), and in a subprocess with the fake on PYTHONPATH for real SIGINT/SIGTERM.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import FAKES, REPO

from edge_ser.cli import main as cli_main



@pytest.fixture(scope="module")
def rfc(tiny_models) -> str:
    return str(tiny_models["rfc"])


class _CtrlCAt:
    """Ctrl-C at a wall-clock deadline, raised as KeyboardInterrupt in the main thread from the microphone loop's
    own clock calls (``time.monotonic`` / ``time.sleep`` in edge_ser.sources), i.e. where a real Ctrl-C surfaces.
    Deterministic, unlike a signal sent to this process: libraries loaded earlier in the suite (PortAudio with
    PulseAudio) can change how SIGINT reaches the main thread, and a lost Ctrl-C hangs a retry loop for good.
    Real SIGINT/SIGTERM are tested in a subprocess below."""

    def __init__(self, after: float):
        self.deadline = time.monotonic() + after
        self.fired = False

    def _check(self):
        if (not self.fired and threading.current_thread() is threading.main_thread()
                and time.monotonic() >= self.deadline):
            self.fired = True
            raise KeyboardInterrupt

    def monotonic(self):
        self._check()
        return time.monotonic()

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self._check()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def __getattr__(self, name):
        return getattr(time, name)


def listen(capsys, rfc, *args, interrupt_after: float | None = None):
    """Run `listen --json` in-process; optionally press Ctrl-C after some wall seconds."""
    from unittest import mock

    import edge_ser.sources as sources

    clock = mock.patch.object(sources, "time", _CtrlCAt(interrupt_after)) if interrupt_after is not None else None
    if clock is not None:
        clock.start()
    try:
        rc = cli_main(["listen", "--model", rfc, "--json", *map(str, args)])
    finally:
        if clock is not None:
            clock.stop()
    out, err = capsys.readouterr()
    return rc, split_statuses(json.loads(line) for line in out.splitlines()), err


class Events(list):
    """The hop events of a JSON stream; ``statuses``: its status objects (``"type": "status"``), in order."""
    statuses: list


def split_statuses(objects) -> Events:
    objects = list(objects)
    events = Events(o for o in objects if o.get("type") != "status")
    events.statuses = [o for o in objects if o.get("type") == "status"]
    return events


def assert_hops(events, n=None, hop=0.5):
    """Events in order, one per hop of audio consumed, no hop dropped."""
    if n is not None:
        assert len(events) == n
    for k, e in enumerate(events):
        assert e["t"] == pytest.approx(hop * (k + 1), abs=1e-3), (k, e["t"])


def one_line_error(rc, err, needle):
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and needle in lines[-1], err
    assert all(line.startswith(("listening: ", "warning: ", "error: ")) for line in lines), err


# --- set-up faults -----------------------------------------------------------------------------------------

def test_no_input_device(capsys, fault_sd, rfc):
    fault_sd.configure({"devices": []})
    rc, events, err = listen(capsys, rfc, "--duration", "1")
    one_line_error(rc, err, "no audio input device found")
    assert cli_main(["devices"]) == 0
    assert "no audio input devices found" in capsys.readouterr().out


@pytest.mark.parametrize("spec, needle", [("Nope", "no input device matches 'Nope' (inputs: 0: Fake USB Mic"),
                                          ("7", "no input device with index 7")])
def test_unknown_device(capsys, fault_sd, rfc, spec, needle):
    fault_sd.configure({"devices": [{"name": "Fake USB Mic", "channels": 1, "rate": 16000}]})
    rc, events, err = listen(capsys, rfc, "--device", spec, "--duration", "1")
    one_line_error(rc, err, needle)


def test_devices_listed(capsys, fault_sd):
    fault_sd.configure({"devices": [{"name": "Fake USB Mic", "channels": 2, "rate": 44100},
                                   {"name": "Line In", "channels": 1, "rate": 48000}], "default": 1})
    assert cli_main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["index"], d["name"], d["channels"], d["default_samplerate"], d["default"]) for d in listed] == [
        (0, "Fake USB Mic", 2, 44100.0, False), (1, "Line In", 1, 48000.0, True)]


def test_device_refusing_16k_is_opened_at_its_rate_and_resampled(capsys, fault_sd, rfc):
    fault_sd.configure({"devices": [{"name": "Pro Interface", "channels": 2, "rate": 44100, "rates": [44100]}],
                       "speed": 4})
    rc, events, err = listen(capsys, rfc, "--duration", "2")
    assert rc == 0, err
    assert "at 44100 Hz resampled to 16000 Hz" in err
    assert_hops(events, 4)
    assert fault_sd.STATE["opens"] == 1


def test_device_whose_default_rate_is_refused_finds_a_standard_rate(capsys, fault_sd, rfc):
    """The device reports 44.1 kHz but accepts only 48 kHz: a standard rate it accepts is found."""
    fault_sd.configure({"devices": [{"name": "Odd Card", "channels": 1, "rate": 44100, "rates": [48000]}],
                       "speed": 4})
    rc, events, err = listen(capsys, rfc, "--duration", "1.5")
    assert rc == 0, err
    assert "at 48000 Hz resampled" in err
    assert_hops(events, 3)


def test_device_refusing_every_rate_is_a_clear_error(capsys, fault_sd, rfc):
    fault_sd.configure({"devices": [{"name": "Broken Card", "channels": 1, "rate": 44100, "rates": []}]})
    t0 = time.monotonic()
    rc, events, err = listen(capsys, rfc, "--duration", "1")
    one_line_error(rc, err, "cannot open input device 'Broken Card' (Invalid sample rate")
    assert events == []
    assert time.monotonic() - t0 < 15


# --- faults while streaming ----------------------------------------------------------------------------------

def test_overflows_are_reported_and_survived(capsys, fault_sd, rfc):
    fault_sd.configure({"overflow_every": 5, "speed": 4})
    rc, events, err = listen(capsys, rfc, "--duration", "3")
    assert rc == 0, err
    assert_hops(events, 6)
    n = fault_sd.STATE["overflows"]
    assert n >= 1
    assert "warning: input overflow" in err
    summary = err.strip().splitlines()[-1]
    got = int(re.search(r"overflows (\d+)", summary).group(1))
    assert 1 <= got <= n


def test_transient_open_failures_are_retried_with_backoff(capsys, fault_sd, rfc):
    fault_sd.configure({"open_failures": 2, "speed": 4})
    rc, events, err = listen(capsys, rfc, "--duration", "1.5")
    assert rc == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "retrying in 0.5 s" in warnings[0] and "retrying in 1 s" in warnings[1]
    assert_hops(events, 3)


def test_device_that_never_opens_is_a_clear_error(capsys, fault_sd, rfc):
    fault_sd.configure({"open_failures": 1000})
    rc, events, err = listen(capsys, rfc, "--duration", "1")
    one_line_error(rc, err, "cannot open input device 'Fake USB Mic'")


def test_device_vanishes_and_comes_back(capsys, fault_sd, rfc):
    """Unplugged after 1 s of audio, back 1.5 s later: warnings, backoff, reopened; no hop lost or repeated."""
    fault_sd.configure({"vanish_after": 1.0, "back_after": 1.5, "speed": 2})
    rc, events, err = listen(capsys, rfc, "--duration", "3")
    assert rc == 0, err
    assert_hops(events, 6)
    assert "warning: input stream stopped (Fake USB Mic); reopening in 0.5 s" in err
    assert "device restarts" in err.strip().splitlines()[-1]
    assert fault_sd.STATE["opens"] >= 2


def test_replugged_device_found_by_name_under_its_new_index(capsys, fault_sd, rfc):
    """A re-plugged USB microphone comes back under another index; the stream reopens *it*, not whatever now has
    the old index."""
    fault_sd.configure({"devices": [{"name": "USB Mic", "channels": 1, "rate": 16000},
                                   {"name": "Built-in", "channels": 1, "rate": 16000}],
                       "vanish_after": 1.0, "back_after": 1.0, "speed": 2})
    rc, events, err = listen(capsys, rfc, "--device", "USB", "--duration", "2.5")
    assert rc == 0, err
    assert_hops(events, 5)
    assert set(fault_sd.STATE["opened_names"]) == {"USB Mic"}, fault_sd.STATE["opened_names"]
    assert [d["name"] for d in fault_sd.query_devices()] == ["Built-in", "USB Mic"]


def test_device_gone_for_good_keeps_retrying_until_ctrl_c(capsys, fault_sd, rfc):
    fault_sd.configure({"vanish_after": 0.5, "back_after": None, "speed": 2})
    rc, events, err = listen(capsys, rfc, interrupt_after=4.5)
    assert rc == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) >= 3, err  # stream stopped, then failed reopen attempts with growing backoff
    delays = [float(m.group(1)) for w in warnings for m in [re.search(r"in ([\d.]+) s$", w)] if m]
    assert delays == sorted(delays) and delays[-1] > delays[0], warnings
    assert err.strip().splitlines()[-1].startswith("stopped: ")
    assert_hops(events)


def test_hung_driver_is_detected_and_reopened(capsys, fault_sd, rfc):
    fault_sd.configure({"stall_after": 0.5, "speed": 2})
    rc, events, err = listen(capsys, rfc, interrupt_after=5.0)
    assert rc == 0, err
    assert "no audio from the device for 3 s" in err
    assert err.strip().splitlines()[-1].startswith("stopped: ")
    assert fault_sd.STATE["opens"] >= 2


def test_ctrl_c_exits_0_with_a_summary(capsys, fault_sd, rfc):
    fault_sd.configure({"speed": 1})
    rc, events, err = listen(capsys, rfc, interrupt_after=2.2)
    assert rc == 0, err
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("stopped: ") and "hops" in summary and "overflows 0" in summary
    assert 3 <= len(events) <= 5
    assert_hops(events)


# --- real signals in a subprocess ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_in_a_subprocess_exits_0_with_a_summary(rfc, sig):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(FAKES), str(REPO)]),
               FAKE_SD=json.dumps({"speed": 2, "overflow_every": 7}))
    proc = subprocess.Popen([sys.executable, "-m", "edge_ser.cli", "listen", "--model", rfc, "--json"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while len(lines) < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if json.loads(line).get("type") != "status":
                lines.append(json.loads(line))
        assert len(lines) == 4, proc.stderr.read() if proc.poll() is not None else "no events"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("stopped: "), err
    assert_hops(lines + split_statuses(json.loads(x) for x in out.splitlines()))


# --- the real path: PortAudio -> ALSA -> PulseAudio, with the sound server killed mid-stream -------------------

def _pulse_start(env: dict) -> bool:
    cmd = ["pulseaudio", "-n", "--daemonize=yes", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=yes",
           "--system=false", "-L", "module-null-sink sink_name=edge_ser_fault_sink rate=16000 channels=1",
           "-L", "module-native-protocol-unix"]
    try:
        subprocess.run(cmd, env=env, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            subprocess.run(["pactl", "set-default-source", "edge_ser_fault_sink.monitor"], env=env,
                           capture_output=True)
            return True
        time.sleep(0.1)
    return False


def _pulse_kill(root: Path, sig=signal.SIGKILL) -> None:
    try:
        pid = int((root / "pulse" / "pid").read_text().split()[0])
        os.kill(pid, sig)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass


@pytest.mark.integration
def test_pulseaudio_killed_and_restarted_mid_stream(rfc):
    """`listen` on a PulseAudio virtual microphone; the sound server is killed (SIGKILL) after 3 s and restarted
    4 s later: listen warns, retries with backoff, reopens the device and goes on; SIGINT then exits 0."""
    import shutil
    import tempfile
    if any(shutil.which(t) is None for t in ("pulseaudio", "pactl")):
        pytest.skip("PulseAudio is not installed (make sysdeps)")
    root = Path(tempfile.mkdtemp(prefix="edge-ser-paf-"))  # short: the socket path must fit 108 bytes
    env = dict(os.environ, XDG_RUNTIME_DIR=str(root), HOME=str(root), PULSE_RUNTIME_PATH=str(root / "pulse"))
    env.pop("PULSE_SERVER", None)
    proc = None
    try:
        if not _pulse_start(env):
            pytest.skip("PulseAudio cannot start here")
        proc = subprocess.Popen([sys.executable, "-m", "edge_ser.cli", "listen", "--model", rfc, "--json"],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()
        if not first:
            err = proc.stderr.read()
            if "no audio input device" in err:
                pytest.skip("PortAudio sees no PulseAudio input here (ALSA pulse plugin missing)")
            pytest.fail(err)
        time.sleep(3)
        _pulse_kill(root)
        time.sleep(4)
        assert proc.poll() is None, proc.stderr.read()  # still running while the server is gone
        assert _pulse_start(env)
        time.sleep(6)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        _pulse_kill(root, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
    everything = split_statuses(json.loads(x) for x in [first, *out.splitlines()])
    events = list(everything)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith(("warning: ", "stopped: "))]
    assert any("reopening" in line or "retrying" in line for line in ours), err
    assert ours[-1].startswith("stopped: ") and "device restarts" in ours[-1], err
    assert_hops(events)
    # audio kept coming after the restart: more than the 3 s heard before the kill
    assert events[-1]["t"] > 5.0, (events[-1]["t"], err)

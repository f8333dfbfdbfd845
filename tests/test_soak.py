"""The soak benchmark (benchmarks/soak.py), short: 10 minutes of audio through the engine in random device-like
blocks — zero dropped hops, one event per hop at the right time, bounded memory (generous margin: this is about
correctness, the hour-long figures are in benchmarks/results/soak.json)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO



_SOAK = """
import json, sys
from benchmarks.soak import run_soak, speech_clips
from edge_ser.registry import load_model
clips = speech_clips(40, seed=1)[0]
r = run_soak(load_model(sys.argv[1]), 600, clips, seed=3, rss_every=30, warmup=60)
print(json.dumps(r, default=float))
"""


def test_short_soak(tiny_models):
    """In a fresh process, as a robot runs it: memory measured there is the engine's, not what earlier tests (a
    TensorFlow session, server threads) leave growing in the test process."""
    proc = subprocess.run([sys.executable, "-c", _SOAK, str(tiny_models["cnn"])], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["audio_seconds"] == pytest.approx(600, abs=1e-3)
    assert r["dropped_hops"] == 0 and r["bad_timestamps"] == 0
    assert r["events"] == r["expected_events"] == math.ceil(600 / 0.5)
    assert 0 < r["speech_hops"] < r["events"]  # the stream has speech and silence gaps; the gate sees both
    assert r["rss_max_growth_mb"] < 16, r["rss_series"]
    assert r["speed_x_real_time"] > 1


def test_soak_command_writes_results(tiny_models, tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--model", str(tiny_models["rfc"]), "--hours",
                           "0.02", "--clips", "10", "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    for key in ("model", "machine", "protocol", "audio_seconds", "events", "dropped_hops", "rss_growth_mb",
                "rss_series", "latency_ms", "speed_x_real_time"):
        assert key in r
    assert r["audio_seconds"] == pytest.approx(72, abs=1e-3) and r["events"] == 144 and r["dropped_hops"] == 0
    bad = subprocess.run([sys.executable, "-m", "benchmarks.soak", "--model", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")

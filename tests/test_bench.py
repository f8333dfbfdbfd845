"""edge-ser bench: the JSON fields are present and consistent on a tiny model (no timing assertions), the accuracy
a manifest records is found, and the device modules stay within the runtime's imports."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from edge_ser import bench


@pytest.fixture(scope="module")
def result(tiny_models):
    return bench.run(str(tiny_models["rfc"]), threads=1, hop_seconds=0.5, seconds=3)


def test_bench_fields_present_and_sane(result, tiny_models):
    for field in bench.FIELDS:
        assert field in result, field
    assert result["model"] == "tiny-rfc" and result["format"] == "onnx"
    for field in ("frontend_ms", "inference_ms", "hop_ms", "rtf", "peak_rss_mb", "cold_start_s"):
        assert result[field] > 0, field
    assert result["model_bytes"] == (tiny_models["rfc"] / "model.onnx").stat().st_size
    assert result["rtf"] == pytest.approx(result["hop_ms"] / 500.0, rel=1e-3)
    # the parts of a hop cannot cost more than the hop measured around them, give or take scheduling noise
    assert result["frontend_ms"] <= result["components_ms"]
    assert 10 < result["peak_rss_mb"] < 4000
    assert result["hops_timed"] >= 3
    m = result["machine"]
    assert m["arch"] and m["cores"] >= 1 and "numpy" in m["versions"]
    assert "hop" in result["protocol"] and "fresh process" in result["protocol"]


def test_bench_tflite_int8(tiny_models):
    r = bench.run(str(tiny_models["cnn_int8"]), seconds=3)
    assert r["format"] == "tflite" and r["inference_ms"] > 0 and r["model_bytes"] > 0


def _no_nan(constant):
    raise AssertionError(f"invalid JSON constant {constant}")


def test_bench_cli_json(tiny_models):
    r = run_cli("bench", "--model", str(tiny_models["rfc"]), "--seconds", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout, parse_constant=_no_nan)  # strict JSON: no NaN/Infinity
    assert set(bench.FIELDS) <= set(out) and out["settings"]["threads"] == 1


def test_bench_against_a_profile_reports_the_budget(tiny_models):
    r = run_cli("bench", "--model", str(tiny_models["rfc"]), "--profile", "pi-zero-2w", "--seconds", "3", "--json")
    assert r.returncode == 0, r.stderr
    b = json.loads(r.stdout)["budget"]
    assert b["profile"] == "pi-zero-2w" and isinstance(b["fits"], bool)
    assert b["scale"] > 1 and "estimate" in b["basis"]  # measured on x86 or another board, scaled to a Zero 2 W


def test_bench_seconds_minimum_gives_timed_hops(tiny_models):
    """Too little audio to time a hop after the window warm-up is refused with one line naming the minimum; the
    minimum itself times MIN_TIMED_HOPS hops and gives finite medians."""
    assert bench.min_seconds(2.5, 0.5) == 4.0  # the default models: 5 warm-up hops + 3 timed
    window = json.loads((tiny_models["rfc"] / "manifest.json").read_text())["window_seconds"]
    least = bench.min_seconds(window, 0.5)
    r = run_cli("bench", "--model", str(tiny_models["rfc"]), "--seconds", f"{least - 0.5:g}", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --seconds must be at least ") and f"at least {least:g} " in r.stderr
    assert r.stderr.count("\n") == 1
    r = run_cli("bench", "--model", str(tiny_models["rfc"]), "--seconds", "nan", "--json")
    assert r.returncode == 2 and r.stderr.startswith("error: --seconds must be at least ")
    r = run_cli("bench", "--model", str(tiny_models["rfc"]), "--seconds", f"{least:g}", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout, parse_constant=_no_nan)
    assert out["hops_timed"] == bench.MIN_TIMED_HOPS and out["hop_ms"] > 0 and "over 3 hops" in out["protocol"]


def test_bench_unknown_model_is_a_user_error():
    r = run_cli("bench", "--model", "no-such-model", "--seconds", "1")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


@pytest.mark.parametrize("metrics,expected", [
    ({"validation": {"balanced_accuracy": 0.3}, "balanced_accuracy": {"mean": 0.45, "std": 0.02},
      "accuracy": {"mean": 0.5, "std": 0.1}}, (0.45, "balanced_accuracy (cv")),
    ({"validation": {"balanced_accuracy": 0.3}}, (0.3, "validation")),
    ({"cv": {"balanced_accuracy": 0.5, "balanced_accuracy_std": 0.1}, "balanced_accuracy": 0.9}, (0.5, "cv")),
    ({"test": {"macro_f1": 0.4}}, (0.4, "test")),
    ({"balanced_accuracy": 0.7}, (0.7, "balanced_accuracy")),
    ({}, (None, "no accuracy")),
])
def test_manifest_accuracy(metrics, expected):
    value, where = bench.manifest_accuracy(metrics)
    assert value == expected[0] and where.startswith(expected[1])


def test_device_modules_import_only_the_runtime():
    # (not pickle: numpy itself imports it)
    code = ("import sys, edge_ser.cli, edge_ser.bench, edge_ser.bundle, edge_ser.profiles;"
            "bad = [m for m in ('tensorflow', 'keras', 'sklearn', 'librosa', 'torch', 'joblib') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    assert out.stdout.strip() == "[]"


def test_listen_memory_stages(tiny_models, tmp_path):
    # the per-stage memory probe runs the real `edge-ser listen` command and reports every stage in order
    from benchmarks import listen_memory
    wav = listen_memory.replay_wav(tmp_path, seconds=3)
    r = listen_memory.stages(str(tiny_models["rfc"]), "onnx", wav)
    assert "error" not in r, r
    names = [s["stage"] for s in r["stages"]]
    assert names == ["start", "cli parsed", "runtime imported", "model loaded", "engine built", "first event",
                     "last event", "exit"]
    peaks = [s["hwm_mb"] for s in r["stages"]]
    assert peaks == sorted(peaks)  # a high-water mark never goes down
    assert all(s["rss_mb"] <= s["hwm_mb"] for s in r["stages"])
    assert r["peak_rss_mb"] == peaks[-1] and r["peak_at"] in names
    assert "| model loaded |" in listen_memory.table([r])


def test_listen_memory_reports_a_failing_listen(tmp_path):
    from benchmarks import listen_memory
    r = listen_memory.stages("no-such-model", "onnx", tmp_path / "missing.wav")
    assert r["error"].startswith("error:") and "no-such-model" in r["error"]


def test_noisy_sessions_summary_pools_by_hops_and_utterances_and_per_corpus():
    from benchmarks.noisy_sessions import summarise
    row = dict(recall=1.0, false_alarms=0.0, speech_hops=10, gap_hops=10, utterances=10, emotion_right_at_end=0.5,
               hops_to_settle=1.0, flips_per_utterance=0.0, no_label_at_end=0)
    rows = [dict(row, session="cremad-1015"), dict(row, session="esd0020a", recall=0.5, speech_hops=30,
                                                     emotion_right_at_end=0.1, utterances=30)]
    s = summarise({"clean": {"spectral": rows}})["clean"]["spectral"]
    assert s["recall"] == 0.625 and s["utterances"] == 40  # (10 x 1.0 + 30 x 0.5) / 40 hops
    assert s["emotion_right_at_end"] == 0.2  # (10 x 0.5 + 30 x 0.1) / 40 utterances
    assert s["emotion_right_at_end_per_corpus"] == {"cremad": 0.5, "esd": 0.1}

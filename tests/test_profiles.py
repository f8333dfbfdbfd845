"""Firmware profiles: the shipped boards, runtime_settings (defaults, profile, overrides, auto), the CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from edge_ser import profiles, registry as models, settings
from edge_ser.errors import UserError
from edge_ser.manifest import read_manifest, write_manifest

BOARDS = ("pi-zero-2w", "pi3b", "pi4b", "pi5", "jetson-orin-nano", "x86-server")

PROFILE_TOML = """
name = "{name}"
description = "a test board"
[hardware]
arch = "x86_64"
cores = 2
ram_mb = 2048
cpu_speed_factor = 1.0
[budget]
hop_latency_ms = {latency}
cpu_share = 0.5
memory_mb = {memory}
[runtime]
model = "{model}"
format = "tflite"
threads = 1
hop_seconds = 0.5
"""


def write_profile(folder: Path, name: str, latency=50.0, memory=1000.0, model="tiny-cnn") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.toml"
    p.write_text(PROFILE_TOML.format(name=name, latency=latency, memory=memory, model=model))
    return p


def test_shipped_profiles_cover_the_boards_and_are_consistent():
    names = profiles.profile_names()
    for board in BOARDS:
        assert board in names
    for p in profiles.list_profiles():
        assert p.hardware.cores >= 1 and p.hardware.ram_mb > 0
        assert 0 < p.budget.memory_mb <= p.hardware.ram_mb
        assert p.budget.hop_ms_allowed(p.hop_seconds) > 0
        assert p.format in ("onnx", "tflite") and 1 <= p.threads <= p.hardware.cores
        if p.name == "x86-server":
            assert p.hardware.cpu_speed_factor == 1.0  # the reference core
        else:  # ARM boards: slower than the reference and labelled as an estimate, not a measurement
            assert 0 < p.hardware.cpu_speed_factor < 1.0
            assert "estimate" in p.hardware.cpu_speed_factor_is
    # slower boards get no smaller per-hop allowance than faster ones
    by = {p.name: p for p in profiles.list_profiles()}
    assert by["pi-zero-2w"].budget.hop_latency_ms >= by["pi5"].budget.hop_latency_ms


def test_firmware_profiles_folder_is_the_single_source():
    folder = REPO / "firmware_profiles"
    assert folder.resolve() == profiles.PROFILES_DIR.resolve()
    assert sorted(p.stem for p in folder.glob("*.toml")) == profiles.profile_names()


def test_defaults_without_a_profile():
    s = settings.runtime_settings(None)
    assert (s.fmt, s.threads, s.hop_seconds, s.profile_name) == ("onnx", 1, 0.5, None)
    installed = [n for n in settings.FALLBACK_ORDER if n in models.known_names()]
    assert settings.DEFAULT_MODEL == "fine16-linear" and s.model == (installed[0] if installed else "fine16-linear")


def test_the_default_falls_back_to_the_first_installed(tiny_models, tmp_path, monkeypatch):
    """Without fine16-linear the default is the first installed of FALLBACK_ORDER, and the reason says so."""
    root = tmp_path / "models"
    shutil.copytree(tiny_models["rfc"], root / "fine15-rfc")
    monkeypatch.setattr(models, "DEFAULT_MODELS_DIR", tmp_path / "no-defaults")
    monkeypatch.setenv(models.MODELS_ENV, str(root))
    s = settings.runtime_settings(None)
    assert s.model == "fine15-rfc" and "default fine16-linear is not installed, using fine15-rfc" in s.reason


def test_profile_values_and_explicit_overrides():
    p = profiles.load_profile("pi4b")
    s = settings.runtime_settings("pi4b")
    assert (s.model, s.threads, s.hop_seconds, s.profile_name) == (p.model, p.threads, p.hop_seconds, "pi4b")
    s = settings.runtime_settings("pi4b", model="basic6-rfc", fmt="onnx", threads=2, hop_seconds=0.25)
    assert (s.model, s.fmt, s.threads, s.hop_seconds) == ("basic6-rfc", "onnx", 2, 0.25)
    assert "overridden" in s.reason


def test_profile_by_path(tmp_path):
    path = write_profile(tmp_path, "myboard", model="fine15-rfc")
    s = settings.runtime_settings(str(path))
    assert s.profile_name == "myboard" and s.model == "fine15-rfc"


@pytest.mark.parametrize("bad", [dict(profile="no-such-board"), dict(profile="pi4b", fmt="pt"),
                                 dict(profile=None, threads=0), dict(profile="pi4b", hop_seconds=-1)])
def test_bad_profile_or_option_is_a_user_error(bad):
    with pytest.raises(UserError):
        settings.runtime_settings(**bad)


@pytest.mark.parametrize("text,message", [
    ("name = 'x'\n[hardware]\n", "missing [budget]"),
    ("not toml = = 1", "not valid TOML"),
    (PROFILE_TOML.format(name="x", latency=-1, memory=10, model="m"), "hop_latency_ms"),
    (PROFILE_TOML.format(name="x", latency=10, memory=99999, model="m"), "memory_mb"),
    (PROFILE_TOML.format(name="x", latency="'fast'", memory=10, model="m"), "must be float"),
])
def test_malformed_profiles_are_refused_with_the_reason(tmp_path, text, message):
    p = tmp_path / "x.toml"
    p.write_text(text)
    with pytest.raises(profiles.ProfileError, match=message.replace("[", r"\[")):
        profiles.read_profile(p)


def test_extra_profiles_folder(tmp_path, monkeypatch):
    write_profile(tmp_path, "robot-x")
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path))
    assert "robot-x" in profiles.profile_names() and "pi4b" in profiles.profile_names()
    assert profiles.load_profile("robot-x").budget.hop_latency_ms == 50.0


def test_profile_folder_without_a_profile_says_so(tmp_path):
    with pytest.raises(profiles.ProfileError, match="folder has no profile.toml") as exc:
        settings.resolve_profile(str(tmp_path))
    assert str(exc.value).startswith(f"{tmp_path}: ")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("listen", "--profile", str(empty), "--input", str(tmp_path / "x.wav"))
    assert r.returncode == 2 and r.stderr == f"error: {empty}: folder has no profile.toml " \
        "(give a profile's .toml file or an installed bundle folder)\n"
    write_profile(tmp_path, "loose").rename(tmp_path / "profile.toml")  # a folder that is not a bundle
    with pytest.raises(profiles.ProfileError, match="not an installed bundle .* give .*profile.toml"):
        settings.resolve_profile(str(tmp_path))
    with pytest.raises(profiles.ProfileError, match="no such profile file"):
        settings.resolve_profile(str(tmp_path / "absent.toml"))


def test_cli_profiles_list_show_and_unknown():
    r = run_cli("profiles", "--json")
    assert r.returncode == 0, r.stderr
    assert {p["name"] for p in json.loads(r.stdout)} >= set(BOARDS)
    r = run_cli("profiles", "pi-zero-2w", "--json")
    shown = json.loads(r.stdout)
    assert shown["hardware"]["ram_mb"] == 512 and shown["budget"]["memory_mb"] > 0
    r = run_cli("profiles", "pi5")
    assert r.returncode == 0 and "estimate" in r.stdout
    r = run_cli("profiles", "no-such-board")
    assert r.returncode == 2 and r.stderr.startswith("error: unknown profile") and "Traceback" not in r.stderr


# --- --profile auto -----------------------------------------------------------------------------------------

@pytest.fixture
def ranked_models(tiny_models, tmp_path, monkeypatch):
    """Two fine15 models with cross-validated accuracies in their manifests, as the only installed models."""
    root = tmp_path / "models"
    for src, name, acc in ((tiny_models["cnn"], "cnn-accurate", 0.61), (tiny_models["cnn_int8"], "cnn-small", 0.55)):
        d = root / name
        shutil.copytree(src, d)
        m = read_manifest(d)
        m.name = name
        m.metrics = {"balanced_accuracy": {"mean": acc, "std": 0.9}, "accuracy": {"mean": 0.99, "std": 0.0},
                     "validation": {"balanced_accuracy": 0.99}}
        write_manifest(d, m)
    monkeypatch.setattr(models, "DEFAULT_MODELS_DIR", tmp_path / "no-defaults")
    monkeypatch.setenv(models.MODELS_ENV, str(root))
    monkeypatch.setenv(settings.CalibrationCache.ENV, str(tmp_path / "calibration"))
    return root


def test_auto_chooses_the_most_accurate_model_that_fits(ranked_models, tmp_path, monkeypatch):
    write_profile(tmp_path / "profiles", "roomy", latency=500.0, memory=2000.0, model="cnn-small")
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path / "profiles"))
    s = settings.runtime_settings("auto:roomy")
    assert s.model == "cnn-accurate" and s.fmt == "tflite"
    assert "most accurate that fits" in s.reason and "balanced_accuracy (cv mean over folds) 0.610" in s.reason
    assert s.profile_name == "auto:roomy"
    rows = s.choice["candidates"]
    assert {r["model"] for r in rows} == {"cnn-accurate", "cnn-small"}
    assert all(r["hop_ms"] > 0 and r["fits"] for r in rows)


def test_auto_with_an_impossible_budget_takes_the_cheapest_and_says_so(ranked_models, tmp_path, monkeypatch):
    write_profile(tmp_path / "profiles", "tiny", latency=1e-6, memory=2000.0, model="cnn-small")
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path / "profiles"))
    s = settings.runtime_settings("auto:tiny")
    rows = s.choice["candidates"]
    assert not any(r["fits"] for r in rows)
    assert s.model == min(rows, key=lambda r: r["hop_ms_on_target"])["model"]
    assert "NO candidate fits" in s.reason


def test_auto_respects_an_explicit_model(ranked_models):
    s = settings.runtime_settings("auto", model="cnn-small")
    assert s.model == "cnn-small" and [r["model"] for r in s.choice["candidates"]] == ["cnn-small"]


def test_auto_caches_its_calibration_per_machine_and_model(ranked_models, tmp_path, monkeypatch):
    """A second `--profile auto` reuses the measurements; a retrained model (other checksum) is measured again."""
    from edge_ser import bench
    first = settings.runtime_settings("auto", model="cnn-small")
    assert len(list((tmp_path / "calibration").glob("*.json"))) == 1

    def no_bench(*a, **k):
        raise AssertionError("measured again")
    monkeypatch.setattr(bench, "run", no_bench)
    again = settings.runtime_settings("auto", model="cnn-small")
    assert again.model == first.model and again.choice["candidates"] == first.choice["candidates"]
    m = read_manifest(ranked_models / "cnn-small")
    m.sha256 = {k: "0" * 64 for k in m.sha256}  # as if the model file had changed
    key_before = settings.CalibrationCache.key(read_manifest(ranked_models / "cnn-small"), "tflite", 1, 0.5, 8.0)
    assert settings.CalibrationCache.key(m, "tflite", 1, 0.5, 8.0) != key_before
    monkeypatch.setenv("EDGE_SER_RECALIBRATE", "1")
    with pytest.raises(AssertionError, match="measured again"):
        settings.runtime_settings("auto", model="cnn-small")

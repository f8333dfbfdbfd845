"""Device bundles: a good bundle round-trips; tampered, escaping, linked or unlisted members are refused; nothing
the user has is overwritten without --force."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from edge_ser import bundle, profiles, registry as models, settings
from edge_ser.registry import load_model

PROFILE = """
name = "testboard"
description = "a test board"
[hardware]
arch = "x86_64"
cores = 2
ram_mb = 2048
cpu_speed_factor = 1.0
[budget]
hop_latency_ms = 50.0
cpu_share = 0.5
memory_mb = 500.0
[runtime]
model = "tiny-rfc"
format = "onnx"
threads = 1
hop_seconds = 0.5
"""


@pytest.fixture
def env(tiny_models, tmp_path, monkeypatch):
    """The tiny models installed by name and a profile 'testboard' that runs tiny-rfc."""
    registry = tmp_path / "registry"
    registry.mkdir()
    for key in ("rfc", "cnn_int8"):
        (registry / tiny_models[key].name).symlink_to(tiny_models[key], target_is_directory=True)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "testboard.toml").write_text(PROFILE)
    monkeypatch.setenv(models.MODELS_ENV, str(registry))
    monkeypatch.setenv(profiles.PROFILES_ENV, str(tmp_path / "profiles"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def good(env) -> Path:
    out = env / "board.tar.gz"
    bundle.build("testboard", out, models=["tiny-cnn-int8"])
    return out


def rewrite(src: Path, dst: Path, change=None, extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> Path:
    """Copy a bundle, optionally changing a member's bytes (``change(name, data) -> data``) and adding members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read()
            if change:
                data = change(info.name, data)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def test_good_bundle_round_trips(good, env, rng):
    with tarfile.open(good) as tar:
        names = set(tar.getnames())
    assert {"bundle.json", "SHA256SUMS", "README.md", "profile.toml", "models/tiny-rfc/manifest.json",
            "models/tiny-rfc/model.onnx", "models/tiny-cnn-int8/model.tflite"} <= names
    installed = bundle.install(good, env / "device")
    assert installed.index["profile"] == "testboard" and installed.index["models"] == ["tiny-rfc", "tiny-cnn-int8"]
    for name, digest in installed.index["sha256"].items():
        assert (env / "device" / name).is_file()
    # the runtime runs from the installed bundle: same model bytes, same predictions as the original
    s = settings.runtime_settings(str(env / "device"))
    assert Path(s.model) == env / "device" / "models" / "tiny-rfc" and s.profile_name == "testboard"
    audio = rng.standard_normal(16000 * 2).astype(np.float32) * 0.1
    assert np.allclose(load_model(s.model).classify_audio(audio), load_model("tiny-rfc").classify_audio(audio))
    # and straight from the archive (checked and extracted into the user's cache)
    s2 = settings.runtime_settings(str(good), model="tiny-cnn-int8")
    assert Path(s2.model).name == "tiny-cnn-int8" and s2.fmt == "tflite"
    assert str(env / "cache") in s2.model


def test_checksum_file_agrees_with_sha256sum_format(good, env):
    installed = bundle.install(good, env / "device")
    sums = dict(line.split("  ")[::-1] for line in (env / "device" / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == set(installed.index["sha256"]) | {"bundle.json"}


def test_tampered_model_is_refused_and_nothing_installed(good, env):
    def flip(name, data):
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith("model.onnx") else data
    bad = rewrite(good, env / "bad.tar.gz", change=flip)
    with pytest.raises(bundle.BundleError, match="does not match its sha256"):
        bundle.install(bad, env / "device")
    assert not (env / "device").exists() or not any((env / "device").iterdir())
    assert not list(env.glob(".edge-ser-bundle-*"))  # the staging folder is cleaned up


def test_tampered_index_is_refused(good, env):
    def edit(name, data):
        if name == "bundle.json":
            d = json.loads(data)
            d["models"] = ["tiny-rfc"]
            return json.dumps(d).encode()
        return data
    with pytest.raises(bundle.BundleError, match="tampered"):
        bundle.install(rewrite(good, env / "bad.tar.gz", change=edit), env / "device")


def _member(name: str, kind=tarfile.REGTYPE, data: bytes = b"x", linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("member,message", [
    (_member("../evil.txt"), "outside the target"),
    (_member("models/../../evil.txt"), "outside the target"),
    (_member("/tmp/evil.txt"), "absolute path"),
    (_member("models/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "symbolic link"),
    (_member("models/hard", tarfile.LNKTYPE, linkname="profile.toml"), "hard link"),
    (_member("dev0", tarfile.CHRTYPE), "not a regular file"),
])
def test_unsafe_members_are_refused_before_anything_is_written(good, env, member, message):
    bad = rewrite(good, env / "bad.tar.gz", extra=[member])
    with pytest.raises(bundle.BundleError, match=message) as exc:
        bundle.install(bad, env / "device" / "inner")
    assert str(exc.value).startswith(f"{bad}: ")  # the error names the bundle
    assert not (env / "evil.txt").exists() and not (env / "device").exists()


def test_unlisted_file_is_refused(good, env):
    bad = rewrite(good, env / "bad.tar.gz", extra=[_member("models/tiny-rfc/extra.onnx", data=b"payload")])
    with pytest.raises(bundle.BundleError, match="not listed"):
        bundle.install(bad, env / "device")


def test_installed_bundle_tampered_later_is_refused_by_the_runtime(good, env):
    bundle.install(good, env / "device")
    (env / "device" / "profile.toml").write_text(PROFILE.replace("50.0", "5000.0"))
    with pytest.raises(bundle.BundleError, match="profile.toml"):
        settings.runtime_settings(str(env / "device"))


def test_never_overwrites_without_force(good, env):
    with pytest.raises(bundle.BundleError, match="already exists"):
        bundle.build("testboard", good)
    bundle.build("testboard", good, force=True)
    target = env / "device"
    target.mkdir()
    (target / "README.md").write_text("the user's own notes")
    with pytest.raises(bundle.BundleError, match="already exists"):
        bundle.install(good, target)
    assert (target / "README.md").read_text() == "the user's own notes"
    bundle.install(good, target, force=True)
    assert "edge-ser bundle" in (target / "README.md").read_text()


def test_package_refuses_auto_and_unknown_profiles(env):
    with pytest.raises(bundle.BundleError):
        bundle.build("auto", env / "x.tar.gz")
    with pytest.raises(profiles.ProfileError):
        bundle.build("no-such-board", env / "x.tar.gz")


def test_cli_package_install_and_tampered_bundle(good, env):
    cli_env = {"EDGE_SER_MODELS": str(env / "registry"), "EDGE_SER_PROFILES": str(env / "profiles")}
    out = env / "cli.tar.gz"
    r = run_cli("package", "--profile", "testboard", "--out", str(out), "--json", env=cli_env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["models"] == ["tiny-rfc"]
    r = run_cli("package", "--profile", "testboard", "--out", str(out), env=cli_env)
    assert r.returncode == 2 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("install-bundle", str(out), "--to", str(env / "dev"), env=cli_env)
    assert r.returncode == 0, r.stderr
    bad = rewrite(good, env / "bad.tar.gz", extra=[_member("../escape.txt")])
    r = run_cli("install-bundle", str(bad), "--to", str(env / "dev2"), env=cli_env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"error: {bad}: member '../escape.txt' would extract outside the target folder")
    assert not (env / "escape.txt").exists()
    data = out.read_bytes()
    cut = env / "cut.tar.gz"
    cut.write_bytes(data[:len(data) // 2])
    r = run_cli("install-bundle", str(cut), "--to", str(env / "dev4"), env=cli_env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {cut}: damaged archive (")
    r = run_cli("install-bundle", str(out), "--to", str(out), env=cli_env)  # the target is a file
    assert r.returncode == 2 and r.stderr.startswith(f"error: {out}: cannot install into {out}: ")
    r = run_cli("install-bundle", str(out), "--to", str(out / "sub"), env=cli_env)  # a file on the way to it
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"error: {out}: cannot install into {out / 'sub'}: {out} exists and is not a folder")
    r = run_cli("install-bundle", str(env / "missing.tar.gz"), "--to", str(env / "dev3"), env=cli_env)
    assert r.returncode == 2 and "no such bundle" in r.stderr


def test_bundle_repacked_with_tar_dot_is_accepted(good, env):
    """`tar -czf b.tar.gz -C dir .` (members '.', './bundle.json', ...) installs; traversal is still refused."""
    import subprocess
    bundle.install(good, env / "unpacked")
    repacked = env / "repacked.tar.gz"
    subprocess.run(["tar", "-czf", str(repacked), "-C", str(env / "unpacked"), "."], check=True)
    with tarfile.open(repacked) as tar:
        assert "." in tar.getnames() and "./bundle.json" in tar.getnames()
    installed = bundle.install(repacked, env / "device")
    assert installed.index["profile"] == "testboard"
    evil = env / "evil.tar.gz"
    with tarfile.open(repacked) as tin, tarfile.open(evil, "w:gz") as tout:
        for info in tin.getmembers():
            tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
        info = tarfile.TarInfo("./../escape.txt")
        info.size = 1
        tout.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(bundle.BundleError, match="outside the target folder"):
        bundle.install(evil, env / "device2")


def test_edited_profile_in_a_bundle_names_the_way_to_customise(good, env):
    installed = bundle.install(good, env / "device")
    (installed.path / "profile.toml").write_text(PROFILE.replace("cpu_share = 0.5", "cpu_share = 0.9"))
    r = run_cli("listen", "--profile", str(installed.path), "--input", "nope.wav")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "profile.toml does not match its sha256" in r.stderr and "--toml > mine.toml" in r.stderr


def test_profile_toml_copy_runs_as_a_custom_profile(good, env, tmp_path):
    """`edge-ser profiles BUNDLE --toml > mine.toml` + `--profile mine.toml`: the bundle's model, the edited budget."""
    installed = bundle.install(good, env / "device")
    r = run_cli("profiles", str(installed.path), "--toml")
    assert r.returncode == 0, r.stderr
    mine = tmp_path / "mine.toml"
    mine.write_text(r.stdout.replace("hop_seconds = 0.5", "hop_seconds = 0.25"))
    s = settings.runtime_settings(str(mine))
    assert Path(s.model) == (installed.path / "models" / "tiny-rfc").resolve() and s.hop_seconds == 0.25
    r = run_cli("profiles", "--toml")
    assert r.returncode == 2 and r.stderr.startswith("error: --toml shows one profile")


def test_tflite_profile_runs_onnx_without_a_tflite_runtime(tmp_path, monkeypatch, caplog):
    """A profile preferring TFLite, on a runtime without LiteRT, runs the model's ONNX file and says so."""
    from edge_ser import runners
    mine = tmp_path / "mine.toml"
    mine.write_text(PROFILE.replace('model = "tiny-rfc"', 'model = "fine15-cnn"').replace('"onnx"', '"tflite"'))
    monkeypatch.setattr(runners, "tflite_available", lambda: False)
    with caplog.at_level("WARNING", logger="edge_ser"):
        s = settings.runtime_settings(str(mine))
    assert s.model == "fine15-cnn" and s.fmt == "onnx"
    assert [r.getMessage() for r in caplog.records if "prefers TFLite" in r.getMessage()]
    monkeypatch.setattr(runners, "tflite_available", lambda: True)
    assert settings.runtime_settings(str(mine)).fmt == "tflite"
    # an explicit --format tflite is the user's choice: not replaced
    monkeypatch.setattr(runners, "tflite_available", lambda: False)
    assert settings.runtime_settings(str(mine), fmt="tflite").fmt == "tflite"


def test_profile_toml_of_an_archive_names_the_model_not_the_cache(good, env):
    """A .tar.gz bundle is unpacked into the user's cache, which may be cleared: its --toml copy keeps the model's
    name (with a comment saying where it came from), not a cache path."""
    r = run_cli("profiles", str(good), "--toml")
    assert r.returncode == 0, r.stderr
    assert str(env / "cache") not in r.stdout and 'model = "tiny-rfc"' in r.stdout
    assert r.stdout.startswith("# model 'tiny-rfc' came with the bundle")
    s = run_cli("classify", "--profile", str(good), "nope.wav")
    assert str(env / "cache") not in s.stderr

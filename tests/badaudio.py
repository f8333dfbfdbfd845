"""Bad and unusual audio files for the reliability tests (tests/test_bad_input.py) and the matrix script.

`make_bad_files(dir)` writes every case of issue 5's matrix into ``dir`` and returns ``{case: path}``; `EXPECT`
says which cases must give a result and which a one-line error.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def speechlike(seconds: float, sr: int = SR, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """A voiced-speech-like harmonic complex with syllable-rate amplitude modulation (float64, mono)."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n) / sr
    f0 = 150.0 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12) if k * 150 < sr / 2 * 0.9)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    y = amp * env * y / 3.0 + 0.002 * rng.standard_normal(n)
    return y


def _write(path: Path, data: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fsencode(path), data, sr, subtype=subtype)
    return path


# case -> "ok" (a result) or "error" (one line `error: ...`)
EXPECT = {
    "empty": "error", "truncated_header": "error", "not_audio": "error", "text_as_wav": "error",
    "pcm_u8": "ok", "pcm_16": "ok", "pcm_24": "ok", "pcm_32": "ok", "float32": "ok", "float64": "ok",
    "flac_24": "ok", "stereo": "ok", "ch8": "ok",
    "rate_8000": "ok", "rate_11025": "ok", "rate_22050": "ok", "rate_44100": "ok", "rate_48000": "ok",
    "rate_96000": "ok", "nan": "error", "inf": "error", "zeros": "ok", "clipped_int": "ok", "clipped_float": "ok",
    "short_50ms": "ok", "one_sample": "ok", "directory": "error", "fifo": "error", "io_error": "error",
    "missing": "error", "non_ascii": "ok", "truncated_body_wav": "error", "truncated_body_flac": "error",
    "corrupt_flac": "error", "latin1_name": "ok",
}


def make_bad_files(root: Path) -> dict[str, Path]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    y = speechlike(1.5)

    good = _write(root / "good.wav", y, SR, "PCM_16")
    (root / "empty.wav").write_bytes(b"")
    files["empty"] = root / "empty.wav"
    (root / "truncated_header.wav").write_bytes(good.read_bytes()[:30])
    files["truncated_header"] = root / "truncated_header.wav"
    (root / "not_audio.wav").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    files["not_audio"] = root / "not_audio.wav"
    (root / "text_as_wav.wav").write_text("this is not audio\n" * 50)
    files["text_as_wav"] = root / "text_as_wav.wav"

    for case, sub in (("pcm_u8", "PCM_U8"), ("pcm_16", "PCM_16"), ("pcm_24", "PCM_24"), ("pcm_32", "PCM_32"),
                      ("float32", "FLOAT"), ("float64", "DOUBLE")):
        files[case] = _write(root / f"{case}.wav", y, SR, sub)
    files["flac_24"] = _write(root / "flac_24.flac", y, SR, "PCM_24")
    files["stereo"] = _write(root / "stereo.wav", np.stack([y, 0.5 * y], axis=1), SR, "PCM_16")
    files["ch8"] = _write(root / "ch8.wav", np.stack([y * (k + 1) / 8 for k in range(8)], axis=1), SR, "PCM_16")
    for rate in (8000, 11025, 22050, 44100, 48000, 96000):
        files[f"rate_{rate}"] = _write(root / f"rate_{rate}.wav", speechlike(1.5, rate), rate, "PCM_16")
    bad = y.copy()
    bad[1000:1010] = np.nan
    files["nan"] = _write(root / "nan.wav", bad, SR, "FLOAT")
    bad = y.copy()
    bad[5000] = np.inf
    files["inf"] = _write(root / "inf.wav", bad, SR, "DOUBLE")
    files["zeros"] = _write(root / "zeros.wav", np.zeros(SR * 2), SR, "PCM_16")
    files["clipped_int"] = _write(root / "clipped_int.wav", np.clip(8 * y, -1, 1), SR, "PCM_16")
    files["clipped_float"] = _write(root / "clipped_float.wav", 8 * y, SR, "FLOAT")  # samples far beyond ±1
    files["short_50ms"] = _write(root / "short_50ms.wav", y[:800], SR, "PCM_16")
    files["one_sample"] = _write(root / "one_sample.wav", y[:1], SR, "PCM_16")
    d = root / "a_directory.wav"
    d.mkdir(exist_ok=True)
    files["directory"] = d
    fifo = root / "fifo.wav"
    if not fifo.exists():
        os.mkfifo(fifo)
    files["fifo"] = fifo
    # A file whose read fails with EIO even for root: /proc/self/mem (offset 0 is never mapped).
    io = root / "io_error.wav"
    if not io.is_symlink():
        io.symlink_to("/proc/self/mem")
    files["io_error"] = io
    files["missing"] = root / "does_not_exist.wav"
    # damaged after a valid header: a WAV cut in half announces more data than it holds; FLAC frames lose sync
    long = speechlike(3.0)
    wav = _write(root / "full3s.wav", long, SR, "PCM_16").read_bytes()
    (root / "truncated_body_wav.wav").write_bytes(wav[:len(wav) // 2])
    files["truncated_body_wav"] = root / "truncated_body_wav.wav"
    flac = _write(root / "full3s.flac", long, SR, "PCM_16").read_bytes()
    (root / "truncated_body_flac.flac").write_bytes(flac[:len(flac) // 2])
    files["truncated_body_flac"] = root / "truncated_body_flac.flac"
    damaged = bytearray(flac)
    for i in range(len(damaged) // 3, len(damaged) // 3 + 2000):
        damaged[i] ^= 0x5A
    (root / "corrupt_flac.flac").write_bytes(bytes(damaged))
    files["corrupt_flac"] = root / "corrupt_flac.flac"
    # a name that is not UTF-8 (Latin-1 bytes from an old archive): Python names it with surrogates
    files["latin1_name"] = _write(root / os.fsdecode(b"caf\xe9_latin1.wav"), y, SR, "PCM_16")
    files["non_ascii"] = _write(root / "données_émotion_日本語" / "voix_ça_va_😀.wav", y, SR, "PCM_16")
    return files


def write_long(path: Path, seconds: float, sr: int = SR, block_seconds: float = 60.0) -> Path:
    """A long FLAC (speech-like bursts and silence) written block by block, in bounded memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    burst = speechlike(2.0, sr, seed=3)
    pattern = np.concatenate([burst, np.zeros(sr), 0.3 * burst, np.zeros(sr // 2)]).astype(np.float32)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16", format="FLAC") as f:
        left = int(seconds * sr)
        block = int(block_seconds * sr)
        reps = np.tile(pattern, block // len(pattern) + 1)[:block]
        while left > 0:
            f.write(reps[:min(block, left)])
            left -= block
    return path

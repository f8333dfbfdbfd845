"""The numpy frontend against librosa 0.11 (the contract's definition), and the streaming frontend against the
offline one."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edge_ser.audio import load_audio
from edge_ser.frontend import FrontendConfig, StreamingLogMel, log_mel, mel_filters

try:
    import librosa
except ImportError:  # a runtime-only install (a robot, the aarch64 run): the parity tests skip, the streaming run
    librosa = None
needs_librosa = pytest.mark.skipif(librosa is None, reason="librosa is the parity reference (the 'dev' extra)")

PARAMS = [
    dict(),  # the seed defaults: n_fft 2048, hop 512, 128 mels, top_db 80
    dict(top_db=None),
    dict(n_fft=512, hop_length=160, n_mels=40, fmin=50.0, fmax=7600.0),
    dict(n_fft=1024, hop_length=256, n_mels=64, fmin=300.0, fmax=4000.0, top_db=60.0),
    dict(n_fft=400, hop_length=100, n_mels=80, top_db=None),
    dict(sample_rate=22050, n_fft=2048, hop_length=441, n_mels=96, fmax=11025.0),
]


def reference(y, sample_rate=16000, n_fft=2048, hop_length=512, n_mels=128, fmin=0.0, fmax=None, top_db=80.0):
    mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                         fmin=fmin, fmax=fmax)
    return librosa.power_to_db(mel, ref=1.0, top_db=top_db)


@needs_librosa
@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("params", PARAMS)
def test_parity_random_audio(params, rng):
    for n in (1, 511, 16000, 40123):
        y = (0.3 * rng.standard_normal(n)).astype(np.float32)
        ours, ref = log_mel(y, **params), reference(y, **params)
        assert ours.shape == ref.shape and ours.dtype == np.float32
        assert np.max(np.abs(ours - ref)) <= 1e-3


@needs_librosa
@pytest.mark.parametrize("params", PARAMS[:5])
def test_parity_real_speech(cremad_clips, params):
    for clip in cremad_clips:
        y = load_audio(clip)
        ours, ref = log_mel(y, **params), reference(y, **params)
        assert ours.shape == ref.shape
        assert np.max(np.abs(ours - ref)) <= 1e-3, clip.name


@needs_librosa
def test_parity_float64_and_quiet_input(rng):
    y = 1e-6 * rng.standard_normal(20000)  # near the -100 dB floor
    assert np.max(np.abs(log_mel(y, top_db=None) - reference(y, top_db=None))) <= 1e-3


@needs_librosa
def test_mel_filters_match_librosa():
    for sr, n_fft, n_mels, fmin, fmax in ((16000, 2048, 128, 0.0, None), (16000, 512, 40, 50.0, 7600.0),
                                          (22050, 1024, 64, 300.0, 8000.0)):
        ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        np.testing.assert_allclose(mel_filters(sr, n_fft, n_mels, fmin, fmax), ref, atol=1e-7)


_TIMING = """
import sys, time, numpy as np, librosa
from edge_ser.audio import load_audio
from edge_ser.frontend import log_mel
y = np.concatenate([load_audio(p) for p in sys.argv[1:]])
y = np.tile(y, int(np.ceil(30 * 16000 / len(y))))
def ref(y):
    return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=512,
                                                              n_mels=128), ref=1.0, top_db=80.0)
log_mel(y), ref(y)
ours, theirs = [], []
for _ in range(15):
    for fn, times in ((log_mel, ours), (ref, theirs)):
        t = time.perf_counter(); fn(y); times.append(time.perf_counter() - t)
print(min(ours), min(theirs))
"""


@needs_librosa
def test_faster_than_librosa(cremad_clips):
    """~30 s of real speech, best of 15 interleaved runs each, in a fresh process with single-threaded BLAS as the
    CLI runs (edge_ser.cli_runtime sets OPENBLAS_NUM_THREADS=1: on a small loaded board, idle OpenBLAS threads
    spinning after a matmul steal the cores the FFT needs, for both implementations)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _TIMING, *map(str, cremad_clips)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ours, ref = map(float, proc.stdout.split())
    assert ours < ref, f"log_mel {ours * 1000:.1f} ms vs librosa {ref * 1000:.1f} ms"


def test_bad_input_and_config():
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        log_mel(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="floating"):
        log_mel(np.zeros(100, dtype=np.int16))
    with pytest.raises(ValueError, match="fmax"):
        log_mel(np.zeros(100, dtype=np.float32), fmax=9000.0)
    with pytest.raises(ValueError, match="not supported"):
        FrontendConfig.from_dict({"mel_scale": "htk"})


# --- streaming ---------------------------------------------------------------------------------------------

def _stream(y, chunk_sizes, **params):
    s = StreamingLogMel(**{k: v for k, v in params.items() if k != "top_db"}, top_db=None)
    parts, i, k = [], 0, 0
    while i < len(y):
        n = chunk_sizes[k % len(chunk_sizes)]
        parts.append(s.push(y[i:i + n]))
        i += n
        k += 1
    parts.append(s.flush())
    return np.concatenate(parts, axis=1), s


@pytest.mark.parametrize("params", [dict(), dict(n_fft=512, hop_length=160, n_mels=40, fmin=50.0, fmax=7600.0),
                                    dict(n_fft=400, hop_length=100, n_mels=80)])
def test_streaming_equals_offline_random_chunks(params, rng):
    y = (0.2 * rng.standard_normal(23456)).astype(np.float32)
    offline = log_mel(y, **params, top_db=None)
    for sizes in ([1], [7, 1, 300], list(rng.integers(1, 5000, 20)), [len(y)], [512]):
        streamed, s = _stream(y, [int(v) for v in sizes], **params)
        assert streamed.shape == offline.shape
        assert np.max(np.abs(streamed - offline)) <= 1e-4
        assert s.frames_emitted == offline.shape[1]  # each frame emitted once


def test_streaming_one_sample_chunks_real_speech(cremad_clips):
    y = load_audio(cremad_clips[0])[:12000]
    offline = log_mel(y, top_db=None)
    streamed, _ = _stream(y, [1])
    assert np.max(np.abs(streamed - offline)) <= 1e-4


def test_streaming_computes_each_frame_once(monkeypatch, rng):
    import edge_ser.frontend as fe
    computed = []
    original = fe._mel_power_of_frames

    def counting(frames, cfg):
        computed.append(frames.shape[0])
        return original(frames, cfg)

    monkeypatch.setattr(fe, "_mel_power_of_frames", counting)
    y = (0.1 * rng.standard_normal(30000)).astype(np.float32)
    streamed, s = _stream(y, [1, 13, 700, 3])
    assert sum(computed) == streamed.shape[1] == 1 + len(y) // 512


def test_streaming_frames_available_as_soon_as_heard():
    """Frame t (centred on sample t*hop) comes out once sample t*hop + n_fft/2 has arrived, not later."""
    s = StreamingLogMel()
    assert s.push(np.zeros(1023, dtype=np.float32)).shape[1] == 0
    assert s.push(np.zeros(1, dtype=np.float32)).shape[1] == 1  # frame 0 needs samples up to 1024
    assert s.push(np.zeros(511, dtype=np.float32)).shape[1] == 0
    assert s.push(np.zeros(1, dtype=np.float32)).shape[1] == 1

"""Frontend: edge_ser.frontend against librosa on a whole clip, against its own floor (the bare real FFTs of the
same frames), and a streaming update of one hop against recomputing the whole window.

librosa is timed in this process (the version installed here, 0.11 with the dev extra) and in every other
interpreter named by ``EDGE_SER_BENCH_LIBROSA_PYTHONS`` (comma-separated; e.g. a venv with librosa 1.0), on the same
samples; versions that no interpreter provides are recorded as not measured, with the reason."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

import numpy as np

from edge_ser.frontend import BLOCK_FRAMES, FrontendConfig, StreamingLogMel, log_mel

from .timing import compare, ratio


def _frames(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    pad = cfg.n_fft // 2
    padded = np.zeros(len(y) + 2 * pad, dtype=np.float64)
    padded[pad:pad + len(y)] = y
    n = cfg.frames_for(len(y))
    return np.lib.stride_tricks.as_strided(padded, shape=(n, cfg.n_fft),
                                           strides=(padded.strides[0] * cfg.hop_length, padded.strides[0]))


def whole_clip(clip: np.ndarray, cfg: FrontendConfig, label: str, rounds: int = 7) -> dict:
    import librosa

    kw = dict(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
              fmin=cfg.fmin, fmax=cfg.fmax)
    frames = _frames(clip, cfg)
    n = frames.shape[0]

    def ours():
        return log_mel(clip, top_db=80.0, **kw)

    def theirs():
        return librosa.power_to_db(librosa.feature.melspectrogram(
            y=clip, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax), ref=1.0, top_db=80.0)

    def rfft_blocks():  # the floor: numpy's real FFT of the same frames, in cache-sized blocks
        for s in range(0, n, BLOCK_FRAMES):
            np.fft.rfft(frames[s:s + BLOCK_FRAMES], axis=-1)

    def rfft_whole():
        np.fft.rfft(frames, axis=-1)

    t = compare({"edge_ser": ours, "librosa": theirs, "rfft_blocks": rfft_blocks, "rfft_whole": rfft_whole},
                rounds=rounds)
    floor_key = min(("rfft_blocks", "rfft_whole"), key=lambda k: t[k]["min_ms"])
    diff = float(np.abs(ours().astype(np.float64) - theirs()).max())
    versions = {_short(librosa.__version__): ratio(t["librosa"], t["edge_ser"])}
    others = {}
    for version, timing in other_librosas(clip, cfg, rounds).items():
        others[version] = timing
        versions[version] = ratio(timing, t["edge_ser"]) if "min_ms" in timing else None
    return {"clip": label, "seconds": round(len(clip) / cfg.sample_rate, 3), "frames": n, "timings": t,
            "librosa_version": librosa.__version__, "other_librosa": others,
            "speedup_vs_librosa_versions": versions,
            "floor": floor_key, "speedup_vs_librosa": ratio(t["librosa"], t["edge_ser"]),
            "speedup_vs_librosa_median": ratio(t["librosa"], t["edge_ser"], "median_ms"),
            "x_of_floor": ratio(t["edge_ser"], t[floor_key]),
            "x_of_floor_median": ratio(t["edge_ser"], t[floor_key], "median_ms"),
            "max_abs_diff_db_vs_librosa": diff}


WANTED_LIBROSA = ("0.11", "1.0")  # the versions the harness compares against
PYTHONS_ENV = "EDGE_SER_BENCH_LIBROSA_PYTHONS"

_TIMER = """
import json, sys, time, statistics
import numpy as np, librosa
y = np.load(sys.argv[1]); kw = json.loads(sys.argv[2]); rounds = int(sys.argv[3])
f = lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=y, **kw), ref=1.0, top_db=80.0)
f(); s = []
for _ in range(rounds):
    t0 = time.perf_counter()
    while True:
        a = time.perf_counter(); f(); s.append(time.perf_counter() - a)
        if time.perf_counter() - t0 >= 0.05:
            break
print(json.dumps({"version": librosa.__version__, "min_ms": round(1000 * min(s), 5),
                  "median_ms": round(1000 * statistics.median(s), 5), "calls": len(s)}))
"""


def _short(version: str) -> str:
    return ".".join(version.split(".")[:2])


def other_librosas(clip: np.ndarray, cfg: FrontendConfig, rounds: int) -> dict:
    """librosa timed in the interpreters of ``$EDGE_SER_BENCH_LIBROSA_PYTHONS`` (not interleaved with ours: a
    separate process), and a 'not measured' entry for each wanted version none of them has."""
    import librosa
    out: dict = {}
    kw = dict(sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmin=cfg.fmin,
              fmax=cfg.fmax)
    pythons = [p for p in os.environ.get(PYTHONS_ENV, "").split(",") if p.strip()]
    if pythons:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "clip.npy")
            np.save(path, clip)
            for py in pythons:
                try:
                    r = subprocess.run([py.strip(), "-c", _TIMER, path, json.dumps(kw), str(rounds)],
                                       capture_output=True, text=True, timeout=600, env={**os.environ,
                                                                                        "OMP_NUM_THREADS": "1"})
                    row = json.loads(r.stdout.strip().splitlines()[-1])
                    out[_short(row["version"])] = dict(row, python=py.strip(), protocol="separate process")
                except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
                    out[f"python {py.strip()}"] = {"error": str(exc)[:200]}
    for version in WANTED_LIBROSA:
        if version != _short(librosa.__version__) and version not in out:
            out[version] = {"not_measured": f"no interpreter with librosa {version} here (set {PYTHONS_ENV}); "
                                            f"the package index reachable from this machine serves up to "
                                            f"librosa {librosa.__version__}"}
    return out


def streaming(cfg: FrontendConfig, window_seconds: float, hop_seconds: float, signal: np.ndarray,
              rounds: int = 7) -> dict:
    """One hop's streaming update (``StreamingLogMel.push`` of ``hop_seconds`` of audio, steady state) against
    recomputing the log-mel of the whole window from its samples (edge_ser and librosa)."""
    import librosa

    hop = int(round(hop_seconds * cfg.sample_rate))
    win = int(round(window_seconds * cfg.sample_rate))
    state = {"fe": None, "pos": 0}

    def push():
        if state["fe"] is None or state["pos"] + hop > len(signal):
            state["fe"] = StreamingLogMel(config=FrontendConfig(cfg.sample_rate, cfg.n_fft, cfg.hop_length,
                                                                cfg.n_mels, cfg.fmin, cfg.fmax, None))
            state["fe"].push(signal[:win])
            state["pos"] = win
        state["fe"].push(signal[state["pos"]:state["pos"] + hop])
        state["pos"] += hop

    window = signal[:win]
    kw = dict(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
              fmin=cfg.fmin, fmax=cfg.fmax)

    def recompute():
        return log_mel(window, top_db=None, **kw)

    def recompute_librosa():
        return librosa.power_to_db(librosa.feature.melspectrogram(
            y=window, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.fmin, fmax=cfg.fmax), ref=1.0, top_db=None)

    t = compare({"stream_push_hop": push, "recompute_window": recompute, "recompute_window_librosa":
                 recompute_librosa}, rounds=rounds)
    frames_window = win // cfg.hop_length + 1   # a centred window's frames
    frames_hop = hop / cfg.hop_length          # new frames per hop
    return {"window_seconds": window_seconds, "hop_seconds": hop_seconds, "timings": t,
            # recomputing costs the window's frames, an update the hop's: no update can be cheaper than this
            "frame_count_bound_x": round(frames_window / frames_hop, 3),
            "update_cheaper_x": ratio(t["recompute_window"], t["stream_push_hop"]),
            "update_cheaper_x_median": ratio(t["recompute_window"], t["stream_push_hop"], "median_ms"),
            "update_cheaper_than_librosa_x": ratio(t["recompute_window_librosa"], t["stream_push_hop"])}

"""Frontend: edge_ser.frontend against librosa on a whole clip, against its own floor (the bare real FFTs of the
same frames), and a streaming update of one hop against recomputing the whole window."""
from __future__ import annotations

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
    return {"clip": label, "seconds": round(len(clip) / cfg.sample_rate, 3), "frames": n, "timings": t,
            "floor": floor_key, "speedup_vs_librosa": ratio(t["librosa"], t["edge_ser"]),
            "speedup_vs_librosa_median": ratio(t["librosa"], t["edge_ser"], "median_ms"),
            "x_of_floor": ratio(t["edge_ser"], t[floor_key]),
            "x_of_floor_median": ratio(t["edge_ser"], t[floor_key], "median_ms"),
            "max_abs_diff_db_vs_librosa": diff}


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
    return {"window_seconds": window_seconds, "hop_seconds": hop_seconds, "timings": t,
            "update_cheaper_x": ratio(t["recompute_window"], t["stream_push_hop"]),
            "update_cheaper_x_median": ratio(t["recompute_window"], t["stream_push_hop"], "median_ms"),
            "update_cheaper_than_librosa_x": ratio(t["recompute_window_librosa"], t["stream_push_hop"])}

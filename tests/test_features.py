"""edge_ser.features: the windowing rule and the model inputs computed from log-mel windows."""
import numpy as np
import pytest

from edge_ser import features
from edge_ser.features import SILENCE_DB, clip_windows, fit_frames


def _db(t, n_mels=8):
    return np.arange(n_mels * t, dtype=np.float32).reshape(n_mels, t)


def test_short_clip_is_one_centre_padded_window():
    db = _db(5)
    w = clip_windows(db, 9, 3)
    assert w.shape == (1, 8, 9)
    np.testing.assert_array_equal(w[0, :, 2:7], db)
    assert np.all(w[0, :, :2] == SILENCE_DB) and np.all(w[0, :, 7:] == SILENCE_DB)


def test_exact_length_is_one_window():
    db = _db(9)
    w = clip_windows(db, 9, 3)
    assert w.shape == (1, 8, 9)
    np.testing.assert_array_equal(w[0], db)


def test_windows_hop_and_cover_the_end():
    db = _db(20)
    w = clip_windows(db, 9, 4)
    # starts 0, 4, 8 (ends at 17) then one window aligned to the end (start 11)
    assert w.shape == (4, 8, 9)
    for k, s in enumerate([0, 4, 8, 11]):
        np.testing.assert_array_equal(w[k], db[:, s:s + 9])


def test_no_extra_window_when_hops_land_on_the_end():
    db = _db(17)
    w = clip_windows(db, 9, 4)
    assert w.shape == (3, 8, 9)
    np.testing.assert_array_equal(w[-1], db[:, 8:17])


@pytest.mark.parametrize("bad", [(0, 1), (5, 0), (-1, 2)])
def test_bad_sizes_raise(bad):
    with pytest.raises(ValueError):
        clip_windows(_db(10), *bad)


def test_fit_frames_centre_crop():
    db = _db(11)
    np.testing.assert_array_equal(fit_frames(db, 5), db[:, 3:8])


def test_fit_frames_fills_a_short_clip_by_its_pad():
    db = _db(3)
    np.testing.assert_array_equal(fit_frames(db, 8, "repeat"), db[:, [0, 1, 2, 0, 1, 2, 0, 1]])
    silent = fit_frames(db, 8)  # the default: centred in silence (models trained before input.pad)
    np.testing.assert_array_equal(silent[:, 2:5], db)
    assert (silent[:, :2] == SILENCE_DB).all() and (silent[:, 5:] == SILENCE_DB).all()
    assert (fit_frames(db[:, :0], 4, "repeat") == SILENCE_DB).all()  # no frames: silence either way
    np.testing.assert_array_equal(fit_frames(_db(11), 5, "repeat"), _db(11)[:, 3:8])  # a long clip: the same crop
    np.testing.assert_array_equal(fit_frames(db, 8, "stretch"), db[:, [0, 0, 0, 1, 1, 1, 2, 2]])
    assert (fit_frames(db[:, :0], 4, "stretch") == SILENCE_DB).all()
    with pytest.raises(ValueError, match="pad"):
        fit_frames(db, 8, "zeros")
    with pytest.raises(ValueError, match="pad"):
        clip_windows(db, 8, 2, "zeros")


def test_stretch_gives_every_frame_an_equal_share_in_order():
    """Each frame fills n // t or n // t + 1 slots, in the clip's order (with repeat, the first frames fill the rest
    of the window once more than the others)."""
    for t in (1, 7, 31, 59, 77):
        db = _db(t)
        out = fit_frames(db, 78, "stretch")
        idx = np.array([int(np.flatnonzero((db == out[:, [i]]).all(axis=0))[0]) for i in range(78)])
        assert (np.diff(idx) >= 0).all() and idx[0] == 0 and idx[-1] == t - 1
        counts = np.bincount(idx, minlength=t)
        assert counts.min() >= 78 // t and counts.max() <= 78 // t + 1


def test_compute_every_feature_is_finite_and_shaped():
    rng = np.random.default_rng(0)
    db = rng.normal(-40, 10, (128, 80)).astype(np.float32)
    cases = [("log_mel_image", {"n_frames": 63}), ("log_mel_stats", {"n_frames": 63}),
             ("band_stats", {"n_frames": 63}), ("band_stats", {"n_frames": 63, "pitch": True, "band_norm": True}),
             ("log_mel_image", {"n_frames": 63, "pool_bands": 2, "pool_frames": 2, "norm": "band"})]
    for name, params in cases:
        x = features.compute(db, name, params)
        assert np.all(np.isfinite(x))
        assert x.dtype == np.float32


def test_pooled_image_shape_and_gain_invariance():
    rng = np.random.default_rng(1)
    db = rng.normal(-40, 10, (128, 80)).astype(np.float32)
    a = features.log_mel_image(db, 79, pool_bands=2, pool_frames=2)
    assert a.shape == (64, 39, 1)
    b = features.log_mel_image(db + 12.0, 79, pool_bands=2, pool_frames=2)  # +12 dB gain
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_band_stats_ignore_gain_and_silence_padding():
    from edge_ser.frontend import log_mel
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    y = (np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32) * 0.1
    y += np.random.default_rng(0).normal(0, 1e-3, len(y)).astype(np.float32)
    f1 = features.band_stats(log_mel(y, top_db=None), 79)
    f2 = features.band_stats(log_mel(4 * y, top_db=None), 79)  # +12 dB
    np.testing.assert_allclose(f1, f2, rtol=1e-3, atol=1e-2)


def test_pitch_proxy_tracks_f0():
    from edge_ser.frontend import log_mel
    sr = 16000
    t = np.arange(int(2.5 * sr)) / sr
    lags = []
    for f0 in (110.0, 220.0):
        y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 10)).astype(np.float32)
        lags.append(features.band_stats(log_mel(y, top_db=None), 79, pitch=True)[-6])
    assert abs(lags[1] / lags[0] - 2.0) < 0.15  # an octave doubles the harmonic spacing


def test_compute_unknown_features_raises():
    with pytest.raises(ValueError):
        features.compute(_db(4), "nope", {})


def test_band_stats_cepstra_equal_scipy_dct():
    """band_stats' DCT is a numpy matrix product (no scipy.fft import at run time) equal to scipy's ortho DCT-II."""
    dct = pytest.importorskip("scipy.fft", reason="scipy is the reference (not a runtime dependency)").dct

    from edge_ser.features import _dct_matrix
    x = np.random.default_rng(3).normal(size=(32, 40))
    np.testing.assert_allclose(_dct_matrix(32, 13) @ x, dct(x, type=2, axis=0, norm="ortho")[:13], atol=1e-12)


@pytest.mark.parametrize("t", [0, 1, 5, 78, 79, 80, 94, 95, 200, 1000])
def test_window_cutter_fed_in_pieces_cuts_the_clip_windows(t):
    """Files read block by block and whole clips share one windowing rule: every hop from the start, one more
    aligned to the end, one padded window for a short clip."""
    from edge_ser import features
    rng = np.random.default_rng(t)
    db = rng.standard_normal((8, t)).astype(np.float32)
    n, hop = 79, 16
    starts = list(range(0, t - n + 1, hop)) if t > n else []
    if t > n and starts[-1] + n < t:
        starts.append(t - n)
    pad = ("silence", "repeat", "stretch")[t % 3]
    expected = np.stack([features.fit_frames(db, n, pad)] if t <= n else [db[:, s:s + n] for s in starts])
    assert np.array_equal(features.clip_windows(db, n, hop, pad), expected)
    for piece in (1, 7, 16, 300):
        cutter, out = features.WindowCutter(n, hop, pad), []
        for s in range(0, max(t, 1), piece):
            out += cutter.push(db[:, s:s + piece])
        out += cutter.finish()
        assert np.array_equal(np.stack(out), expected), piece
        assert cutter.held.shape[1] <= n + piece  # bounded: one window plus one push


# --- seed 001 / 002 features ---------------------------------------------------------------------------------------

def _speechlike(seconds=1.5, sr=16000, seed=0):
    """A voiced, amplitude-modulated harmonic signal with a noisy part (real clips are in test_real_features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 * (1 + 0.1 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.3 + 0.7 * np.abs(np.sin(2 * np.pi * 2.1 * t)))
    return (0.1 * y + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _clip_audio():
    """One real CREMA-D clip and one RAVDESS clip when ../shared/data is present, else generated signals."""
    import os
    from pathlib import Path
    from edge_ser.audio import load_audio
    root = Path(os.environ.get("EDGE_SER_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    found = sorted((root / "cremad" / "AudioWAV").glob("1001_DFA_*.flac"))[:1] + sorted(
        (root / "ravdess" / "Actor_01").glob("*.flac"))[:1]
    return [load_audio(str(p), 16000).astype(np.float32) for p in found] or [_speechlike(), _speechlike(seed=1)]


MFCC_ATOL = 2e-3  # dB-scale coefficients of size ~100-500; float32 rounding of the log-mel
DELTA_ATOL = 5e-4


def test_mfcc_and_deltas_equal_librosa():
    librosa = pytest.importorskip("librosa")
    from edge_ser.frontend import log_mel
    for y in _clip_audio():
        db = log_mel(y, top_db=None)
        ours = features.mfcc(db, 13)  # the floor (top_db 80) over the whole clip, as librosa.feature.mfcc(y=)
        ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13)
        np.testing.assert_allclose(ours, ref, atol=MFCC_ATOL, rtol=0)
        for order in (1, 2):
            np.testing.assert_allclose(features.delta(ours, order=order), librosa.feature.delta(ref, order=order),
                                       atol=DELTA_ATOL, rtol=0)
        x = features.mfcc_deltas(db, db.shape[1])
        assert x.shape == (db.shape[1], 39)
        np.testing.assert_allclose(x[:, :13].T, ref, atol=MFCC_ATOL, rtol=0)
        np.testing.assert_allclose(x[:, 13:26].T, librosa.feature.delta(ref), atol=DELTA_ATOL, rtol=0)


def test_delta_widths_and_short_windows():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(3)
    c = rng.normal(size=(5, 30))
    for width in (3, 5, 9):
        np.testing.assert_allclose(features.delta(c, width), librosa.feature.delta(c, width=width), atol=1e-5)
    np.testing.assert_allclose(features.delta(c[:, :6]), librosa.feature.delta(c[:, :6], width=5), atol=1e-5)
    assert np.all(features.delta(c[:, :2]) == 0)
    with pytest.raises(ValueError):
        features.delta(c, width=4)


# measured on CREMA-D and RAVDESS clips (docs/kinds.md): speech frames within 40 dB of the loudest
RMS_RTOL, CENTROID_RTOL, BANDWIDTH_RTOL, ZCR_RTOL = 1e-3, 0.05, 0.05, 0.35


def test_spectral_descriptors_track_librosa():
    librosa = pytest.importorskip("librosa")
    from edge_ser.frontend import log_mel
    for y in _clip_audio():
        d = features.spectral_descriptors(log_mel(y, top_db=None))
        S = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
        ref = {"rms": librosa.feature.rms(S=S, frame_length=2048)[0],
               "centroid": librosa.feature.spectral_centroid(S=S, sr=16000)[0],
               "bandwidth": librosa.feature.spectral_bandwidth(S=S, sr=16000)[0],
               "zcr": librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0]}
        speech = ref["rms"] > ref["rms"].max() / 100
        for key, tol in (("rms", RMS_RTOL), ("centroid", CENTROID_RTOL), ("bandwidth", BANDWIDTH_RTOL),
                         ("zcr", ZCR_RTOL)):
            err = np.median(np.abs(d[key][speech] - ref[key][speech]) / ref[key][speech])
            assert err < tol, (key, err)
        assert np.corrcoef(d["centroid"][speech], ref["centroid"][speech])[0, 1] > 0.99
        assert np.corrcoef(d["zcr"][speech], ref["zcr"][speech])[0, 1] > 0.6


def test_zcr_estimate_exact_for_tones_and_white_noise():
    from edge_ser.frontend import log_mel
    t = np.arange(16000) / 16000
    for f in (300.0, 1000.0, 3000.0):
        z = features.spectral_descriptors(log_mel(np.sin(2 * np.pi * f * t).astype(np.float32), top_db=None))["zcr"]
        assert abs(np.median(z) - 2 * f / 16000) < 0.1 * 2 * f / 16000
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    z = features.spectral_descriptors(log_mel(noise, top_db=None))["zcr"]
    assert abs(np.median(z) - 0.5) < 0.03


def test_window_stats_estimate_the_signals_variance_and_kurtosis():
    """Gaussian noise of slowly varying power: the samples' kurtosis is 3 E[s^2]/E[s]^2, which the frame powers
    give without the waveform."""
    from edge_ser.frontend import log_mel
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    y = (rng.standard_normal(len(t)) * (0.05 + 0.2 * (np.sin(2 * np.pi * 0.7 * t) > 0))).astype(np.float32)
    db = log_mel(y, top_db=None)
    s = features.window_stats(db, db.shape[1])
    assert s.shape == (len(features.WINDOW_STATS),) and np.all(np.isfinite(s))
    var_db, kurt = s[features.WINDOW_STATS.index("signal_var_db")], s[features.WINDOW_STATS.index("signal_kurtosis")]
    z = (y - y.mean()) / y.std()
    assert abs(var_db - 10 * np.log10(y.var())) < 0.3
    assert abs(kurt - ((z ** 4).mean() - 3)) < 0.25
    # moments of the log-mel values: scipy.stats' biased estimators
    stats = pytest.importorskip("scipy.stats")
    v = features._floor(db, 80.0).ravel().astype(np.float64)
    np.testing.assert_allclose(s[:4], [v.mean(), v.var(), stats.skew(v), stats.kurtosis(v)], rtol=1e-4, atol=1e-4)


def test_new_features_shapes_and_concat():
    from edge_ser.frontend import log_mel
    db = log_mel(_speechlike(), top_db=None)
    n = 40
    assert features.compute(db, "mfcc_deltas", {"n_frames": n}).shape == (n, 39)
    fd = features.compute(db, "frame_descriptors", {"n_frames": n, "cmvn": True})
    assert fd.shape == (n, 43) and np.all(np.isfinite(fd))
    np.testing.assert_allclose(fd.mean(axis=0), 0, atol=1e-4)
    parts = [{"features": "frame_descriptors", "params": {}}, {"features": "window_stats", "params": {}}]
    flat = features.compute(db, "concat", {"n_frames": n, "parts": parts})
    assert flat.shape == (n * 43 + len(features.WINDOW_STATS),) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat[:n * 43], features.frame_descriptors(db, n).ravel())
    silent = np.full((128, n), features.SILENCE_DB, np.float32)  # the engine's warm-up window
    assert np.all(np.isfinite(features.compute(silent, "concat", {"n_frames": n, "parts": parts})))


def test_level_free_concat_does_not_depend_on_the_gain():
    """Fusion's input with ``level_free``: the window's power level comes off first, so the same window 20 dB
    quieter gives the same vector (also when it is shorter than the window and padded); without it the level
    statistics move."""
    from edge_ser.frontend import log_mel
    db = log_mel(_speechlike(), top_db=None)
    parts = [{"features": "frame_descriptors", "params": {}}, {"features": "window_stats", "params": {}},
             {"features": "gender", "params": {}}]
    for n in (db.shape[1], db.shape[1] + 20):
        free = {"n_frames": n, "parts": parts, "level_free": True}
        a, b = features.compute(db, "concat", free), features.compute(db - 20, "concat", free)
        np.testing.assert_allclose(a, b, atol=2e-3)
        fixed = {"n_frames": n, "parts": parts}
        assert np.abs(features.compute(db, "concat", fixed) - features.compute(db - 20, "concat", fixed)).max() > 5
    level = features.power_level_db(db)
    assert abs(features.power_level_db(db - 20) - (level - 20)) < 1e-5
    assert level == pytest.approx(10 * np.log10(np.mean(10 ** (db.astype(np.float64) / 10))), abs=1e-9)

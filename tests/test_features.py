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
    expected = np.stack([features.fit_frames(db, n)] if t <= n else [db[:, s:s + n] for s in starts])
    assert np.array_equal(features.clip_windows(db, n, hop), expected)
    for piece in (1, 7, 16, 300):
        cutter, out = features.WindowCutter(n, hop), []
        for s in range(0, max(t, 1), piece):
            out += cutter.push(db[:, s:s + piece])
        out += cutter.finish()
        assert np.array_equal(np.stack(out), expected), piece
        assert cutter.held.shape[1] <= n + piece  # bounded: one window plus one push

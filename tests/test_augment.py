"""edge_ser_train.augment: AWGN hits the target SNR, every augmentation is seeded and reproducible."""
import numpy as np
import pytest

pytest.importorskip("edge_ser_train", reason="needs the training distribution (edge-ser-train)")

from edge_ser_train import augment  # noqa: E402


def _speechlike(seconds=1.0, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.mark.parametrize("snr", [5.0, 20.0, 35.0])
def test_awgn_snr_is_measured_at_target(snr):
    x = _speechlike()
    y = augment.add_noise(x, snr, np.random.default_rng(0))
    noise = y.astype(np.float64) - x
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(noise ** 2))
    assert abs(measured - snr) < 0.05


def test_awgn_of_silence_stays_silent():
    assert not augment.add_noise(np.zeros(100, np.float32), 20.0, np.random.default_rng(0)).any()


@pytest.mark.parametrize("kind", augment.KINDS)
def test_seeded_reproducible_and_changed(kind):
    x = _speechlike(0.5)
    a = augment.apply(x, kind, seed=7)
    b = augment.apply(x, kind, seed=7)
    c = augment.apply(x, kind, seed=8)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and np.all(np.isfinite(a))
    assert not (a.shape == x.shape and np.allclose(a, x))
    if kind != "pitch":  # pitch draws a step too; a different seed gives a different copy
        assert not (a.shape == c.shape and np.array_equal(a, c))


def test_lowpass_removes_high_frequencies():
    sr = 16000
    t = np.arange(sr) / sr
    x = (np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 7000 * t)).astype(np.float32)
    y = augment.low_pass(x, 3000.0)
    spec = np.abs(np.fft.rfft(y))
    assert spec[7000] < 0.01 * spec[300]


def test_time_stretch_changes_length():
    x = _speechlike(1.0)
    assert len(augment.time_stretch(x, 1.25)) < len(x) < len(augment.time_stretch(x, 0.8))


def test_variant_seed_depends_on_seed_and_key():
    assert augment.variant_seed(0, "a") == augment.variant_seed(0, "a")
    assert augment.variant_seed(0, "a") != augment.variant_seed(1, "a")
    assert augment.variant_seed(0, "a") != augment.variant_seed(0, "b")


def test_unknown_kind():
    with pytest.raises(ValueError):
        augment.apply(_speechlike(0.1), "reverb", 0)

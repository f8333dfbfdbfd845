"""edge_ser_train.augment: AWGN hits the target SNR, every augmentation is seeded and reproducible; room
augmentation (RIRs at their RT60, coloured noise, babble of other training speakers only, microphone, Opus)."""
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


def _others():
    t = np.arange(8000) / 16000
    return [(0.2 * np.sin(2 * np.pi * f * t)).astype(np.float32) for f in (110, 150, 210, 260, 320, 400)]


@pytest.mark.parametrize("kind", augment.KINDS)
def test_seeded_reproducible_and_changed(kind):
    x = _speechlike(0.5)
    others = _others() if kind in augment.NEEDS_OTHERS else None
    a = augment.apply(x, kind, seed=7, others=others)
    b = augment.apply(x, kind, seed=7, others=others)
    c = augment.apply(x, kind, seed=8, others=others)
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
        augment.apply(_speechlike(0.1), "nope", 0)


@pytest.mark.parametrize("colour,slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0), ("blue", 1.0)])
def test_noise_colours_have_their_spectral_slope(colour, slope):
    n = augment.coloured_noise(2 ** 16, colour, np.random.default_rng(0))
    f = np.fft.rfftfreq(len(n), 1 / 16000)
    power = np.abs(np.fft.rfft(n)) ** 2
    band = (f > 100) & (f < 6000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(power[band] + 1e-12), 1)[0]
    assert abs(fitted - slope) < 0.15 and abs(np.std(n) - 1) < 1e-3


def test_mix_at_snr():
    x = _speechlike()
    noise = augment.coloured_noise(len(x), "pink", np.random.default_rng(1))
    y = augment.mix_at_snr(x, noise, 7.0)
    d = y.astype(np.float64) - x
    assert abs(10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(d ** 2)) - 7.0) < 0.05


@pytest.mark.parametrize("rt60", [0.3, 0.9])
def test_synthetic_rir_decays_at_its_rt60(rt60):
    """Schroeder backward integration of the RIR: the -5 to -25 dB decay extrapolated to -60 dB is within 25% of
    the requested RT60; the same rng gives the same RIR."""
    h = augment.synthetic_rir(np.random.default_rng(3), rt60).astype(np.float64)
    assert np.array_equal(h, augment.synthetic_rir(np.random.default_rng(3), rt60))
    edc = np.cumsum((h ** 2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    t5, t25 = np.argmax(db <= -5), np.argmax(db <= -25)
    measured = 3 * (t25 - t5) / 16000
    assert abs(measured - rt60) / rt60 < 0.25


def test_reverb_keeps_length_and_level():
    x = _speechlike()
    y = augment.reverberate(x, augment.synthetic_rir(np.random.default_rng(0), 0.6))
    assert len(y) == len(x) and np.isclose(augment.signal_power(y), augment.signal_power(x), rtol=1e-3)


def test_microphone_band_limits_and_gain():
    sr = 16000
    t = np.arange(sr) / sr
    x = 0.1 * (np.sin(2 * np.pi * 30 * t) + np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 7500 * t))
    from edge_ser_train.augment import AugmentConfig
    cfg = AugmentConfig(highpass_hz=(200.0, 200.0), band_lowpass_hz=(4000.0, 4000.0), gain_db=(6.0, 6.0))
    y = augment.microphone(x.astype(np.float32), np.random.default_rng(0), cfg)
    spec = np.abs(np.fft.rfft(y))
    assert spec[30] < 0.05 * spec[1000] and spec[7500] < 0.05 * spec[1000]
    assert np.isclose(spec[1000] / np.abs(np.fft.rfft(x))[1000], 2.0, rtol=0.05)  # +6 dB


def test_opus_roundtrip_same_length_and_close():
    x = _speechlike()
    y = augment.opus_roundtrip(x, 0.5)
    assert len(y) == len(x) and not np.array_equal(x, y)
    assert np.corrcoef(x[2000:-2000], y[2000:-2000])[0, 1] > 0.9


def test_babble_needs_other_speakers():
    with pytest.raises(ValueError, match="other training speakers"):
        augment.apply(_speechlike(0.2), "babble", 0)


def test_pooled_variants_draw_only_other_training_speakers(tmp_path):
    """A training part's babble/room copies name its pool: talkers come from that part only, never the clip's own
    speaker; the same pool and seed give the same copy, another training part another variant."""
    import soundfile as sf
    from edge_ser_train.corpora import Clip
    from edge_ser_train.dataset import LogMelCache
    clips = []
    for spk in ("a", "b", "c", "d"):
        path = tmp_path / f"{spk}.wav"
        sf.write(str(path), _speechlike(0.5) * 0.5 * (1 + "abcd".index(spk)), 16000)
        clips.append(Clip(str(path), "x", f"x:{spk}", None, "sad", None))
    cache = LogMelCache(tmp_path / "cache")
    pid = cache.register_pool(clips[:3])  # the training part: a, b, c (d is a test speaker)
    seed = 5
    others = cache._others(clips[0], f"babble@{pid}", seed)
    assert len(others) == 2  # b and c: not a itself, never d
    levels = sorted(round(float(np.sqrt(np.mean(o ** 2))), 3) for o in others)
    ref = [round(float(np.sqrt(np.mean((_speechlike(0.5) * 0.5 * k) ** 2))), 3) for k in (2, 3)]
    assert np.allclose(levels, ref, atol=2e-3)
    a = cache.get(clips[0], f"babble@{pid}")
    cache2 = LogMelCache(tmp_path / "cache2")
    cache2.register_pool(clips[:3])
    assert np.array_equal(a, cache2.get(clips[0], f"babble@{pid}"))
    assert cache.register_pool(clips[1:]) != pid

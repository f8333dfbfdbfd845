"""Decoding and resampling: formats, sample types, channel counts, rates -> mono float32 16 kHz."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from edge_ser.audio import StreamResampler, load_audio, resample
from edge_ser.errors import AudioError


def sine(freq, rate, seconds=1.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def peak_hz(y, rate=16000):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / rate)[np.argmax(spec)]


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("WAV", "DOUBLE"),
                                         ("FLAC", "PCM_16"), ("FLAC", "PCM_24")])
def test_formats_and_sample_types(tmp_path, fmt, subtype):
    y = sine(440, 16000)
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, y, 16000, format=fmt, subtype=subtype)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) == 16000
    tol = {"PCM_16": 1e-4, "PCM_24": 1e-6}.get(subtype, 1e-7)
    assert np.max(np.abs(out - y)) < tol


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 96000])
def test_rates_resampled_to_16k(tmp_path, rate):
    seconds = 1.5
    y = sine(1000.0, rate, seconds)
    sf.write(tmp_path / "x.wav", y, rate, subtype="PCM_16")
    out = load_audio(tmp_path / "x.wav")
    assert len(out) == round(seconds * 16000)
    assert abs(peak_hz(out) - 1000.0) < 2.0  # frequency preserved
    mid = out[2000:-2000]  # away from the filter's edges
    assert np.sqrt(np.mean(mid ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)  # level preserved


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_downmix(tmp_path, channels):
    rng = np.random.default_rng(0)
    data = rng.uniform(-0.5, 0.5, (48000, channels))
    sf.write(tmp_path / "x.wav", data, 48000, subtype="FLOAT")
    out = load_audio(tmp_path / "x.wav")
    expected = resample(data.mean(axis=1), 48000)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert len(out) == 16000


def test_aliasing_suppressed(tmp_path):
    """A 12 kHz tone at 48 kHz is above the 8 kHz Nyquist of 16 kHz: it must vanish, not fold to 4 kHz."""
    y = sine(12000.0, 48000, 1.0, amp=0.9)
    sf.write(tmp_path / "x.wav", y, 48000, subtype="FLOAT")
    out = load_audio(tmp_path / "x.wav")
    rms = np.sqrt(np.mean(out[1000:-1000] ** 2))
    assert 20 * np.log10(rms + 1e-12) < -80  # more than 77 dB below the input tone (-3.9 dBFS rms)


def test_passband_near_nyquist_kept():
    y = sine(7000.0, 44100, 1.0)
    out = resample(y, 44100)
    assert abs(peak_hz(out) - 7000.0) < 2.0
    assert np.sqrt(np.mean(out[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_stream_resampler_equals_offline(rng):
    y = rng.uniform(-0.5, 0.5, 44100 * 2).astype(np.float32)
    r = StreamResampler(44100)
    parts, i = [], 0
    while i < len(y):
        n = int(rng.integers(1, 5000))
        parts.append(r(y[i:i + n]))
        i += n
    parts.append(r.flush())
    streamed = np.concatenate(parts)
    offline = resample(y, 44100)
    assert len(streamed) == len(offline)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)


def test_16k_is_untouched(tmp_path):
    y = sine(300, 16000)
    sf.write(tmp_path / "x.wav", y, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav"), y.astype(np.float32))


def test_real_corpus_file(cremad_clips):
    out = load_audio(cremad_clips[0])
    assert out.dtype == np.float32 and 16000 < len(out) < 16000 * 6 and np.abs(out).max() <= 1.0


@pytest.mark.parametrize("content,needle", [
    (b"hello, this is text\n" * 20, "not a readable audio file"),
    (b"", "not a readable audio file"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "not a readable audio file"),
])
def test_non_audio_rejected(tmp_path, content, needle):
    p = tmp_path / "x.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=needle):
        load_audio(p)


def test_missing_directory_and_empty(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "absent.wav")
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(tmp_path / "empty.wav")


def test_nan_samples_rejected(tmp_path):
    y = sine(300, 16000)
    y[100] = np.nan
    sf.write(tmp_path / "x.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "x.wav")


@pytest.mark.parametrize("fmt,subtype,ext", [("WAV", "PCM_16", "wav"), ("WAV", "FLOAT", "wav"),
                                             ("WAVEX", "PCM_24", "wav"), ("AIFF", "PCM_16", "aiff")])
def test_truncated_body_is_an_error_whole_file_loads(tmp_path, fmt, subtype, ext):
    """A header announcing more audio data than the file holds (a copy cut short) is refused, whole or streamed
    (FileSource, as classify and listen read), with one line naming the file; the whole file loads."""
    from edge_ser.sources import FileSource
    whole = tmp_path / f"whole.{ext}"
    sf.write(whole, sine(440, 16000, seconds=2.0), 16000, format=fmt, subtype=subtype)
    assert len(load_audio(whole)) == 32000 and sum(len(b) for b in FileSource(whole, realtime=False)) == 32000
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[:-1001])
    assert sf.info(cut).frames > 0  # libsndfile itself reads what is left without complaint
    for read in (load_audio, lambda p: FileSource(p, realtime=False)):
        with pytest.raises(AudioError, match="truncated") as exc:
            read(cut)
        assert str(exc.value).startswith(f"{cut}: ") and "\n" not in str(exc.value)


def test_formats_without_an_exact_size_still_load(tmp_path):
    """OGG (no exact size in its header), FLAC, and a streamed WAV whose data size is 0xFFFFFFFF ('unknown')."""
    y = sine(440, 16000)
    for fmt, subtype in (("OGG", "VORBIS"), ("FLAC", "PCM_16")):
        path = tmp_path / f"x.{fmt.lower()}"
        sf.write(path, y, 16000, format=fmt, subtype=subtype)
        assert abs(len(load_audio(path)) - 16000) <= 1
    wav = tmp_path / "streamed.wav"
    sf.write(wav, y, 16000, subtype="PCM_16")
    whole = wav.read_bytes()
    at = whole.index(b"data")
    # 'unknown' sizes: a stream / RF64, and the placeholders of recorders that never fixed their header
    # (sox 0x7FFFF000, arecord 0x7FFFFF00 and 0x80000000)
    for placeholder in (0xFFFFFFFF, 0x7FFFF000, 0x7FFFFF00, 0x80000000):
        data = bytearray(whole)
        data[at + 4:at + 8] = placeholder.to_bytes(4, "little")
        wav.write_bytes(bytes(data))
        assert len(load_audio(wav)) == 16000, hex(placeholder)

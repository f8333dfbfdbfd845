"""Audio sources: file replay (bounded blocks, real time or fast, resampled) and the microphone source driven by a
fake PortAudio (device choice, rate fallback with resampling, overflow counting, reopening after errors)."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from edge_ser import sources
from edge_ser.audio import load_audio
from edge_ser.errors import AudioError
from edge_ser.sources import DeviceError, FileSource, MicrophoneSource


# --- file replay ---------------------------------------------------------------------------------------

def test_file_source_fast_equals_load_audio(tmp_path, rng):
    data = rng.uniform(-0.5, 0.5, (48000 * 3 + 123, 2)).astype(np.float32)
    sf.write(tmp_path / "x.wav", data, 48000, subtype="FLOAT")
    src = FileSource(tmp_path / "x.wav", realtime=False, block_seconds=0.1)
    blocks = list(src)
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert max(len(b) for b in blocks) <= 3200  # bounded blocks: ~0.1 s at 16 kHz (+ the resampler's delay)
    streamed = np.concatenate(blocks)
    offline = load_audio(tmp_path / "x.wav")
    assert len(streamed) == len(offline)
    np.testing.assert_allclose(streamed, offline, atol=1e-5)
    assert src.duration == pytest.approx((48000 * 3 + 123) / 48000)


def test_file_source_real_time(tmp_path):
    sf.write(tmp_path / "x.wav", np.zeros(16000), 16000)
    start = time.monotonic()
    n = sum(len(b) for b in FileSource(tmp_path / "x.wav", realtime=True))
    elapsed = time.monotonic() - start
    assert n == 16000 and 0.95 <= elapsed < 2.0
    start = time.monotonic()
    list(FileSource(tmp_path / "x.wav", realtime=False))
    assert time.monotonic() - start < 0.5


def test_file_source_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        FileSource(tmp_path / "absent.wav")
    (tmp_path / "t.wav").write_text("not audio")
    with pytest.raises(AudioError, match="not a readable audio file"):
        FileSource(tmp_path / "t.wav")


# --- microphone with a fake PortAudio --------------------------------------------------------------------

class FakeStream:
    def __init__(self, sd, device, channels, samplerate, dtype, blocksize, callback):
        self.sd, self.channels, self.rate, self.blocksize, self.callback = sd, channels, samplerate, blocksize, callback
        self.active = False
        self._thread = None

    def start(self):
        self.sd.opened.append((self.rate, self.channels))
        if self.sd.fail_opens > 0:
            self.sd.fail_opens -= 1
            raise self.sd.PortAudioError("Device unavailable")
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        n = 0
        pos = 0
        while self.active and n < self.sd.blocks_per_open:
            t = (pos + np.arange(self.blocksize)) / self.rate
            block = np.repeat((0.5 * np.sin(2 * np.pi * 1000 * t))[:, None], self.channels, axis=1)
            status = SimpleNamespace(input_overflow=(n == 1))
            self.callback(block.astype(np.float32), self.blocksize, None, status)
            pos += self.blocksize
            n += 1
            if self.sd.realtime:
                time.sleep(self.blocksize / self.rate)
        self.active = False  # the device went away

    def abort(self):
        self.active = False

    def close(self):
        pass


class FakeSD:
    class PortAudioError(Exception):
        pass

    def __init__(self, rates=(48000,), blocks_per_open=10**9, fail_opens=0, realtime=True):
        self.rates, self.blocks_per_open, self.fail_opens, self.realtime = rates, blocks_per_open, fail_opens, realtime
        self.opened = []
        self.default = SimpleNamespace(device=[1, 0])

    def query_devices(self):
        return [{"index": 0, "name": "HDMI output", "max_input_channels": 0, "default_samplerate": 48000.0,
                 "hostapi": 0},
                {"index": 1, "name": "USB Audio Mic: mono", "max_input_channels": 1, "default_samplerate": 48000.0,
                 "hostapi": 0},
                {"index": 2, "name": "ReSpeaker 4-Mic Array", "max_input_channels": 4,
                 "default_samplerate": 16000.0, "hostapi": 0}]

    def query_hostapis(self):
        return [{"name": "ALSA"}]

    def check_input_settings(self, device, channels, samplerate, dtype):
        if samplerate not in self.rates:
            raise self.PortAudioError("Invalid sample rate")

    def InputStream(self, **kw):
        return FakeStream(self, **kw)


@pytest.fixture
def fake_sd(monkeypatch):
    def install(**kw):
        sd = FakeSD(**kw)
        monkeypatch.setattr(sources, "_sounddevice", lambda: sd)
        return sd
    return install


def take(src, seconds, timeout=10.0):
    got, total, start = [], 0, time.monotonic()
    for block in src:
        got.append(block)
        total += len(block)
        if total >= seconds * 16000 or time.monotonic() - start > timeout:
            break
    src.close()
    return np.concatenate(got)


def test_device_choice(fake_sd):
    fake_sd()
    assert sources.find_input_device(None)["index"] == 1
    assert sources.find_input_device("2")["name"] == "ReSpeaker 4-Mic Array"
    assert sources.find_input_device("respeaker")["index"] == 2
    assert [d["index"] for d in sources.list_input_devices()] == [1, 2]  # outputs left out
    with pytest.raises(DeviceError, match="no input device with index 0"):
        sources.find_input_device(0)
    with pytest.raises(DeviceError, match=r"no input device matches 'blue yeti' \(inputs: 1: USB"):
        sources.find_input_device("blue yeti")


def test_rate_fallback_resamples_to_16k(fake_sd):
    sd = fake_sd(rates=(48000,))
    src = MicrophoneSource("usb", block_seconds=0.05, on_status=None)
    assert src.sample_rate == 48000
    y = take(src, 0.5)
    assert sd.opened[0] == (48000, 1)
    seg = y[1000:7000]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    assert abs(np.fft.rfftfreq(len(seg), 1 / 16000)[np.argmax(spec)] - 1000) < 3  # 1 kHz stays 1 kHz
    assert src.stats.overflows == 1  # the driver's overflow flag is counted, not fatal


def test_opens_at_16k_when_supported_and_downmixes(fake_sd):
    sd = fake_sd(rates=(16000, 48000))
    src = MicrophoneSource(2, block_seconds=0.05, on_status=None)
    y = take(src, 0.3)
    assert sd.opened[0] == (16000, 1) and src.sample_rate == 16000
    assert np.max(np.abs(y)) == pytest.approx(0.5, abs=0.01)


def test_slow_consumer_drops_blocks_and_counts_them(fake_sd):
    fake_sd(rates=(16000,), realtime=False, blocks_per_open=400)
    src = MicrophoneSource(1, block_seconds=0.01, queue_seconds=0.05, on_status=None, stall_seconds=0.5)
    it = iter(src)
    next(it)
    time.sleep(0.3)  # the fake device delivered 400 blocks at once into a 5-block queue
    assert src.stats.dropped_blocks > 300
    assert src.overflows >= src.stats.dropped_blocks
    src.close()


def test_device_error_reopens_with_backoff(fake_sd):
    sd = fake_sd(rates=(16000,), blocks_per_open=5)  # the stream dies after 5 blocks each time
    messages = []
    src = MicrophoneSource(1, block_seconds=0.05, on_status=messages.append, max_backoff=0.5)
    y = take(src, 0.6, timeout=20)
    assert len(y) >= 0.6 * 16000
    assert src.stats.restarts >= 2 and len(sd.opened) >= 3
    assert any("reopening" in m for m in messages)


def test_open_failure_retried_then_reported(fake_sd):
    sd = fake_sd(rates=(16000,), fail_opens=1)
    messages = []
    src = MicrophoneSource(1, block_seconds=0.05, on_status=messages.append)
    take(src, 0.2)
    assert len(sd.opened) == 2 and "retrying" in messages[0]
    fake_sd(rates=(16000,), fail_opens=100)
    src = MicrophoneSource(1, block_seconds=0.05, on_status=None)
    with pytest.raises(DeviceError, match="cannot open input device"):
        take(src, 0.2, timeout=30)

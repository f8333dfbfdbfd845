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


# --- a WAV or raw PCM stream (stdin) -----------------------------------------------------------------------

import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

from conftest import FAKES, REPO  # noqa: E402

from edge_ser.errors import UserError  # noqa: E402
from edge_ser.sources import RawFormat, StreamSource  # noqa: E402

SAMPLE = REPO / "edge_ser" / "assets" / "sample.wav"


def wav_bytes(data: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV", sizes: int | None = None):
    """A WAV file as bytes; ``sizes``: overwrite the RIFF and data sizes as a recorder writing to a pipe does."""
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format=fmt)
    b = bytearray(buf.getvalue())
    if sizes is not None:
        b[4:8] = struct.pack("<I", sizes)
        pos = b.index(b"data")
        b[pos + 4:pos + 8] = struct.pack("<I", sizes)
    return bytes(b)


class Pipe(io.RawIOBase):
    """A non-seekable byte stream that hands out at most ``chunk`` bytes per read, as a pipe does."""

    def __init__(self, data: bytes, chunk: int = 777):
        self.data, self.pos, self.chunk = data, 0, chunk

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, b):
        n = min(len(b), self.chunk, len(self.data) - self.pos)
        b[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def stream_audio(data: bytes, raw=None, **kw) -> np.ndarray:
    src = StreamSource(io.BufferedReader(Pipe(data)), raw=raw, **kw)
    blocks = list(src)
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    return np.concatenate(blocks), src


@pytest.mark.parametrize("subtype, fmt, sizes", [("PCM_16", "WAV", None), ("PCM_16", "WAV", 0x7FFFFF00),
                                                 ("PCM_16", "WAV", 0xFFFFFFFF), ("PCM_24", "WAV", 0x80000000),
                                                 ("PCM_32", "WAVEX", None), ("FLOAT", "WAV", 0),
                                                 ("PCM_U8", "WAV", None), ("DOUBLE", "WAV", None)])
def test_wav_stream_equals_the_file(tmp_path, rng, subtype, fmt, sizes):
    """Any WAV a recorder pipes out (sizes unknown: arecord's 0x7FFFFF00/0x80000000, ffmpeg's 0xFFFFFFFF, 0), any
    sample format, 48 kHz stereo: the same 16 kHz samples as replaying the file."""
    data = rng.uniform(-0.5, 0.5, (48000 + 321, 2)).astype(np.float32)
    blob = wav_bytes(data, 48000, subtype, fmt, sizes)
    (tmp_path / "x.wav").write_bytes(wav_bytes(data, 48000, subtype, fmt))
    got, src = stream_audio(blob)
    want = np.concatenate(list(FileSource(tmp_path / "x.wav", realtime=False)))
    assert src.kind == "wav" and src.sample_rate == 48000 and src.channels == 2
    assert len(got) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-5 if subtype != "PCM_U8" else 1e-2)
    assert "resampled to 16000 Hz" in src.describe()


@pytest.mark.parametrize("name, dtype, scale", [("s16le", "<i2", 32767), ("s32le", "<i4", 2 ** 31 - 1),
                                                ("f32le", "<f4", 1.0), ("s16be", ">i2", 32767),
                                                ("f64le", "<f8", 1.0)])
def test_raw_pcm(rng, name, dtype, scale):
    x = rng.uniform(-0.5, 0.5, (16000, 2))
    pcm = np.round(x * scale).astype(dtype) if scale != 1.0 else x.astype(dtype)
    got, src = stream_audio(pcm.tobytes(), raw=RawFormat(name, 16000, 2))
    np.testing.assert_allclose(got, x.mean(axis=1), atol=1e-4)
    assert src.kind == "raw" and "16000 Hz, 2 ch" in src.describe()


def test_raw_s24le_and_partial_frames():
    v = np.array([0, 1, -1, 2 ** 23 - 1, -2 ** 23], dtype=np.int64)
    b = b"".join(int(i & 0xFFFFFF).to_bytes(3, "little") for i in v) + b"\x01"  # a cut-off last frame
    got, _ = stream_audio(b, raw=RawFormat("s24le", 16000, 1))
    np.testing.assert_allclose(got, v / 2 ** 23, atol=1e-7)


def test_stream_errors():
    with pytest.raises(AudioError, match="not a WAV stream"):
        StreamSource(io.BytesIO(b"fLaC" + bytes(100)))
    with pytest.raises(AudioError, match="the stream is empty"):
        StreamSource(io.BytesIO(b""))
    with pytest.raises(AudioError, match="leave out --raw-format"):
        StreamSource(io.BytesIO(wav_bytes(np.zeros(100), 16000)), raw=RawFormat())
    with pytest.raises(AudioError, match="ends before its audio data"):
        StreamSource(io.BytesIO(wav_bytes(np.zeros(100), 16000)[:40]))
    with pytest.raises(AudioError, match="ends inside its .fmt . chunk"):
        StreamSource(io.BytesIO(wav_bytes(np.zeros(100), 16000)[:30]))
    with pytest.raises(AudioError, match="no audio"):
        list(StreamSource(io.BytesIO(b""), raw=RawFormat()))
    with pytest.raises(UserError, match="unknown raw format 'mp3'"):
        RawFormat("mp3")
    with pytest.raises(UserError, match="--rate"):
        RawFormat("s16le", 0)
    with pytest.raises(UserError, match="--channels"):
        RawFormat("s16le", 16000, 0)
    nan = np.array([0.0, np.nan], "<f4").tobytes()
    with pytest.raises(AudioError, match="NaN or infinite"):
        list(StreamSource(io.BytesIO(nan), raw=RawFormat("f32le")))


def _cli(args, stdin: bytes, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "edge_ser.cli", *args], input=stdin, capture_output=True,
                          timeout=timeout, cwd=str(REPO), env={**os.environ, **(env or {})})


def _events(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(x) for x in proc.stdout.decode().splitlines()]


def test_cli_listen_reads_wav_and_raw_from_stdin():
    """`arecord ... | edge-ser listen --input -`: a WAV stream (48 kHz stereo, sizes unknown) and the same audio as
    raw s16le give the events of replaying the file."""
    y, _ = sf.read(SAMPLE, dtype="float32")
    import soxr
    y48 = soxr.resample(y.astype(np.float64), 16000, 48000, quality="HQ")
    pcm = np.clip(np.round(np.stack([y48, y48], 1) * 32767), -32768, 32767).astype("<i2")
    model = ["--model", "fine16-cnn", "--json"]
    want = _events(_cli(["listen", "--input", str(SAMPLE), "--fast", *model], b""))
    wav = _cli(["listen", "--input", "-", *model], wav_bytes(pcm, 48000, sizes=0x80000000))
    raw = _cli(["listen", "--input", "-", "--raw-format", "s16le", "--rate", "48000", "--channels", "2", *model],
               pcm.tobytes())
    assert "listening: stdin (wav s16le, 48000 Hz, 2 ch, resampled to 16000 Hz)" in wav.stderr.decode()
    for got in (_events(wav), _events(raw)):
        assert len(got) == len(want) == 6
        assert [e["speech"] for e in got] == [e["speech"] for e in want]
        clear = 0
        for g, w in zip(got, want):  # resampled twice: the same scores within rounding, so the same clear labels
            if w["scores"] is None:
                assert g["scores"] is None
                continue
            assert g["scores"] == pytest.approx(w["scores"], abs=0.05)
            top = sorted(w["scores"].values())
            if top[-1] - top[-2] > 0.1:
                assert g["label"] == w["label"]
                clear += 1
        assert clear >= 1
        assert [e["t"] for e in got] == pytest.approx([e["t"] for e in want], abs=1e-3)
        assert all(abs(e["ts"] - time.time()) < 120 for e in got)


@pytest.mark.parametrize("args, stdin, needle", [
    (["--input", "-"], b"", "no audio (the stream is empty)"),
    (["--input", "-"], b"\x00\x01" * 4000, "not a WAV stream"),
    (["--input", "-", "--raw-format", "s16le"], wav_bytes(np.zeros(100), 16000), "leave out --raw-format"),
    (["--input", "-", "--raw-format", "mp3"], b"", "unknown raw format 'mp3'"),
    (["--input", "-", "--rate", "8000"], b"", "--rate/--channels need --raw-format"),
    (["--raw-format", "s16le"], b"", "use them with --input -"),
    (["--input", str(SAMPLE), "--wait-device"], b"", "--wait-device waits for a microphone"),
])
def test_cli_stdin_mistakes_are_one_line(args, stdin, needle):
    proc = _cli(["listen", "--model", "fine15-cnn", *args], stdin, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: "), err
    assert needle in err, err


# --- status events from the microphone (the fault-simulating fake PortAudio) --------------------------------



@pytest.fixture(scope="module")
def rec():
    import edge_ser
    return edge_ser.Recognizer("fine15-cnn")


def collect(items, seconds: float, timeout: float = 30.0):
    """Events and statuses until ``seconds`` of audio or ``timeout`` wall seconds."""
    from edge_ser.stream import Event
    out, start = [], time.monotonic()
    for item in items:
        out.append(item)
        if (isinstance(item, Event) and item.t >= seconds) or time.monotonic() - start > timeout:
            break
    items.close()
    return out


def test_listen_yields_status_events_on_device_lost_and_reconnected(fault_sd, rec):
    fault_sd.configure({"vanish_after": 1.0, "back_after": 1.0, "speed": 2})
    items = collect(rec.listen(max_backoff=1.0), 3.0)
    statuses = [i.to_dict() for i in items if i.to_dict().get("type") == "status"]
    states = [s["state"] for s in statuses]
    assert states[0] == "device_lost" and states[-1] == "reconnected", states
    assert set(states) <= {"device_lost", "reconnecting", "reconnected"}, states
    lost, back = statuses[0], statuses[-1]
    assert "input stream stopped (Fake USB Mic)" in lost["message"] and lost["device"] == "Fake USB Mic"
    assert "reopened input device" in back["message"] and back["down_s"] >= 0.9
    assert lost["t"] == pytest.approx(1.0, abs=0.25) and lost["ts"] <= back["ts"] <= time.time()
    events = [i for i in items if i.to_dict().get("type") != "status"]
    assert [e.t for e in events] == pytest.approx([0.5 * (k + 1) for k in range(len(events))])
    assert all(abs(e.ts - time.time()) < 30 for e in events)


def test_overflow_and_backend_chatter_become_statuses(fault_sd, rec):
    fault_sd.configure({"overflow_every": 3, "speed": 4, "chatter": "ALSA lib pcm.c:8545:(snd_pcm_recover) fake"})
    items = collect(rec.listen(), 2.0)
    statuses = [i for i in items if i.to_dict().get("type") == "status"]
    assert "overflow" in [s.state for s in statuses]
    backend = [s for s in statuses if s.state == "backend"]
    assert [s.message for s in backend] == ["ALSA lib pcm.c:8545:(snd_pcm_recover) fake"]  # once, not per open


def test_wait_device(fault_sd, rec):
    fault_sd.configure({"appear_after": 1.0, "speed": 2})
    from edge_ser.sources import DeviceError
    with pytest.raises(DeviceError, match="no audio input device"):
        next(rec.listen())
    items = collect(rec.listen(wait_device=True, poll_seconds=0.2), 1.0)
    states = [i.state for i in items if i.to_dict().get("type") == "status"]
    assert states == ["waiting_for_device", "device_found"], states
    assert items[-1].t == 1.0


def _fake_cli(args, scenario, timeout=90):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKES), str(REPO)]), "FAKE_SD": json.dumps(scenario)}
    return subprocess.run([sys.executable, "-m", "edge_ser.cli", "listen", "--model", "fine15-cnn", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO), env=env)


def test_cli_json_stream_has_statuses_and_no_portaudio_chatter_on_stderr():
    """`listen --json` on a microphone that goes away and comes back: status lines in the JSON stream, the
    reconnect said on stderr; what the audio library prints on fd 2 (from C code and its threads) is a ``backend``
    status, not terminal noise."""
    chatter = "ALSA lib confmisc.c:767:(parse_card) cannot find card '0'"
    overrun = "ALSA lib pcm.c:8545:(snd_pcm_recover) overrun occurred"  # from the audio thread, while streaming
    proc = _fake_cli(["--json", "--duration", "3"], {"vanish_after": 1.0, "back_after": 1.0, "speed": 2,
                                                     "chatter": chatter, "thread_chatter": overrun})
    assert proc.returncode == 0, proc.stderr
    objects = [json.loads(x) for x in proc.stdout.splitlines()]
    statuses = [o for o in objects if o.get("type") == "status"]
    states = [s["state"] for s in statuses]
    assert "device_lost" in states and "reconnected" in states and "backend" in states, states
    assert sorted(s["message"] for s in statuses if s["state"] == "backend") == sorted([chatter, overrun])
    assert "ALSA" not in proc.stderr, proc.stderr
    assert "warning: input stream stopped (Fake USB Mic)" in proc.stderr
    assert "listening: reopened input device" in proc.stderr
    events = [o for o in objects if o.get("type") != "status"]
    assert [e["t"] for e in events] == pytest.approx([0.5 * (k + 1) for k in range(6)])


def test_cli_wait_device():
    proc = _fake_cli(["--json", "--duration", "1", "--wait-device"], {"appear_after": 1.5, "speed": 2})
    assert proc.returncode == 0, proc.stderr
    assert "listening: waiting for any input device (--wait-device)" in proc.stderr
    assert "warning: no input device yet; waiting for any input device" in proc.stderr
    assert "listening: found input device 0: Fake USB Mic" in proc.stderr
    states = [o["state"] for o in map(json.loads, proc.stdout.splitlines()) if o.get("type") == "status"]
    assert states == ["waiting_for_device", "device_found"]
    proc = _fake_cli(["--duration", "1"], {"appear_after": 1.5})
    assert proc.returncode == 2 and "error: no audio input device found" in proc.stderr


# --- a real recorder piped into listen --input - (PulseAudio's parec on a private server) --------------------

from test_listen_pulse import SINK, pulse  # noqa: E402,F401  (the private PulseAudio server fixture)


@pytest.mark.integration
def test_parec_piped_into_listen_stdin(pulse):  # noqa: F811
    """`parec --raw ... | edge-ser listen --input - --raw-format s16le --rate 48000 --channels 2`: a real recorder
    (PulseAudio's, as arecord on ALSA) streams the sink's monitor at 48 kHz stereo while the speech sample plays into
    the sink; listen hears it at real time and stops after --duration."""
    recorder = subprocess.Popen(["parec", "-d", f"{SINK}.monitor", "--raw", "--format=s16le", "--rate=48000",
                                 "--channels=2", "--latency-msec=50"], env=pulse, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    listen = subprocess.Popen([sys.executable, "-m", "edge_ser.cli", "listen", "--input", "-", "--raw-format",
                               "s16le", "--rate", "48000", "--channels", "2", "--duration", "5", "--json", "--model",
                               "fine15-cnn"], stdin=recorder.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=pulse, cwd=str(REPO), text=True)
    recorder.stdout.close()  # listen holds the reading end
    try:
        header = listen.stderr.readline()
        assert header.startswith("listening: stdin (raw s16le, 48000 Hz, 2 ch, resampled to 16000 Hz)"), header
        time.sleep(0.7)
        start = time.monotonic()
        subprocess.run(["paplay", "--device", SINK, str(SAMPLE)], env=pulse, check=True, timeout=30)
        assert time.monotonic() - start >= 2.0  # the clip played at real time
        out, err = listen.communicate(timeout=60)
    finally:
        for p in (listen, recorder):
            if p.poll() is None:
                p.kill()
    assert listen.returncode == 0, err
    events = [json.loads(x) for x in out.splitlines()]
    assert [e["t"] for e in events] == pytest.approx([0.5 * k for k in range(1, 11)])
    assert sum(e["speech"] for e in events) >= 3, events
    assert all(abs(e["ts"] - time.time()) < 30 for e in events)
    assert "done: 5.0 s of audio" in err

"""Audio sources for the streaming engine: the microphone (sounddevice/PortAudio), file replay, and a WAV or raw PCM
stream on stdin (``arecord ... | edge-ser listen --input -``).

Every source yields blocks of 16 kHz mono float32 (the model's rate).  A file is read block by block (bounded
memory, whatever its length), downmixed and resampled with the same resampler as `edge_ser.audio.load_audio`; replay
runs at real time or, with ``realtime=False``, as fast as the consumer takes it.  The microphone is opened at 16 kHz
when the device supports it, else at its default rate and resampled; its callback only copies into a bounded queue,
and a full queue drops the block and counts an overflow instead of blocking the audio thread.

Sources that can fail while streaming (the microphone) also have ``stream()``, which yields the audio blocks and,
between them, `edge_ser.stream.StatusEvent` objects: ``device_lost``, ``reconnecting``, ``reconnected``, ``overflow``,
``waiting_for_device``, ``device_found``, ``backend`` (a line PortAudio/ALSA/JACK printed on stderr, captured instead
of leaking onto the terminal).  Iterating the source itself gives the blocks only and reports each status's message
through ``on_status``.  After a block, ``last_block_time`` is the wall-clock time its last sample was captured.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import struct
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np
import soundfile as sf

from .audio import TARGET_RATE, StreamResampler, _short, check_contents, check_readable
from .errors import AudioError, UserError
from .stream import StatusEvent

log = logging.getLogger("edge_ser.sources")


class DeviceError(UserError):
    """An input device that does not exist or cannot be opened."""


def _report(message: str) -> None:
    log.warning("%s", message)


# --- file replay ---------------------------------------------------------------------------------------

class FileSource:
    """Replay an audio file as 16 kHz mono blocks of ``block_seconds``; real time unless ``realtime=False``."""

    def __init__(self, path: str | os.PathLike, realtime: bool = True, block_seconds: float = 0.1,
                 target_rate: int = TARGET_RATE):
        self.path = check_readable(path)
        self.realtime = realtime
        self.block_seconds = block_seconds
        self.target_rate = target_rate
        try:
            info = sf.info(os.fsencode(self.path))
        except Exception as exc:
            raise AudioError(f"{self.path}: not a readable audio file ({_short(exc)})") from None
        check_contents(self.path, info.frames)
        self.sample_rate = info.samplerate
        self.channels = info.channels
        self.duration = info.frames / info.samplerate
        self.overflows = 0  # the Source interface: files never overflow
        self.last_block_time: float | None = None

    def describe(self) -> str:
        return f"{self.path} ({self.duration:.1f} s, {'real time' if self.realtime else 'fast'})"

    def __iter__(self) -> Iterator[np.ndarray]:
        resampler = StreamResampler(self.sample_rate, self.target_rate)
        block = max(1, int(self.block_seconds * self.sample_rate))
        start = time.monotonic()
        produced = 0
        try:
            f = sf.SoundFile(os.fsencode(self.path))
        except Exception as exc:
            raise AudioError(f"{self.path}: not a readable audio file ({_short(exc)})") from None
        with f:
            while True:
                try:
                    data = f.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioError(f"{self.path}: read error ({_short(exc)})") from None
                last = len(data) < block
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if mono.size and not np.all(np.isfinite(mono)):
                    raise AudioError(f"{self.path}: contains NaN or infinite samples")
                out = resampler(mono)
                if last:
                    out = np.concatenate([out, resampler.flush()])
                if out.size:
                    produced += out.size
                    if self.realtime:  # a block is available once it has been "recorded"
                        delay = start + produced / self.target_rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    self.last_block_time = time.time()
                    yield out
                if last:
                    return

    def close(self) -> None:
        pass


# --- a WAV or raw PCM stream (stdin) ----------------------------------------------------------------------

# name -> (numpy dtype, bytes per sample); "s24le" is unpacked by hand
RAW_FORMATS = {"u8": ("u1", 1), "s16le": ("<i2", 2), "s16be": (">i2", 2), "s24le": ("s24le", 3),
               "s32le": ("<i4", 4), "s32be": (">i4", 4), "f32le": ("<f4", 4), "f32be": (">f4", 4),
               "f64le": ("<f8", 8)}
MAX_STREAM_RATE = 768000
MAX_STREAM_CHANNELS = 64
_WAV_UNKNOWN_SIZE = 0x7FFFF000  # arecord/sox/ffmpeg writing to a pipe put 0x7FFFFF00, 0x80000000, 0xFFFFFFFF


@dataclass(frozen=True)
class RawFormat:
    """Headerless PCM: sample ``format`` (one of `RAW_FORMATS`, e.g. ``s16le`` as ``arecord -f S16_LE -t raw``
    writes), ``rate`` in Hz and interleaved ``channels``."""

    format: str = "s16le"
    rate: int = TARGET_RATE
    channels: int = 1

    def __post_init__(self):
        if self.format not in RAW_FORMATS:
            raise UserError(f"unknown raw format {self.format!r} (known: {', '.join(RAW_FORMATS)})")
        if not (isinstance(self.rate, int) and 1000 <= self.rate <= MAX_STREAM_RATE):
            raise UserError(f"--rate must be an integer from 1000 to {MAX_STREAM_RATE} Hz, got {self.rate!r}")
        if not (isinstance(self.channels, int) and 1 <= self.channels <= MAX_STREAM_CHANNELS):
            raise UserError(f"--channels must be from 1 to {MAX_STREAM_CHANNELS}, got {self.channels!r}")

    @property
    def frame_bytes(self) -> int:
        return RAW_FORMATS[self.format][1] * self.channels


def _decode_pcm(buf: bytes, fmt: RawFormat) -> np.ndarray:
    """Whole frames of PCM bytes -> float32 ``(frames, channels)`` in [-1, 1]."""
    dtype, width = RAW_FORMATS[fmt.format]
    if dtype == "s24le":
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        x = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        x = np.where(x >= 1 << 23, x - (1 << 24), x).astype(np.float32) / float(1 << 23)
    else:
        raw = np.frombuffer(buf, dtype=dtype)
        if raw.dtype.kind == "f":
            x = raw.astype(np.float32)
        elif raw.dtype.kind == "u":  # 8-bit PCM is unsigned, centred on 128
            x = (raw.astype(np.float32) - 128.0) / 128.0
        else:
            x = raw.astype(np.float32) / float(1 << (8 * width - 1))
    return x.reshape(-1, fmt.channels)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            break
        out += got
    return out


def _read_wav_header(f: BinaryIO, head: bytes, what: str) -> tuple[RawFormat, int | None]:
    """Parse a RIFF/WAVE header from a stream (``head``: its first 12 bytes, already read) up to the data chunk;
    returns the sample format and the data size in bytes (None when unknown, as from a recorder writing to a pipe)."""
    fmt = None
    while True:
        chunk = _read_exact(f, 8)
        if len(chunk) < 8:
            raise AudioError(f"{what}: WAV stream ends before its audio data")
        cid, size = struct.unpack("<4sI", chunk)
        if cid == b"data":
            if fmt is None:
                raise AudioError(f"{what}: WAV stream has no 'fmt ' chunk before its data")
            return fmt, (None if size == 0 or size >= _WAV_UNKNOWN_SIZE else size)
        if size > 1 << 24:
            raise AudioError(f"{what}: WAV chunk {cid!r} of {size} bytes before the audio data (damaged header?)")
        body = _read_exact(f, size + (size & 1))
        if len(body) < size:
            raise AudioError(f"{what}: WAV stream ends inside its {cid.decode('latin-1')!r} chunk")
        if cid == b"fmt ":
            if size < 16:
                raise AudioError(f"{what}: WAV 'fmt ' chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag starts the sub-format GUID
                tag = struct.unpack("<H", body[24:26])[0]
            name = {(1, 8): "u8", (1, 16): "s16le", (1, 24): "s24le", (1, 32): "s32le", (3, 32): "f32le",
                    (3, 64): "f64le"}.get((tag, bits))
            if name is None:
                raise AudioError(f"{what}: WAV sample format {tag} with {bits} bits is not supported (PCM 8/16/24/32 "
                                 "bit or float 32/64)")
            try:
                fmt = RawFormat(name, int(rate), int(channels))
            except UserError as exc:
                raise AudioError(f"{what}: WAV header: {str(exc).replace('--', '')}") from None


class StreamSource:
    """Audio from a byte stream (default: stdin): a WAV stream (its header read first; any length, the sizes a
    recorder writing to a pipe leaves unknown are fine) or, with ``raw``, headerless PCM.  Read as it arrives (the
    producer sets the pace), downmixed and resampled to ``target_rate`` in blocks of about ``block_seconds``."""

    def __init__(self, stream: BinaryIO | None = None, raw: RawFormat | None = None, block_seconds: float = 0.1,
                 target_rate: int = TARGET_RATE, name: str = "stdin"):
        self.name = name
        if stream is None:
            if sys.stdin is None or sys.stdin.isatty():
                raise UserError("--input -: stdin is a terminal; pipe audio into it, e.g. `arecord -f S16_LE -r 16000 "
                                "-c 1 | edge-ser listen --input -`")
            stream = sys.stdin.buffer
        self._f = stream
        self.block_seconds = block_seconds
        self.target_rate = target_rate
        self.overflows = 0
        self.duration = None
        self.last_block_time: float | None = None
        head = _read_exact(stream, 12)
        is_wav = len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"
        if raw is not None:
            if is_wav:
                raise AudioError(f"{name}: the stream is WAV (it starts with a RIFF/WAVE header); leave out "
                                 "--raw-format, the header says the format")
            self.format, self._remaining, self.kind = raw, None, "raw"
            self._pending = head
        else:
            if not head:
                raise AudioError(f"{name}: no audio (the stream is empty)")
            if head[:4] in (b"RIFX", b"RF64"):
                raise AudioError(f"{name}: {head[:4].decode()} WAV streams are not supported (write little-endian "
                                 "RIFF WAV, or raw PCM with --raw-format)")
            if not is_wav:
                raise AudioError(f"{name}: not a WAV stream (no RIFF/WAVE header); for headerless PCM give "
                                 "--raw-format (e.g. s16le) with --rate and --channels")
            self.format, self._remaining = _read_wav_header(stream, head, name)
            self.kind = "wav"
            self._pending = b""
        self.sample_rate, self.channels = self.format.rate, self.format.channels
        if self._remaining is not None:
            self.duration = self._remaining / self.format.frame_bytes / self.sample_rate

    def describe(self) -> str:
        f = self.format
        return (f"{self.name} ({self.kind} {f.format}, {f.rate} Hz, {f.channels} ch"
                + ("" if f.rate == self.target_rate else f", resampled to {self.target_rate} Hz") + ")")

    def _read(self, n: int) -> bytes:
        read1 = getattr(self._f, "read1", None)  # what is there now, up to n: blocks wait for no full buffer
        return read1(n) if read1 is not None else self._f.read(n)

    def __iter__(self) -> Iterator[np.ndarray]:
        fmt = self.format
        fb = fmt.frame_bytes
        want = max(fb, int(self.block_seconds * fmt.rate) * fb)
        resampler = StreamResampler(fmt.rate, self.target_rate)
        buf = self._pending
        self._pending = b""
        seen = 0
        while True:
            if self._remaining is not None:
                limit = self._remaining - seen - len(buf)
                chunk = self._read(min(want, limit)) if limit > 0 else b""
            else:
                chunk = self._read(want)
            buf += chunk
            last = not chunk
            n = len(buf) - len(buf) % fb
            if n:
                data, buf = _decode_pcm(buf[:n], fmt), buf[n:]
                seen += n
                if not np.all(np.isfinite(data)):
                    raise AudioError(f"{self.name}: NaN or infinite samples (is the sample format right?)")
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                out = resampler(mono)
            else:
                out = np.zeros(0, dtype=np.float32)
            if last:
                if seen == 0:
                    raise AudioError(f"{self.name}: no audio (the stream ended before any sample)")
                out = np.concatenate([out, resampler.flush()])
            if out.size:
                self.last_block_time = time.time()
                yield out
            if last:
                return

    def close(self) -> None:
        pass


# --- what PortAudio and its back ends print on stderr ------------------------------------------------------

_backend_lines: collections.deque = collections.deque(maxlen=200)  # captured, not yet reported


def _keep_backend_text(text: str) -> None:
    for line in text.splitlines():
        line = line.strip()
        if line:
            log.debug("audio back end: %s", line)
            _backend_lines.append(line)


@contextmanager
def capture_backend_stderr():
    """Run a PortAudio call with file descriptor 2 pointed at a temporary file; what the C libraries printed there
    (ALSA's "ALSA lib pcm.c: ... Unknown PCM", JACK's "Cannot connect to server socket", ...) is kept for the
    sources to report as ``backend`` status events instead of reaching the terminal.  Python's own stderr is
    flushed first and goes on working afterwards."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    tmp = tempfile.TemporaryFile()
    try:
        os.dup2(tmp.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        try:
            tmp.seek(0)
            _keep_backend_text(tmp.read(1 << 16).decode("utf-8", "replace"))
        finally:
            tmp.close()


class StderrCapture:
    """Point file descriptor 2 at a pipe for as long as a microphone streams: what PortAudio's threads print
    (ALSA "overrun occurred", xrun and reconnect chatter) becomes ``backend`` status events.  When ``sys.stderr``
    is the process's real stderr it is re-pointed at the original descriptor, so Python's own messages still show."""

    def __init__(self):
        self._saved = None
        self._thread = None
        self._old_stderr = None
        self._handlers: list = []

    def start(self) -> "StderrCapture":
        if self._saved is not None:
            return self
        try:
            sys.stderr.flush()
            real = sys.stderr.fileno() == 2
        except (AttributeError, ValueError, OSError):
            real = False
        try:
            self._saved = os.dup(2)
            r, w = os.pipe()
        except OSError:
            self._saved = None
            return self
        os.dup2(w, 2)
        os.close(w)
        if real:
            self._old_stderr = sys.stderr
            sys.stderr = open(self._saved, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                              errors="backslashreplace", closefd=False)
            self._handlers = _repoint_handlers(self._old_stderr, sys.stderr)  # log lines still reach the terminal
        self._thread = threading.Thread(target=self._pump, args=(r,), name="edge-ser-stderr", daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _pump(fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as r:
            pending = b""
            while True:
                data = r.read(4096)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _keep_backend_text(line.decode("utf-8", "replace"))
            if pending:
                _keep_backend_text(pending.decode("utf-8", "replace"))

    def stop(self) -> None:
        if self._saved is None:
            return
        if self._old_stderr is not None:
            try:
                sys.stderr.flush()
            except (ValueError, OSError):
                pass
            _repoint_handlers(sys.stderr, self._old_stderr, self._handlers)
            sys.stderr = self._old_stderr
            self._old_stderr = None
        os.dup2(self._saved, 2)  # closes the pipe's writing end: the pump reads EOF
        os.close(self._saved)
        self._saved = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None


def _repoint_handlers(old, new, handlers=None) -> list:
    """Logging handlers writing to ``old`` (all of them, or those given) now write to ``new``; returns them."""
    if handlers is None:
        handlers = [h for lg in (logging.getLogger(), logging.getLogger("edge_ser")) for h in lg.handlers
                    if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is old]
    for h in handlers:
        h.setStream(new)
    return handlers


# --- microphone ----------------------------------------------------------------------------------------

def _sounddevice():
    try:
        with capture_backend_stderr():  # importing initialises PortAudio, which probes every ALSA/JACK device
            import sounddevice as sd
    except ImportError:
        raise DeviceError("microphone input needs sounddevice: pip install 'edge-ser[mic]'") from None
    except OSError as exc:  # PortAudio library missing
        raise DeviceError(f"microphone input needs the PortAudio library (apt install libportaudio2): "
                          f"{_short(exc)}") from None
    return sd


def list_input_devices() -> list[dict]:
    """``index, name, channels, default_samplerate`` (+ ``hostapi``, ``default``) of every input device."""
    sd = _sounddevice()
    try:
        with capture_backend_stderr():
            devices = sd.query_devices()
            default_in = sd.default.device[0]
            hostapis = sd.query_hostapis()
    except Exception as exc:
        raise DeviceError(f"cannot list audio devices ({_short(exc)})") from None
    out = []
    for d in devices:
        if d["max_input_channels"] > 0:
            out.append({"index": d["index"], "name": d["name"], "channels": d["max_input_channels"],
                        "default_samplerate": d["default_samplerate"],
                        "hostapi": hostapis[d["hostapi"]]["name"], "default": d["index"] == default_in})
    return out


def find_input_device(spec: str | int | None) -> dict:
    """The input device for ``spec``: None (the system default), an index, or a case-insensitive name substring."""
    devices = list_input_devices()
    if not devices:
        raise DeviceError("no audio input device found (is a microphone connected? see `edge-ser devices`)")
    if spec is None or str(spec).strip() == "":
        for d in devices:
            if d["default"]:
                return d
        return devices[0]
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        for d in devices:
            if d["index"] == int(text):
                return d
        raise DeviceError(f"no input device with index {text} (see `edge-ser devices`)")
    matches = [d for d in devices if text.lower() in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == text.lower()]
    if exact:
        return exact[0]
    if not matches:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
        raise DeviceError(f"no input device matches {text!r} (inputs: {names})")
    return matches[0]


STANDARD_RATES = (48000, 44100, 32000, 22050, 24000, 96000, 88200, 11025, 8000)
OVERFLOW_WARN_SECONDS = 10.0  # at most one overflow warning per this many seconds
RECOVERY_STATES = ("reconnected", "connected", "device_found")  # statuses that say things are well again


@dataclass
class MicStats:
    overflows: int = 0       # PortAudio reported input overflow (samples lost in the driver)
    dropped_blocks: int = 0  # our queue was full: the consumer was too slow
    restarts: int = 0        # the stream was reopened after an error
    errors: int = 0


class MicrophoneSource:
    """Blocks of 16 kHz mono audio from an input device, until `close()` (or forever).

    ``device``: None, an index or a name substring.  ``queue_seconds`` bounds the audio waiting for the consumer.
    On a device error (stream stopped, no audio for ``stall_seconds``, PortAudio error) a status is reported and
    the stream reopened after a backoff of 0.5 s doubling to ``max_backoff``; a device that has gone is found again
    by name (a re-plugged USB microphone gets a new index).  ``wait_device``: when there is no such device yet
    (none at all, or none matching ``device``), wait for it to appear, re-scanning every ``poll_seconds``, instead
    of raising DeviceError; a device that cannot be opened at start is then retried for good as well.
    ``capture_stderr``: ``"calls"`` (default) keeps what PortAudio prints during our calls into it off the
    terminal; ``"always"`` also captures what its threads print while streaming (the whole process's fd 2 is a
    pipe meanwhile: meant for the CLI); ``"off"`` leaves stderr alone.  Captured lines become ``backend``
    statuses (each distinct line once).
    """

    def __init__(self, device: str | int | None = None, block_seconds: float = 0.1, queue_seconds: float = 5.0,
                 target_rate: int = TARGET_RATE, on_status: Callable[[str], object] | None = _report,
                 stall_seconds: float = 3.0, max_backoff: float = 8.0, wait_device: bool = False,
                 poll_seconds: float = 1.0, capture_stderr: str = "calls"):
        if capture_stderr not in ("calls", "always", "off"):
            raise ValueError("capture_stderr must be 'calls', 'always' or 'off'")
        self.capture_stderr = capture_stderr
        self.sd = _sounddevice()
        self.spec = device
        self.wait_device = bool(wait_device)
        self.poll_seconds = poll_seconds
        try:
            self.device = find_input_device(device)
        except DeviceError:
            if not self.wait_device:
                raise
            self.device = None  # found in stream()
        self.block_seconds = block_seconds
        self.target_rate = target_rate
        self.on_status = on_status or (lambda msg: None)
        self.stall_seconds = stall_seconds
        self.max_backoff = max_backoff
        self.stats = MicStats()
        self.sample_rate, self.channels = self._choose_settings() if self.device else (None, None)
        n_blocks = max(2, int(round(queue_seconds / block_seconds)))
        self._queue: queue.Queue = queue.Queue(maxsize=n_blocks)
        self._stream = None
        self._closed = False
        self._lost = False  # our device was not in the last re-scan
        self._seen_backend: set = set()
        self._capture: StderrCapture | None = None
        self.last_block_time: float | None = None

    @property
    def overflows(self) -> int:
        return self.stats.overflows + self.stats.dropped_blocks

    def describe(self) -> str:
        if self.device is None:
            what = "any input device" if self.spec in (None, "") else f"an input device matching {str(self.spec)!r}"
            return f"waiting for {what} (--wait-device)"
        d = self.device
        return (f"input device {d['index']}: {d['name']} at {self.sample_rate} Hz"
                + ("" if self.sample_rate == self.target_rate else f" resampled to {self.target_rate} Hz"))

    def _scoped(self):
        return capture_backend_stderr() if self.capture_stderr != "off" else _no_capture()

    def _choose_settings(self) -> tuple[int, int]:
        sd, idx = self.sd, self.device["index"]
        rates = dict.fromkeys((self.target_rate, int(self.device["default_samplerate"])) + STANDARD_RATES)
        with self._scoped():
            for rate in rates:  # 16 kHz, the device's default, then the standard rates a card may accept instead
                for channels in (1, min(2, self.device["channels"])):
                    try:
                        sd.check_input_settings(device=idx, channels=channels, samplerate=rate, dtype="float32")
                        return rate, channels
                    except Exception:
                        continue
        return int(self.device["default_samplerate"]), self.device["channels"]

    def _callback(self, indata, frames, time_info, status):  # PortAudio's thread: copy and return
        if status.input_overflow:
            self.stats.overflows += 1
        try:
            self._queue.put_nowait((indata.copy(), time.time()))
        except queue.Full:
            self.stats.dropped_blocks += 1

    def _open(self) -> None:
        if self._lost:  # never open whatever now has the old index
            raise DeviceError(f"{self.device['name']!r} is not connected")
        with self._scoped():
            self._stream = self.sd.InputStream(
                device=self.device["index"], channels=self.channels, samplerate=self.sample_rate, dtype="float32",
                blocksize=max(1, int(self.block_seconds * self.sample_rate)), callback=self._callback)
            self._stream.start()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                with self._scoped():
                    stream.abort()
                    stream.close()
            except Exception:
                pass

    def _status(self, state: str, message: str, **details) -> StatusEvent:
        return StatusEvent(state=state, message=message, details=details)

    def _backend(self) -> Iterator[StatusEvent]:
        """Statuses for the lines PortAudio and its back ends printed since the last call (each line once)."""
        while _backend_lines:
            try:
                line = _backend_lines.popleft()
            except IndexError:
                break
            if line not in self._seen_backend and len(self._seen_backend) < 1000:
                self._seen_backend.add(line)
                yield self._status("backend", line)

    def __iter__(self) -> Iterator[np.ndarray]:
        """The audio blocks only; each status's message goes to ``on_status``."""
        for item in self.stream():
            if isinstance(item, StatusEvent):
                if item.state != "backend":
                    self.on_status(item.message)
            else:
                yield item

    def stream(self) -> Iterator[np.ndarray | StatusEvent]:
        """The audio blocks with `StatusEvent` objects between them, as things happen (see the module doc)."""
        if self.capture_stderr == "always":
            self._capture = StderrCapture().start()
        try:
            yield from self._stream_items()
        finally:
            if self._capture is not None:
                self._capture.stop()
                self._capture = None

    def _wait_for_device(self) -> Iterator[StatusEvent]:
        what = "any input device" if self.spec in (None, "") else f"an input device matching {str(self.spec)!r}"
        yield self._status("waiting_for_device", f"no input device yet; waiting for {what}", device=self.spec)
        started = time.monotonic()
        while not self._closed:
            time.sleep(self.poll_seconds)
            self._rescan()
            yield from self._backend()
            try:
                self.device = find_input_device(self.spec)
            except DeviceError:
                continue
            self.sample_rate, self.channels = self._choose_settings()
            yield self._status("device_found", f"found {self.describe()} after {time.monotonic() - started:.1f} s",
                               device=self.device["name"], index=self.device["index"], sample_rate=self.sample_rate)
            return

    def _stream_items(self) -> Iterator[np.ndarray | StatusEvent]:
        yield from self._backend()
        if self.device is None:
            yield from self._wait_for_device()
        backoff = 0.5
        first = True
        failed_at = None  # when the audio stopped (a failed first open, a lost stream)
        attempts = 0
        warned, warned_at = 0, -OVERFLOW_WARN_SECONDS
        while not self._closed:
            resampler = StreamResampler(self.sample_rate, self.target_rate)
            try:
                self._open()
            except Exception as exc:
                self.stats.errors += 1
                attempts += 1
                yield from self._backend()
                if (first and not self.wait_device and isinstance(exc, self.sd.PortAudioError)
                        and backoff > self.max_backoff / 4):
                    raise DeviceError(f"cannot open input device {self.device['name']!r} ({_short(exc)})") from None
                failed_at = failed_at or time.monotonic()
                yield self._status("reconnecting", f"cannot open input device {self.device['name']!r} "
                                   f"({_short(exc)}); retrying in {backoff:g} s", device=self.device["name"],
                                   attempt=attempts, retry_in_s=backoff)
                time.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                if not first:
                    self._refresh_device()
                    yield from self._backend()
                continue
            yield from self._backend()
            if failed_at is not None:
                down = time.monotonic() - failed_at
                state = "connected" if first else "reconnected"
                yield self._status(state, f"{'opened' if first else 'reopened'} {self.describe()} after "
                                   f"{down:.1f} s without audio", device=self.device["name"],
                                   index=self.device["index"], down_s=round(down, 2), attempts=attempts)
                failed_at, attempts = None, 0
            first = False
            last_audio = time.monotonic()
            reason = None
            while not self._closed:
                try:
                    block, captured = self._queue.get(timeout=0.25)
                except queue.Empty:
                    yield from self._backend()
                    if self._stream is None or not self._stream.active:
                        reason = "input stream stopped"
                    elif time.monotonic() - last_audio > self.stall_seconds:
                        reason = f"no audio from the device for {self.stall_seconds:g} s"
                    if reason:
                        break
                    continue
                last_audio = time.monotonic()
                backoff = 0.5
                yield from self._backend()
                if self.overflows > warned and last_audio - warned_at >= OVERFLOW_WARN_SECONDS:
                    yield self._status("overflow", f"input overflow: {self.overflows} block(s) lost so far (the "
                                       "machine is too busy or too slow for this model; see `edge-ser bench`)",
                                       overflows=self.stats.overflows, dropped_blocks=self.stats.dropped_blocks)
                    warned, warned_at = self.overflows, last_audio
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                out = resampler(mono)
                if out.size:
                    self.last_block_time = captured
                    yield out
            self._close_stream()
            if self._closed:
                break
            self.stats.errors += 1
            self.stats.restarts += 1
            failed_at = time.monotonic()
            yield self._status("device_lost", f"{reason} ({self.device['name']}); reopening in {backoff:g} s",
                               device=self.device["name"], reason=reason, retry_in_s=backoff)
            time.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)
            self._refresh_device()
            yield from self._backend()

    def _rescan(self) -> bool:
        """Re-initialise PortAudio so that it sees devices plugged in or out since; False if it cannot."""
        terminate, initialize = getattr(self.sd, "_terminate", None), getattr(self.sd, "_initialize", None)
        if terminate is None or initialize is None:
            return False
        with self._scoped():
            terminate()
            initialize()
        return True

    def _refresh_device(self) -> None:
        """Re-scan PortAudio's devices (a re-plugged USB microphone gets a new index) and find ours by name."""
        try:
            if not self._rescan():
                return
            for d in list_input_devices():
                if d["name"] == self.device["name"]:
                    self.device = d
                    self._lost = False
                    return
            self._lost = True
        except Exception as exc:  # keep the old device; the next open reports the error
            self.on_status(f"cannot re-scan audio devices ({_short(exc)})")

    def close(self) -> None:
        self._closed = True
        self._close_stream()
        if self._capture is not None:
            self._capture.stop()
            self._capture = None


@contextmanager
def _no_capture():
    yield


def open_source(input: str | os.PathLike | None = None, device: str | int | None = None,
                raw: RawFormat | None = None, realtime: bool = True, wait_device: bool = False,
                target_rate: int = TARGET_RATE, **mic_options):
    """The source ``listen`` reads: ``input`` a file (replayed at real time unless ``realtime=False``), ``"-"``
    stdin (a WAV stream, or raw PCM when ``raw`` is given), or None for the microphone ``device`` (waiting for it
    to appear with ``wait_device``).  UserError for combinations that make no sense."""
    if input is not None and device is not None:
        raise UserError("give either --input or --device, not both")
    if raw is not None and str(input) != "-":
        raise UserError("--raw-format/--rate/--channels describe headerless audio on stdin: use them with --input -")
    if wait_device and input is not None:
        raise UserError("--wait-device waits for a microphone; it does not apply to --input")
    if input is None:
        return MicrophoneSource(device, target_rate=target_rate, wait_device=wait_device, **mic_options)
    if str(input) == "-":
        return StreamSource(raw=raw, target_rate=target_rate)
    return FileSource(input, realtime=realtime, target_rate=target_rate)

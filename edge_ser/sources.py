"""Audio sources for the streaming engine: the microphone (sounddevice/PortAudio) and file replay.

Both yield blocks of 16 kHz mono float32.  A file is read block by block (bounded memory, whatever its length),
downmixed and resampled with the same resampler as `edge_ser.audio.load_audio`; replay runs at real time or,
with ``realtime=False``, as fast as the consumer takes it.  The microphone is opened at 16 kHz when the device
supports it, else at its default rate and resampled; its callback only copies into a bounded queue, and a full
queue drops the block and counts an overflow instead of blocking the audio thread.  Device errors are reported
through ``on_status`` and the stream is reopened with backoff.
"""
from __future__ import annotations

import os
import queue
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from .audio import TARGET_RATE, StreamResampler, _short, check_contents, check_readable
from .errors import AudioError, UserError


class DeviceError(UserError):
    """An input device that does not exist or cannot be opened."""


def _report(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


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
                    yield out
                if last:
                    return

    def close(self) -> None:
        pass


# --- microphone ----------------------------------------------------------------------------------------

def _sounddevice():
    try:
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


@dataclass
class MicStats:
    overflows: int = 0       # PortAudio reported input overflow (samples lost in the driver)
    dropped_blocks: int = 0  # our queue was full: the consumer was too slow
    restarts: int = 0        # the stream was reopened after an error
    errors: int = 0


class MicrophoneSource:
    """Blocks of 16 kHz mono audio from an input device, until `close()` (or forever).

    ``device``: None, an index or a name substring.  ``queue_seconds`` bounds the audio waiting for the consumer.
    On a device error (stream stopped, no audio for ``stall_seconds``, PortAudio error) ``on_status`` is called
    with a message and the stream reopened after a backoff of 0.5 s doubling to ``max_backoff``.
    """

    def __init__(self, device: str | int | None = None, block_seconds: float = 0.1, queue_seconds: float = 5.0,
                 target_rate: int = TARGET_RATE, on_status: Callable[[str], object] | None = _report,
                 stall_seconds: float = 3.0, max_backoff: float = 8.0):
        self.sd = _sounddevice()
        self.device = find_input_device(device)
        self.block_seconds = block_seconds
        self.target_rate = target_rate
        self.on_status = on_status or (lambda msg: None)
        self.stall_seconds = stall_seconds
        self.max_backoff = max_backoff
        self.stats = MicStats()
        self.sample_rate, self.channels = self._choose_settings()
        n_blocks = max(2, int(round(queue_seconds / block_seconds)))
        self._queue: queue.Queue = queue.Queue(maxsize=n_blocks)
        self._stream = None
        self._closed = False
        self._lost = False  # our device was not in the last re-scan

    @property
    def overflows(self) -> int:
        return self.stats.overflows + self.stats.dropped_blocks

    def _choose_settings(self) -> tuple[int, int]:
        sd, idx = self.sd, self.device["index"]
        rates = dict.fromkeys((self.target_rate, int(self.device["default_samplerate"])) + STANDARD_RATES)
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
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self.stats.dropped_blocks += 1

    def _open(self) -> None:
        if self._lost:  # never open whatever now has the old index
            raise DeviceError(f"{self.device['name']!r} is not connected")
        self._stream = self.sd.InputStream(
            device=self.device["index"], channels=self.channels, samplerate=self.sample_rate, dtype="float32",
            blocksize=max(1, int(self.block_seconds * self.sample_rate)), callback=self._callback)
        self._stream.start()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                pass

    def __iter__(self) -> Iterator[np.ndarray]:
        backoff = 0.5
        first = True
        warned, warned_at = 0, -OVERFLOW_WARN_SECONDS
        while not self._closed:
            resampler = StreamResampler(self.sample_rate, self.target_rate)
            try:
                self._open()
            except Exception as exc:
                self.stats.errors += 1
                if first and isinstance(exc, self.sd.PortAudioError) and backoff > self.max_backoff / 4:
                    raise DeviceError(f"cannot open input device {self.device['name']!r} ({_short(exc)})") from None
                self.on_status(f"cannot open input device {self.device['name']!r} ({_short(exc)}); "
                               f"retrying in {backoff:g} s")
                time.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                if not first:
                    self._refresh_device()
                continue
            first = False
            last_audio = time.monotonic()
            reason = None
            while not self._closed:
                try:
                    block = self._queue.get(timeout=0.25)
                except queue.Empty:
                    if self._stream is None or not self._stream.active:
                        reason = "input stream stopped"
                    elif time.monotonic() - last_audio > self.stall_seconds:
                        reason = f"no audio from the device for {self.stall_seconds:g} s"
                    if reason:
                        break
                    continue
                last_audio = time.monotonic()
                backoff = 0.5
                if self.overflows > warned and last_audio - warned_at >= OVERFLOW_WARN_SECONDS:
                    self.on_status(f"input overflow: {self.overflows} block(s) lost so far (the machine is too busy "
                                   "or too slow for this model; see `edge-ser bench`)")
                    warned, warned_at = self.overflows, last_audio
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                out = resampler(mono)
                if out.size:
                    yield out
            self._close_stream()
            if self._closed:
                break
            self.stats.errors += 1
            self.stats.restarts += 1
            self.on_status(f"{reason} ({self.device['name']}); reopening in {backoff:g} s")
            time.sleep(backoff)
            backoff = min(self.max_backoff, backoff * 2)
            self._refresh_device()

    def _refresh_device(self) -> None:
        """Re-scan PortAudio's devices (a re-plugged USB microphone gets a new index) and find ours by name."""
        terminate, initialize = getattr(self.sd, "_terminate", None), getattr(self.sd, "_initialize", None)
        if terminate is None or initialize is None:
            return
        try:
            terminate()
            initialize()
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

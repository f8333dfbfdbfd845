"""A fake `sounddevice` (the subset edge_ser.sources uses) that simulates device faults, for tests/test_device_faults.py.

Put this folder first on ``sys.path`` (or ``PYTHONPATH`` for a subprocess) and describe the scenario in the
environment variable ``FAKE_SD`` (JSON), or call `configure(dict)` in-process:

``devices``          list of ``{name, channels, rate, rates}`` (``rates``: the sample rates the device accepts;
                     default ``[rate]``); ``[]`` = no input device at all
``default``          index of the default input (default 0)
``speed``            audio clock relative to real time (default 1.0; 4.0 = four seconds of audio per second)
``overflow_every``   flag ``input_overflow`` on every n-th block (0 = never)
``open_failures``    the first n ``InputStream`` opens fail with PortAudioError (transient fault)
``vanish_after``     seconds of audio after which the device disappears: the stream stops, the device leaves
                     the device list and opens fail
``back_after``       wall seconds after vanishing when the device comes back (null = never); it comes back at
                     the end of the device list, i.e. with a new index, as a re-plugged USB microphone does
``stall_after``      seconds of audio after which the stream stays "active" but delivers nothing (a hung driver)
``appear_after``     wall seconds after `configure` before the devices are plugged in (none before: --wait-device)
``chatter``          a line written to file descriptor 2 (as ALSA/JACK do) on every ``InputStream`` open and
                     ``_initialize``, from C code's point of view: straight to the descriptor, not through sys.stderr
``thread_chatter``   a line written to file descriptor 2 from the audio thread after the first block of each stream
                     (as ALSA's "overrun occurred" comes from PortAudio's thread)

The audio is a 220 Hz harmonic tone with 4 Hz syllable-like modulation at -12 dBFS.  ``STATE`` counts opens,
blocks and overflows for the tests.
"""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np

__version__ = "0.0-fake"


class PortAudioError(Exception):
    pass


class CallbackFlags:
    def __init__(self, input_overflow: bool = False):
        self.input_overflow = input_overflow


class _Default:
    def __init__(self):
        self.device = [0, 0]


default = _Default()
CONFIG: dict = {}
STATE: dict = {}
_lock = threading.Lock()


def configure(config: dict | None = None) -> None:
    """Reset the scenario (in-process use); without an argument, read ``$FAKE_SD``."""
    global CONFIG
    CONFIG = dict(json.loads(os.environ.get("FAKE_SD", "{}")) if config is None else config)
    devices = CONFIG.get("devices", [{"name": "Fake USB Mic", "channels": 1, "rate": 16000}])
    STATE.clear()
    STATE.update(opens=0, open_attempts=0, blocks=0, overflows=0, vanished_at=None, audio_seconds=0.0,
                 present=[dict(d) for d in devices], gone=[], initializations=0, opened_names=[])
    default.device = [CONFIG.get("default", 0), 0]
    if CONFIG.get("appear_after") is not None:  # not plugged in yet: "comes back" after appear_after
        STATE["gone"], STATE["present"] = STATE["present"], []
        STATE["vanished_at"] = time.monotonic()
        CONFIG["back_after"] = CONFIG["appear_after"]


def _chatter() -> None:
    if CONFIG.get("chatter"):
        os.write(2, (CONFIG["chatter"] + "\n").encode())


def _check_return() -> None:
    back = CONFIG.get("back_after")
    with _lock:
        if STATE["vanished_at"] is not None and STATE["gone"] and back is not None \
                and time.monotonic() - STATE["vanished_at"] >= back:
            STATE["present"].extend(STATE["gone"])  # re-plugged: at the end of the list, a new index
            STATE["gone"] = []


def _initialize() -> None:
    STATE["initializations"] += 1
    _chatter()


def _terminate() -> None:
    pass


def query_devices():
    _check_return()
    out = []
    for i, d in enumerate(STATE["present"]):
        out.append({"index": i, "name": d["name"], "hostapi": 0, "max_input_channels": d.get("channels", 1),
                    "max_output_channels": 0, "default_samplerate": float(d.get("rate", 16000)),
                    "default_low_input_latency": 0.01, "default_high_input_latency": 0.1})
    return out


def query_hostapis():
    return [{"name": "Fake Host API", "devices": list(range(len(STATE["present"]))), "default_input_device": 0,
             "default_output_device": -1}]


def _device(index):
    _check_return()
    if not isinstance(index, int) or not 0 <= index < len(STATE["present"]):
        raise PortAudioError(f"Error querying device {index}")
    return STATE["present"][index]


def check_input_settings(device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
    d = _device(device)
    if channels is not None and channels > d.get("channels", 1):
        raise PortAudioError("Invalid number of channels [PaErrorCode -9998]")
    if samplerate is not None and int(samplerate) not in d.get("rates", [d.get("rate", 16000)]):
        raise PortAudioError("Invalid sample rate [PaErrorCode -9997]")


def _tone(start: int, n: int, rate: int) -> np.ndarray:
    t = (start + np.arange(n)) / rate
    y = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8))
    return (0.25 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) * y / 2.6).astype(np.float32)


class InputStream:
    def __init__(self, samplerate=None, blocksize=None, device=None, channels=None, dtype=None, callback=None,
                 **kwargs):
        STATE["open_attempts"] += 1
        _chatter()
        if STATE["open_attempts"] <= CONFIG.get("open_failures", 0):
            raise PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        check_input_settings(device, channels, dtype, None, samplerate)
        self.name = _device(device)["name"]
        STATE["opened_names"].append(self.name)
        self.samplerate, self.channels = int(samplerate), int(channels)
        self.blocksize = int(blocksize or 1024)
        self.callback = callback
        self._active = False
        self._stop = threading.Event()
        self._thread = None
        STATE["opens"] += 1

    @property
    def active(self) -> bool:
        return self._active

    def start(self):
        self._active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _vanish(self):
        with _lock:
            STATE["vanished_at"] = time.monotonic()
            for d in list(STATE["present"]):
                if d["name"] == self.name:
                    STATE["present"].remove(d)
                    STATE["gone"].append(d)

    def _run(self):
        speed = float(CONFIG.get("speed", 1.0))
        every = int(CONFIG.get("overflow_every", 0))
        vanish, stall = CONFIG.get("vanish_after"), CONFIG.get("stall_after")
        pos, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            seconds = STATE["audio_seconds"]
            if vanish is not None and STATE["vanished_at"] is None and seconds >= vanish:
                self._vanish()
                self._active = False  # PortAudio stops the stream when its device goes away
                return
            if stall is not None and seconds >= stall:
                time.sleep(0.01)  # "active" but silent: a hung driver
                continue
            block = _tone(pos, self.blocksize, self.samplerate)
            data = np.repeat(block[:, None], self.channels, axis=1)
            STATE["blocks"] += 1
            flag = every > 0 and STATE["blocks"] % every == 0
            STATE["overflows"] += flag
            self.callback(data, self.blocksize, None, CallbackFlags(input_overflow=flag))
            if pos == 0 and CONFIG.get("thread_chatter"):
                os.write(2, (CONFIG["thread_chatter"] + "\n").encode())
            pos += self.blocksize
            STATE["audio_seconds"] = seconds + self.blocksize / self.samplerate
            delay = t0 + pos / self.samplerate / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def abort(self):
        self._stop.set()
        self._active = False

    stop = abort

    def close(self):
        self._stop.set()
        self._active = False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


configure()

"""Decode audio files and bring them to the frontend's rate: mono float32 at 16 kHz.

Any format libsndfile reads (WAV, FLAC, OGG, AIFF, ...), any sample rate and channel count, integer or float
samples.  Channels are averaged; the rate is converted by libsoxr (python-soxr, "HQ": a linear-phase low-pass
with >100 dB stop-band attenuation, so nothing above the new Nyquist aliases).  The same resampler streams
(`StreamResampler`) for the microphone and file replay, so a file classified whole and replayed through
``listen`` is converted identically.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

TARGET_RATE = 16000
RESAMPLE_QUALITY = "HQ"


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average the channels of ``(frames, channels)`` audio; 1-D audio is returned as is."""
    data = np.asarray(data)
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(f"audio must be (frames, channels), got shape {data.shape}")
    return data.mean(axis=1, dtype=np.float64) if data.shape[1] > 1 else data[:, 0]


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Band-limited resampling (libsoxr HQ, anti-aliasing low-pass); float32 out, ``round(n * target / orig)``
    samples."""
    audio = np.asarray(audio, dtype=np.float64)
    if orig_rate == target_rate or audio.size == 0:
        return audio.astype(np.float32)
    return soxr.resample(audio, int(orig_rate), int(target_rate), quality=RESAMPLE_QUALITY).astype(np.float32)


class StreamResampler:
    """`resample` for audio arriving in blocks (mono float32); ``flush()`` returns the filter's tail."""

    def __init__(self, orig_rate: int, target_rate: int = TARGET_RATE):
        self.orig_rate, self.target_rate = int(orig_rate), int(target_rate)
        self._stream = None if self.orig_rate == self.target_rate else soxr.ResampleStream(
            self.orig_rate, self.target_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)

    def __call__(self, block: np.ndarray) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1)
        return block if self._stream is None else self._stream.resample_chunk(block)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def sanitize(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """Reject audio that no frontend can use (NaN/inf samples)."""
    if audio.size and not np.all(np.isfinite(audio)):
        raise AudioError(f"{what}: contains NaN or infinite samples")
    return audio


# libsndfile gets file names as bytes (os.fsencode): a name that is not valid UTF-8 (e.g. Latin-1 bytes from an
# old archive) is still a file Python can name, but soundfile's own str -> UTF-8 encoding would refuse it.
def check_readable(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: no such file")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not p.is_file():  # a FIFO, socket or device: opening or reading it could block forever
        raise AudioError(f"{p}: not a regular file (a pipe, socket or device cannot be read as audio)")
    if not os.access(p, os.R_OK):
        raise AudioError(f"{p}: permission denied")
    return p


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    p = check_readable(path)
    try:
        return sf.info(os.fsencode(p))
    except Exception as exc:  # libsndfile's messages are cryptic; keep ours one line
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None


# RIFF/RIFX WAV and AIFF headers state the exact size of the audio data, but libsndfile quietly shortens a data
# chunk that runs past the end of the file (its info.frames is then what the file holds, not what the header
# announced), so a WAV cut short would be classified as if whole.  FLAC finds the damage itself (a read error);
# OGG/MP3 have no exact size in their headers.  A size of 0 or from 0x7FFFF000 up means "unknown": a stream, RF64,
# or a recorder that could not go back and fix its header (arecord writes 0x7FFFFF00 / 0x80000000, sox 0x7FFFF000;
# so does one killed mid-recording).
_UNKNOWN_SIZE = 0x7FFFF000
_IFF = {b"RIFF": ("<", (b"WAVE",), b"data"), b"RIFX": (">", (b"WAVE",), b"data"),
        b"FORM": (">", (b"AIFF", b"AIFC"), b"SSND")}


def check_complete(path: str | os.PathLike) -> None:
    """Raise AudioError if a WAV/AIFF file's audio data chunk announces more bytes than the file holds."""
    import struct
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in _IFF or head[8:12] not in _IFF[head[:4]][1]:
            return
        order, _, data_id = _IFF[head[:4]]
        size = p.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, length = struct.unpack(order + "4sI", f.read(8))
            if chunk_id == data_id:
                if 0 < length < _UNKNOWN_SIZE and pos + 8 + length > size:
                    raise AudioError(f"{p}: truncated (the header announces {length} bytes of audio data, the "
                                     f"file holds {size - pos - 8})")
                return
            pos += 8 + length + (length & 1)  # chunks are padded to an even size


def check_contents(path: Path, frames: int) -> None:
    """What every reader checks once a file has opened (``frames``: the samples per channel it found): some samples,
    and all the audio its header announces (`check_complete`)."""
    if frames == 0:
        raise AudioError(f"{path}: contains no samples")
    check_complete(path)


def load_audio(path: str | os.PathLike, target_rate: int = TARGET_RATE) -> np.ndarray:
    """Read a file as mono float32 at ``target_rate``.  Raises AudioError with a one-line reason."""
    p = check_readable(path)
    try:
        data, rate = sf.read(os.fsencode(p), dtype="float64", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{p}: not a readable audio file ({_short(exc)})") from None
    check_contents(p, data.shape[0])
    audio = sanitize(to_mono(data), str(p))
    return resample(audio, rate, target_rate)


def _short(exc: Exception) -> str:
    """libsndfile's reason on one line, without its "Error opening b'<path>': " (our message names the file)."""
    text = str(exc).strip().splitlines()
    reason = text[-1] if text else type(exc).__name__
    if reason.startswith("Error opening ") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason[:200]

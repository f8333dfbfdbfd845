"""Waveform augmentation for the training part (applied after the split, never to validation/test clips).

AWGN at a chosen SNR (seed 000: 20 dB), pitch shift, time stretch and low-pass; and for rooms: reverberation
(`synthetic_rir`: pyroomacoustics' image-source model of a random shoebox room for the early reflections, an
exponentially decaying noise tail for the late reverberation, at an RT60 drawn in ``rt60_s``), additive noise of
several colours (white, pink, brown, blue) at an SNR drawn in ``snr_range_db``, babble (3-6 clips of other
training speakers mixed as background), microphone band limits and gain (`microphone`), Opus re-encoding
(`opus_roundtrip`, libsndfile's Ogg/Opus at a drawn compression level) and ``room``, a chain of reverberation,
noise, microphone and Opus (babble in the chain only when `apply` is given other talkers; the training loop gives
``room`` none, so its cached copies serve every fold, and mixes babble as its own kind).
Each is seeded: the same clip, kind, seed (and babble talkers) give the same samples.  `variant_seed` derives a
per-clip seed from the run's seed and the clip's path so cached augmented copies are reproducible.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, sosfiltfilt

SAMPLE_RATE = 16000
NOISE_COLOURS = {"white": 0.0, "pink": -1.0, "brown": -2.0, "blue": 1.0}  # power spectrum ~ f ** exponent


@dataclass(frozen=True)
class AugmentConfig:
    snr_db: float = 20.0                 # AWGN signal-to-noise ratio (seed 000)
    pitch_steps: float = 2.0             # pitch shift drawn uniformly in +-steps semitones (at least 0.5)
    stretch: float = 0.15                # time-stretch rate drawn in [1 - s, 1 + s]
    lowpass_hz: tuple = (2500.0, 5000.0)  # low-pass cut-off drawn in this range
    # rooms (kinds reverb, colored_noise, babble, mic, opus, room)
    snr_range_db: tuple = (0.0, 25.0)     # coloured noise / babble SNR drawn uniformly in this range
    colours: tuple = ("white", "pink", "brown", "blue")
    rt60_s: tuple = (0.2, 1.0)            # reverberation time drawn in this range
    room_m: tuple = ((3.0, 3.0, 2.4), (10.0, 8.0, 4.0))  # shoebox size drawn between these corners
    talkers: tuple = (3, 6)               # babble: other training speakers mixed
    highpass_hz: tuple = (50.0, 300.0)    # microphone: band edges drawn in these ranges
    band_lowpass_hz: tuple = (3400.0, 8000.0)  # (8000 = no low-pass at 16 kHz)
    gain_db: tuple = (-12.0, 6.0)         # microphone gain (clipped at full scale)
    opus_level: tuple = (0.3, 0.9)        # libsndfile's Opus compression level (higher: fewer bits)
    room_reverb_p: float = 0.8            # room: share of copies with reverberation, ...
    room_babble_p: float = 0.3            # ... with babble (else coloured noise), ...
    room_opus_p: float = 0.5              # ... re-encoded as Opus

    def to_dict(self) -> dict:
        return {"snr_db": self.snr_db, "pitch_steps": self.pitch_steps, "stretch": self.stretch,
                "lowpass_hz": list(self.lowpass_hz), "snr_range_db": list(self.snr_range_db),
                "colours": list(self.colours), "rt60_s": list(self.rt60_s),
                "room_m": [list(c) for c in self.room_m], "talkers": list(self.talkers),
                "highpass_hz": list(self.highpass_hz), "band_lowpass_hz": list(self.band_lowpass_hz),
                "gain_db": list(self.gain_db), "opus_level": list(self.opus_level),
                "room_reverb_p": self.room_reverb_p, "room_babble_p": self.room_babble_p,
                "room_opus_p": self.room_opus_p}


def variant_seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{seed}:{key}".encode()).digest()[:4], "little")


def signal_power(audio: np.ndarray) -> float:
    return float(np.mean(np.asarray(audio, dtype=np.float64) ** 2))


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise scaled so that 10*log10(P_signal / P_noise) == snr_db (P over the whole clip)."""
    p = signal_power(audio)
    if p == 0.0:
        return audio.astype(np.float32)
    noise = rng.standard_normal(len(audio))
    noise *= np.sqrt(p / (10.0 ** (snr_db / 10.0)) / np.mean(noise ** 2))
    return (audio + noise).astype(np.float32)


def pitch_shift(audio: np.ndarray, steps: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    import librosa
    return librosa.effects.pitch_shift(np.asarray(audio, dtype=np.float32), sr=sr, n_steps=float(steps))


def time_stretch(audio: np.ndarray, rate: float) -> np.ndarray:
    import librosa
    return librosa.effects.time_stretch(np.asarray(audio, dtype=np.float32), rate=float(rate))


def low_pass(audio: np.ndarray, cutoff_hz: float, sr: int = SAMPLE_RATE, order: int = 6) -> np.ndarray:
    sos = butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, np.asarray(audio, dtype=np.float64)).astype(np.float32)


def mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``audio + k * noise`` with k such that 10*log10(P_audio / P_(k noise)) == snr_db (P over the whole clip)."""
    p, pn = signal_power(audio), signal_power(noise)
    if p == 0.0 or pn == 0.0:
        return np.asarray(audio, dtype=np.float32)
    k = np.sqrt(p / (10.0 ** (snr_db / 10.0)) / pn)
    return (np.asarray(audio, np.float64) + k * np.asarray(noise, np.float64)).astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as f ** NOISE_COLOURS[colour] (pink 1/f, brown 1/f^2, blue f)."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"unknown noise colour {colour!r} (known: {', '.join(NOISE_COLOURS)})")
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (NOISE_COLOURS[colour] / 2.0)
    spec[0] = 0.0
    y = np.fft.irfft(spec, n)
    return (y / (np.std(y) + 1e-12)).astype(np.float32)


def synthetic_rir(rng: np.random.Generator, rt60: float, cfg: "AugmentConfig" = None, sr: int = SAMPLE_RATE,
                  max_order: int = 8) -> np.ndarray:
    """A room impulse response: a random shoebox (size between ``cfg.room_m``'s corners, source and microphone at
    least 0.5 m from the walls) whose wall absorption gives ``rt60`` by Sabine's formula; early reflections from
    pyroomacoustics' image-source model up to ``max_order`` (a full-order model takes seconds per room), the late
    part an exponentially decaying Gaussian tail (-60 dB at rt60) continuing the early part's energy."""
    import pyroomacoustics as pra
    cfg = cfg or AugmentConfig()
    lo, hi = np.asarray(cfg.room_m[0], float), np.asarray(cfg.room_m[1], float)
    dims = rng.uniform(lo, hi)
    absorption, _order = pra.inverse_sabine(float(rt60), dims.tolist())
    absorption = float(min(max(absorption, 0.01), 0.99))
    room = pra.ShoeBox(dims.tolist(), fs=sr, materials=pra.Material(absorption), max_order=max_order,
                       use_rand_ism=False, air_absorption=False)
    src = rng.uniform(0.5, dims - 0.5)
    mic = rng.uniform(0.5, dims - 0.5)
    room.add_source(src.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    early = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(early)))
    start = direct + int(0.05 * sr)  # the late tail takes over 50 ms after the direct sound
    length = start + int(rt60 * sr)
    h = np.zeros(length)
    h[:min(len(early), length)] = early[:length]
    t = np.arange(length - start) / sr
    tail = rng.standard_normal(length - start) * np.exp(-6.908 * t / rt60)  # 10 ** (-60 / 20) at rt60
    ref = early[max(direct, start - int(0.01 * sr)):start]
    level = np.sqrt(np.mean(ref ** 2)) if ref.size and np.any(ref) else 0.1 * np.abs(early[direct])
    h[start:] += level * tail
    return (h / (np.abs(h[direct]) + 1e-12)).astype(np.float32)


def reverberate(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``audio`` convolved with ``rir`` (same length as the input, its RMS kept)."""
    x = np.asarray(audio, dtype=np.float64)
    y = fftconvolve(x, np.asarray(rir, np.float64))[:len(x)]
    p, py = signal_power(x), signal_power(y)
    return (y * np.sqrt(p / py) if py > 0 else y).astype(np.float32)


def babble(n: int, others, rng: np.random.Generator) -> np.ndarray:
    """Background talk: the clips ``others`` (other speakers, 16 kHz) each looped to ``n`` samples from a random
    start, at equal levels, summed."""
    out = np.zeros(n, dtype=np.float64)
    for o in others:
        o = np.asarray(o, dtype=np.float64)
        if not o.size or not np.any(o):
            continue
        reps = int(np.ceil((n + len(o)) / len(o)))
        start = int(rng.integers(len(o)))
        seg = np.tile(o, reps)[start:start + n]
        out += seg / np.sqrt(np.mean(seg ** 2) + 1e-12)
    return out.astype(np.float32)


def microphone(audio: np.ndarray, rng: np.random.Generator, cfg: "AugmentConfig" = None,
               sr: int = SAMPLE_RATE) -> np.ndarray:
    """A cheap microphone: band-pass between a high-pass edge and a low-pass edge drawn in the config's ranges (no
    low-pass when it is at Nyquist), a gain drawn in ``gain_db``, clipped at full scale."""
    cfg = cfg or AugmentConfig()
    lo = rng.uniform(*cfg.highpass_hz)
    hi = rng.uniform(*cfg.band_lowpass_hz)
    x = np.asarray(audio, dtype=np.float64)
    if hi < 0.95 * sr / 2:
        x = sosfiltfilt(butter(4, [lo, hi], btype="band", fs=sr, output="sos"), x)
    else:
        x = sosfiltfilt(butter(4, lo, btype="high", fs=sr, output="sos"), x)
    x *= 10.0 ** (rng.uniform(*cfg.gain_db) / 20.0)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def opus_roundtrip(audio: np.ndarray, level: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``audio`` encoded as Ogg/Opus by libsndfile (``compression_level`` ``level`` in [0, 1]) and decoded again,
    at the same length."""
    import soundfile as sf
    buf = io.BytesIO()
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(buf, x, sr, format="OGG", subtype="OPUS", compression_level=float(level))
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    y = y if y.ndim == 1 else y.mean(axis=1)
    out = np.zeros(len(x), dtype=np.float32)
    out[:min(len(y), len(x))] = y[:len(x)]
    return out


def room(audio: np.ndarray, rng: np.random.Generator, cfg: "AugmentConfig" = None, others=None) -> np.ndarray:
    """A recording in a room: reverberation (share ``room_reverb_p``), then babble of ``others`` (share
    ``room_babble_p``, when given) or coloured noise, at a drawn SNR, then the microphone, then Opus (share
    ``room_opus_p``)."""
    cfg = cfg or AugmentConfig()
    y = np.asarray(audio, dtype=np.float32)
    if rng.random() < cfg.room_reverb_p:
        y = reverberate(y, synthetic_rir(rng, rng.uniform(*cfg.rt60_s), cfg))
    snr = rng.uniform(*cfg.snr_range_db)
    if others and rng.random() < cfg.room_babble_p:
        y = mix_at_snr(y, babble(len(y), _pick(others, cfg, rng), rng), snr)
    else:
        y = mix_at_snr(y, coloured_noise(len(y), str(rng.choice(cfg.colours)), rng), snr)
    y = microphone(y, rng, cfg)
    if rng.random() < cfg.room_opus_p:
        y = opus_roundtrip(y, rng.uniform(*cfg.opus_level))
    return y


def _pick(others, cfg: "AugmentConfig", rng: np.random.Generator):
    k = int(rng.integers(cfg.talkers[0], cfg.talkers[1] + 1))
    return [others[i] for i in rng.permutation(len(others))[:k]]


def _signed(rng: np.random.Generator, limit: float, floor: float) -> float:
    v = rng.uniform(floor, limit) if limit > floor else limit
    return float(v if rng.random() < 0.5 else -v)


def apply(audio: np.ndarray, kind: str, seed: int, cfg: AugmentConfig = AugmentConfig(), others=None) -> np.ndarray:
    """One augmented copy of ``audio`` (16 kHz mono float32).  ``others``: clips of other training speakers (16 kHz
    mono), the background talkers of ``babble`` (needed) and ``room`` (optional)."""
    rng = np.random.default_rng(seed)
    if kind == "colored_noise":
        return mix_at_snr(audio, coloured_noise(len(audio), str(rng.choice(cfg.colours)), rng),
                          rng.uniform(*cfg.snr_range_db))
    if kind == "reverb":
        return reverberate(audio, synthetic_rir(rng, rng.uniform(*cfg.rt60_s), cfg))
    if kind == "babble":
        if not others:
            raise ValueError("babble needs clips of other training speakers (others=)")
        return mix_at_snr(audio, babble(len(audio), _pick(others, cfg, rng), rng), rng.uniform(*cfg.snr_range_db))
    if kind == "mic":
        return microphone(audio, rng, cfg)
    if kind == "opus":
        return opus_roundtrip(audio, rng.uniform(*cfg.opus_level))
    if kind == "room":
        return room(audio, rng, cfg, others)
    if kind == "noise":
        return add_noise(audio, cfg.snr_db, rng)
    if kind == "pitch":
        return pitch_shift(audio, _signed(rng, cfg.pitch_steps, 0.5))
    if kind == "stretch":
        return time_stretch(audio, 1.0 + _signed(rng, cfg.stretch, 0.03))
    if kind == "lowpass":
        return low_pass(audio, rng.uniform(*cfg.lowpass_hz))
    raise ValueError(f"unknown augmentation {kind!r} (known: {', '.join(KINDS)})")


KINDS = ("noise", "pitch", "stretch", "lowpass", "colored_noise", "reverb", "babble", "mic", "opus", "room")
# kinds that mix in other training speakers: their variants name the training part they draw from ("babble@<pool>").
# ``room`` is left out on purpose: its copies (the costly part: Opus encoding ~0.1 s per clip) do not depend on the
# training part, so one cached copy per clip serves every fold; in training it adds coloured noise, not babble.
NEEDS_OTHERS = ("babble",)


def kind_of(variant: str) -> str:
    """The augmentation kind of a variant name (``room@1a2b3c4d`` -> ``room``)."""
    return variant.partition("@")[0]

"""Speech detection for `listen`: which log-mel frames hold someone speaking, in a real room.

Two detectors share one interface (``push(frames, levels, clipped) -> active per frame``); `stream.SpeechGate`
feeds them once per hop and turns their frames into a hop decision.

``spectral`` (the default) works on the log-mel frames the frontend already makes, so it costs a few vector
operations per hop.  Every mel band between 150 Hz and 4 kHz keeps its own noise floor: the minimum, over the
last ``floor_seconds``, of the band's mean level in chunks of 8 frames (0.26 s; a minimum of chunk means is
minimum-statistics noise tracking: steady noise sits at it, speech lifts whole chunks above it only while it
lasts, and the gaps between words bring it back).  A frame's raw score is the mean rise above their floors (dB,
each band clipped to 0..30) of its top quarter of bands: fan and pink noise rise a few dB at most, a vowel lifts
its harmonics and formants 10-30 dB above the floor even at 5-10 dB SNR, in a few bands rather than all of them.
The score is averaged over 3 frames (the frame and the two before).  The score of noise is tracked the same way
(the minimum over the last ``floor_seconds`` of each chunk's 80th percentile raw score, against the floors the
chunk leaves), so fluctuating noise raises
the bar by as much as it fluctuates; a frame is active when its score exceeds that noise score by ``margin_db``
(default 2) and its level is at least ``min_level_db`` dBFS.  Babble (other voices) is only partly told apart:
see docs/room.md for the measured false alarms.

A step up in the noise (a fan switched on, the next recording's louder room) would be speech until the floors'
memory forgets the quieter room.  A run of ``STEADY_FRAMES`` (0.38 s) frames above the bar is a step instead, and
the floors restart from it, when the run is steady (its unclipped scores within ``STEADY_DB``; speech moves 10-30 dB
between syllables), smooth across bands (the mean spectrum's deviation from its 5-band running median under
``SMOOTH_DB``; a held vowel's harmonics are peaks and valleys) and at least ``STEP_BELOW_DB`` under the loudest
speech heard (a peak decaying ``PEAK_DECAY_DB`` per second; a steady stretch of speech in loud noise is not under
it).  Before any speech, a new noise is left to the floors' memory as before.

``energy`` is the earlier gate: a frame's level against the ``floor_percentile``-th percentile of recent frame
levels plus ``margin_db``.

Neither floor ever learns from digital silence (frames below ``SILENT_DBFS``, e.g. the zeros a sound card or a
file gives before the stream starts) nor from clipped frames (a knock or a shout at full scale): such frames are
not added to the floor's history (``GateConfig.floor_guard``; off, the energy gate is the original one).
"""
from __future__ import annotations

import numpy as np

from .frontend import hz_to_mel, mel_to_hz

SILENT_DBFS = -100.0    # a frame quieter than this is digital silence: never part of a noise floor
CLIP_LEVEL = 0.999      # |sample| at or above this is clipped ...
CLIP_SHARE = 0.01       # ... and a frame with at least this share of clipped samples is a clipped burst
CHUNK_FRAMES = 8        # spectral floor: frames per chunk whose band means enter the minimum
BAND_HZ = (150.0, 4000.0)
MAX_RISE_DB = 30.0
TOP_SHARE = 0.25        # a frame's score: mean rise of its top quarter of bands (speech energy is concentrated)
SMOOTH_FRAMES = 3       # scores averaged over this many frames (the current and the previous ones)
NOISE_QUANTILE = 80.0   # the noise's score: this percentile of a chunk's scores, minimum over floor_seconds
STEADY_FRAMES = 12      # a step in the noise: this many frames (0.38 s) in a row above the bar ...
STEADY_DB = 3.0         # ... whose unclipped scores stay within this range (speech moves 10-30 dB within syllables)
SMOOTH_DB = 1.5         # ... and whose mean spectrum is smooth across bands (a voice's harmonics are not)
STEP_BELOW_DB = 10.0    # ... and whose level is this far under the loudest speech heard (its peak decays
PEAK_DECAY_DB = 1.0     # this many dB per second): a steady stretch of speech in loud noise is not a step


def mel_centres(sample_rate: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Centre frequency (Hz) of each Slaney mel band, as `frontend.mel_filters` places them."""
    fmax = sample_rate / 2 if fmax is None else fmax
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    return np.asarray(mel_to_hz(mels))[1:-1]


class EnergyDetector:
    """Frame level against a percentile of recent frame levels (the original gate)."""

    name = "energy"
    default_margin_db = 8.0

    def __init__(self, config, frame_seconds: float, n_mels: int = 128, sample_rate: int = 16000,
                 fmin: float = 0.0, fmax: float | None = None):
        self.config = config
        self.margin_db = self.default_margin_db if config.margin_db is None else config.margin_db
        self._ring = np.empty(max(1, int(round(config.floor_seconds / frame_seconds))), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._count = 0
        self._pos = 0
        self._floor = None

    @property
    def noise_floor(self) -> float:
        if self._count == 0:
            return -120.0
        if self._floor is None:  # once per push
            self._floor = float(np.percentile(self._ring[:self._count], self.config.floor_percentile))
        return self._floor

    def push(self, frames: np.ndarray | None, levels: np.ndarray, clipped: np.ndarray) -> np.ndarray:
        cfg = self.config
        levels = np.asarray(levels, dtype=np.float64)
        learn = levels if not cfg.floor_guard else levels[(levels > SILENT_DBFS) & ~clipped]
        for v in learn:
            self._ring[self._pos] = v
            self._pos = (self._pos + 1) % len(self._ring)
            self._count = min(self._count + 1, len(self._ring))
        self._floor = None
        threshold = max(self.noise_floor + self.margin_db, cfg.min_level_db)
        return levels > threshold


class SpectralDetector:
    """Per-band minimum-statistics noise floor on log-mel frames; a frame is active when its bands rise above their
    floors by more than noise does (see the module's docstring)."""

    name = "spectral"
    default_margin_db = 2.0

    def __init__(self, config, frame_seconds: float, n_mels: int = 128, sample_rate: int = 16000,
                 fmin: float = 0.0, fmax: float | None = None):
        self.config = config
        self.margin_db = self.default_margin_db if config.margin_db is None else config.margin_db
        centres = mel_centres(sample_rate, n_mels, fmin, fmax)
        self.bands = np.flatnonzero((centres >= BAND_HZ[0]) & (centres <= BAND_HZ[1]))
        if self.bands.size == 0:
            self.bands = np.arange(n_mels)
        self.n_ring = max(2, int(round(config.floor_seconds / (CHUNK_FRAMES * frame_seconds))))
        self._decay = PEAK_DECAY_DB * frame_seconds
        self.reset()

    def reset(self) -> None:
        nb = len(self.bands)
        self._floor_ring = np.full((self.n_ring, nb), np.inf)
        self._frames_ring = np.zeros((self.n_ring, CHUNK_FRAMES, nb))
        self._pos = 0
        self._count = 0
        self._recent = np.zeros(0)  # the last raw scores (smoothing)
        self._chunk = np.zeros((CHUNK_FRAMES, nb))  # frames of the chunk being filled (band levels)
        self._chunk_level = np.zeros(CHUNK_FRAMES)
        self._level_ring = np.full(self.n_ring, np.inf)
        self._chunk_n = 0
        self._floor = None  # per band, None until a chunk was learnt
        self._noise_score = 0.0
        self._steady_x = np.zeros((STEADY_FRAMES, nb))  # the last frames of the current run above the bar
        self._steady_s = np.zeros(STEADY_FRAMES)
        self._steady_l = np.zeros(STEADY_FRAMES)
        self._steady_n = 0
        self._peak = -np.inf  # the loudest active frame's level (false alarms included), decaying (STEP_BELOW_DB)
        self.last_scores = np.zeros(0)

    @property
    def noise_floor(self) -> float:
        """The noise's level in dBFS (minimum over ``floor_seconds`` of chunk mean levels), -120 before any."""
        held = self._level_ring[np.isfinite(self._level_ring)]
        return float(held.min()) if held.size else -120.0

    def _learn(self, x: np.ndarray) -> None:
        """Add a chunk of frames: the band floors, then every held chunk's raw scores against them (the noise
        score: the lowest chunk's NOISE_QUANTILE-th percentile)."""
        self._frames_ring[self._pos] = x
        self._floor_ring[self._pos] = x.mean(axis=0)
        self._level_ring[self._pos] = float(10 * np.log10(np.mean(10 ** (self._chunk_level / 10))))
        self._pos = (self._pos + 1) % self.n_ring
        self._count = min(self._count + 1, self.n_ring)
        self._floor = self._floor_ring.min(axis=0)
        held = self._frames_ring[:self._count]  # (chunks, frames, bands)
        raw = np.sort(self._raw(held.reshape(-1, held.shape[2])).reshape(held.shape[:2]), axis=1)
        q = NOISE_QUANTILE / 100.0 * (raw.shape[1] - 1)  # linear percentile, without np.percentile's overhead
        lo = int(q)
        hi = min(lo + 1, raw.shape[1] - 1)
        self._noise_score = float((raw[:, lo] + (q - lo) * (raw[:, hi] - raw[:, lo])).min())

    def _raw(self, x: np.ndarray, unclipped: bool = False):
        """Unsmoothed scores of frames ``(k, bands)``: mean rise above the floor of each frame's top bands (each
        rise clipped to 0..MAX_RISE_DB); with ``unclipped``, also the same mean without the upper clip."""
        rise = x - self._floor
        top = max(1, int(round(TOP_SHARE * rise.shape[1])))
        tops = np.maximum(np.partition(rise, rise.shape[1] - top, axis=1)[:, -top:], 0.0)
        raw = np.minimum(tops, MAX_RISE_DB).mean(axis=1)
        return (raw, tops.mean(axis=1)) if unclipped else raw

    def _steady_step(self, x: np.ndarray, levels: np.ndarray, run: np.ndarray, unclipped: np.ndarray) -> bool:
        """Follow the run of frames above the bar (``run``: this hop's frames above it and usable); True when the
        run reaches the hop's end and its last STEADY_FRAMES are a step in the noise (a fan switched on, a louder
        room): steady in score, STEP_BELOW_DB under the speech peak, smooth across bands."""
        for i in range(len(run)):
            if not run[i]:
                self._steady_n = 0
                continue
            self._steady_x[self._steady_n % STEADY_FRAMES] = x[i]
            self._steady_l[self._steady_n % STEADY_FRAMES] = levels[i]
            self._steady_s[self._steady_n % STEADY_FRAMES] = unclipped[i]
            self._steady_n += 1
        if self._steady_n < STEADY_FRAMES or np.ptp(self._steady_s) >= STEADY_DB:
            return False
        level = 10 * np.log10(np.mean(10 ** (self._steady_l / 10)))
        if level > self._peak - STEP_BELOW_DB:
            return False
        spectrum = self._steady_x.mean(axis=0)
        pad = np.pad(spectrum, 2, mode="edge")
        local = np.median(np.lib.stride_tricks.sliding_window_view(pad, 5), axis=1)
        return float(np.mean(np.abs(spectrum - local))) < SMOOTH_DB

    def push(self, frames: np.ndarray, levels: np.ndarray, clipped: np.ndarray) -> np.ndarray:
        """Judge a hop's frames against the floors as they stand (they move once per chunk: at most a hop late).
        When the hop ends a step in the noise (`_steady_step`) the floors restart from it and its frames there are
        not speech."""
        cfg = self.config
        x = np.asarray(frames, dtype=np.float64)[self.bands].T  # (k, bands)
        k = x.shape[0]
        levels = np.asarray(levels, dtype=np.float64)
        usable = (levels > SILENT_DBFS) & ~clipped if cfg.floor_guard else np.ones(k, bool)
        active = np.zeros(k, dtype=bool)
        scores = np.zeros(k)
        unclipped = None
        if self._floor is not None and k:
            raw, unclipped = self._raw(x, unclipped=True)
            both = np.concatenate([self._recent, raw])
            c = np.cumsum(np.concatenate([[0.0], both]))
            n = SMOOTH_FRAMES
            ends = np.arange(len(self._recent) + 1, len(both) + 1)
            starts = np.maximum(ends - n, 0)
            scores = (c[ends] - c[starts]) / (ends - starts)
            self._recent = both[-(n - 1):] if n > 1 else both[:0]
            active = (scores > self._noise_score + self.margin_db) & (levels >= cfg.min_level_db)
        for i in np.flatnonzero(usable):  # fill chunks; each full one updates the floors
            self._chunk[self._chunk_n] = x[i]
            self._chunk_level[self._chunk_n] = levels[i]
            self._chunk_n += 1
            if self._chunk_n == CHUNK_FRAMES:
                self._learn(self._chunk)
                self._chunk_n = 0
        if unclipped is not None and self._steady_step(x, levels, active & usable, unclipped):
            in_hop = min(k, self._steady_n)  # the run ends the hop: its frames here are noise, not speech
            newest = (self._steady_n - 1 - np.arange(CHUNK_FRAMES)) % STEADY_FRAMES
            steady, steady_levels = self._steady_x[newest], self._steady_l[newest]
            peak = self._peak
            self.reset()  # the old floors describe a quieter room: restart them from the step's newest chunk
            self._peak = peak
            self._chunk_level[:] = steady_levels
            self._learn(steady)
            active[k - in_hop:] = False
            scores[k - in_hop:] = 0.0
        # then the loudest active frame of this hop (a step's frames of this hop are no longer active; the peak is a
        # maximum, so those of the hops before, already in it, change nothing unless they were the loudest)
        self._peak -= self._decay * k
        if active.any():
            ages = (k - 1 - np.flatnonzero(active)) * self._decay
            self._peak = max(self._peak, float((levels[active] - ages).max()))
        self.last_scores = scores
        return active


DETECTORS = {"spectral": SpectralDetector, "energy": EnergyDetector}

"""From clips to model inputs, exactly as the runtime computes them.

A clip's log-mel is ``edge_ser.frontend.log_mel(audio, top_db=None)`` (what the streaming frontend yields), cached
on disk per clip and augmentation variant.  Windows of ``n_frames`` frames are cut by
``edge_ser.features.clip_windows`` and turned into model inputs by ``edge_ser.features.compute`` with the model's
input spec.  A clip is scored like ``Model.classify_audio``: the mean of its windows' probabilities.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_ser import features
from edge_ser.audio import audio_info, load_audio
from edge_ser.errors import AudioError
from edge_ser.frontend import FrontendConfig, log_mel

from . import augment
from .corpora import Clip

DEFAULT_WINDOW_SECONDS = 2.5
# A training clip is an utterance (corpora: 1-10 s).  Longer files (a whole session recorded by mistake) are
# reported and skipped instead of being decoded whole: an hour would take ~0.8 GB (audio + log-mel + windows).
MAX_CLIP_SECONDS = 120.0
DEFAULT_HOP_SECONDS = 0.5


# how training fills a clip shorter than the window (edge_ser.features.PADS): centred in silence, as every shipped
# model was trained.  "repeat" (its frames repeated, as listen's ring filled a window from an utterance's first
# seconds until it stretched them; manifest version 3) was measured for fine16-cnn/-rfc: lower on average in CV and on
# corpora never trained on, no gain in listen (docs/training.md), so it is an option, not the default.
TRAIN_PAD = "silence"


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGE_SER_CACHE", "cache"))


@dataclass
class InputSpec:
    """What a model sees: the frontend, the window length, and the features computed from a window."""
    features: str
    params: dict
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    hop_seconds: float = DEFAULT_HOP_SECONDS
    frontend: FrontendConfig = field(default_factory=lambda: FrontendConfig(top_db=None))
    # speaker normalisation (edge_ser.adapt): {"axes": [...], "prior_windows": k}, or None for none
    speaker_norm: dict | None = None
    pad: str = TRAIN_PAD  # how a clip shorter than the window fills it (manifest input.pad)

    @property
    def n_frames(self) -> int:
        return self.frontend.frames_for(int(round(self.window_seconds * self.frontend.sample_rate)))

    @property
    def hop_frames(self) -> int:
        return max(1, int(round(self.hop_seconds * self.frontend.sample_rate / self.frontend.hop_length)))

    def full_params(self) -> dict:
        return {"n_frames": self.n_frames, **self.params}

    def compute(self, window_db: np.ndarray) -> np.ndarray:
        return features.compute(window_db, self.features, self.full_params())

    def manifest_input(self, shape, norm=None) -> dict:
        out = {"features": self.features, "params": self.full_params(), "shape": list(shape), "dtype": "float32"}
        if self.pad != "silence":  # absent = silence, as older manifests read
            out["pad"] = self.pad
        if norm is not None:  # edge_ser.adapt.SpeakerNorm (population statistics of the training part)
            out["speaker_norm"] = norm.to_manifest()
        return out


class LogMelCache:
    """Per-clip log-mel (dB, no top_db floor) on disk under ``cache_dir/logmel``, keyed by file + variant."""

    def __init__(self, cache_dir: Path | None = None, frontend: FrontendConfig | None = None,
                 aug: augment.AugmentConfig = augment.AugmentConfig(), seed: int = 0):
        self.dir = Path(cache_dir or default_cache_dir()) / "logmel"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frontend = frontend or FrontendConfig(top_db=None)
        self.aug = aug
        self.seed = seed
        self.failed: dict[str, str] = {}
        self.pools: dict[str, list[tuple[str, str]]] = {}  # pool id -> (path, speaker) of a training part

    def register_pool(self, clips) -> str:
        """Name the clips of a training part as the background talkers of its ``babble``/``room`` copies; returns
        the pool id the variant names carry (``room@<id>``), so each training part draws only from itself."""
        members = sorted({(c.path, c.speaker) for c in clips})
        pid = hashlib.sha1(json.dumps(members).encode()).hexdigest()[:10]
        self.pools.setdefault(pid, members)
        return pid

    def _others(self, clip: Clip, variant: str, seed: int) -> list | None:
        """Up to ``aug.talkers[1]`` clips of other speakers from the variant's pool (None: no pool named)."""
        _, _, pid = variant.partition("@")
        if not pid:
            return None
        if pid not in self.pools:
            raise ValueError(f"augmentation variant {variant!r} names an unknown pool of training clips")
        pool = [(p, s) for p, s in self.pools[pid] if s != clip.speaker]
        rng = np.random.default_rng([seed, 11])
        out, seen = [], set()
        for k in rng.permutation(len(pool)):  # one clip per talker
            path, spk = pool[int(k)]
            if spk in seen:
                continue
            try:
                out.append(load_audio(path, self.frontend.sample_rate))
            except AudioError:
                continue
            seen.add(spk)
            if len(out) >= self.aug.talkers[1]:
                break
        return out
    def key(self, path: str, variant: str) -> str:
        st = os.stat(path)
        fe = self.frontend.to_dict() | {"top_db": None}
        blob = json.dumps([str(Path(path).resolve()), st.st_size, st.st_mtime_ns, variant,
                           self.aug.to_dict() if variant else None, self.seed if variant else None, fe])
        return hashlib.sha1(blob.encode()).hexdigest()

    def has(self, path: str, variant: str = "") -> bool:
        """True when the clip's log-mel (in ``variant``) is cached."""
        try:
            return (self.dir / f"{self.key(path, variant)}.npy").exists()
        except OSError:
            return False

    def put(self, path: str, variant: str, db: np.ndarray) -> None:
        """Cache a log-mel computed elsewhere (a cluster worker) under the key `get` would use."""
        try:
            fname = self.dir / f"{self.key(path, variant)}.npy"
        except OSError:
            return
        if not fname.exists():
            tmp = fname.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, db)
            os.replace(tmp, fname)

    def get(self, clip: Clip, variant: str = "") -> np.ndarray | None:
        """The clip's log-mel (or its augmented ``variant``); None if the audio cannot be read."""
        try:
            fname = self.dir / f"{self.key(clip.path, variant)}.npy"
        except OSError as exc:
            self.failed[clip.path] = str(exc)
            return None
        if fname.exists():
            try:
                return np.load(fname)
            except (OSError, ValueError):
                pass
        try:
            seconds = audio_info(clip.path).duration
            if seconds > MAX_CLIP_SECONDS:
                raise AudioError(f"{clip.path}: {seconds:.0f} s long; a training clip is an utterance of at most "
                                 f"{MAX_CLIP_SECONDS:.0f} s (split long recordings first)")
            audio = load_audio(clip.path, self.frontend.sample_rate)
        except AudioError as exc:
            self.failed[clip.path] = str(exc)
            return None
        if variant:
            seed = augment.variant_seed(self.seed, f"{clip.path}:{variant}")
            audio = augment.apply(audio, augment.kind_of(variant), seed, self.aug, self._others(clip, variant, seed))
        fe = self.frontend
        db = log_mel(audio, fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.fmin, fe.fmax, top_db=None)
        tmp = fname.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, db)
        os.replace(tmp, fname)
        return db

    def many(self, clips: list[Clip], variant: str = "", desc: str = "log-mel") -> list[np.ndarray | None]:
        return [self.get(c, variant) for c in tqdm(clips, desc=desc + (f" [{variant}]" if variant else ""),
                                                   unit="clip", leave=False, mininterval=2.0)]


def windows_of(db: np.ndarray, spec: InputSpec) -> np.ndarray:
    return features.clip_windows(db, spec.n_frames, spec.hop_frames, spec.pad)


def window_inputs(dbs: list[np.ndarray], spec: InputSpec, desc: str | None = None):
    """Model inputs of every window of every clip: (X[n_windows, ...], clip_index[n_windows])."""
    xs, owner = [], []
    it = enumerate(dbs)
    if desc:
        it = tqdm(it, total=len(dbs), desc=desc, unit="clip", leave=False, mininterval=2.0)
    for i, db in it:
        for w in windows_of(db, spec):
            xs.append(spec.compute(w))
            owner.append(i)
    return np.stack(xs).astype(np.float32), np.asarray(owner)


def clip_probs(window_probs: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of each clip's window probabilities (the runtime's classify rule)."""
    out = np.zeros((n_clips, window_probs.shape[1]), dtype=np.float64)
    np.add.at(out, owner, window_probs)
    counts = np.bincount(owner, minlength=n_clips).astype(np.float64)
    return (out / np.maximum(counts, 1)[:, None]).astype(np.float32)

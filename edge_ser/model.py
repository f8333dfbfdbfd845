"""The model: a verified manifest and a runner; model inputs from log-mel windows, probabilities for a clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import features
from .errors import ModelError
from .frontend import log_mel
from .manifest import Manifest


class Model:
    """A verified model: ``predict`` on model inputs, ``input_for`` a window of log-mel frames,
    ``classify_audio`` a whole clip."""

    def __init__(self, manifest: Manifest, path: Path, fmt: str, runner):
        self.manifest = manifest
        self.path = Path(path)
        self.format = fmt
        self.labels = list(manifest.labels)
        self.frontend = manifest.frontend_config
        self.n_frames = manifest.n_frames
        self.pad = manifest.pad  # how a clip shorter than the window fills it (features.PADS)
        self.input_shape = tuple(int(s) for s in manifest.input.get("shape", ()))
        self.speaker_norm = manifest.speaker_norm()  # edge_ser.adapt.SpeakerNorm, or None
        self._runner = runner
        if self.speaker_norm is not None:  # a level-invariant adaptation prior (edge_ser.adapt, "Level-invariant")
            from .adapt import gain_slopes
            norm = self.speaker_norm  # models trained before level_ref: the unit levels only, as they were trained
            norm.level_slope = gain_slopes(self.input_for, self.frontend.n_mels, self.n_frames, norm.axes,
                                           unit_only=norm.level_ref is None)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def window_seconds(self) -> float:
        return float(self.manifest.window_seconds)

    def __repr__(self) -> str:
        return f"Model({self.name!r}, format={self.format!r}, path={str(self.path)!r})"

    def warmup(self) -> float:
        """Run the model once on a silent window (runtimes build their kernels/trees lazily on the first call, which
        would otherwise land on the first hop); returns the seconds it took."""
        import time
        start = time.perf_counter()
        silent = np.full((self.frontend.n_mels, self.n_frames), features.SILENCE_DB, dtype=np.float32)
        self.predict(self.normalize(self.input_for(silent)[None]))
        return time.perf_counter() - start

    def speaker_stats(self):
        """Fresh statistics of one speaker (`edge_ser.adapt.SpeakerStats`), or None if the model does not adapt."""
        return None if self.speaker_norm is None else self.speaker_norm.stats()

    def normalize(self, inputs: np.ndarray, stats=None) -> np.ndarray:
        """Model inputs ``(batch, *shape)`` as the model expects them: standardised by the speaker's ``stats``
        (the training population's when None) for a model trained with speaker normalisation, else unchanged."""
        if self.speaker_norm is None:
            return inputs
        return self.speaker_norm.apply(inputs, stats)

    def input_for(self, db_window: np.ndarray) -> np.ndarray:
        """The model input for one window of log-mel frames (dB, no top_db floor): ``features.compute``."""
        spec = self.manifest.input
        x = features.compute(db_window, spec["features"], spec.get("params", {}))
        if self.input_shape and tuple(x.shape) != self.input_shape:
            raise ModelError(f"{self.path}: features give shape {tuple(x.shape)}, the manifest says "
                             f"{self.input_shape}")
        return x.astype(np.float32, copy=False)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities ``(batch, n_labels)`` for model inputs ``(batch, *input.shape)``."""
        x = np.ascontiguousarray(inputs, dtype=np.float32)
        if x.ndim == len(self.input_shape):
            x = x[None]
        if self.input_shape and tuple(x.shape[1:]) != self.input_shape:
            raise ModelError(f"input shape {tuple(x.shape[1:])} does not match the model's {self.input_shape}")
        probs = self._runner(x, self.labels)
        if probs.ndim != 2 or probs.shape[1] != len(self.labels):
            raise ModelError(f"{self.path}: model gives {probs.shape[-1]} outputs for {len(self.labels)} labels")
        probs = np.clip(probs, 0.0, None)
        total = probs.sum(axis=1, keepdims=True)  # quantised outputs may not sum to exactly 1
        return np.where(total > 0, probs / np.where(total > 0, total, 1.0), 1.0 / len(self.labels))

    def frames(self, audio16k: np.ndarray) -> np.ndarray:
        """The clip's log-mel frames as the streaming engine computes them (``top_db=None``)."""
        cfg = self.frontend
        return log_mel(np.asarray(audio16k, dtype=np.float32), cfg.sample_rate, cfg.n_fft, cfg.hop_length,
                       cfg.n_mels, cfg.fmin, cfg.fmax, top_db=None)

    def hop_frames(self, hop_seconds: float | None = None) -> int:
        hop = self.manifest.hop_seconds if hop_seconds is None else hop_seconds
        return max(1, int(round(hop * self.frontend.sample_rate / self.frontend.hop_length)))

    def clip_inputs(self, audio16k: np.ndarray, hop_seconds: float | None = None) -> np.ndarray:
        """A clip's model inputs before speaker normalisation, one per window cut by ``features.clip_windows``."""
        db = self.frames(audio16k)
        windows = features.clip_windows(db, self.n_frames, self.hop_frames(hop_seconds), self.pad)
        return np.stack([self.input_for(w) for w in windows])

    def classify_audio(self, audio16k: np.ndarray, hop_seconds: float | None = None, stats=None,
                       update: bool = True) -> np.ndarray:
        """Probabilities per label for a clip: the mean over windows cut by ``features.clip_windows``.

        A speaker-normalised model adapts to the clip itself (fresh statistics) unless ``stats`` are given (a
        speaker's statistics, updated with this clip's windows first unless ``update`` is False)."""
        x = self.clip_inputs(audio16k, hop_seconds)
        if self.speaker_norm is not None:
            stats = self.speaker_stats() if stats is None else stats
            if update:
                stats.update(x)
        return self.predict(self.normalize(x, stats)).mean(axis=0)

    BATCH = 32  # model inputs held and scored together by `classify_blocks`

    def classify_blocks(self, blocks, hop_seconds: float | None = None, batch: int = BATCH, stats=None,
                        update: bool = True, predict: bool = True, listener=None) -> tuple[np.ndarray, int]:
        """`classify_audio` for a clip arriving in blocks of 16 kHz mono audio, in bounded memory whatever its
        length: the streaming frontend gives the same frames as ``frames()``, the same windows are cut (the
        `features.clip_windows` rule: every ``hop`` from the start, one more aligned to the end, or one padded
        window for a short clip) and their probabilities averaged.  Only one window plus a hop of frames and
        ``batch`` model inputs are held.  Returns ``(probabilities, samples consumed)``.

        A speaker-normalised model adapts as `classify_audio` does, batch by batch: each batch is standardised by
        the statistics of every window so far (for a clip of up to ``batch`` windows: of the whole clip).
        ``predict=False`` only adds the windows to ``stats`` (the probabilities returned are then zeros).
        ``listener``: an object whose ``push(block)`` also sees every block (e.g. `stream.LoudestFrame`)."""
        from .frontend import StreamingLogMel

        frontend = StreamingLogMel(self.frontend)
        cutter = features.WindowCutter(self.n_frames, self.hop_frames(hop_seconds), self.pad)  # clip_windows' rule
        pending: list[np.ndarray] = []
        acc = np.zeros(len(self.labels), dtype=np.float64)
        count = 0
        samples = 0

        if self.speaker_norm is not None and stats is None:
            stats = self.speaker_stats()

        def run(windows: list[np.ndarray], final: bool = False):
            for w in windows:
                pending.append(self.input_for(w))
                if len(pending) >= batch:
                    score()
            if final:
                score()

        def score():
            nonlocal acc, count
            if pending:
                x = np.stack(pending)
                if stats is not None and update:
                    stats.update(x)
                if predict:
                    acc += self.predict(self.normalize(x, stats)).sum(axis=0, dtype=np.float64)
                count += len(pending)
                pending.clear()

        for block in blocks:
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            samples += block.size
            if block.size:
                run(cutter.push(frontend.push(block)))
                if listener is not None:
                    listener.push(block)
        run(cutter.push(frontend.flush()))
        run(cutter.finish(), final=True)
        return (acc / max(count, 1)).astype(np.float32), samples

    def classify_file(self, path, hop_seconds: float | None = None, stats=None, update: bool = True,
                      predict: bool = True, listener=None) -> tuple[np.ndarray, float]:
        """Probabilities per label for an audio file read block by block (bounded memory, any length, rate or
        channel count); returns ``(probabilities, duration in seconds)``.  AudioError for unreadable audio.
        ``stats``/``update``: speaker adaptation, as in `classify_blocks`.  A speaker-normalised model given no
        ``stats`` adapts to the whole file (training's "each clip alone" regime): a file whose windows fit in one
        batch is read once (the batch is standardised by its own statistics); a longer one is read twice, its
        statistics first.  ``listener``: see `classify_blocks` (it sees the scoring pass only)."""
        from .sources import FileSource

        if (predict and update and stats is None and self.speaker_norm is not None
                and not self._fits_one_batch(path, hop_seconds)):
            stats = self.speaker_stats()
            self.adapt_file(path, stats, hop_seconds)
            update = False

        source = FileSource(path, realtime=False, block_seconds=1.0, target_rate=self.frontend.sample_rate)
        probs, samples = self.classify_blocks(iter(source), hop_seconds, stats=stats, update=update, predict=predict,
                                              listener=listener)
        return probs, samples / self.frontend.sample_rate

    def _fits_one_batch(self, path, hop_seconds: float | None) -> bool:
        """True when the file's header says all its windows fit in one `classify_blocks` batch (a bound: at most
        frames / hop + 2 windows); False when the duration is unknown or the header unreadable."""
        import math

        from .audio import audio_info
        from .errors import AudioError
        try:
            seconds = float(audio_info(path).duration)
        except AudioError:
            return False  # the classifying pass reports it
        if not (math.isfinite(seconds) and seconds > 0):
            return False
        frames = seconds * self.frontend.sample_rate / self.frontend.hop_length + 2
        return frames / self.hop_frames(hop_seconds) + 2 < self.BATCH

    def adapt_file(self, path, stats, hop_seconds: float | None = None, listener=None) -> int:
        """Add an audio file's windows to a speaker's ``stats`` without classifying it; returns the windows added."""
        before = stats.windows
        self.classify_file(path, hop_seconds, stats=stats, update=True, predict=False, listener=listener)
        return stats.windows - before

    def describe(self, probs: np.ndarray) -> dict:
        """label, emotion, intensity, intensity_score (`labels.intensity_score`), confidence and scores for one
        probability vector."""
        from .labels import intensity_score, split_label
        i = int(np.argmax(probs))
        emotion, intensity = split_label(self.labels[i])
        return {"label": self.labels[i], "emotion": emotion, "intensity": intensity,
                "intensity_score": intensity_score(self.labels, probs),
                "confidence": round(float(probs[i]), 4),
                "scores": {lab: round(float(p), 4) for lab, p in zip(self.labels, probs)}}

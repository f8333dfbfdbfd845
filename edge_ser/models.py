"""Model registry and runners: find a model by name or directory, verify its manifest, run it.

A model is a directory with ``manifest.json`` and ``model.onnx`` and/or ``model.tflite`` (see `edge_ser.manifest`).
The manifest is verified (file hashes, frontend, labels) before any model file is opened.  ONNX models run with
onnxruntime (CPU, ``threads`` intra-op threads, one inter-op thread); TFLite models with LiteRT
(``ai_edge_litert``) or ``tflite_runtime``, whichever is installed, including int8-quantised inputs/outputs.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import features
from .errors import ModelError
from .frontend import log_mel
from .manifest import MODEL_FILES, Manifest, read_manifest
from .paths import search_dirs

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "assets" / "models"
MODELS_ENV = "EDGE_SER_MODELS"  # optional extra directory of models, searched before the defaults
FORMATS = tuple(MODEL_FILES)  # ("onnx", "tflite")


# --- registry ------------------------------------------------------------------------------------------

def models_dirs() -> list[Path]:
    return search_dirs(MODELS_ENV, DEFAULT_MODELS_DIR)


def _named_models() -> dict[str, Path]:
    """name -> directory for every model directory in the search path (first one wins)."""
    found: dict[str, Path] = {}
    for root in models_dirs():
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if (d / "manifest.json").is_file() and d.name not in found:
                found[d.name] = d
    return found


def list_models(verify: bool = False, errors: list | None = None) -> list[Manifest]:
    """Manifests of the installed models (the package's defaults and ``$EDGE_SER_MODELS``), sorted by name.

    A directory whose manifest cannot be read is left out (its one-line reason appended to ``errors`` if given);
    with ``verify`` the file hashes are checked too.
    """
    out = []
    for name, d in sorted(_named_models().items()):
        try:
            m = read_manifest(d, verify=verify)
        except ModelError as exc:
            if errors is not None:
                errors.append(str(exc))
            continue
        m.extra = dict(m.extra, path=str(d))  # the directory's name is what --model takes
        out.append(m)
    return out


def known_names() -> list[str]:
    return list(_named_models())


def resolve_model(spec: str | os.PathLike) -> Path:
    """A default model's name (``fine15-cnn``) or a model directory -> the model directory."""
    if spec is None or str(spec).strip() == "":
        raise ModelError("no model given")
    p = Path(spec).expanduser()
    if p.is_dir():
        if not (p / "manifest.json").is_file():
            raise ModelError(f"{p}: not a model directory (no manifest.json)")
        return p
    named = _named_models()
    if str(spec) in named:
        return named[str(spec)]
    if p.exists():
        raise ModelError(f"{p}: a model is a directory holding manifest.json and model.onnx/model.tflite")
    known = ", ".join(named) or f"none installed in {DEFAULT_MODELS_DIR}"
    looks_like_path = os.sep in str(spec) or str(spec).startswith(".")
    what = "no such model directory" if looks_like_path else "unknown model"
    raise ModelError(f"{what} {str(spec)!r} (known models: {known})")


def load_model(spec: str | os.PathLike, fmt: str | None = None, threads: int = 1) -> "Model":
    """Verify and open a model.  ``fmt`` None: ONNX if the model has it, else TFLite."""
    path = resolve_model(spec)
    manifest = read_manifest(path, verify=True)
    if threads is None:
        threads = 1
    if int(threads) < 1:
        raise ModelError(f"threads must be at least 1, got {threads}")
    if fmt is None:
        fmt = "onnx" if "onnx" in manifest.formats else manifest.formats[0]
    if fmt not in FORMATS:
        raise ModelError(f"unknown model format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt not in manifest.formats:
        raise ModelError(f"{path}: model has no {fmt} file (it has: {', '.join(manifest.formats)})")
    file = path / MODEL_FILES[fmt]
    runner = OnnxRunner(file, int(threads)) if fmt == "onnx" else TFLiteRunner(file, int(threads))
    return Model(manifest, path, fmt, runner)


# --- runners -------------------------------------------------------------------------------------------

class OnnxRunner:
    """onnxruntime session on the CPU; returns the model's probability output as float32 ``(batch, n)``."""

    def __init__(self, file: Path, threads: int = 1):
        try:
            with _quiet_stderr():  # as a user without a writable home, the import prints a telemetry warning on fd 2
                ort = _import("onnxruntime")
        except ImportError as exc:  # pragma: no cover - onnxruntime is a hard dependency
            raise ModelError(f"onnxruntime is not installed ({exc})") from None
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(file), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"{file}: onnxruntime cannot load the model ({_first_line(exc)})") from None
        release_freed_memory()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.output_name = self._probability_output()

    def _probability_output(self) -> str:
        outputs = self.session.get_outputs()
        for o in outputs:  # skl2onnx classifiers: "label" then "probabilities" (tensor, or a ZipMap sequence)
            if "prob" in o.name.lower():
                return o.name
        for o in outputs:
            if o.type == "tensor(float)" and len(o.shape) == 2:
                return o.name
        return outputs[-1].name

    def __call__(self, x: np.ndarray, labels: list[str]) -> np.ndarray:
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        if isinstance(out, list):  # ZipMap: a list of {class: p} dicts
            return _zipmap_to_array(out, labels)
        return np.asarray(out, dtype=np.float32)


class TFLiteRunner:
    """LiteRT / tflite-runtime interpreter; handles int8/uint8 quantised tensors and batch-1 models."""

    def __init__(self, file: Path, threads: int = 1):
        Interpreter = _tflite_interpreter_class()
        try:
            with _quiet_stderr():  # LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2
                self.interpreter = Interpreter(model_path=str(file), num_threads=threads)
                self.interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelError(f"{file}: TFLite cannot load the model ({_first_line(exc)})") from None
        self.inp = self.interpreter.get_input_details()[0]
        self.out = self.interpreter.get_output_details()[0]
        self.batch = int(self.inp["shape"][0]) if len(self.inp["shape"]) else 1
        self._allocated_batch = self.batch

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if x.shape[0] != self._allocated_batch:
            it.resize_tensor_input(self.inp["index"], list(x.shape))
            it.allocate_tensors()
            self._allocated_batch = x.shape[0]
        it.set_tensor(self.inp["index"], _quantize(x, self.inp))
        it.invoke()
        return _dequantize(it.get_tensor(self.out["index"]), self.out)

    def __call__(self, x: np.ndarray, labels: list[str]) -> np.ndarray:
        signature = self.inp.get("shape_signature")
        dynamic = signature is not None and len(signature) and int(signature[0]) == -1
        if dynamic or x.shape[0] == self._allocated_batch:
            return self._invoke(x)
        # a model converted with a fixed batch of 1: one call per item
        return np.concatenate([self._invoke(x[i:i + 1]) for i in range(x.shape[0])], axis=0)


def release_freed_memory() -> bool:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``); False where there is no glibc.

    Building an onnxruntime session for a large tree ensemble (the RFC models: ~160k nodes) allocates and frees
    tens of MB of temporaries (attribute copies, node maps); glibc keeps the freed pages resident, so everything the
    process allocates afterwards (the stream engine, the features' imports) would stack on top of them.  Measured
    with fine15-rfc (numpy + onnxruntime only): resident after the session 135 MB -> 83 MB; peak RSS of `edge-ser
    listen --fast` on 30 s 168 -> 150 MB (basic6-rfc 180 -> 166).  The session and its outputs are unchanged.
    """
    try:
        import ctypes
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return False


@contextmanager
def _quiet_stderr():
    """Silence the C++ libraries' informational lines on file descriptor 2 (exceptions still carry the reason)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import(module: str):
    """``importlib.import_module(module)``, except that a Ctrl-C during the import stays a KeyboardInterrupt: a C
    extension interrupted while it initialises reports ``ImportError: initialization failed`` (or "import numpy
    failed"), which would otherwise read as a missing package."""
    interrupted = []

    def on_interrupt(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    # only where Ctrl-C means KeyboardInterrupt anyway (Python's default handler, the CLI's case): an application's
    # own handler (a stop flag, a ROS executor, SIG_IGN) is left alone, as is any thread but the main one
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return importlib.import_module(module)
        previous = signal.signal(signal.SIGINT, on_interrupt)
    except ValueError:  # not the main thread
        return importlib.import_module(module)
    try:
        return importlib.import_module(module)
    except ImportError:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _tflite_interpreter_class():
    try:
        return _import("ai_edge_litert.interpreter").Interpreter
    except ImportError:
        pass
    try:
        return _import("tflite_runtime.interpreter").Interpreter
    except ImportError:
        raise ModelError("TFLite models need ai-edge-litert or tflite-runtime: pip install 'edge-ser[tflite]' "
                         "(or use --format onnx)") from None


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    if not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * (scale or 1.0)).astype(np.float32)


def _zipmap_to_array(rows: list[dict], labels: list[str]) -> np.ndarray:
    out = np.zeros((len(rows), len(labels)), dtype=np.float32)
    index = {lab: i for i, lab in enumerate(labels)}
    for r, row in enumerate(rows):
        for key, p in row.items():
            j = key if isinstance(key, (int, np.integer)) else index.get(str(key))
            if j is None or not 0 <= j < len(labels):
                raise ModelError(f"model output class {key!r} is not one of the manifest's labels")
            out[r, j] = p
    return out


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- the model -----------------------------------------------------------------------------------------

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
        self.input_shape = tuple(int(s) for s in manifest.input.get("shape", ()))
        self.speaker_norm = manifest.speaker_norm()  # edge_ser.adapt.SpeakerNorm, or None
        self._runner = runner

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
        windows = features.clip_windows(db, self.n_frames, self.hop_frames(hop_seconds))
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

        n, hop = self.n_frames, self.hop_frames(hop_seconds)
        frontend = StreamingLogMel(self.frontend)
        held = np.zeros((self.frontend.n_mels, 0), dtype=np.float32)
        base = 0        # absolute index of held[:, 0]
        total = 0       # frames computed so far
        start = 0       # next regular window start
        pending: list[np.ndarray] = []
        acc = np.zeros(len(self.labels), dtype=np.float64)
        count = 0
        samples = 0

        if self.speaker_norm is not None and stats is None:
            stats = self.speaker_stats()

        def run(final: bool = False):
            nonlocal acc, count
            if pending and (final or len(pending) >= batch):
                x = np.stack(pending)
                if stats is not None and update:
                    stats.update(x)
                if predict:
                    acc += self.predict(self.normalize(x, stats)).sum(axis=0, dtype=np.float64)
                count += len(pending)
                pending.clear()

        def take(frames: np.ndarray):
            nonlocal held, base, total, start
            held = np.concatenate([held, frames], axis=1) if held.size else frames
            total += frames.shape[1]
            while start + n <= total:
                pending.append(self.input_for(held[:, start - base:start - base + n]))
                start += hop
                run()
            keep = max(0, min(start, total - n))  # the next window's start, and the end-aligned last window
            if keep > base:
                held = held[:, keep - base:].copy()
                base = keep

        for block in blocks:
            block = np.asarray(block, dtype=np.float32).reshape(-1)
            samples += block.size
            if block.size:
                take(frontend.push(block))
                if listener is not None:
                    listener.push(block)
        take(frontend.flush())
        if total <= n:  # a short clip: one window, padded (frames 0..total are all still held)
            pending.extend(self.input_for(w) for w in features.clip_windows(held, n, hop))
        elif start - hop + n < total:  # the last regular window stops short of the end
            pending.append(self.input_for(held[:, total - n - base:total - base]))
        run(final=True)
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
        """label, emotion, intensity, confidence and scores for one probability vector."""
        from .labels import split_label
        i = int(np.argmax(probs))
        emotion, intensity = split_label(self.labels[i])
        return {"label": self.labels[i], "emotion": emotion, "intensity": intensity,
                "confidence": round(float(probs[i]), 4),
                "scores": {lab: round(float(p), 4) for lab, p in zip(self.labels, probs)}}

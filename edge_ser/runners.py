"""Runners: one model file on the CPU.  ONNX models run with onnxruntime (``threads`` intra-op threads, one
inter-op thread); TFLite models with LiteRT (``ai_edge_litert``) or ``tflite_runtime``, whichever is installed,
including int8-quantised inputs/outputs.  A runner is called with model inputs and gives probabilities."""
from __future__ import annotations

import importlib
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import ModelError


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


TFLITE_MODULES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def tflite_available() -> bool:
    """True when a TFLite runtime (LiteRT or tflite-runtime) is installed (found, not imported)."""
    import importlib.util
    for name in TFLITE_MODULES:
        try:
            if importlib.util.find_spec(name.split(".")[0]) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


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

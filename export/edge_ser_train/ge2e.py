"""Resemblyzer's GE2E voice encoder (0.1.4, Apache-2.0) as the ONNX file the runtime ships
(``edge_ser/assets/encoders/ge2e.onnx``, read by `edge_ser.encoders`), built without torch.

Resemblyzer ships its weights inside its wheel (``resemblyzer/pretrained.pt``, torch's legacy serialisation).  The
wheel's dependencies (torch, librosa, webrtcvad) are not needed for that file:

    pip download --no-deps resemblyzer==0.1.4 -d /tmp/r
    python -m edge_ser_train.ge2e --weights /tmp/r/Resemblyzer-0.1.4-py3-none-any.whl

The weights are read by a restricted unpickler that builds numpy arrays (no torch, no arbitrary classes) and
written as three ONNX ``LSTM`` nodes (PyTorch's gate order i, f, g, o reordered to ONNX's i, o, f, c), the
time-averaged hidden state of each layer, and the speaker embedding (Linear, ReLU, L2 norm) of the last state.
The graph's input is the runtime frontend's dB frames (`edge_ser.encoders.GE2E_FRONTEND`), turned back into the
power mel spectrogram the encoder was trained on.

Beside it, ``ge2e-int8.onnx`` (`quantize`, written from the float file): onnxruntime's dynamic quantisation of the
second and third LSTM layers (int8 weights; their inputs, hidden states in [-1, 1], quantised per call); the first
layer stays float, since its input, the power mel spectrogram, spans ~60 dB, which one uint8 scale per tensor
cannot hold (quantising it too, a linear probe's six emotions fell from 65 to 46 %: reports/embedding/compact.json).
"""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

from edge_ser.encoders import GE2E_INT8_PATH, GE2E_PATH

HIDDEN = 256
LAYERS = 3
N_MELS = 40
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64,
           "IntStorage": np.int32}


class _Storage:
    def __init__(self, dtype):
        self.dtype, self.data = dtype, None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise pickle.UnpicklingError("a tensor without its storage")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or any(s < 0 for s in self.stride) or last >= len(data):
            raise pickle.UnpicklingError(f"a tensor reaching outside its storage ({last} >= {len(data)})")
        return np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                               strides=[s * data.itemsize for s in self.stride]).copy()


def read_legacy_torch(data: bytes) -> dict:
    """The object a torch (< 1.6, non-zip) ``torch.save`` wrote, with every tensor as a numpy array.  Only
    tensors, their storages and plain containers are accepted; anything else is refused (UnpicklingError)."""
    f = io.BytesIO(data)
    storages: dict[str, _Storage] = {}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *_: _Tensor(storage, offset, size, stride)
            if module == "torch" and name in _DTYPES:
                return _DTYPES[name]
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"refused: {module}.{name}")

        def persistent_load(self, pid):
            _typename, dtype, key, _location, _numel, _view = pid
            return storages.setdefault(key, _Storage(dtype))

    for _ in range(3):  # magic number, protocol version, system info: plain values, read as restrictedly
        Unpickler(f).load()
    obj = Unpickler(f).load()
    for key in Unpickler(f).load():
        st = storages[key]
        n = struct.unpack("<q", f.read(8))[0]
        st.data = np.frombuffer(f.read(n * np.dtype(st.dtype).itemsize), dtype=st.dtype)
        if len(st.data) != n:
            raise pickle.UnpicklingError(f"storage {key}: {len(st.data)} of {n} values (a truncated file)")

    def convert(o):
        if isinstance(o, _Tensor):
            return o.array()
        if isinstance(o, dict):
            return {k: convert(v) for k, v in o.items()}
        return o
    return convert(obj)


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The encoder's state dict from ``pretrained.pt`` or from the Resemblyzer wheel that holds it."""
    path = Path(path)
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            data = z.read("resemblyzer/pretrained.pt")
    else:
        data = path.read_bytes()
    state = read_legacy_torch(data)
    state = state.get("model_state", state)
    return {k: np.asarray(v, dtype=np.float32) for k, v in state.items() if k.startswith(("lstm.", "linear."))}


def _onnx_gates(w: np.ndarray) -> np.ndarray:
    i, f, g, o = np.split(w, 4, axis=0)  # PyTorch: input, forget, cell, output
    return np.concatenate([i, o, f, g], axis=0)  # ONNX: input, output, forget, cell


def build_onnx(weights: dict[str, np.ndarray]):
    """The encoder as an ONNX model: input ``logmel`` (batch, frames, 40) in dB (``10 log10`` power); outputs
    ``hidden_means`` (batch, 768) and ``embedding`` (batch, 256)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    const("ten", np.array(10.0, np.float32))
    const("tenth", np.array(0.1, np.float32))
    const("axis0", np.array([0], np.int64))
    const("axis1", np.array([1], np.int64))
    nodes += [helper.make_node("Mul", ["logmel", "tenth"], ["bels"]),
              helper.make_node("Pow", ["ten", "bels"], ["power"]),
              helper.make_node("Transpose", ["power"], ["x0"], perm=[1, 0, 2])]  # (frames, batch, 40)
    x, means = "x0", []
    for layer in range(LAYERS):
        w = _onnx_gates(weights[f"lstm.weight_ih_l{layer}"])[None]
        r = _onnx_gates(weights[f"lstm.weight_hh_l{layer}"])[None]
        b = np.concatenate([_onnx_gates(weights[f"lstm.bias_ih_l{layer}"]),
                            _onnx_gates(weights[f"lstm.bias_hh_l{layer}"])])[None]
        const(f"W{layer}", w.astype(np.float32))
        const(f"R{layer}", r.astype(np.float32))
        const(f"B{layer}", b.astype(np.float32))
        nodes += [helper.make_node("LSTM", [x, f"W{layer}", f"R{layer}", f"B{layer}"], [f"Y{layer}", f"h{layer}"],
                                   hidden_size=HIDDEN),
                  helper.make_node("Squeeze", [f"Y{layer}", "axis1"], [f"y{layer}"]),          # (frames, batch, 256)
                  helper.make_node("ReduceMean", [f"y{layer}", "axis0"], [f"m{layer}"], keepdims=0)]
        x = f"y{layer}"
        means.append(f"m{layer}")
    const("LW", weights["linear.weight"].T.astype(np.float32))
    const("LB", weights["linear.bias"].astype(np.float32))
    nodes += [helper.make_node("Concat", means, ["hidden_means"], axis=1),
              helper.make_node("Squeeze", [f"h{LAYERS - 1}", "axis0"], ["last"]),
              helper.make_node("MatMul", ["last", "LW"], ["z0"]),
              helper.make_node("Add", ["z0", "LB"], ["z1"]),
              helper.make_node("Relu", ["z1"], ["z"]),
              helper.make_node("LpNormalization", ["z"], ["embedding"], axis=1, p=2)]
    graph = helper.make_graph(
        nodes, "ge2e", [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("hidden_means", TensorProto.FLOAT, ["batch", LAYERS * HIDDEN]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="edge-ser")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(weights: dict[str, np.ndarray], logmel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same computation in numpy, step by step in PyTorch's gate order (for the parity check)."""
    x = (10.0 ** (np.asarray(logmel, np.float64) / 10.0))
    means = []
    for layer in range(LAYERS):
        wi, wh = weights[f"lstm.weight_ih_l{layer}"], weights[f"lstm.weight_hh_l{layer}"]
        b = weights[f"lstm.bias_ih_l{layer}"] + weights[f"lstm.bias_hh_l{layer}"]
        h = np.zeros((x.shape[0], HIDDEN))
        c = np.zeros_like(h)
        out = np.empty(x.shape[:2] + (HIDDEN,))
        for t in range(x.shape[1]):
            g = x[:, t] @ wi.T + h @ wh.T + b
            i, f, gg, o = np.split(g, 4, axis=1)
            sig = lambda v: 0.5 * (1.0 + np.tanh(0.5 * v))  # noqa: E731 (overflow-free logistic)
            c = sig(f) * c + sig(i) * np.tanh(gg)
            h = sig(o) * np.tanh(c)
            out[:, t] = h
        means.append(out.mean(axis=1))
        x = out
    z = np.maximum(h @ weights["linear.weight"].T + weights["linear.bias"], 0.0)
    return np.concatenate(means, axis=1), z / np.linalg.norm(z, axis=1, keepdims=True)


def quantize(float_path: str | Path, out_path: str | Path) -> Path:
    """``float_path``'s encoder with its second and third LSTM layers quantised to int8 (dynamic), written to
    ``out_path`` (deterministic: the same bytes from the same float file)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(float_path))
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type}_{i}"
    lstms = [n.name for n in model.graph.node if n.op_type == "LSTM"]
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.onnx"
        onnx.save(model, str(named))
        quantize_dynamic(str(named), str(out_path), weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM"],
                         nodes_to_exclude=lstms[:1])
    return Path(out_path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_ser_train.ge2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="Resemblyzer's wheel or its resemblyzer/pretrained.pt")
    ap.add_argument("--out", default=str(GE2E_PATH), help="where the ONNX file goes (default: the runtime's asset)")
    ap.add_argument("--int8-out", default=str(GE2E_INT8_PATH),
                    help="where its int8 form goes (default: the runtime's asset; '' for none)")
    args = ap.parse_args(argv)
    try:
        weights = load_weights(args.weights)
    except (OSError, KeyError, EOFError, ValueError, struct.error, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        print(f"error: cannot read the encoder's weights from {args.weights}: {e}", file=sys.stderr)
        return 2
    model = build_onnx(weights)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    x = np.random.default_rng(0).normal(-40.0, 12.0, (2, 40, N_MELS)).astype(np.float32)
    import onnxruntime as ort
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"logmel": x})
    want = reference(weights, x)
    err = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); max |onnx - numpy| {err:.2e}")
    if err >= 1e-4:
        return 1
    if args.int8_out:
        q = quantize(out, args.int8_out)
        got8 = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, {"logmel": x})[0]
        print(f"wrote {q} ({q.stat().st_size / 1e6:.1f} MB); max |int8 - float| hidden means "
              f"{float(np.abs(got8 - got[0]).max()):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

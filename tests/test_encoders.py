"""The pretrained speech encoder (GE2E) in the runtime and its conversion, and the `linear` kind that reads it out.

Conversion: a legacy torch file written here without torch (fake ``torch`` modules only for the pickler) is read
back exactly; anything but tensors is refused; the ONNX graph matches a step-by-step numpy LSTM in PyTorch's gate
order.  Runtime: the shipped file's checksum, shapes, gain invariance, short windows."""
import pickle
import struct
import sys
import types

import numpy as np
import pytest

from edge_ser import encoders
from edge_ser.features import compute
from edge_ser.frontend import log_mel
from edge_ser.manifest import sha256_of
from tones import harmonic_tone


def speech_like(seconds: float) -> np.ndarray:
    """A voiced tone whose pitch glides and whose level moves, with pauses: enough for the LSTM to vary."""
    rng = np.random.default_rng(3)
    parts = [harmonic_tone(f0, 0.3, rng, amp=a) for f0, a in zip(np.linspace(140, 220, 12), np.linspace(.1, .4, 12))]
    y = np.concatenate([np.concatenate([p, np.zeros(800, np.float32)]) for p in parts])
    n = int(seconds * 16000)
    return np.resize(y, n).astype(np.float32)


def _db(audio):
    return log_mel(audio, n_fft=400, hop_length=160, n_mels=40, top_db=None)


# --- runtime ----------------------------------------------------------------------------------------------------

def test_shipped_encoder_file_is_the_converted_one():
    assert sha256_of(encoders.GE2E_PATH) == encoders.GE2E_SHA256
    assert sha256_of(encoders.GE2E_INT8_PATH) == encoders.GE2E_INT8_SHA256


def test_the_int8_encoder_stays_close_to_the_float_one():
    """Upper two layers int8, the first float: the hidden means of a voice-like window within a few hundredths of
    the float encoder's (a probe on real clips: mean |diff| 0.002, cosine 0.999, reports/embedding/compact.json);
    an unknown precision is one clear ModelError."""
    from edge_ser.errors import ModelError
    db = _db(speech_like(2.5))
    n = db.shape[1]
    a = compute(db, "ge2e", {"n_frames": n})
    b = compute(db, "ge2e", {"n_frames": n, "precision": "int8"})
    assert b.shape == (768,) and b.dtype == np.float32
    assert not np.array_equal(a, b)                       # another file ran
    assert np.abs(a - b).max() < 0.1
    assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.99
    assert np.abs(a[:256] - b[:256]).max() < 1e-5        # the first layer is the float one
    with pytest.raises(ModelError, match="precision"):
        compute(db, "ge2e", {"n_frames": n, "precision": "fp16"})


def test_ge2e_features_shapes_and_outputs():
    db = _db(speech_like(2.5))
    n = db.shape[1]
    hidden = compute(db, "ge2e", {"n_frames": n})
    assert hidden.shape == (768,) and hidden.dtype == np.float32 and np.isfinite(hidden).all()
    emb = compute(db, "ge2e", {"n_frames": n, "output": "embedding"})
    assert emb.shape == (256,) and np.isclose(np.linalg.norm(emb), 1.0, atol=1e-5) and (emb >= 0).all()
    both = compute(db, "ge2e", {"n_frames": n, "output": "both"})
    np.testing.assert_allclose(both, np.concatenate([emb, hidden]), atol=1e-6)
    from edge_ser.errors import ModelError
    with pytest.raises(ModelError, match="40 bands"):
        compute(log_mel(speech_like(1.0)), "ge2e", {"n_frames": 32})
    with pytest.raises(ModelError, match="40 bands"):
        compute(np.zeros(40, np.float32), "ge2e", {"n_frames": 32})
    with pytest.raises(ModelError, match="output"):
        compute(db, "ge2e", {"n_frames": n, "output": "other"})


def test_ge2e_features_do_not_depend_on_the_recording_level():
    audio = speech_like(2.5)
    n = _db(audio).shape[1]
    a = compute(_db(audio), "ge2e", {"n_frames": n})
    b = compute(_db(audio * 0.05), "ge2e", {"n_frames": n})  # 26 dB quieter
    assert np.abs(a - b).max() < 1e-3
    c = compute(_db(audio * 0.05), "ge2e", {"n_frames": n, "level_db": None})  # as recorded: it would differ
    assert np.abs(a - c).max() > 1e-2


def test_ge2e_partials_cover_the_window_as_resemblyzer_cuts_them():
    assert encoders.partial_starts(251) == [0, 77]          # a 2.5 s window: two partials of 1.6 s
    assert encoders.partial_starts(100) == [0]               # shorter than one partial: one, padded
    assert encoders.partial_starts(154 + 160) == [0, 77, 154]       # one at 231 would be half outside: left out
    assert encoders.partial_starts(231 + 126) == [0, 77, 154, 231]  # 126 of its 160 frames inside (>= 0.75): kept
    short = compute(_db(speech_like(0.5)), "ge2e", {"n_frames": 251})
    assert short.shape == (768,) and np.isfinite(short).all()


def test_a_damaged_or_missing_encoder_file_is_refused(tmp_path):
    from edge_ser.errors import ModelError
    bad = tmp_path / "ge2e.onnx"
    bad.write_bytes(encoders.GE2E_PATH.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="checksum"):
        encoders._session(str(bad), encoders.GE2E_SHA256)
    with pytest.raises(ModelError, match="reinstall"):
        encoders._session(str(tmp_path / "missing.onnx"), encoders.GE2E_SHA256)


def test_a_model_with_another_frontend_gets_the_same_speech_gate():
    """The gate runs on the frontend its thresholds were measured on: with fine16-linear (10 ms, 40 bands) every
    hop's speech decision, level and noise floor are fine16-cnn's (32 ms, 128 bands); speech frames reach the model's
    ring at its own frame rate."""
    from edge_ser.audio import load_audio
    from edge_ser.bench import SAMPLE_CLIP
    from edge_ser.registry import load_model
    from edge_ser.stream import Engine
    rng = np.random.default_rng(0)
    speech = load_audio(SAMPLE_CLIP)
    gap = 0.003 * rng.standard_normal(16000).astype(np.float32)
    audio = np.concatenate([gap, speech, gap, 0.3 * speech, gap])
    audio = audio + 0.001 * rng.standard_normal(len(audio)).astype(np.float32)
    runs = {}
    for name in ("fine16-cnn", "fine16-linear"):
        engine = Engine(load_model(name), warmup=False)
        events = engine.feed(audio) + engine.finish()
        runs[name] = [(e.speech, round(e.level_db, 3), round(e.noise_floor_db, 3)) for e in events]
        if name == "fine16-linear":
            assert engine._gate_own and engine._context == 6  # 2 gate frames of 32 ms = 6 frames of 10 ms
            assert any(e.label for e in events)
    assert runs["fine16-cnn"] == runs["fine16-linear"]
    assert sum(s for s, _, _ in runs["fine16-cnn"]) >= 4


# --- conversion (training side) ---------------------------------------------------------------------------------

ge2e = pytest.importorskip("edge_ser_train.ge2e", reason="needs the training distribution (edge-ser-train)")


def _weights(seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    w = {}
    for layer, n_in in enumerate((40, 256, 256)):
        w[f"lstm.weight_ih_l{layer}"] = rng.normal(0, scale, (1024, n_in)).astype(np.float32)
        w[f"lstm.weight_hh_l{layer}"] = rng.normal(0, scale, (1024, 256)).astype(np.float32)
        w[f"lstm.bias_ih_l{layer}"] = rng.normal(0, scale, 1024).astype(np.float32)
        w[f"lstm.bias_hh_l{layer}"] = rng.normal(0, scale, 1024).astype(np.float32)
    w["linear.weight"] = rng.normal(0, scale, (256, 256)).astype(np.float32)
    w["linear.bias"] = rng.normal(0, scale, 256).astype(np.float32)
    return w


def test_onnx_graph_matches_a_numpy_lstm_in_torch_gate_order(tmp_path):
    import onnxruntime as ort
    w = _weights()
    path = tmp_path / "g.onnx"
    path.write_bytes(ge2e.build_onnx(w).SerializeToString())
    x = np.random.default_rng(1).normal(-30, 10, (3, 25, 40)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"logmel": x})
    want = ge2e.reference(w, x)
    assert got[0].shape == (3, 768) and got[1].shape == (3, 256)
    for g, r in zip(got, want):
        assert np.abs(g - r).max() < 1e-4
    # the same weights give the same file (the shipped asset can be rebuilt and compared)
    assert ge2e.build_onnx(w).SerializeToString() == path.read_bytes()


def test_quantize_leaves_the_first_layer_float_and_is_deterministic(tmp_path):
    import onnx
    a = ge2e.quantize(encoders.GE2E_PATH, tmp_path / "a.onnx")
    b = ge2e.quantize(encoders.GE2E_PATH, tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes()
    ops = [n.op_type for n in onnx.load(str(a)).graph.node]
    assert ops.count("LSTM") == 1 and ops.count("DynamicQuantizeLSTM") == 2
    assert ops.index("LSTM") < ops.index("DynamicQuantizeLSTM")
    assert a.stat().st_size < 0.5 * encoders.GE2E_PATH.stat().st_size


def _legacy_torch_bytes(state: dict) -> bytes:
    """What torch < 1.6 ``torch.save`` writes, made with stand-in ``torch`` modules for the pickler."""
    torch_mod, utils_mod = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_mod.FloatStorage, torch_mod._utils = FloatStorage, utils_mod
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2

    class T:  # a tensor: pickled as _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
        def __init__(self, key, arr):
            self.key, self.arr = key, arr

        def __reduce__(self):
            strides = tuple(s // self.arr.itemsize for s in self.arr.strides)
            return _rebuild_tensor_v2, (("S", self.key, self.arr.size), 0, self.arr.shape, strides, False, {})

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and len(obj) == 3 and obj[0] == "S":
                return ("storage", FloatStorage, obj[1], "cpu", obj[2], None)
            return None

    import io
    with pytest.MonkeyPatch.context() as mp:  # the stand-ins exist only while pickling
        mp.setitem(sys.modules, "torch", torch_mod)
        mp.setitem(sys.modules, "torch._utils", utils_mod)
        f = io.BytesIO()
        for head in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(head, f, protocol=2)
        keys = [str(i) for i in range(len(state))]
        arrays = {k: np.ascontiguousarray(v, np.float32) for k, v in state.items()}
        P(f, protocol=2).dump({"step": 7, "model_state": {name: T(key, arrays[name])
                                                          for key, name in zip(keys, arrays)}})
        pickle.dump(keys, f, protocol=2)
        for key, name in zip(keys, arrays):
            f.write(struct.pack("<q", arrays[name].size) + arrays[name].tobytes())
    assert "torch" not in sys.modules or sys.modules["torch"] is not torch_mod
    return f.getvalue()


def test_legacy_torch_file_reads_back_exactly_and_refuses_other_objects(tmp_path):
    w = _weights(seed=2)
    path = tmp_path / "pretrained.pt"
    path.write_bytes(_legacy_torch_bytes(w))
    got = ge2e.load_weights(path)
    assert set(got) == set(w)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k])
    import os
    evil = tmp_path / "evil.pt"
    evil.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in (1, 1001, {}))
                     + pickle.dumps(os.system, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        ge2e.load_weights(evil)
    evil_head = tmp_path / "evil_head.pt"  # even the header pickles are read restrictedly
    evil_head.write_bytes(pickle.dumps(os.system, protocol=2) + path.read_bytes())
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        ge2e.load_weights(evil_head)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        ge2e.load_weights(truncated)
    assert ge2e.main(["--weights", str(truncated), "--out", str(tmp_path / "x.onnx")]) == 2
    assert ge2e.main(["--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2


# --- the linear kind --------------------------------------------------------------------------------------------

def test_linear_kind_factorised_fits_exports_and_masks_missing_parts(tmp_path):
    from edge_ser.labels import TASKS
    from edge_ser_train import targets
    from edge_ser_train.kinds.linear import Linear
    fine16 = TASKS["fine16"]
    cands = [("angry_high",), ("happy_low",), tuple(f"sad_{i}" for i in ("low", "medium", "high")),
             ("neutral",)] * 15
    y, groups = targets.encode(cands, fine16)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(y), 12)).astype(np.float32)
    x2 = x.copy()
    no_intensity = np.array([len(c) > 1 or c == ("neutral",) for c in cands])
    x2[no_intensity] = rng.standard_normal((no_intensity.sum(), 12))
    a = Linear(16, features="log_mel_stats", params={}, speaker_norm=False, factorised=True,
               partial_groups=groups).fit(x, y)
    b = Linear(16, features="log_mel_stats", params={}, speaker_norm=False, factorised=True,
               partial_groups=groups).fit(x2, y)
    probe = rng.standard_normal((20, 12)).astype(np.float32)
    np.testing.assert_array_equal(a.intensity_model.predict_proba(probe), b.intensity_model.predict_proba(probe))
    p = a.predict_proba(probe)
    assert p.shape == (20, 16) and np.allclose(p.sum(1), 1, atol=1e-6)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(a.export(tmp_path)))
    assert np.abs(sess.run(None, {"input": probe})[0] - p).max() < 1e-5
    a.save(tmp_path)
    assert (tmp_path / "linear.joblib").exists()
    np.testing.assert_allclose(Linear(16).load(tmp_path).predict_proba(probe), p, atol=1e-7)
    spec = Linear(6).input_spec(2.5, 0.5)
    assert (spec.frontend.n_fft, spec.frontend.hop_length, spec.frontend.n_mels) == (400, 160, 40)
    assert spec.n_frames == 251 and spec.features == "ge2e"


def test_linear_kind_intensity_per_emotion_composes_conditionally(tmp_path):
    """One intensity classifier per emotion: each learns only from its emotion's windows (changing a sad clip's
    inputs leaves the angry head alone), fine16 = p_e(e) p_i(i | e), and the ONNX file composes it exactly."""
    from edge_ser.labels import TASKS
    from edge_ser_train import targets
    from edge_ser_train.kinds.linear import Linear
    fine16 = TASKS["fine16"]
    cands = [("angry_high",), ("angry_low",), ("sad_low",), ("sad_medium",), ("happy_high",), ("happy_low",),
             ("neutral",), tuple(f"fear_{i}" for i in ("low", "medium", "high"))] * 12
    y, groups = targets.encode(cands, fine16)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((len(y), 10)).astype(np.float32)
    x2 = x.copy()
    sad = np.array([c[0].startswith("sad") for c in cands])
    x2[sad] = rng.standard_normal((sad.sum(), 10))
    kw = dict(features="log_mel_stats", params={}, speaker_norm=False, factorised=True, partial_groups=groups)
    a, b = Linear(16, **kw).fit(x, y), Linear(16, **kw).fit(x2, y)
    from edge_ser.labels import FINE16_EMOTIONS
    angry, fear = FINE16_EMOTIONS.index("angry") - 1, FINE16_EMOTIONS.index("fear") - 1
    probe = rng.standard_normal((15, 10)).astype(np.float32)
    np.testing.assert_array_equal(a.intensity_heads[angry].predict_proba(probe),
                                  b.intensity_heads[angry].predict_proba(probe))
    assert a.intensity_heads[fear] is None  # no fear clip carries an intensity: the shared head stands in
    p = a.predict_proba(probe)
    pe = a.model.predict_proba(probe)
    pi = a._full(a.intensity_heads[angry], probe, 3)  # angry has low and high only: medium gets 0
    assert np.all(pi[:, 1] == 0)
    col = fine16.index("angry_high")
    assert np.allclose(p[:, col], pe[:, FINE16_EMOTIONS.index("angry")] * pi[:, 2], atol=1e-6)
    assert np.allclose(p.sum(1), 1, atol=1e-5)
    import onnxruntime as ort
    sess = ort.InferenceSession(str(a.export(tmp_path)))
    assert np.abs(sess.run(None, {"input": probe})[0] - p).max() < 1e-5
    a.save(tmp_path)
    np.testing.assert_allclose(Linear(16).load(tmp_path).predict_proba(probe), p, atol=1e-7)

"""edge-ser: speech emotion recognition runtime for companion robots.

The public API, imported on first use (``import edge_ser`` itself stays light, so the CLI starts fast)::

    import edge_ser
    rec = edge_ser.Recognizer()                    # model, profile, hop; see edge_ser.recognizer
    events = rec.feed(samples, sample_rate=48000)  # Event objects; rec.listen() also yields StatusEvent
    result = rec.classify("clip.wav")              # a Result
    model = edge_ser.load_model("fine16-cnn")      # a verified model, for lower-level use

See docs/python.md.
"""
import os as _os

__version__ = "0.1.0"

# numpy's BLAS (OpenBLAS) would spread the frontend's small mel-filter matmul over every core: ~0.1 ms of work that
# stalls for 50-100 ms per hop when the cores are busy with other work (measured with `edge-ser bench` on a loaded
# 2-core machine: 76-111 ms per hop with the default threads, 0.18 ms with one).  One BLAS thread unless the user
# set it; this takes effect when edge_ser is imported before numpy (the CLI always is).  Inference threads are
# set per model (--threads).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

# public name -> module that defines it (imported when the name is first used)
_LAZY = {
    "Recognizer": "recognizer",
    "Result": "recognizer",
    "Event": "stream",
    "StatusEvent": "stream",
    "GateConfig": "stream",
    "SmoothingConfig": "stream",
    "load_model": "registry",
    "UserError": "errors",
    "InvalidAudio": "errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge_ser' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

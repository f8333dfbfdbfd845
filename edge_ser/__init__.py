"""edge-ser: speech emotion recognition runtime for companion robots."""
import os as _os

__version__ = "0.1.0"

# numpy's BLAS (OpenBLAS) would spread the frontend's small mel-filter matmul over every core: ~0.1 ms of work that
# stalls for 50-100 ms per hop when the cores are busy with other work (measured with `edge-ser bench` on a loaded
# 2-core machine: 76-111 ms per hop with the default threads, 0.18 ms with one).  One BLAS thread unless the user
# set it; this takes effect when edge_ser is imported before numpy (the CLI always is).  Inference threads are
# set per model (--threads).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

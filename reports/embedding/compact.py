"""python reports/embedding/compact.py OUT.json: what a cheaper GE2E encoder keeps — the float encoder
against its int8 form (onnxruntime's dynamic quantisation: int8 LSTM and MatMul weights, each call's inputs
quantised to uint8 on the fly), the same with the first LSTM layer left in float (its input, power mel, spans
~60 dB: one uint8 scale per tensor cannot hold it), and the hidden means of fewer LSTM layers (the first one or
two: a layer does not depend on the ones above it, so those are columns of the 768).

Features as in probe.py (every clip of ../shared/data whole; the float ones are probe.py's cache).  Probe as in
probe.py, speaker-standardised only, each feature set on its own (C one of 4, chosen on validation speakers inside
the training part): actor-fold CV (5 folds, seed 0) over all five corpora, per corpus, and leave-one-corpus-out.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
import probe  # noqa: E402

from edge_ser import encoders  # noqa: E402
from edge_ser.audio import load_audio  # noqa: E402
from edge_ser.frontend import log_mel  # noqa: E402
from edge_ser_train.corpora import load_corpora  # noqa: E402
from edge_ser_train.dataset import default_cache_dir  # noqa: E402
from edge_ser_train.splits import actor_folds, holdout  # noqa: E402


def int8_session(path: Path, first_float: bool):
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    if not path.exists():
        model = onnx.load(str(encoders.GE2E_PATH))
        for i, node in enumerate(model.graph.node):
            node.name = f"{node.op_type}_{i}"
        first = next(n.name for n in model.graph.node if n.op_type == "LSTM")
        named = path.with_suffix(".named.onnx")
        onnx.save(model, str(named))
        quantize_dynamic(str(named), str(path), weight_type=QuantType.QInt8,
                         nodes_to_exclude=[first] if first_float else [])
    o = ort.SessionOptions()
    o.intra_op_num_threads = o.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def embed_int8(clips, first_float: bool = False) -> np.ndarray:
    cache = Path(default_cache_dir()) / "embedding"
    tag = "ge2e_int8_first_float" if first_float else "ge2e_int8"
    path = cache / f"{tag}.npz"
    if path.exists():
        d = np.load(path)
        if list(d["path"]) == [c.path for c in clips]:
            return d["hid"]
    cache.mkdir(parents=True, exist_ok=True)
    session = int8_session(cache / f"{tag}.onnx", first_float)
    encoders._session = lambda *a: session
    hid = np.zeros((len(clips), 768), np.float32)
    t = time.time()
    for k, c in enumerate(clips):
        db = log_mel(load_audio(c.path), top_db=None, **encoders.GE2E_FRONTEND)
        hid[k] = encoders.ge2e(db, db.shape[1])
        if k % 1000 == 0:
            print(f"int8: embedded {k}/{len(clips)} in {time.time() - t:.0f} s", flush=True)
    np.savez(path, hid=hid, path=np.array([c.path for c in clips]))
    return hid


def main():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    out_path = Path(sys.argv[1])
    clips, _ = load_corpora([probe.REPO.parent / "shared" / "data" / c for c in probe.CORPORA])
    hid = probe.embed(clips)["hidden_means"]
    hid8 = embed_int8(clips)
    hidm = embed_int8(clips, first_float=True)
    allspk = np.array([c.speaker for c in clips])

    def spk_norm(X):
        X = X.copy()
        for s in np.unique(allspk):
            m = allspk == s
            X[m] = (X[m] - X[m].mean(0)) / (X[m].std(0) + 1e-6)
        return X
    sets = {"float/3 layers": hid, "float/2 layers": hid[:, :512], "float/1 layer": hid[:, :256],
            "int8/3 layers": hid8, "int8/2 layers": hid8[:, :512], "int8 but the first layer/3 layers": hidm}
    def gap(h):
        return {"max_abs": round(float(np.abs(h - hid).max()), 4), "mean_abs": round(float(np.abs(h - hid).mean()), 4),
                "mean_cosine": round(float(np.mean(np.sum(h * hid, 1) / (
                    np.linalg.norm(h, axis=1) * np.linalg.norm(hid, axis=1) + 1e-12))), 4)}
    out = {"protocol": __doc__, "clips": len(clips),
           "against_float": {"int8": gap(hid8), "int8 but the first layer": gap(hidm)}, "results": {}}
    print(out["against_float"], flush=True)

    def fit(X, C, tr, y):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000)).fit(X[tr], y[tr])

    def select(X, tr, y, spk):
        r, v = holdout(y[tr], spk[tr], 0.15, 0, by="corpus")
        r, v = tr[r], tr[v]
        return max(probe.CS, key=lambda C: float(np.mean(fit(X, C, r, y).predict(X[v]) == y[v])))

    for task in ("basic6", "fine15"):
        rows = np.array([i for i, c in enumerate(clips) if c.label(task) is not None])
        y = np.array([clips[i].label(task) for i in rows])
        spk, corp = allspk[rows], np.array([clips[i].corpus for i in rows])
        for name, X0 in sets.items():
            X = spk_norm(X0)[rows]
            t = time.time()
            pred = np.empty(len(y), dtype=object)
            accs = []
            for tr, te in actor_folds(y, spk, 5, 0):
                pred[te] = fit(X, select(X, tr, y, spk), tr, y).predict(X[te])
                accs.append(float(np.mean(pred[te] == y[te])))
            both = np.isin(corp, ["cremad", "ravdess"])
            res = {"cv_mean": round(float(np.mean(accs)), 3), "cv_std": round(float(np.std(accs)), 3),
                   "cremad+ravdess": round(float(np.mean(pred[both] == y[both])), 3),
                   "per_corpus": {c: round(float(np.mean(pred[corp == c] == y[corp == c])), 3)
                                  for c in sorted(set(corp))}}
            if task == "basic6":
                loco = {}
                for c in sorted(set(corp)):
                    tr, te = np.flatnonzero(corp != c), np.flatnonzero(corp == c)
                    if len(set(y[te])) < 2:
                        continue
                    loco[c] = round(float(np.mean(fit(X, select(X, tr, y, spk), tr, y).predict(X[te]) == y[te])), 3)
                res["leave_one_corpus_out"] = loco
                res["loco_mean"] = round(float(np.mean(list(loco.values()))), 3)
            res["seconds"] = round(time.time() - t)
            out["results"][f"{task}/{name}"] = res
            print(task, name, res, flush=True)
            out_path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Random forest (seed 000: 500 trees, class_weight balanced) on level-free band statistics, sized for a board.

The ONNX file grows with the number of leaves (each leaf stores its non-zero class probabilities), so the forest
is bounded by ``max_leaf_nodes`` per tree; `export` refuses to write a model.onnx above ``max_onnx_mb``.  The
default, 200 trees x 400 leaves (~7-9 MB), measured better on unseen speakers than the seed's 500 trees cut to
160 leaves at the same size (README, results).

``factorised=True`` (fine16, with ``partial_groups``): two forests, one for the emotion (neutral + five, trained on
every window whose clip carries an emotion) and one for the intensity (low/medium/high, on every window whose clip
carries one), so a clip missing one part is simply not in that forest's training set (its masked loss).  The ONNX
file holds both forests and composes fine16's probabilities, ``p(e_i) = p_e(e) p_i(i)`` (`edge_ser_train.targets`).
``intensity_per_emotion=True``: one intensity classifier per emotion instead (each on the windows that carry that
emotion and an intensity; the shared one stands in for an emotion with fewer than two intensities), composed as
``p(e_i) = p_e(e) p_i(i | e)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ser.adapt import PRIOR_WINDOWS

from ..dataset import InputSpec

FEATURES = "band_stats"
PARAMS = {"top_db": 80.0, "bands": 32, "active_db": 35.0, "n_ceps": 13}
# with speaker normalisation the absolute levels become informative (relative to the speaker's usual level)
SPEAKER_PARAMS = dict(PARAMS, absolute=True)
SPEAKER_NORM = {"axes": [], "prior_windows": PRIOR_WINDOWS}  # one statistic per feature


class RFC:
    name = "rfc"
    formats = ("onnx",)
    native_file = "rfc.joblib"  # save/load (training side only)

    def __init__(self, n_classes: int, n_estimators: int = 200, max_leaf_nodes: int | None = 400,
                 min_samples_leaf: int = 2, max_features: str | float = "sqrt", features: str = FEATURES,
                 params: dict | None = None, n_jobs: int = 2, max_onnx_mb: float = 10.0, speaker_norm: bool = True,
                 partial_groups=None, factorised: bool = False, intensity_estimators: int | None = None,
                 intensity_per_emotion: bool = False):
        self.n_classes = n_classes
        self.partial_groups = [list(g) for g in (partial_groups or [])]
        self.factorised = bool(factorised)
        if self.partial_groups and not self.factorised:
            raise ValueError("the forest trains partial labels factorised only (factorised=True, task fine16)")
        if self.factorised and n_classes != 16:
            raise ValueError(f"a factorised (emotion x intensity) forest has fine16's 16 outputs, not {n_classes}")
        # the intensity forest's size (None: as many trees as the emotion forest)
        self.intensity_estimators = intensity_estimators
        self.intensity_model = None
        self.intensity_per_emotion = bool(intensity_per_emotion)
        self.intensity_heads: list | None = None  # per emotion (FINE16_EMOTIONS[1:]); None entries: the shared one
        self.options = {"n_estimators": n_estimators, "max_leaf_nodes": max_leaf_nodes,
                        "min_samples_leaf": min_samples_leaf, "max_features": max_features}
        self.speaker_norm = dict(SPEAKER_NORM) if speaker_norm else None
        default = SPEAKER_PARAMS if speaker_norm else PARAMS
        self.features, self.params = features, dict(default if params is None else params)
        self.n_jobs = n_jobs
        self.max_onnx_mb = max_onnx_mb
        self.model = None

    def input_spec(self, window_seconds: float, hop_seconds: float) -> InputSpec:
        return InputSpec(self.features, self.params, window_seconds, hop_seconds, speaker_norm=self.speaker_norm)

    supports_partial = True  # factorised only (see the module's docstring)

    def _forest(self, seed: int, n_estimators: int | None = None):
        from sklearn.ensemble import RandomForestClassifier
        options = dict(self.options, **({"n_estimators": n_estimators} if n_estimators else {}))
        return RandomForestClassifier(class_weight="balanced", random_state=seed, n_jobs=self.n_jobs, **options)

    def fit(self, X, y, sample_weight=None, validation=None, seed: int = 0, progress: bool = True):
        if self.factorised:
            return self._fit_factorised(X, y, sample_weight, seed)
        self.model = self._forest(seed)
        self.model.fit(X, y, sample_weight=sample_weight)
        if len(self.model.classes_) != self.n_classes:  # a class absent from training: keep the full width
            self._classes = self.model.classes_
        return self

    def _fit_factorised(self, X, y, sample_weight, seed: int):
        from edge_ser.labels import TASKS
        from ..targets import head_targets
        X = np.asarray(X, dtype=np.float32)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        ye, yi = head_targets(y, TASKS["fine16"], self.partial_groups)
        if not (ye >= 0).any() or not (yi >= 0).any():
            raise ValueError("a factorised forest needs windows with an emotion and windows with an intensity")
        self.model = self._forest(seed).fit(X[ye >= 0], ye[ye >= 0], sample_weight=w[ye >= 0])
        self.intensity_model = self._forest(seed + 1, self.intensity_estimators).fit(
            X[yi >= 0], yi[yi >= 0], sample_weight=w[yi >= 0])
        self.intensity_heads = None
        if self.intensity_per_emotion:
            from edge_ser.labels import FINE16_EMOTIONS
            self.intensity_heads = []
            for e in range(1, len(FINE16_EMOTIONS)):
                rows = (ye == e) & (yi >= 0)
                if len(np.unique(yi[rows])) < 2:
                    self.intensity_heads.append(None)
                    continue
                self.intensity_heads.append(self._forest(seed + 1 + e, self.intensity_estimators).fit(
                    X[rows], yi[rows], sample_weight=w[rows]))
        return self

    def _factorised_text(self, unit: str) -> str:
        """What the manifest says of the factorised heads (``unit``: forest, classifier)."""
        if self.intensity_per_emotion:
            return (f"an emotion {unit} (6: neutral + five) and one intensity {unit} (3) per emotion, each trained "
                    "on the windows whose clip carries those parts; fine16 = p_e(e) p_i(i | e), neutral = "
                    "p_e(neutral)")
        return (f"two {unit}s, emotion (6: neutral + five) and intensity (3), each trained on the windows whose clip "
                "carries that part; fine16 = p_e(e) p_i(i), neutral = p_e(neutral)")

    def _heads(self) -> list:
        """The intensity classifier of each emotion (FINE16_EMOTIONS[1:]), or the shared one alone."""
        if not self.intensity_heads:
            return [self.intensity_model]
        return [h if h is not None else self.intensity_model for h in self.intensity_heads]

    @staticmethod
    def _full(forest, X, n: int) -> np.ndarray:
        p = forest.predict_proba(np.asarray(X, dtype=np.float32))
        if p.shape[1] == n:
            return p.astype(np.float32)
        full = np.zeros((len(p), n), dtype=np.float32)
        full[:, forest.classes_] = p
        return full

    def predict_proba(self, X) -> np.ndarray:
        if self.factorised:
            from ..targets import compose
            from edge_ser.labels import FINE16_EMOTIONS, INTENSITIES
            return compose(self._full(self.model, X, len(FINE16_EMOTIONS)),
                           np.concatenate([self._full(h, X, len(INTENSITIES)) for h in self._heads()], axis=1))
        return self._full(self.model, X, self.n_classes)

    def save(self, directory: Path) -> None:
        import joblib
        joblib.dump({"model": self.model, "n_classes": self.n_classes, "options": self.options,
                     "features": self.features, "params": self.params, "speaker_norm": self.speaker_norm,
                     "factorised": self.factorised, "intensity_model": self.intensity_model,
                     "partial_groups": self.partial_groups, "intensity_estimators": self.intensity_estimators,
                     "intensity_per_emotion": self.intensity_per_emotion, "intensity_heads": self.intensity_heads},
                    Path(directory) / self.native_file,
                    compress=3)

    def load(self, directory: Path) -> "RFC":
        import joblib
        d = joblib.load(Path(directory) / self.native_file)
        self.model, self.n_classes, self.options = d["model"], d["n_classes"], d["options"]
        self.features, self.params = d["features"], d["params"]
        self.speaker_norm = d.get("speaker_norm")
        self.factorised, self.intensity_model = d.get("factorised", False), d.get("intensity_model")
        self.partial_groups, self.intensity_estimators = d.get("partial_groups", []), d.get("intensity_estimators")
        self.intensity_per_emotion = d.get("intensity_per_emotion", False)
        self.intensity_heads = d.get("intensity_heads")
        return self

    def n_leaves(self) -> int:
        forests = [self.model] + ([self.intensity_model] if self.intensity_model is not None else [])
        forests += [h for h in (self.intensity_heads or []) if h is not None]
        return int(sum(t.get_n_leaves() for f in forests for t in f.estimators_))

    def describe(self) -> dict:
        d = {"estimator": "sklearn RandomForestClassifier", "class_weight": "balanced", **self.options,
             "speaker_norm": self.speaker_norm is not None}
        if self.factorised:
            d["factorised"] = self._factorised_text("forest")
            d["intensity_estimators"] = self.intensity_estimators or self.options["n_estimators"]
        if self.model is not None:
            d["leaves"] = self.n_leaves()
            d["n_features"] = int(self.model.n_features_in_)
        return d

    def export(self, directory: Path, fmt: str = "onnx", quantize: str = "none", representative=None) -> Path:
        if fmt != "onnx":
            raise ValueError(f"a {self.name} model exports to onnx only")
        if quantize != "none":
            raise ValueError(f"a {self.name} model has nothing to quantize (use --quantize none)")
        import onnx

        if self.factorised:
            from edge_ser.labels import FINE16_EMOTIONS, INTENSITIES
            onx = _compose_onnx(_forest_onnx(self.model, len(FINE16_EMOTIONS)),
                                [_forest_onnx(h, len(INTENSITIES)) for h in self._heads()])
        else:
            onx = _forest_onnx(self.model, self.n_classes)
        onnx.checker.check_model(onx)
        path = Path(directory) / "model.onnx"
        path.write_bytes(onx.SerializeToString())
        mb = path.stat().st_size / 1e6
        if mb > self.max_onnx_mb:
            path.unlink()
            raise ValueError(f"model.onnx would be {mb:.1f} MB > {self.max_onnx_mb} MB: lower max_leaf_nodes")
        return path


def _forest_onnx(model, n_classes: int):
    """One forest as ONNX: input ``input`` (N, features), one output ``probabilities`` (N, n_classes)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    n_feat = int(model.n_features_in_)
    # a fixed graph name: skl2onnx draws a random one, which made the same forest a different file
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, n_feat]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3},
                          name="edge_ser_rfc")
    # One output: the float32 class probabilities (the int64 label output is dropped).
    keep = [o for o in onx.graph.output if o.name == "probabilities"]
    del onx.graph.output[:]
    onx.graph.output.extend(keep)
    _drop_zero_leaf_weights(onx)
    _drop_default_attributes(onx)
    if len(model.classes_) != n_classes:
        _widen(onx, model.classes_, n_classes)
    return onx


def _compose_onnx(emotion, intensities: list):
    """One graph holding the emotion classifier and the intensity one (or one per emotion: `targets.
    conditional_composition`), all on the same input, and fine16's composition: fixed MatMuls spread each head
    over the 16 labels and a Mul combines them (`targets.composition`)."""
    import onnx
    from onnx import compose, helper, numpy_helper

    from ..targets import composition, conditional_composition
    emotion = compose.add_prefix(emotion, "emotion_")
    graph = emotion.graph
    prefixes = ["intensity_"] if len(intensities) == 1 else [f"intensity{k}_" for k in range(len(intensities))]
    for head, prefix in zip(intensities, prefixes):
        head = compose.add_prefix(head, prefix)
        graph.node.extend(head.graph.node)
        graph.initializer.extend(head.graph.initializer)
    inputs = {f"{p}input" for p in ["emotion_", *prefixes]}  # every head reads the one model input
    for node in graph.node:
        node.input[:] = ["input" if i in inputs else i for i in node.input]
    we, _be, wi, bi = composition()
    if len(intensities) > 1:
        wi = conditional_composition()
        graph.node.append(helper.make_node("Concat", [f"{p}probabilities" for p in prefixes],
                                           ["intensity_probabilities"], axis=1))
    graph.initializer.extend([numpy_helper.from_array(we, "compose_we"), numpy_helper.from_array(wi, "compose_wi"),
                              numpy_helper.from_array(bi, "compose_bi")])
    graph.node.extend([
        helper.make_node("MatMul", ["emotion_probabilities", "compose_we"], ["compose_e16"]),
        helper.make_node("MatMul", ["intensity_probabilities", "compose_wi"], ["compose_i16_raw"]),
        helper.make_node("Add", ["compose_i16_raw", "compose_bi"], ["compose_i16"]),
        helper.make_node("Mul", ["compose_e16", "compose_i16"], ["probabilities"]),
    ])
    inp = graph.input[0]
    inp.name = "input"
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probabilities", onnx.TensorProto.FLOAT, [None, we.shape[1]]))
    return emotion


def _widen(onx, classes, n_classes: int) -> None:
    """The forest saw only some classes (e.g. RAVDESS has no 'low'): map its probabilities to all labels with a
    0/1 matrix, so the ONNX output has one column per manifest label (absent classes get 0)."""
    import onnx
    from onnx import helper, numpy_helper
    m = np.zeros((len(classes), n_classes), dtype=np.float32)
    m[np.arange(len(classes)), np.asarray(classes, dtype=int)] = 1.0
    out = onx.graph.output[0]
    for node in onx.graph.node:
        node.output[:] = ["probabilities_seen" if o == out.name else o for o in node.output]
    onx.graph.initializer.append(numpy_helper.from_array(m, "widen_classes"))
    onx.graph.node.append(helper.make_node("MatMul", ["probabilities_seen", "widen_classes"], [out.name]))
    del onx.graph.output[:]
    onx.graph.output.append(helper.make_tensor_value_info(out.name, onnx.TensorProto.FLOAT, [None, n_classes]))


def _drop_zero_leaf_weights(onx) -> None:
    """skl2onnx writes one (leaf, class, weight) entry per class for every leaf; entries of weight 0 add nothing
    to the class sums, so they are dropped (often half the file for a forest of fairly pure leaves)."""
    from onnx import helper
    for node in onx.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attrs = {a.name: a for a in node.attribute}
        w = np.asarray(helper.get_attribute_value(attrs["class_weights"]), dtype=np.float32)
        keep = w != 0
        if keep.all():
            continue
        for name in ("class_ids", "class_nodeids", "class_treeids", "class_weights"):
            vals = np.asarray(helper.get_attribute_value(attrs[name]))[keep]
            vals = vals.astype(np.float32).tolist() if name == "class_weights" else vals.astype(int).tolist()
            node.attribute.remove(attrs[name])
            node.attribute.append(helper.make_attribute(name, vals))


# optional TreeEnsemble attributes skl2onnx writes with nothing but their default values (the spec's defaults:
# hit rates 1, missing values go false); onnxruntime holds each while it builds the trees (~5 MB of peak load
# memory for a 200-tree forest), so they are left out when every value is the default
_DEFAULT_ATTRIBUTES = {"nodes_hitrates": 1.0, "nodes_missing_value_tracks_true": 0}


def _drop_default_attributes(onx) -> None:
    from onnx import helper
    for node in onx.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        for a in list(node.attribute):
            if a.name in _DEFAULT_ATTRIBUTES:
                vals = np.asarray(helper.get_attribute_value(a))
                if vals.size and np.all(vals == _DEFAULT_ATTRIBUTES[a.name]):
                    node.attribute.remove(a)

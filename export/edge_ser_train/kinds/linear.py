"""A linear classifier (multinomial logistic regression) on a pretrained speech encoder's features.

Seed 002 fuses its temporal branch with a pretrained speech model (wav2vec2); the one pretrained speech encoder
this project can install is Resemblyzer's GE2E voice encoder (`edge_ser.encoders`), and a linear read-out of its
time-averaged hidden states, each speaker's features standardised by that speaker's statistics, measured far
above every kind trained from scratch on unseen speakers and corpora (reports/embedding/).  This kind is that
read-out: the encoder stays frozen in the runtime (one ONNX file shipped once, `features: ge2e`), the model file
holds only the classifier.

It reuses the forest's machinery (`edge_ser_train.kinds.rfc`): per-feature speaker normalisation, the
factorised fine16 heads (one classifier for the emotion, one for the intensity, each trained on the windows whose
clip carries that part, composed in the ONNX file), export through skl2onnx.
"""
from __future__ import annotations

from edge_ser.encoders import GE2E_FRONTEND
from edge_ser.frontend import FrontendConfig

from ..dataset import InputSpec
from .rfc import RFC

FEATURES = "ge2e"
# int8: the encoder with its upper two LSTM layers quantised (edge_ser.encoders.GE2E_INT8_PATH), ~40 % cheaper per
# window; a probe's six emotions 65.1 % against 65.4 % in float, left out 51.4 against 51.1 (reports/embedding/)
PARAMS = {"output": "hidden_means", "precision": "int8"}


class Linear(RFC):
    """Options: ``C`` (inverse L2 strength of sklearn's LogisticRegression, default 0.01: chosen on validation
    speakers inside the training part in 8 of 10 folds of the probe), ``class_weight`` (None or "balanced"),
    ``max_iter``; ``features``/``params`` the encoder's (default GE2E hidden means, the int8 encoder); ``speaker_norm``;
    ``intensity_per_emotion`` (fine16, default True: an intensity classifier per emotion, ``p(e_i) = p_e(e)
    p_i(i | e)``; CV fine15 50.3 % against 44.6 % with one shared intensity head, higher in all 5 folds; BAVED's
    levels, which carry no emotion, then train no head: reports/embedding/)."""
    name = "linear"
    formats = ("onnx",)
    native_file = "linear.joblib"

    def __init__(self, n_classes: int, C: float = 0.01, class_weight: str | None = None, max_iter: int = 2000,
                 features: str = FEATURES, params: dict | None = None, speaker_norm: bool = True,
                 partial_groups=None, factorised: bool = False, intensity_per_emotion: bool = True,
                 max_onnx_mb: float = 10.0):
        super().__init__(n_classes, features=features, params=dict(PARAMS if params is None else params),
                         speaker_norm=speaker_norm, partial_groups=partial_groups, factorised=factorised,
                         intensity_per_emotion=intensity_per_emotion, max_onnx_mb=max_onnx_mb)
        self.options = {"C": float(C), "class_weight": class_weight, "max_iter": int(max_iter)}

    def input_spec(self, window_seconds: float, hop_seconds: float) -> InputSpec:
        frontend = FrontendConfig(top_db=None, **(GE2E_FRONTEND if self.features == "ge2e" else {}))
        return InputSpec(self.features, self.params, window_seconds, hop_seconds, frontend=frontend,
                         speaker_norm=self.speaker_norm)

    def _forest(self, seed: int, n_estimators: int | None = None):
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(random_state=seed, **self.options)

    def n_leaves(self) -> int:
        return 0

    def describe(self) -> dict:
        d = {"estimator": "sklearn LogisticRegression (multinomial, L2)", **self.options,
             "features": self.features, "speaker_norm": self.speaker_norm is not None}
        if self.factorised:
            d["factorised"] = self._factorised_text("classifier")
        if self.model is not None:
            d["n_features"] = int(self.model.n_features_in_)
        return d

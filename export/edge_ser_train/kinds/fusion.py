"""SER-FusionNet (seed 001, Ravikumar et al.): deep features of the acoustic frames fused with statistical
features and a gender feature, classified by an MLP.

Input: one flat vector per window (`edge_ser.features.concat`) of three parts, split again inside the network:
- acoustic frames, `edge_ser.features.frame_descriptors` ``(frames, 43)``: MFCC + deltas + delta-deltas, zero-crossing
  rate, RMS (dB), spectral centroid and bandwidth (the seed's librosa features, as the runtime computes them);
- statistics, `edge_ser.features.window_stats` (8): mean, variance, skewness, kurtosis (of the log-mel values, and
  the signal's variance and kurtosis estimated from frame powers), mean spectral centroid and bandwidth;
- gender (1): `edge_ser.gender.estimate`, P(female) of the window from the audio, never from a file name or label
  (the seed reads it from the file name; a robot cannot).  The manifest records the estimator's sha256.
Network: acoustic -> normalisation -> two stacked Conv1D (64 filters, kernel 5, ReLU; max-pool and dropout between)
-> global average over time -> Dense 32 (the seed's 32 deep features); statistics -> normalisation; concatenated
with gender (32 + 8 + 1 = 41 fused features) -> MLP (Dense 64, dropout, Dense 32, ReLU) -> softmax.  Adam,
plateau learning-rate schedule (min 1e-7), batch 64, as the seed.  ``gender=False`` / ``stats=False`` leave those
parts out (the seed's "deep features" ablation is both off).
"""
from __future__ import annotations

from dataclasses import dataclass

from edge_ser import features as rt_features

from .keras_kind import KerasKind, normalization, split_flat

N_ACOUSTIC = 43  # channels of frame_descriptors with 13 MFCC


@dataclass
class FusionOptions:
    """Defaults follow seed 001 where it says (two Conv1D, 32 deep features, MLP, Adam, batch 64, 25 epochs with a
    plateau schedule); sizes it leaves open are small for a board."""
    epochs: int = 40           # maximum (early stopping on validation loss; the seed ran 25)
    patience: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    conv_filters: int = 64
    kernel_size: int = 5
    deep_features: int = 32
    mlp: tuple = (64, 32)
    dropout: float = 0.3
    gender: bool = True        # the gender input (from edge_ser.gender, the audio)
    stats: bool = True         # the statistical features
    cmvn: bool = False         # standardise each acoustic channel over the window (else only the trained scaling)
    # take the window's level off its log-mel before every part (features.concat): a voice 20 dB quieter gives the
    # same input (without it 20 % of 60 clips kept their emotion at -20 dB, most became sad)
    level_free: bool = True
    speaker_norm: bool = False  # off: per-speaker standardisation would cancel the gender input

    def __post_init__(self):
        self.mlp = tuple(int(u) for u in self.mlp)
        if self.speaker_norm:
            raise ValueError("fusion does not use speaker normalisation (it would cancel the gender feature)")


class Fusion(KerasKind):
    name = "fusion"
    Options = FusionOptions

    @property
    def features(self) -> str:
        return "concat"

    def parts(self) -> list:
        parts = [{"features": "frame_descriptors", "params": {"n_mfcc": 13, "cmvn": self.o.cmvn}}]
        if self.o.stats:
            parts.append({"features": "window_stats", "params": {}})
        if self.o.gender:
            from edge_ser.gender import model_info
            parts.append({"features": "gender", "params": {"sha256": model_info()["sha256"]}})
        return parts

    @property
    def params(self) -> dict:
        return {"parts": self.parts(), **({"level_free": True} if self.o.level_free else {})}

    def sizes(self, total: int):
        n_stats = len(rt_features.WINDOW_STATS) if self.o.stats else 0
        n_gender = 1 if self.o.gender else 0
        rest = total - n_stats - n_gender
        if rest <= 0 or rest % N_ACOUSTIC:
            raise ValueError(f"fusion input of {total} values does not split into frames x {N_ACOUSTIC} + "
                             f"{n_stats} + {n_gender}")
        return rest // N_ACOUSTIC, n_stats, n_gender

    def build(self, input_shape, X):
        import keras
        from keras import layers
        o = self.o
        total = int(input_shape[0])
        t, n_stats, n_gender = self.sizes(total)
        sizes = [t * N_ACOUSTIC] + ([n_stats] if n_stats else []) + ([n_gender] if n_gender else [])
        shapes = [(t, N_ACOUSTIC)] + ([(n_stats,)] if n_stats else []) + ([(1,)] if n_gender else [])
        inp = keras.Input(shape=(total,), name="input")
        parts = split_flat(inp, sizes, shapes, "split")
        ac = normalization(X[:, :t * N_ACOUSTIC].reshape(-1, t, N_ACOUSTIC), "acoustic_norm")(parts[0])
        h = layers.Conv1D(o.conv_filters, o.kernel_size, padding="same", activation="relu", name="conv1")(ac)
        h = layers.MaxPooling1D(2, padding="same", name="pool1")(h)
        h = layers.Dropout(0.1, name="drop1")(h)
        h = layers.Conv1D(o.conv_filters, o.kernel_size, padding="same", activation="relu", name="conv2")(h)
        h = layers.GlobalAveragePooling1D(name="time_avg")(h)
        fused = [layers.Dense(o.deep_features, activation="relu", name="deep_features")(h)]
        k = 1
        if n_stats:
            fused.append(normalization(X[:, t * N_ACOUSTIC:t * N_ACOUSTIC + n_stats], "stats_norm")(parts[k]))
            k += 1
        if n_gender:
            fused.append(parts[k])
        h = layers.Concatenate(name="fused")(fused) if len(fused) > 1 else fused[0]
        for j, units in enumerate(o.mlp):
            h = layers.Dense(units, activation="relu", name=f"mlp{j + 1}")(h)
            if j == 0:
                h = layers.Dropout(o.dropout, name="mlp_drop")(h)
        return keras.Model(inp, self.output(h), name="edge_ser_fusion")

    def network_text(self) -> str:
        o = self.o
        fused = [f"{o.deep_features} deep"] + (["8 statistical"] if o.stats else []) + (
            ["gender (estimated from the audio)"] if o.gender else [])
        return (f"SER-FusionNet: 2 x Conv1D({o.conv_filters}, {o.kernel_size}) on 43 acoustic features per frame -> "
                f"{' + '.join(fused)} features -> MLP {list(o.mlp)} -> softmax")

"""TIM-Net temporal branch (seed 002, after Ye et al., ICASSP 2023) on MFCC + deltas + delta-deltas.

Input: `edge_ser.features.mfcc_deltas`, ``(frames, 39)`` per window.  The network: a 1x1 causal convolution, then
``blocks`` temporal-aware blocks (TABs) with dilations 1, 2, 4, ... run on the sequence and, with separate weights,
on the time-reversed sequence.  A TAB: two dilated causal Conv1D (kernel 2) each followed by batch norm, ReLU and
spatial dropout; the result through a sigmoid gates the block's input (``F_j = F_{j-1} * sigmoid(conv(F_{j-1}))``,
TIM-Net's attention).  After each block, forward + backward outputs are added and averaged over time (``g_j``);
the multi-scale fusion weights the ``g_j`` with learned weights (TIM-Net's WeightLayer, a Dense(1) over the block
axis), then dropout and a softmax Dense.  ``form="seed"``: seed 002's simplification (no gating, no multi-scale
fusion: the last block's forward + backward output averaged over time).

The time reversal is a frozen anti-identity Dense (built-in layers only: saves, loads and converts like any
Keras model).  Speaker normalisation (default on, as the CNN): one statistic per coefficient, pooled over time.
"""
from __future__ import annotations

from dataclasses import dataclass

from .keras_kind import KerasKind, normalization, time_reverse


@dataclass
class TimNetOptions:
    """Defaults: TIM-Net's (39 filters, kernel 2, dropout 0.1, lr 1e-3, batch 64) with 6 blocks (dilations 1-32:
    a receptive field of 127 frames covers the 79-frame 2.5 s window); epochs bounded for CPU training."""
    epochs: int = 60          # maximum; early stopping on validation loss (patience epochs)
    patience: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    filters: int = 39         # TIM-Net: as many filters as MFCC features
    kernel_size: int = 2
    blocks: int = 6           # dilations 1, 2, ..., 2 ** (blocks - 1)
    dropout: float = 0.1      # spatial dropout in each TAB
    head_dropout: float = 0.1
    form: str = "full"        # "full": gated TABs + multi-scale fusion; "seed": seed 002's simplification
    n_mfcc: int = 13
    cmvn: bool = False        # standardise each coefficient over the window (features); speaker_norm does it per speaker
    speaker_norm: bool = True  # edge_ser.adapt, per coefficient over time

    def __post_init__(self):
        if self.form not in ("full", "seed"):
            raise ValueError(f"timnet form must be 'full' or 'seed', not {self.form!r}")
        if self.blocks < 1 or self.filters < 1 or self.kernel_size < 1:
            raise ValueError("timnet blocks, filters and kernel_size must be positive")


def temporal_aware_block(x, dilation: int, o: TimNetOptions, name: str, gated: bool = True):
    """One TAB: 2 x (dilated causal Conv1D, batch norm, ReLU, spatial dropout), then sigmoid gating of the input."""
    from keras import layers
    h = x
    for k in (1, 2):
        h = layers.Conv1D(o.filters, o.kernel_size, dilation_rate=dilation, padding="causal", name=f"{name}_conv{k}")(h)
        h = layers.BatchNormalization(name=f"{name}_bn{k}")(h)
        h = layers.ReLU(name=f"{name}_relu{k}")(h)
        h = layers.SpatialDropout1D(o.dropout, name=f"{name}_drop{k}")(h)
    if not gated:
        return h
    gate = layers.Activation("sigmoid", name=f"{name}_gate")(h)
    return layers.Multiply(name=f"{name}_gated")([x, gate])


def temporal_branch(x, o: TimNetOptions, prefix: str = "tim"):
    """The TIM-Net feature vector ``(batch, filters)`` of a normalised sequence ``x (batch, T, C)``."""
    from keras import layers
    full = o.form == "full"
    f = layers.Conv1D(o.filters, 1, padding="causal", name=f"{prefix}_fwd_in")(x)
    b = layers.Conv1D(o.filters, 1, padding="causal", name=f"{prefix}_bwd_in")(time_reverse(x, f"{prefix}_reverse"))
    scales = []
    for j in range(o.blocks):
        d = 2 ** j
        f = temporal_aware_block(f, d, o, f"{prefix}_fwd{j}", gated=full)
        b = temporal_aware_block(b, d, o, f"{prefix}_bwd{j}", gated=full)
        if full or j == o.blocks - 1:
            g = layers.GlobalAveragePooling1D(name=f"{prefix}_g{j}")(layers.Add(name=f"{prefix}_biadd{j}")([f, b]))
            scales.append(layers.Reshape((1, o.filters), name=f"{prefix}_g{j}_row")(g))
    if not full:
        return layers.Flatten(name=f"{prefix}_out")(scales[-1])
    g = layers.Concatenate(axis=1, name=f"{prefix}_scales")(scales)             # (blocks, filters)
    g = layers.Permute((2, 1), name=f"{prefix}_scales_t")(g)                    # (filters, blocks)
    g = layers.Dense(1, use_bias=False, name=f"{prefix}_fusion")(g)             # learned weight per scale
    return layers.Flatten(name=f"{prefix}_out")(g)


class TimNet(KerasKind):
    name = "timnet"
    Options = TimNetOptions
    speaker_axes = [0]  # one statistic per coefficient, pooled over the window's frames

    @property
    def features(self) -> str:
        return "mfcc_deltas"

    @property
    def params(self) -> dict:
        return {"n_mfcc": self.o.n_mfcc, "top_db": 80.0, "width": 9, "cmvn": self.o.cmvn}

    def build(self, input_shape, X):
        import keras
        from keras import layers
        inp = keras.Input(shape=tuple(input_shape), name="input")
        h = normalization(X, "input_norm")(inp)
        h = temporal_branch(h, self.o)
        h = layers.Dropout(self.o.head_dropout, name="head_drop")(h)
        return keras.Model(inp, self.output(h), name="edge_ser_timnet")

    def network_text(self) -> str:
        o = self.o
        what = ("gated TABs, multi-scale fusion of the blocks' outputs" if o.form == "full"
                else "seed 002's simplification: ungated blocks, last block pooled")
        return (f"TIM-Net on MFCC+deltas: {o.blocks} TABs (dilations 1..{2 ** (o.blocks - 1)}, {o.filters} filters, "
                f"kernel {o.kernel_size}), forward + time-reversed, {what}; softmax")

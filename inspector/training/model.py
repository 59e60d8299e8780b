"""Reference-aware CenterNet detector on a MobileNetV3 backbone.

Why this shape:
- The station compares every board with its golden reference, as DeepPCB's authors did, so the
  input is three channels: board, reference and |board - reference|. The difference channel makes
  small defects (pin-holes, mousebites) visible from the first step of training.
- MobileNetV3 *minimalistic* (ReLU, 3x3, no squeeze-excite): no global pooling, so a network
  trained on 320 px crops behaves the same on 640 px boards, and no hard-swish, which quantises
  poorly to INT8.
- CenterNet at stride 4: anchor-free, one heatmap per class, box size and sub-pixel offset
  regressed at centres. Decoding is a 3x3 max-pool peak search, cheap in numpy.
"""

from __future__ import annotations

import keras
from keras import layers

NUM_CLASSES = 6
STRIDE = 4
"""The heatmap's stride: the FPN ends at stride 4 (one output cell per 4x4 input pixels)."""
BN_MOMENTUM = 0.99

# Per backbone: layer names giving stride 4, 8, 16 and 32 features.
_FEATURES = {
    "small": ("expanded_conv_project_bn", "expanded_conv_2_add", "expanded_conv_7_add", None),
    "large": ("expanded_conv_2_add", "expanded_conv_5_add", "expanded_conv_11_add", None),
}


class ResizeNearest(layers.Layer):
    """Nearest upsampling to a static size; avoids dynamic SHAPE/GATHER ops in the TFLite graph."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        return keras.ops.image.resize(x, (h * self.factor, w * self.factor), interpolation="nearest")

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else h * self.factor, None if w is None else w * self.factor, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _conv_bn_relu(x, ch: int, k: int, name: str):
    x = layers.Conv2D(ch, k, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x)


def _conv_bn_relu_s(x, ch: int, stride: int, name: str):
    x = layers.Conv2D(ch, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x)


def _sep_bn_relu(x, ch: int, name: str):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dwbn")(x)
    x = layers.ReLU(max_value=6.0, name=f"{name}_dwrelu")(x)
    return _conv_bn_relu(x, ch, 1, f"{name}_pw")


def build_detector(
    size: int = 320,
    batch: int | None = None,
    backbone: str = "small",
    alpha: float = 1.0,
    neck: int = 64,
    in_channels: int = 3,
    detail: int = 0,
) -> keras.Model:
    """Build the detector for square `size` inputs; outputs (heatmap logits, 4-channel regression).

    `detail` > 0 adds a plain-convolution branch from the input to stride 4 with that many
    channels, fused into the stride-4 FPN level. MobileNetV3-Small keeps only 16 channels at stride
    4 and its depthwise blocks see few pixels of a thin trace; open and short defects are a few pixels
    wide and need that detail. Plain 3x3 convolutions are also the fastest layers to train on a CPU.
    """
    inp = keras.Input((size, size, in_channels), batch_size=batch, name="image")
    ctor = keras.applications.MobileNetV3Small if backbone == "small" else keras.applications.MobileNetV3Large
    bb = ctor(
        input_tensor=inp,
        include_top=False,
        weights=None,
        minimalistic=True,
        include_preprocessing=False,
        alpha=alpha,
    )
    names = _FEATURES[backbone]
    feats = [bb.get_layer(n).output for n in names[:3]] + [bb.output]
    # Top-down FPN to stride 4.
    p = _conv_bn_relu(feats[3], neck, 1, "lat5")
    for i, f in zip((4, 3, 2), (feats[2], feats[1], feats[0])):
        lat = _conv_bn_relu(f, neck, 1, f"lat{i}")
        p = layers.Add(name=f"td{i}_add")([ResizeNearest(2, name=f"td{i}_up")(p), lat])
        p = _sep_bn_relu(p, neck, f"td{i}_smooth")
    if detail:
        d = _conv_bn_relu_s(inp, detail // 2, 2, "det1")
        d = _conv_bn_relu_s(d, detail, 2, "det2")
        d = _conv_bn_relu_s(d, detail, 1, "det3")
        d = _conv_bn_relu_s(d, detail, 1, "det4")
        p = layers.Concatenate(name="det_cat")([p, d])
        p = _conv_bn_relu(p, neck, 1, "det_fuse")
    # Extra context at stride 4 for open/spur, which need more than a few pixels of trace.
    p = _sep_bn_relu(p, neck, "ctx1")
    hm = _conv_bn_relu(p, neck, 3, "hm_head")
    hm = layers.Conv2D(
        NUM_CLASSES,
        1,
        bias_initializer=keras.initializers.Constant(-2.19),
        name="heatmap",
    )(hm)
    rg = _conv_bn_relu(p, neck, 3, "reg_head")
    rg = layers.Conv2D(4, 1, name="regression")(rg)
    model = keras.Model(
        inp, [hm, rg], name=f"centernet_mnv3{backbone}_a{alpha}_n{neck}" + (f"_d{detail}" if detail else "")
    )
    # Keras' MobileNetV3 sets BN momentum 0.999: the moving statistics then lag the weights by
    # thousands of steps (in-training validation read 0.00 at step 1,000). Momentum only affects the
    # stored statistics, never the gradients, so 0.99 changes no learned weight.
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model

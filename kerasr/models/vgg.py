"""VGG feature extractor for the perceptual loss, with taps before the ReLU.

ESRGAN compares VGG features *before* activation: after the ReLU, deep features are sparse
(most are zero), so the loss carries little signal and brightness drifts; before it, the
features are dense. `keras.applications` fuses the ReLU into each convolution, so this
module re-creates the convolutions with a linear activation (ReLU applied separately) and
copies the ImageNet weights into them.
"""

from __future__ import annotations

import keras
from keras import ops

# Convolutions per block of each VGG variant; every block ends with a 2x2 max-pool.
VGG_LAYERS = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
# Channels per block.
VGG_CHANNELS = (64, 128, 256, 512, 512)
# Keras' VGG weights come from the original Caffe models: BGR input in 0..255, mean removed.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's VGG weights (BasicSR's perceptual loss): RGB in [0, 1], ImageNet mean and std.
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
INPUT_NORMS = ("caffe", "torchvision")


def layer_names(vgg_type: str) -> list[str]:
    """Convolution names of a VGG variant, `conv{block}_{index}` (BasicSR's naming)."""
    return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(VGG_LAYERS[vgg_type]) for i in range(n)]


def unknown_layers(vgg_type: str, layers) -> list[str]:
    """The names in `layers` that are not convolutions of `vgg_type` (all of them for an
    unknown variant)."""
    names = layer_names(vgg_type) if vgg_type in VGG_LAYERS else []
    return [n for n in layers if n not in names]


def torchvision_index(vgg_type: str) -> dict[str, int]:
    """Each convolution's index in torchvision's `vgg*().features` (conv, ReLU per
    convolution, a max-pool after each block): `{"conv1_1": 0, "conv1_2": 2, ...}`."""
    index, i = {}, 0
    for b, n in enumerate(VGG_LAYERS[vgg_type]):
        for c in range(n):
            index[f"conv{b + 1}_{c + 1}"] = i
            i += 2
        i += 1
    return index


@keras.saving.register_keras_serializable(package="kerasr")
class VGGFeatures(keras.Model):
    """VGG convolutions up to the deepest requested layer, returning features before ReLU.

    Args:
        vgg_type: `"vgg11"`, `"vgg13"`, `"vgg16"` or `"vgg19"`.
        layers: names of the taps, e.g. `("conv1_2", "conv5_4")`.
        normalize_input: map `[0, 1]` RGB input to what the ImageNet weights expect.
        input_norm: how: `"caffe"` (BGR, 0..255, channel means removed: Keras' weights) or
            `"torchvision"` (RGB, `(x - mean) / std`: torchvision's weights, as BasicSR).

    Example:

        vgg = VGGFeatures("vgg19", ("conv5_4",))
        kerasr.weights.vgg.load_vgg_weights(vgg, "imagenet")
        feats = vgg(images)  # {"conv5_4": [n, h/16, w/16, 512]}

    Reference:
        [VGG](https://arxiv.org/abs/1409.1556); [ESRGAN](https://arxiv.org/abs/1809.00219)
        section 3.3 (features before activation).
    """

    def __init__(
        self,
        vgg_type="vgg19",
        layers=("conv5_4",),
        normalize_input=True,
        input_norm="caffe",
        **kwargs,
    ):
        if input_norm not in INPUT_NORMS:
            raise ValueError(
                f"`input_norm` must be one of {INPUT_NORMS}. Received: input_norm={input_norm!r}"
            )
        if vgg_type not in VGG_LAYERS:
            raise ValueError(
                f"`vgg_type` must be one of {tuple(VGG_LAYERS)}. Received: vgg_type={vgg_type!r}"
            )
        names = layer_names(vgg_type)
        if unknown_layers(vgg_type, layers) or not layers:
            raise ValueError(
                f"`layers` must be among {', '.join(names)}. Received: layers={list(layers)}"
            )
        super().__init__(**kwargs)
        self.vgg_type = vgg_type
        self.layers_wanted = tuple(layers)
        self.normalize_input = normalize_input
        self.input_norm = input_norm
        last = max(names.index(n) for n in layers)
        self.conv_names = names[: last + 1]
        self.convs = [
            keras.layers.Conv2D(
                VGG_CHANNELS[int(n[4]) - 1], 3, padding="same", name=n, dtype=self.dtype_policy
            )
            for n in self.conv_names
        ]

    def build(self, input_shape):
        channels = input_shape[-1]
        for conv in self.convs:
            conv.build((None, None, None, channels))
            channels = conv.filters

    def call(self, images):
        x = images
        if self.normalize_input and self.input_norm == "caffe":
            x = ops.flip(x, axis=-1) * 255.0 - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
        elif self.normalize_input:
            mean = ops.convert_to_tensor(_TORCHVISION_MEAN, x.dtype)
            x = (x - mean) / ops.convert_to_tensor(_TORCHVISION_STD, x.dtype)
        features = {}
        block = 1
        for name, conv in zip(self.conv_names, self.convs, strict=True):
            b = int(name[4])
            if b != block:
                x = ops.max_pool(x, 2, 2)
                block = b
            x = conv(x)
            if name in self.layers_wanted:
                features[name] = x
            x = ops.relu(x)
        return features

    def get_config(self):
        return {
            **super().get_config(),
            "vgg_type": self.vgg_type,
            "layers": list(self.layers_wanted),
            "normalize_input": self.normalize_input,
            "input_norm": self.input_norm,
        }

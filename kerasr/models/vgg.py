"""VGG feature extractor for the perceptual loss, with taps before the ReLU.

ESRGAN compares VGG features *before* activation: after the ReLU, deep features are sparse
(most are zero), so the loss carries little signal and brightness drifts; before it, the
features are dense. `keras.applications` fuses the ReLU into each convolution, so this
module re-creates the convolutions with a linear activation (ReLU applied separately) and
copies the ImageNet weights into them.
"""

from __future__ import annotations

import os

import keras
from keras import ops

from kerasr.config.sr import VGG_LAYERS
from kerasr.errors import KerasrError

# Convolutions per block: VGG_LAYERS; every block ends with a 2x2 max-pool. Channels per block:
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
        load_vgg_weights(vgg, "imagenet")
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
        bad = [n for n in layers if n not in names]
        if bad or not layers:
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


def keras_vgg(vgg_type: str, weights):
    """The `keras.applications` VGG16/19 (no top) with `weights` ("imagenet", a path, None)."""
    builders = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
    if vgg_type not in builders:
        raise KerasrError(f"keras.applications has no {vgg_type}; use vgg16 or vgg19")
    return builders[vgg_type](include_top=False, weights=weights, input_shape=(None, None, 3))


def load_vgg_weights(features: VGGFeatures, weights: str | os.PathLike | None) -> VGGFeatures:
    """Fills a `VGGFeatures` with weights and freezes it.

    Args:
        features: the extractor (built here if needed).
        weights: `"imagenet"` (downloaded by Keras on first use, VGG16/19), `None` or
            `"none"` (random, for tests), a `.h5` / `.weights.h5` file of the matching
            `keras.applications` VGG16/19, a `.weights.h5` file of a `VGGFeatures`, or a
            PyTorch `.pth` state dict of torchvision's VGG (`features.<i>.weight`, as
            torchvision's `vgg19-dcbb9e9d.pth`, which BasicSR loads; use it with
            `input_norm="torchvision"`).

    Returns:
        `features`, non-trainable.

    Raises:
        KerasrError: on a missing file or weights that do not fit.
    """
    if not features.built:
        features.build((None, None, None, 3))
    features.trainable = False
    if weights is None or weights == "none":
        return features
    if weights != "imagenet" and not os.path.isfile(weights):
        raise KerasrError(f"VGG weights file not found: {weights}")
    if str(weights).endswith((".pth", ".pt")):
        return _load_torchvision(features, weights)
    try:
        if weights != "imagenet" and _is_features_file(weights):
            features.load_weights(weights)
            return features
        source = keras_vgg(features.vgg_type, weights)
    except KerasrError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KerasrError(
            f"cannot load {features.vgg_type} weights from {weights}: {first}"
        ) from None
    for conv, name in zip(features.convs, features.conv_names, strict=True):
        b, i = name[4:].split("_")
        conv.set_weights(source.get_layer(f"block{b}_conv{i}").get_weights())
    return features


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


def _load_torchvision(features: VGGFeatures, path) -> VGGFeatures:
    from kerasr.weights.torch_pickle import read_state_dict

    state = read_state_dict(path)
    index = torchvision_index(features.vgg_type)
    for conv, name in zip(features.convs, features.conv_names, strict=True):
        key = f"features.{index[name]}"
        kernel, bias = state.get(f"{key}.weight"), state.get(f"{key}.bias")
        expected = (conv.filters, conv.kernel.shape[2], 3, 3)
        if kernel is None or bias is None or kernel.shape != expected:
            found = "missing" if kernel is None else f"shape {tuple(kernel.shape)}"
            raise KerasrError(
                f"{path} is not a torchvision {features.vgg_type}: {key}.weight is {found}, "
                f"expected {expected}"
            )
        conv.set_weights([kernel.transpose(2, 3, 1, 0).astype("float32"), bias.astype("float32")])
    return features


def _is_features_file(path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "convs" in f or ("layers" in f and "convs" in f["layers"])
    except OSError:
        return False

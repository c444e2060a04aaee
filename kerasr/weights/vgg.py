"""Weights for the VGG feature extractor of the perceptual loss (`kerasr.models.vgg`).

Keras' ImageNet VGG16 / VGG19 (`keras.applications`, converted from the original Caffe
models), a `.weights.h5` file of a `VGGFeatures`, or torchvision's VGG state dict (`.pth`,
the weights BasicSR's perceptual loss uses), read without torch.
"""

from __future__ import annotations

import os

import keras

from kerasr.errors import KerasrError, first_line
from kerasr.models.vgg import VGGFeatures, torchvision_index
from kerasr.weights.torch_pickle import read_state_dict


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
        raise KerasrError(
            f"cannot load {features.vgg_type} weights from {weights}: {first_line(e)}"
        ) from None
    for conv, name in zip(features.convs, features.conv_names, strict=True):
        b, i = name[4:].split("_")
        conv.set_weights(source.get_layer(f"block{b}_conv{i}").get_weights())
    return features


def _load_torchvision(features: VGGFeatures, path) -> VGGFeatures:
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

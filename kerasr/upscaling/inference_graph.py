"""The forward pass of an upscaler for inference, written with `tf.nn` operations.

The Keras layers stay what training, saving and the parity tests use; this module reads
their weights and writes the same computation in the shape TensorFlow's graph optimiser
turns into fewer, larger oneDNN kernels on a CPU:

- every 3x3 convolution is `tf.nn.conv2d` + `tf.nn.bias_add` (+ the activation), which
  Grappler's remapper fuses into one oneDNN kernel (as it does Keras' `Conv2D`);
- in a residual dense block the residual scaling (0.2) is folded into the last
  convolution's kernel and bias, so the scaled branch and the skip add fuse into that
  convolution too (`conv + bias + add`), instead of two more passes over the features;
- a 3x3 convolution after a nearest x2 upsampling (RRDBNet's upsampler) runs as 2x2
  convolutions of the four output phases at the input resolution: 16 products per pixel
  and channel pair instead of 36 (`_upsampled_conv`);
- PReLU is one XLA-compiled element-wise pass instead of three TensorFlow ops;
- the weights are read when the function is traced and kept as tensors the graph captures
  (not constants inside it: a graph constant is copied into the graph, the function
  definition and the optimised graph, ten times the weights' memory for x4plus), so their
  bfloat16 casts and the folds above are computed once, not on every call.

`forward_function(model)` returns such a function for the networks it knows (`RRDBNet`,
`SRVGGNetCompact`, `Rescaled` around one of them), computing in the model's dtype policy
(float32, or a mixed bfloat16 / float16 copy from `kerasr.upscaling.inference.with_precision`), and
`None` for any other model, which then runs through its Keras `call`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def forward_function(model) -> Callable | None:
    """A function `x -> model(x)` built from `tf.nn` ops, or None if `model` is not known.

    Args:
        model: a built `RRDBNet`, `SRVGGNetCompact` or `Rescaled` network.

    Returns:
        A function of a float32 `(n, h, w, c)` tensor, to be called inside a `tf.function`;
        its weights are read from `model` when it is first traced.
    """
    from kerasr.models.rescaled import Rescaled, cubic_resize
    from kerasr.models.rrdbnet import RRDBNet
    from kerasr.models.srvgg import SRVGGNetCompact

    if isinstance(model, Rescaled):
        inner = forward_function(model.network)
        if inner is None:
            return None
        return lambda x: cubic_resize(inner(x), model.factor)
    if isinstance(model, RRDBNet):
        return lambda x: _rrdbnet(model, x)
    if isinstance(model, SRVGGNetCompact):
        return lambda x: _srvgg(model, x)
    return None


def _compute_dtype(model):
    import tensorflow as tf

    return tf.as_dtype(model.dtype_policy.compute_dtype)


def _tensor(value: np.ndarray, dtype):
    """`value` as an eager tensor in `dtype`, which a `tf.function` captures by reference."""
    import tensorflow as tf

    with tf.init_scope():
        return tf.cast(tf.constant(value, tf.float32), dtype)


def _values(variable) -> np.ndarray:
    """A variable's value as float32 numpy, also while a `tf.function` is being traced."""
    import tensorflow as tf

    with tf.init_scope():
        return np.asarray(variable.numpy(), np.float32)


class _Conv:
    """A Keras `Conv2D`'s kernel and bias as captured tensors, optionally scaled, in `dtype`."""

    def __init__(self, layer, dtype, scale: float = 1.0):
        kernel, bias = _values(layer.kernel), _values(layer.bias)
        self.kernel = _tensor(kernel * np.float32(scale), dtype)
        self.bias = _tensor(bias * np.float32(scale), dtype)

    def __call__(self, x):
        import tensorflow as tf

        return tf.nn.bias_add(tf.nn.conv2d(x, self.kernel, 1, "SAME"), self.bias)


def _upsampled_conv(layer, dtype, x):
    """`conv3x3(nearest_upsample(x, 2))` computed at the resolution of `x`.

    Each output pixel of the 3x3 convolution over the upsampled image sees only 2x2
    distinct input pixels, so each of the four output phases (row and column parity) is
    a 2x2 convolution of `x` with taps summed from the 3x3 kernel: 16 products per input
    pixel and channel pair instead of 36, and no upsampled copy of the features. Phase
    kernels are laid out so that `depth_to_space` puts every phase in its place, one
    pixel off: the output is that image without its first and last row and column.
    """
    import tensorflow as tf

    kernel, bias = _values(layer.kernel), _values(layer.bias)

    def taps(k, axis, phase):
        # Output row 2i (phase 0) sees input rows i-1, i, i: kernel rows 0 | 1 + 2;
        # row 2i+1 (phase 1) sees rows i, i, i+1: kernel rows 0 + 1 | 2.
        first, middle, last = (np.take(k, i, axis) for i in range(3))
        pair = (first, middle + last) if phase == 0 else (first + middle, last)
        return np.stack(pair, axis)

    # Channel block (a, b) of the 2x2 convolution at padded position (o, p) holds output
    # pixel (2o + a - 1, 2p + b - 1): phase 1 - a of row o - 1 + a, likewise for columns.
    blocks = [taps(taps(kernel, 0, 1 - a), 1, 1 - b) for a in (0, 1) for b in (0, 1)]
    folded = _tensor(np.concatenate(blocks, axis=-1), dtype)
    y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), folded, 1, "VALID")
    y = _leaky(tf.nn.bias_add(y, _tensor(np.tile(bias, 4), dtype)), 0.2)
    return tf.nn.depth_to_space(y, 2)[:, 1:-1, 1:-1]


def _leaky(x, slope):
    import tensorflow as tf

    return tf.nn.leaky_relu(x, alpha=slope)


_PRELU = []


def _prelu():
    """PReLU, `x + (alpha - 1) * min(x, 0)`, compiled by XLA into one pass over `x`.

    No oneDNN convolution fuses a per-channel slope, and as three TensorFlow ops (minimum,
    multiply, add) it reads and writes the features three times: 10 % of the compact
    network's time. XLA compiles this small function once per input shape.
    """
    if not _PRELU:
        import tensorflow as tf

        _PRELU.append(tf.function(lambda x, slope: x + slope * tf.minimum(x, 0), jit_compile=True))
    return _PRELU[0]


def _upsample_nearest(x, factor):
    import tensorflow as tf

    shape = tf.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
    x = tf.broadcast_to(tf.reshape(x, (n, h, 1, w, 1, c)), (n, h, factor, w, factor, c))
    return tf.reshape(x, (n, h * factor, w * factor, c))


def _rrdbnet(model, x):
    import tensorflow as tf

    dtype = _compute_dtype(model)
    x = tf.cast(x, dtype)
    if model.unshuffle is not None:
        x = model.unshuffle(x)
    feat = _Conv(model.conv_first, dtype)(x)
    body = feat
    for rrdb in model.body:
        out = body
        for rdb in rrdb.blocks:
            out = _dense_block(rdb, out, dtype)
        body = out * tf.constant(rrdb.residual_scaling, dtype) + body
    feat = feat + _Conv(model.conv_body, dtype)(body)
    for layer in (model.conv_up1, model.conv_up2):
        if model.shuffle is not None:
            feat = _leaky(model.shuffle(_Conv(layer, dtype)(feat)), 0.2)
        else:
            feat = _upsampled_conv(layer, dtype, feat)
    feat = _leaky(_Conv(model.conv_hr, dtype)(feat), 0.2)
    return tf.cast(_Conv(model.conv_last, dtype)(feat), tf.float32)


def _dense_block(rdb, x, dtype):
    import tensorflow as tf

    features = [x]
    for layer in rdb.convs[:-1]:
        features.append(_leaky(_Conv(layer, dtype)(tf.concat(features, axis=-1)), 0.2))
    # out * scaling + x, with the scaling folded into the kernel and bias.
    last = _Conv(rdb.convs[-1], dtype, scale=rdb.residual_scaling)
    return last(tf.concat(features, axis=-1)) + x


def _srvgg(model, x):
    import tensorflow as tf

    dtype = _compute_dtype(model)
    x = tf.cast(x, dtype)
    feat = x
    for i, layer in enumerate(model.convs):
        feat = _Conv(layer, dtype)(feat)
        if model.act_type == "prelu":
            alpha = _tensor(_values(model.activations[i].alpha).reshape(-1), dtype)
            feat = _prelu()(feat, alpha - 1)
        elif model.act_type == "relu":
            feat = tf.nn.relu(feat)
        else:
            feat = _leaky(feat, 0.1)
    out = model.shuffle(_Conv(model.conv_last, dtype)(feat))
    return tf.cast(out, tf.float32) + tf.cast(_upsample_nearest(x, model.upscale), tf.float32)

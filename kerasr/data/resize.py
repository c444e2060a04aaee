"""Resizing as PyTorch's `F.interpolate` does it, the resize of Real-ESRGAN's degradations.

`tf.image.resize` and `F.interpolate` (`align_corners=False`, no antialiasing) agree on
where output pixels fall, but not on the rest: PyTorch's bicubic uses the cubic convolution
kernel with a = -0.75 (TensorFlow: -0.5) and repeats the border pixel; its "area" mode is an
adaptive average pool over whole pixels (TensorFlow weighs fractional pixel areas); and
when it is given a scale factor rather than a size, source coordinates follow that factor,
not the ratio of the rounded sizes. Each resize here is separable: per axis, every output
row is a weighted sum of a few gathered input rows.

Reference: PyTorch `torch.nn.functional.interpolate` (aten/src/ATen/native/UpSample.h and
AdaptiveAveragePooling.cpp); Real-ESRGAN's `RealESRGANModel.feed_data`.
"""

from __future__ import annotations

import math

import tensorflow as tf

from kerasr.resize import MATLAB_A, PYTORCH_A, cubic_kernel, cubic_taps

MODES = ("area", "bilinear", "bicubic")


def _cubic_weights(t):
    """The four weights of taps at offsets -1, 0, 1, 2 from the floor, for fractions t."""
    return tf.stack(cubic_taps(t, PYTORCH_A), axis=-1)


def _source(out_len, ratio):
    return ratio * (tf.range(out_len, dtype=tf.float32) + 0.5) - 0.5


def _cubic_taps(in_len, out_len, ratio):
    """Indices [out, 4] into the input axis (clamped: the border pixel repeats) and the
    bicubic weights [out, 4]."""
    last = in_len - 1
    src = _source(out_len, ratio)
    i0 = tf.minimum(tf.cast(tf.floor(src), tf.int32), last)
    t = tf.clip_by_value(src - tf.cast(i0, tf.float32), 0.0, 1.0)
    idx = tf.clip_by_value(i0[:, None] + tf.range(-1, 3)[None], 0, last)
    return idx, _cubic_weights(t)


def _area_rows(x, out_len):
    """Adaptive average pooling along axis 0: output row o is the mean of input rows
    [floor(o in / out), ceil((o + 1) in / out)), summed one gathered row set at a time."""
    in_len = tf.shape(x)[0]
    o = tf.range(out_len)
    start = (o * in_len) // out_len
    count = ((o + 1) * in_len + out_len - 1) // out_len - start
    most = (in_len + out_len - 1) // out_len + 1  # the widest possible bin

    def body(k, total):
        rows = tf.gather(x, tf.minimum(start + k, in_len - 1))
        return k + 1, total + rows * tf.cast(k < count, x.dtype)[:, None, None, None]

    zeros = tf.zeros(tf.concat([[out_len], tf.shape(x)[1:]], 0), x.dtype)
    _, total = tf.while_loop(lambda k, _: k < most, body, (tf.constant(0), zeros))
    return total / tf.cast(count, x.dtype)[:, None, None, None]


def _resize_rows(x, out_len, mode: str, factor):
    """Resizes axis 0 of [H, W, B, C]: a weighted sum of K gathered rows per output row."""
    if mode == "area":
        return _area_rows(x, out_len)
    in_len = tf.shape(x)[0]
    if factor is None:
        ratio = tf.cast(in_len, tf.float32) / tf.cast(out_len, tf.float32)
    else:
        ratio = 1.0 / tf.cast(factor, tf.float32)
    idx, weights = _cubic_taps(in_len, out_len, ratio)
    out = None
    for k in range(idx.shape[1]):
        term = tf.gather(x, idx[:, k]) * weights[:, k][:, None, None, None]
        out = term if out is None else out + term
    return out


def _bilinear(x, size, factor):
    # TensorFlow's ScaleAndTranslate with the triangle kernel and no antialiasing is PyTorch's
    # bilinear: the same source coordinates for a given scale, and its renormalised border
    # taps equal PyTorch's clamped coordinates.
    shape = tf.shape(x)
    size = tf.stack([tf.cast(size[0], tf.int32), tf.cast(size[1], tf.int32)])
    if factor is None:
        scale = tf.cast(size, tf.float32) / tf.cast(shape[1:3], tf.float32)
    else:
        scale = tf.fill([2], tf.cast(factor, tf.float32))
    return tf.raw_ops.ScaleAndTranslate(
        images=x,
        size=size,
        scale=scale,
        translation=tf.zeros([2]),
        kernel_type="triangle",
        antialias=False,
    )


def interpolate(images, size, mode: str, factor=None):
    """Resizes a batch as `F.interpolate(x, size=size, mode=mode)` does, or, given `factor`,
    as `F.interpolate(x, scale_factor=factor, mode=mode)` with `size = floor(h * factor)`.

    Args:
        images: [B, H, W, C] float32.
        size: (height, width) of the output (ints or scalar tensors).
        mode: "area", "bilinear" or "bicubic" (`align_corners=False`, no antialiasing).
        factor: the scale factor that `size` came from, when the resize is by a factor; the
            source coordinates then use `1 / factor` instead of the ratio of the sizes.

    Returns:
        [B, height, width, C] float32, not clipped (bicubic overshoots, as in PyTorch).
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    x = tf.convert_to_tensor(images, tf.float32)
    if mode == "bilinear":
        return _bilinear(x, size, factor)
    # Gathers along the first axis copy whole contiguous rows: [B, H, W, C] -> [H, W, B, C],
    # rows, then [W, H', B, C], columns, then back.
    x = _resize_rows(tf.transpose(x, [1, 2, 0, 3]), size[0], mode, factor)
    x = _resize_rows(tf.transpose(x, [1, 0, 2, 3]), size[1], mode, factor)
    return tf.transpose(x, [2, 1, 0, 3])


def _matlab_taps(in_len, out_len, scale: float):
    """Indices [out, K] and weights of MATLAB's bicubic `imresize` along one axis: Keys'
    kernel (a = -0.5), stretched by 1 / scale when shrinking (antialiasing), normalised, with
    the image mirrored at its borders."""
    width = 4.0 / scale if scale < 1 else 4.0
    taps = math.ceil(width) + 2
    x = tf.range(1, out_len + 1, dtype=tf.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output centres in 1-based input coordinates
    left = tf.floor(u - width / 2.0)
    idx = left[:, None] + tf.range(taps, dtype=tf.float64)[None]
    d = u[:, None] - idx
    if scale < 1:
        d = d * scale
    weights = cubic_kernel(d, MATLAB_A, tf)
    weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
    period = 2 * in_len
    j = tf.math.floormod(tf.cast(idx, tf.int32) - 1, period)
    return tf.where(j >= in_len, period - 1 - j, j), tf.cast(weights, tf.float32)


def matlab_bicubic(images, scale: float):
    """MATLAB's `imresize(images, scale)` (bicubic, antialiased when shrinking) on a batch:
    the classic LR images of Set5, DIV2K's bicubic track and the ESRGAN paper.

    Equal to `kerasr.evaluation.sr.matlab_imresize` (and BasicSR's `imresize`) up to float32
    rounding.

    Args:
        images: [B, H, W, C] float32.
        scale: the factor; the output is `ceil(H * scale) x ceil(W * scale)`.

    Returns:
        [B, ceil(H * scale), ceil(W * scale), C] float32, not clipped.
    """
    x = tf.convert_to_tensor(images, tf.float32)
    for axis in (1, 2):
        in_len = tf.shape(x)[axis]
        out_len = tf.cast(tf.math.ceil(tf.cast(in_len, tf.float64) * scale), tf.int32)
        idx, weights = _matlab_taps(in_len, out_len, float(scale))
        gathered = tf.gather(x, idx, axis=axis)
        if axis == 1:
            x = tf.einsum("bokwc,ok->bowc", gathered, weights)
        else:
            x = tf.einsum("bhokc,ok->bhoc", gathered, weights)
    return x

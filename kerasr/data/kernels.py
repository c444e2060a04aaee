"""Random blur kernels for a whole batch at once, and their application as one convolution.

Every sample of a batch gets its own kernel (type, size, widths, rotation, shape exponent),
all drawn with stateless ops from one seed, and all padded to the same odd size so the batch
can be filtered by a single depthwise convolution.

Reference: Wang et al., Real-ESRGAN, https://arxiv.org/abs/2107.10833 (section 3.1).
"""

from __future__ import annotations

import math

import tensorflow as tf

from kerasr.config import KERNEL_TYPES, BlurConfig


def fold(seed, salt: int):
    """A new stateless seed derived from `seed` ([2] int) and a constant `salt`."""
    return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), salt)


def _grid(size: int):
    half = (size - 1) / 2.0
    ax = tf.range(size, dtype=tf.float32) - half
    yy, xx = tf.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _size_mask(ksize, size: int):
    """[B, size, size] mask of the centred ksize x ksize window (ksize odd, per sample)."""
    xx, yy = _grid(size)
    r = (tf.cast(ksize, tf.float32)[:, None, None] - 1.0) / 2.0
    return tf.cast((tf.abs(xx)[None] <= r) & (tf.abs(yy)[None] <= r), tf.float32)


def _normalize(kernel):
    return kernel / tf.reduce_sum(kernel, axis=[1, 2], keepdims=True)


def gaussian_family_kernels(sigma_x, sigma_y, theta, beta, family, size: int):
    """Generalized-Gaussian / plateau kernels, one per sample, unnormalized.

    Args:
        sigma_x, sigma_y: [B] widths along the principal axes.
        theta: [B] rotation in radians.
        beta: [B] shape exponent (1 for a plain Gaussian).
        family: [B] int, 0 = exp(-q^beta / 2) (Gaussian when beta = 1), 1 = 1 / (q^beta + 1)
            (plateau), where q is the Mahalanobis distance squared.
        size: side of the (square, odd) kernel grid.

    Returns:
        [B, size, size] float32 kernels.
    """
    xx, yy = _grid(size)
    c, s = tf.cos(theta)[:, None, None], tf.sin(theta)[:, None, None]
    # Coordinates in the rotated frame; q = d^T (R diag(sx^2, sy^2) R^T)^-1 d.
    u = c * xx[None] + s * yy[None]
    v = -s * xx[None] + c * yy[None]
    q = (u / sigma_x[:, None, None]) ** 2 + (v / sigma_y[:, None, None]) ** 2
    qb = tf.pow(q + 0.0, beta[:, None, None])
    return tf.where(family[:, None, None] == 0, tf.exp(-0.5 * qb), 1.0 / (qb + 1.0))


def sinc_kernels(omega, size: int):
    """Circular low-pass (2-D sinc) kernels `omega J1(omega r) / (2 pi r)`, unnormalized.

    Args:
        omega: [B] cut-off frequencies in radians per pixel.
        size: side of the kernel grid.

    Returns:
        [B, size, size] float32 kernels.
    """
    xx, yy = _grid(size)
    r = tf.sqrt(xx**2 + yy**2)[None]
    w = omega[:, None, None]
    safe_r = tf.where(r > 0, r, 1.0)
    k = w * tf.math.special.bessel_j1(w * safe_r) / (2.0 * math.pi * safe_r)
    # The limit at r = 0.
    return tf.where(r > 0, k, w**2 / (4.0 * math.pi))


def _uniform(seed, shape, lo, hi):
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi)


def _odd_sizes(seed, batch, lo: int, hi: int):
    n = (hi - lo) // 2 + 1
    idx = tf.random.stateless_uniform([batch], seed, 0, n, dtype=tf.int32)
    return lo + 2 * idx


def random_kernels(seed, batch, blur: BlurConfig, size: int | None = None, return_info=False):
    """Draws one blur kernel per sample, as Real-ESRGAN's dataset does.

    With probability `blur.sinc_prob` a sample gets a sinc kernel (cut-off in [pi/3, pi] for
    sizes below 13, [pi/5, pi] otherwise, so small kernels do not ring too much); otherwise a
    kernel of a type drawn from `blur.kernel_list` with weights `blur.kernel_prob`.

    Args:
        seed: [2] int stateless seed.
        batch: number of kernels (int or scalar tensor).
        blur: the kernel distribution.
        size: grid side; defaults to the largest kernel size. Smaller kernels are zero-padded.
        return_info: also return a dict of the drawn parameters ([batch] tensors: `size`,
            `type` (index in `KERNEL_TYPES`, -1 for sinc), `sigma_x`, `sigma_y`, `theta`,
            `beta`, `omega`), for labels and tests.

    Returns:
        [batch, size, size] float32 kernels, each summing to 1 (and the info dict).
    """
    size = size or blur.kernel_range[1]
    ksize = _odd_sizes(fold(seed, 1), batch, *blur.kernel_range)
    logits = tf.math.log(tf.constant([blur.kernel_prob], tf.float32))
    choice = tf.random.stateless_categorical(logits, batch, fold(seed, 2), dtype=tf.int32)[0]
    types = tf.constant([KERNEL_TYPES.index(k) for k in blur.kernel_list], tf.int32)
    kind = tf.gather(types, choice)
    aniso = tf.equal(kind % 2, 1)
    sx = _uniform(fold(seed, 3), [batch], *blur.sigma_range)
    sy = tf.where(aniso, _uniform(fold(seed, 4), [batch], *blur.sigma_range), sx)
    theta = tf.where(aniso, _uniform(fold(seed, 5), [batch], -math.pi, math.pi), 0.0)
    # Half of the time beta is below 1 (heavier tails), half above (flatter top), as in BasicSR.
    low = _uniform(fold(seed, 6), [batch], 0.0, 1.0) < 0.5
    t = _uniform(fold(seed, 7), [batch], 0.0, 1.0)
    bg0, bg1 = blur.betag_range
    bp0, bp1 = blur.betap_range
    beta_g = tf.where(
        low, min(bg0, 1.0) + t * (1.0 - min(bg0, 1.0)), 1.0 + t * (max(bg1, 1.0) - 1.0)
    )
    beta_p = tf.where(
        low, min(bp0, 1.0) + t * (1.0 - min(bp0, 1.0)), 1.0 + t * (max(bp1, 1.0) - 1.0)
    )
    family_index = kind // 2  # 0 Gaussian, 1 generalized, 2 plateau
    beta = tf.where(family_index == 0, 1.0, tf.where(family_index == 1, beta_g, beta_p))
    family = tf.cast(family_index == 2, tf.int32)
    gauss = gaussian_family_kernels(sx, sy, theta, beta, family, size)

    omega_lo = tf.where(ksize < 13, math.pi / 3.0, math.pi / 5.0)
    omega = omega_lo + _uniform(fold(seed, 8), [batch], 0.0, 1.0) * (math.pi - omega_lo)
    sinc = sinc_kernels(omega, size)
    use_sinc = _uniform(fold(seed, 9), [batch], 0.0, 1.0) < blur.sinc_prob
    kernel = _normalize(tf.where(use_sinc[:, None, None], sinc, gauss) * _size_mask(ksize, size))
    if not return_info:
        return kernel
    info = {
        "size": ksize,
        "type": tf.where(use_sinc, -1, kind),
        "sigma_x": sx,
        "sigma_y": sy,
        "theta": theta,
        "beta": beta,
        "omega": omega,
    }
    return kernel, info


def final_sinc_kernels(seed, batch, prob: float, kernel_range: tuple[int, int], size=None):
    """Real-ESRGAN's last filter: a sinc kernel (cut-off in [pi/3, pi]) with probability
    `prob`, else the identity (a centred delta).

    Returns:
        [batch, size, size] float32 kernels, each summing to 1.
    """
    size = size or kernel_range[1]
    ksize = _odd_sizes(fold(seed, 1), batch, *kernel_range)
    omega = _uniform(fold(seed, 2), [batch], math.pi / 3.0, math.pi)
    sinc = _normalize(sinc_kernels(omega, size) * _size_mask(ksize, size))
    delta = tf.one_hot((size * size) // 2, size * size, dtype=tf.float32)
    delta = tf.broadcast_to(tf.reshape(delta, [1, size, size]), tf.shape(sinc))
    use = _uniform(fold(seed, 3), [batch], 0.0, 1.0) < prob
    return tf.where(use[:, None, None], sinc, delta)


def gaussian_kernel_1d(size: int, sigma: float):
    """A normalized 1-D Gaussian of odd `size` (OpenCV's rule when `sigma <= 0`)."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    ax = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    k = tf.exp(-0.5 * (ax / sigma) ** 2)
    return k / tf.reduce_sum(k)


def reflect_pad(x, pad_h: int, pad_w: int):
    """Reflect padding of a [B, H, W, C] tensor (edge not repeated, like OpenCV's default)
    that also works when the pad is as large as or larger than the image."""

    def indices(n, pad):
        i = tf.range(-pad, n + pad)
        period = tf.maximum(2 * (n - 1), 1)
        j = tf.math.floormod(i, period)
        return tf.where(j >= n, period - j, j)

    def general():
        shape = tf.shape(x)
        y = tf.gather(x, indices(shape[1], pad_h), axis=1) if pad_h else x
        return tf.gather(y, indices(shape[2], pad_w), axis=2) if pad_w else y

    def fast():
        return tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")

    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None:
        return fast() if (h > pad_h and w > pad_w) else general()
    # Unknown sizes (after a random resize): tf.pad is several times faster than the
    # gather, but only defined for pads smaller than the image.
    shape = tf.shape(x)
    return tf.cond((shape[1] > pad_h) & (shape[2] > pad_w), fast, general)


def fold_batch(images):
    """[B, H, W, C] -> [1, H, W, B*C]: the batch as channels of one image, so per-sample
    filters become the channels of one depthwise convolution (vectorized across B*C)."""
    shape = tf.shape(images)
    c = images.shape[-1] or 3
    return tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, shape[1], shape[2], shape[0] * c])


def unfold_batch(folded, batch, channels: int = 3):
    """The inverse of `fold_batch`."""
    shape = tf.shape(folded)
    y = tf.reshape(folded, [shape[1], shape[2], batch, channels])
    return tf.transpose(y, [2, 0, 1, 3])


def filter_batch(images, kernels):
    """Filters each image of a batch with its own kernel, in one depthwise convolution.

    Args:
        images: [B, H, W, C] float32.
        kernels: [B, K, K] float32, K odd; symmetric kernels, so correlation = convolution.

    Returns:
        [B, H, W, C] float32, reflect-padded so the size is unchanged.
    """
    c = images.shape[-1] or 3
    k = kernels.shape[-1]
    x = fold_batch(reflect_pad(images, k // 2, k // 2))
    f = tf.repeat(tf.transpose(kernels, [1, 2, 0]), c, axis=2)[..., None]
    y = tf.nn.depthwise_conv2d(x, f, [1, 1, 1, 1], "VALID")
    return unfold_batch(y, tf.shape(images)[0], c)


def separable_blur_folded(folded, kernel_1d):
    """Blurs a folded [1, H, W, N] tensor with one separable kernel, reflect-padded."""
    k = kernel_1d.shape[0]
    n = tf.shape(folded)[-1]
    x = reflect_pad(folded, k // 2, k // 2)
    fy = tf.reshape(kernel_1d, [k, 1, 1, 1]) * tf.ones([1, 1, n, 1])
    fx = tf.reshape(kernel_1d, [1, k, 1, 1]) * tf.ones([1, 1, n, 1])
    x = tf.nn.depthwise_conv2d(x, fy, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, fx, [1, 1, 1, 1], "VALID")


def separable_blur(images, kernel_1d):
    """Blurs a [B, H, W, C] batch with the same separable kernel on every channel."""
    c = images.shape[-1] or 3
    y = separable_blur_folded(fold_batch(images), kernel_1d)
    return unfold_batch(y, tf.shape(images)[0], c)

"""Degradations that turn HR batches into LR batches, as TensorFlow ops.

`degrade_batch(hr, seed, config, scale)` is a pure function of its inputs: the same batch and
seed give the same LR, on any device. It runs in a tf.data `.map` after `.batch` (the
default) or inside a train step (`DegradationConfig.on_device = true`), as Real-ESRGAN does
on GPU. The train step may be a `tf.function` but the degradation cannot be XLA-compiled
(`jit_compile=True`): antialiased resize (ScaleAndTranslate), the Bessel J1 of the sinc
kernel and JPEG have no XLA kernels, and the random resize changes shapes per batch.

Like Real-ESRGAN, the choices that change a tensor's shape or the op used (resize scale and
mode, Gaussian or Poisson noise, second blur on or off, order of the last two steps) are
drawn once per batch; kernels, noise levels, grey noise and JPEG qualities per sample. The
pair pool in `make_sr_dataset` then mixes batches.

Reference: Wang et al., Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data, https://arxiv.org/abs/2107.10833
"""

from __future__ import annotations

import math

import tensorflow as tf

from kerasr.config import DegradationConfig, StageConfig
from kerasr.data.kernels import (
    filter_batch,
    final_sinc_kernels,
    fold,
    fold_batch,
    gaussian_kernel_1d,
    random_kernels,
    separable_blur_folded,
    unfold_batch,
)
from kerasr.data.resize import interpolate, matlab_bicubic


def to_uint8_levels(x):
    """Clips to [0, 1] and rounds to the 256 levels an 8-bit image can hold."""
    return tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0) / 255.0


def bicubic_downscale(hr, scale: int):
    """MATLAB's antialiased bicubic `imresize(hr, 1 / scale)`, the classic ESRGAN degradation
    and the LR of SR benchmarks, rounded to 8-bit levels like a saved PNG.

    The same LR as `kerasr evaluate` makes (`kerasr.evaluation.sr.matlab_imresize`) and as
    BasicSR's `matlab_functions.imresize`, up to float32 rounding.

    Args:
        hr: [B, H, W, C] float32 in [0, 1]; H and W multiples of `scale`.
        scale: integer factor.

    Returns:
        [B, H/scale, W/scale, C] float32 on 8-bit levels.
    """
    return to_uint8_levels(matlab_bicubic(hr, 1.0 / scale))


def usm_sharpen(images, weight: float = 0.5, radius: int = 50, threshold: float = 10.0):
    """Unsharp masking as Real-ESRGAN sharpens its GT: only where the detail is strong.

    Args:
        images: [B, H, W, C] float32 in [0, 1].
        weight: amount of the residual added back.
        radius: Gaussian window (made odd); sigma follows OpenCV's rule for that size.
        threshold: residuals below this (0-255 scale) are left alone, so flat areas and noise
            are not amplified; the mask is blurred to avoid seams.

    Returns:
        The sharpened batch, same shape.
    """
    radius = radius + 1 if radius % 2 == 0 else radius
    k = gaussian_kernel_1d(radius, 0.0)
    c = images.shape[-1] or 3
    # Computed on the folded batch: one transpose in and one out for both blurs.
    x = fold_batch(images)
    residual = x - separable_blur_folded(x, k)
    mask = tf.cast(tf.abs(residual) * 255.0 > threshold, tf.float32)
    soft = separable_blur_folded(mask, k)
    sharp = tf.clip_by_value(x + weight * residual, 0.0, 1.0)
    out = soft * sharp + (1.0 - soft) * x
    return tf.ensure_shape(unfold_batch(out, tf.shape(images)[0], c), images.shape)


def standard_normal(shape, seed):
    """Stateless N(0, 1) samples by the Box-Muller transform.

    Half the uniform draws of `tf.random.stateless_normal` and about twice as fast on CPU,
    where noise over a batch of 256x256 patches is a visible share of the pipeline.
    """
    n = tf.reduce_prod(shape)
    half = (n + 1) // 2
    u = tf.random.stateless_uniform(tf.stack([2, half]), seed, minval=1e-7, maxval=1.0)
    radius = tf.sqrt(-2.0 * tf.math.log(u[0]))
    angle = (2.0 * math.pi) * u[1]
    z = tf.concat([radius * tf.cos(angle), radius * tf.sin(angle)], 0)[:n]
    return tf.reshape(z, shape)


def add_gaussian_noise(images, seed, sigma, gray, draws=None, shared_gray: bool = False):
    """Adds N(0, sigma^2) noise, per sample; `gray` samples get the same noise on all channels.

    Args:
        images: [B, H, W, C] float32.
        seed: [2] int.
        sigma: [B] standard deviations on the 0-1 scale.
        gray: [B] bool.
        draws: optional `(z, z_gray)` standard normal draws, [B, H, W, C] and [B or 1, H, W,
            1], used instead of drawing from `seed` (to replay another implementation's
            draws).
        shared_gray: one grey noise field for the whole batch, scaled by each sample's
            sigma, as BasicSR's `add_gaussian_noise_pt` draws it (Real-ESRGAN's training);
            False draws one per sample (the first channel's draws), independent across the
            batch.

    Returns:
        The noisy batch clipped to [0, 1].
    """
    if draws is None:
        z = standard_normal(tf.shape(images), fold(seed, 1))
        z_gray = z[..., :1]  # still i.i.d. N(0, 1) per pixel; saves a third of the draws
        if shared_gray:
            z_gray = z_gray[:1]
    else:
        z, z_gray = draws
    noise = tf.where(gray[:, None, None, None], z_gray, z) * sigma[:, None, None, None]
    return tf.clip_by_value(images + noise, 0.0, 1.0)


def grey_levels(images):
    """BasicSR's Poisson scale per sample: its number of distinct 8-bit values, rounded up
    to a power of two (256 for a photograph, fewer for flat or posterised images).

    Args:
        images: [B, H, W, C] float32, already on 8-bit levels in [0, 1].

    Returns:
        [B] float32.
    """
    q = tf.cast(tf.round(images * 255.0), tf.int32)
    b = tf.shape(q)[0]
    flat = tf.reshape(q, [b, -1]) + 256 * tf.range(b)[:, None]
    seen = tf.math.bincount(tf.reshape(flat, [-1]), minlength=256 * b, maxlength=256 * b)
    distinct = tf.reduce_sum(tf.cast(tf.reshape(seen, [b, 256]) > 0, tf.int32), axis=1)
    powers = 2 ** tf.range(9)
    level = tf.reduce_min(tf.where(powers[None] >= distinct[:, None], powers[None], 256), axis=1)
    return tf.cast(level, tf.float32)


def add_poisson_noise(images, seed, scale, gray, exact: bool = False, draws=None):
    """Adds signal-dependent (shot) noise, scaled by `scale`, per sample, as BasicSR does.

    The image is rounded to 8-bit levels, `n` = its distinct levels rounded up to a power of
    two, and the noise is `(Poisson(n x8) / n - x8) * scale`, added to the unrounded image;
    grey samples draw it on the luma and add it to all channels. Unless `exact`, Poisson(l)
    is sampled as N(l, l), ~10x faster on CPU and indistinguishable except in the darkest
    pixels.

    Args:
        images: [B, H, W, C] float32 (may be a little outside [0, 1] after a resize).
        seed: [2] int.
        scale: [B] noise multipliers.
        gray: [B] bool.
        exact: use `tf.random.stateless_poisson`.
        draws: optional `(counts, counts_gray)` Poisson draws ([B, H, W, C] and [B, H, W, 1])
            used instead of drawing from `seed` (to replay another implementation's draws).

    Returns:
        The noisy batch clipped to [0, 1].
    """
    x = tf.convert_to_tensor(images, tf.float32)
    luma = tf.image.rgb_to_grayscale(x) if x.shape[-1] == 3 else x[..., :1]
    rgb8, luma8 = to_uint8_levels(x), to_uint8_levels(luma)
    levels = grey_levels(rgb8)[:, None, None, None]
    levels_y = grey_levels(luma8)[:, None, None, None]
    if draws is not None:
        counts, counts_y = draws
        colour = counts / levels - rgb8
        mono = counts_y / levels_y - luma8
    elif exact:
        lam, lam_y = rgb8 * levels, luma8 * levels_y
        counts = tf.random.stateless_poisson(tf.shape(lam), fold(seed, 1), lam, dtype=tf.float32)
        counts_y = tf.random.stateless_poisson(
            tf.shape(lam_y), fold(seed, 2), lam_y, dtype=tf.float32
        )
        colour = counts / levels - rgb8
        mono = counts_y / levels_y - luma8
    else:
        z = standard_normal(tf.shape(x), fold(seed, 1))
        colour = tf.sqrt(rgb8 / levels) * z
        mono = tf.sqrt(luma8 / levels_y) * z[..., :1]
    noise = tf.where(gray[:, None, None, None], mono, colour)
    return tf.clip_by_value(x + noise * scale[:, None, None, None], 0.0, 1.0)


def jpeg_batch(images, quality):
    """JPEG-compresses each image of a batch at its own quality.

    Args:
        images: [B, H, W, C] float32 in [0, 1] (clipped here, as an encoder would).
        quality: [B] int32 in [1, 100].

    Returns:
        The decoded batch, float32 in [0, 1].
    """
    x = tf.clip_by_value(images, 0.0, 1.0)

    def one(args):
        image, q = args
        return tf.image.adjust_jpeg_quality(image, q)

    out = tf.map_fn(one, (x, quality), fn_output_signature=tf.float32)
    return tf.ensure_shape(out, images.shape)


def random_jpeg_quality(seed, batch, jpeg_range):
    """JPEG qualities for a batch, one per sample, as Real-ESRGAN draws them.

    Real-ESRGAN draws a float quality uniformly in `jpeg_range` and its DiffJPEG scales the
    quantisation tables by it continuously; TensorFlow's encoder takes an integer quality,
    so the same uniform draw is rounded to the nearest integer (the two ends of the range
    are half as likely as the qualities between them, as with the reference's float draw).

    Args:
        seed: [2] int stateless seed.
        batch: the batch size (a scalar, may be a tensor).
        jpeg_range: `(low, high)` qualities, inclusive.

    Returns:
        [batch] int32 qualities in `[low, high]`.
    """
    lo, hi = jpeg_range
    q = tf.random.stateless_uniform([batch], seed, float(lo), float(hi))
    return tf.cast(tf.round(q), tf.int32)


def _uniform(seed, shape, lo, hi):
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi)


def _resize(images, size, mode_index, modes, factor=None):
    branches = [(lambda m=m: interpolate(images, size, m, factor)) for m in modes]
    return tf.switch_case(mode_index, branches)


def _random_resize(images, seed, stage: StageConfig, base_h, base_w, by_factor: bool):
    """Resizes the batch to base * s, s drawn (once per batch) from up / down / keep.

    As Real-ESRGAN, the first stage resizes by the factor (`F.interpolate(scale_factor=s)`)
    and the second to a size (`size=base * s`), and the result is not clipped (bicubic
    overshoot reaches the noise step).
    """
    logits = tf.math.log(tf.constant([stage.resize_prob], tf.float32))
    updown = tf.random.stateless_categorical(logits, 1, fold(seed, 1), dtype=tf.int32)[0, 0]
    t = _uniform(fold(seed, 2), [], 0.0, 1.0)
    lo, hi = stage.resize_range
    factor = tf.switch_case(
        updown,
        [lambda: 1.0 + t * (hi - 1.0), lambda: lo + t * (1.0 - lo), lambda: tf.constant(1.0)],
    )
    mode = tf.random.stateless_uniform([], fold(seed, 3), 0, len(stage.resize_modes), tf.int32)
    h = tf.maximum(tf.cast(tf.cast(base_h, tf.float32) * factor, tf.int32), 2)
    w = tf.maximum(tf.cast(tf.cast(base_w, tf.float32) * factor, tf.int32), 2)
    size = tf.stack([h, w])
    out = _resize(images, size, mode, stage.resize_modes, factor if by_factor else None)
    return out, {"resize": factor, "resize_mode": mode}


def _random_noise(images, seed, stage: StageConfig, batch, exact, shared_gray):
    gaussian = _uniform(fold(seed, 1), [], 0.0, 1.0) < stage.gaussian_noise_prob
    gray = _uniform(fold(seed, 2), [batch], 0.0, 1.0) < stage.gray_noise_prob
    sigma = _uniform(fold(seed, 3), [batch], *stage.noise_range) / 255.0
    pscale = _uniform(fold(seed, 4), [batch], *stage.poisson_scale_range)
    out = tf.cond(
        gaussian,
        lambda: add_gaussian_noise(images, fold(seed, 5), sigma, gray, shared_gray=shared_gray),
        lambda: add_poisson_noise(images, fold(seed, 6), pscale, gray, exact),
    )
    level = tf.where(gaussian, sigma * 255.0, pscale)
    return out, {"gaussian": gaussian, "gray": gray, "noise": level}


def _random_jpeg(images, seed, stage: StageConfig, batch):
    q = random_jpeg_quality(seed, batch, stage.jpeg_range)
    return jpeg_batch(images, q), {"jpeg": q}


def _stage(x, seed, stage: StageConfig, config, batch, base_h, base_w, by_factor):
    """Blur, resize, noise, JPEG: one order of Real-ESRGAN's degradation model."""
    kernels, kinfo = random_kernels(fold(seed, 1), batch, stage.blur, return_info=True)
    if stage.blur_prob >= 1.0:
        blurred = tf.constant(True)
        x = filter_batch(x, kernels)
    else:
        blurred = _uniform(fold(seed, 2), [], 0.0, 1.0) < stage.blur_prob
        x = tf.cond(blurred, lambda: filter_batch(x, kernels), lambda: x)
    x, rinfo = _random_resize(x, fold(seed, 3), stage, base_h, base_w, by_factor)
    exact, shared = config.poisson_exact, config.shared_gray_noise
    x, ninfo = _random_noise(x, fold(seed, 4), stage, batch, exact, shared)
    x, jinfo = _random_jpeg(x, fold(seed, 5), stage, batch)
    return x, {"blurred": blurred, "kernel": kinfo, **rinfo, **ninfo, **jinfo}


def realesrgan_degrade(hr, seed, config: DegradationConfig, scale: int, sharpen_gt=False):
    """Real-ESRGAN's second-order degradation of a batch, with the drawn parameters.

    Args:
        hr: [B, H, W, 3] float32 in [0, 1]; H and W multiples of `scale`.
        seed: [2] int stateless seed.
        config: the degradation parameters.
        scale: the super-resolution factor.
        sharpen_gt: return the sharpened GT that was degraded (Real-ESRNet's `gt_usm`, which
            sharpens the whole crop before the patch is cut) instead of `hr`.

    Returns:
        `(lr, gt, params)`: lr [B, H/scale, W/scale, 3] on 8-bit levels, gt (`hr` itself
        unless `sharpen_gt`: the GAN harness sharpens the GT per loss, see
        `SRLossConfig.l1_gt_usm`), and a dict of the drawn parameters (for labels).
    """
    batch = tf.shape(hr)[0]
    shape = tf.shape(hr)
    h, w = shape[1], shape[2]
    lh, lw = h // scale, w // scale
    # Real-ESRGAN degrades the sharpened GT whichever GT the losses use.
    usm = usm_sharpen(hr, config.usm_weight, config.usm_radius, config.usm_threshold)
    gt = usm if sharpen_gt else hr

    x, p1 = _stage(usm, fold(seed, 1), config.stage1, config, batch, h, w, by_factor=True)
    x, p2 = _stage(x, fold(seed, 2), config.stage2, config, batch, lh, lw, by_factor=False)

    sinc = final_sinc_kernels(
        fold(seed, 3), batch, config.final_sinc_prob, config.final_kernel_range
    )
    modes = config.stage1.resize_modes
    mode = tf.random.stateless_uniform([], fold(seed, 4), 0, len(modes), tf.int32)
    quality = random_jpeg_quality(fold(seed, 5), batch, config.stage2.jpeg_range)
    size = tf.stack([lh, lw])

    def resize_then_sinc(t):
        return filter_batch(_resize(t, size, mode, modes), sinc)

    # The sinc filter and the JPEG both cause ringing; their order is random because
    # real images meet them either way round.
    sinc_first = _uniform(fold(seed, 6), [], 0.0, 1.0) < 0.5
    x = tf.cond(
        sinc_first,
        lambda: jpeg_batch(resize_then_sinc(x), quality),
        lambda: resize_then_sinc(jpeg_batch(x, quality)),
    )
    lr = to_uint8_levels(x)
    lr = tf.ensure_shape(lr, [hr.shape[0], _div(hr.shape[1], scale), _div(hr.shape[2], scale), 3])
    centre = sinc.shape[-1] // 2
    params = {
        "stage1": p1,
        "stage2": p2,
        "sinc_first": sinc_first,
        "final_sinc": sinc[:, centre, centre] < 1.0,  # a delta kernel means no sinc
        "final_jpeg": quality,
    }
    return lr, gt, params


def _div(n, scale):
    return None if n is None else n // scale


def degrade_batch(hr, seed, config: DegradationConfig, scale: int, sharpen_gt=False):
    """Makes an (LR, HR) batch from an HR batch, as configured; pure TF, no Python state.

    Usable in `dataset.batch(...).map(...)` and inside a train step.

    Args:
        hr: [B, H, W, 3] float32 in [0, 1], H and W multiples of `scale`.
        seed: [2] int stateless seed (e.g. `[base_seed, batch_index]`).
        config: `DegradationConfig`; `kind` selects bicubic or Real-ESRGAN.
        scale: the super-resolution factor.
        sharpen_gt: Real-ESRGAN degradations only: return the sharpened HR (see
            `realesrgan_degrade`).

    Returns:
        `(lr, hr)`: lr [B, H/scale, W/scale, 3] float32 in [0, 1]; hr unchanged unless
        `sharpen_gt` (the GAN harness sharpens it for the losses that want Real-ESRGAN's
        sharpened GT).

    Example:

        lr, hr = degrade_batch(hr, tf.constant([0, step]), DegradationConfig(), 4)
    """
    hr = tf.convert_to_tensor(hr, tf.float32)
    if config.kind == "bicubic":
        return bicubic_downscale(hr, scale), hr
    lr, gt, _ = realesrgan_degrade(hr, seed, config, scale, sharpen_gt)
    return lr, gt

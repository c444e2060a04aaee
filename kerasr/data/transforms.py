"""Paired transforms: crops in LR coordinates, flips / transpose, LR-only JPEG and dropout.

Crops choose their position on the LR grid and multiply it by the scale, so an LR pixel
always maps to the same `scale x scale` HR block. Every random choice comes from a stateless
seed passed in, so a pair is a pure function of (image, seed).
"""

from __future__ import annotations

import tensorflow as tf

from kerasr.config import AugmentConfig
from kerasr.data.degradations import jpeg_batch, random_jpeg_quality
from kerasr.data.kernels import fold


def _offsets(seed, lr_h, lr_w, lr_patch, random: bool):
    if random:
        oy = tf.random.stateless_uniform([], fold(seed, 1), 0, lr_h - lr_patch + 1, tf.int32)
        ox = tf.random.stateless_uniform([], fold(seed, 2), 0, lr_w - lr_patch + 1, tf.int32)
    else:
        oy, ox = (lr_h - lr_patch) // 2, (lr_w - lr_patch) // 2
    return oy, ox


def crop_pair(lr, hr, seed, lr_patch: int, scale: int, random: bool = True):
    """Crops the same region from an LR image and its HR image.

    Args:
        lr: [h, w, 3] image, or None for an HR-only source (the LR grid is then the HR size
            divided by `scale`).
        hr: [h * scale, w * scale, 3] image.
        seed: [2] int stateless seed (unused for a center crop).
        lr_patch: patch side on the LR grid; the HR patch is `lr_patch * scale`.
        scale: the super-resolution factor.
        random: random crop (training) or center crop (validation).

    Returns:
        `(lr_crop, hr_crop)` (`lr_crop` is None when `lr` is).
    """
    hshape = tf.shape(hr)
    lr_h, lr_w = hshape[0] // scale, hshape[1] // scale
    oy, ox = _offsets(seed, lr_h, lr_w, lr_patch, random)
    return crop_pair_at(lr, hr, oy, ox, lr_patch, scale)


def crop_pair_at(lr, hr, oy, ox, lr_patch: int, scale: int):
    """The crop of `crop_pair` at LR offsets `(oy, ox)`: BasicSR's `paired_random_crop` once
    its `top, left` are drawn (uniform in `[0, lr size - lr_patch]`)."""
    hp = lr_patch * scale
    hr_crop = tf.ensure_shape(
        hr[oy * scale : oy * scale + hp, ox * scale : ox * scale + hp], [hp, hp, 3]
    )
    if lr is None:
        return None, hr_crop
    lr_crop = tf.ensure_shape(lr[oy : oy + lr_patch, ox : ox + lr_patch], [lr_patch, lr_patch, 3])
    return lr_crop, hr_crop


def crop_or_pad(hr, seed, size: int, random: bool = True):
    """Real-ESRGAN's `crop_pad_size` step: an HR image is padded at the bottom / right by
    reflection (OpenCV's `BORDER_REFLECT_101`) up to `size` on each side, then cropped to
    `size x size` (random position for training, centred for validation).

    Args:
        hr: [h, w, 3] image.
        seed: [2] int stateless seed (unused for a centred crop).
        size: the side of the result.
        random: random or centred crop.

    Returns:
        [size, size, 3] image.
    """
    shape = tf.shape(hr)
    h, w = shape[0], shape[1]

    def reflected(n):
        # Indices 0..max(n, size)-1 folded back into 0..n-1, repeatedly if n is small.
        period = tf.maximum(2 * (n - 1), 1)
        m = tf.range(tf.maximum(n, size)) % period
        return tf.where(m >= n, period - m, m)

    hr = tf.gather(tf.gather(hr, reflected(h), axis=0), reflected(w), axis=1)
    big_h, big_w = tf.maximum(h, size), tf.maximum(w, size)
    if random:
        oy = tf.random.stateless_uniform([], fold(seed, 4), 0, big_h - size + 1, tf.int32)
        ox = tf.random.stateless_uniform([], fold(seed, 5), 0, big_w - size + 1, tf.int32)
    else:
        oy, ox = (big_h - size) // 2, (big_w - size) // 2
    return tf.ensure_shape(hr[oy : oy + size, ox : ox + size], [size, size, 3])


def crop_batch_pair(lr, hr, seed, lr_patch: int, scale: int, random: bool = True):
    """BasicSR's `paired_random_crop` of a degraded batch: one position on the LR grid for
    the whole batch, as Real-ESRGAN cuts its 256 px patches from the degraded 400 px batch.

    Args:
        lr: [B, h, w, 3] batch.
        hr: the [B, h * scale, w * scale, 3] batch, or a nested structure of such batches
            (cut at the same place).
        seed: [2] int stateless seed (unused for a centred crop).
        lr_patch: patch side on the LR grid.
        scale: the super-resolution factor.
        random: random crop (training) or centred crop (validation).

    Returns:
        `(lr_crop, hr_crop)`.
    """
    shape = tf.shape(lr)
    oy, ox = _offsets(seed, shape[1], shape[2], lr_patch, random)
    hp = lr_patch * scale
    lr = tf.ensure_shape(
        lr[:, oy : oy + lr_patch, ox : ox + lr_patch], [None, lr_patch, lr_patch, 3]
    )

    def cut(t):
        t = t[:, oy * scale : oy * scale + hp, ox * scale : ox * scale + hp]
        return tf.ensure_shape(t, [None, hp, hp, 3])

    return lr, tf.nest.map_structure(cut, hr)


def fit_to_patch(lr, hr, lr_patch: int, scale: int):
    """Upsamples (bicubic) a pair whose LR grid is smaller than `lr_patch`, keeping the
    HR / LR size ratio, so the crop that follows always fits. Larger images pass unchanged."""
    hshape = tf.shape(hr)
    lr_h, lr_w = hshape[0] // scale, hshape[1] // scale
    small = tf.minimum(lr_h, lr_w) < lr_patch
    factor = lr_patch / tf.cast(tf.maximum(tf.minimum(lr_h, lr_w), 1), tf.float32)
    new_lr = tf.cast(tf.math.ceil(tf.cast(tf.stack([lr_h, lr_w]), tf.float32) * factor), tf.int32)
    new_lr = tf.maximum(new_lr, lr_patch)

    def up(image, size):
        return tf.clip_by_value(tf.image.resize(image, size, method="bicubic"), 0.0, 1.0)

    hr = tf.cond(small, lambda: up(hr, new_lr * scale), lambda: hr)
    if lr is not None:
        lr = tf.cond(small, lambda: up(lr, new_lr), lambda: lr)
    return lr, hr


def flip_pair(lr, hr, seed, augment: AugmentConfig):
    """Horizontal flip, vertical flip and transpose, each with its probability, applied
    identically to LR and HR (together they reach all 8 rotations / reflections).

    Args:
        lr, hr: square [h, w, 3] images (lr may be None).
        seed: [2] int stateless seed.
        augment: the probabilities.

    Returns:
        The transformed `(lr, hr)`.
    """
    u = tf.random.stateless_uniform([3], fold(seed, 3))
    ops = [
        (augment.hflip_prob, lambda t: tf.reverse(t, [1])),
        (augment.vflip_prob, lambda t: tf.reverse(t, [0])),
        (augment.transpose_prob, lambda t: tf.transpose(t, [1, 0, 2])),
    ]
    images = [lr, hr]
    for i, (p, op) in enumerate(ops):
        if p <= 0:
            continue
        apply = u[i] < p
        images = [
            None if t is None else tf.cond(apply, lambda t=t, op=op: op(t), lambda t=t: t)
            for t in images
        ]
    return images[0], images[1]


def coarse_dropout_batch(lr, seed, augment: AugmentConfig, apply):
    """Zeroes a few random squares in each LR image where `apply` ([B] bool) holds.

    Hole count is drawn in `augment.dropout_holes`, hole side as a fraction
    `augment.dropout_size` of the image side; built as one mask for the whole batch.
    """
    shape = tf.shape(lr)
    b, h, w = shape[0], shape[1], shape[2]
    max_holes = augment.dropout_holes[1]
    n = tf.random.stateless_uniform(
        [b], fold(seed, 1), augment.dropout_holes[0], max_holes + 1, tf.int32
    )
    active = tf.range(max_holes)[None, :] < n[:, None]  # [B, N]
    lo, hi = augment.dropout_size
    side = tf.random.stateless_uniform([b, max_holes], fold(seed, 2), lo, hi + 1e-6)
    size_h = tf.maximum(tf.cast(side * tf.cast(h, tf.float32), tf.int32), 1)
    size_w = tf.maximum(tf.cast(side * tf.cast(w, tf.float32), tf.int32), 1)
    cy = tf.random.stateless_uniform([b, max_holes], fold(seed, 3))
    cx = tf.random.stateless_uniform([b, max_holes], fold(seed, 4))
    y0 = tf.cast(cy * tf.cast(h - size_h + 1, tf.float32), tf.int32)
    x0 = tf.cast(cx * tf.cast(w - size_w + 1, tf.float32), tf.int32)
    ys = tf.range(h)[None, None, :, None]
    xs = tf.range(w)[None, None, None, :]
    inside = (
        (ys >= y0[..., None, None])
        & (ys < (y0 + size_h)[..., None, None])
        & (xs >= x0[..., None, None])
        & (xs < (x0 + size_w)[..., None, None])
        & active[..., None, None]
    )
    hole = tf.reduce_any(inside, axis=1) & apply[:, None, None]  # [B, H, W]
    return tf.where(hole[..., None], 0.0, lr)


def augment_lr_batch(lr, seed, augment: AugmentConfig):
    """LR-only augmentations of a batch: JPEG (`jpeg_prob`, quality in `jpeg_range`) and
    coarse dropout (`dropout_prob`), decided per sample.

    Args:
        lr: [B, h, w, 3] float32 in [0, 1].
        seed: [2] int stateless seed.
        augment: the probabilities and ranges.

    Returns:
        The augmented batch.
    """
    b = tf.shape(lr)[0]
    if augment.jpeg_prob > 0:
        use = tf.random.stateless_uniform([b], fold(seed, 1)) < augment.jpeg_prob
        q = random_jpeg_quality(fold(seed, 2), b, augment.jpeg_range)
        # Encoding costs about as much as the rest of the LR path: skip it when no sample
        # of the batch drew it.
        lr = tf.cond(
            tf.reduce_any(use),
            lambda: tf.where(use[:, None, None, None], jpeg_batch(lr, q), lr),
            lambda: lr,
        )
    if augment.dropout_prob > 0:
        use = tf.random.stateless_uniform([b], fold(seed, 3)) < augment.dropout_prob
        lr = coarse_dropout_batch(lr, fold(seed, 4), augment, use)
    return lr

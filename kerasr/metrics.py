"""PSNR and SSIM as super-resolution papers report them: Y channel, border cropped.

SR papers (SRCNN onwards, ESRGAN, Real-ESRGAN's BasicSR) score the luma channel of
MATLAB's `rgb2ycbcr` (BT.601, studio range 16-235) after cropping `scale` pixels from every
border, with SSIM's 11x11 Gaussian window (sigma 1.5). Scores on RGB, or without the crop,
are not comparable with the papers' tables.

All functions take float images in `[0, 1]`, shaped `(n, h, w, c)` or `(h, w, c)`, and
return one score per image; they are TensorFlow ops, usable in a `test_step`.
"""

import keras
import tensorflow as tf

# MATLAB rgb2ycbcr, luma row, for inputs in [0, 1]: Y in [16, 235] / 255.
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(images):
    """Luma of `[0, 1]` RGB images, as MATLAB's `rgb2ycbcr` (kept in `[0, 1]` units)."""
    images = tf.convert_to_tensor(images, tf.float32)
    return tf.tensordot(images, tf.constant(_Y_WEIGHTS), axes=[[-1], [0]])[..., None] + _Y_OFFSET


def _prepare(a, b, border, y_channel):
    a = tf.convert_to_tensor(a, tf.float32)
    b = tf.convert_to_tensor(b, tf.float32)
    if a.shape.rank == 3:
        a, b = a[None], b[None]
    if y_channel and a.shape[-1] == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if border:
        a = a[:, border:-border, border:-border]
        b = b[:, border:-border, border:-border]
    return a, b


def psnr(a, b, border: int = 0, y_channel: bool = True):
    """Peak signal-to-noise ratio in dB, one value per image.

    Args:
        a, b: float images in `[0, 1]`, `(n, h, w, c)` or `(h, w, c)`.
        border: pixels cropped from each side first (the scale factor, by convention).
        y_channel: score the BT.601 luma of RGB images (the papers' convention).

    Returns:
        A float32 tensor of shape `(n,)`.
    """
    a, b = _prepare(a, b, border, y_channel)
    mse = tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-12)) / tf.math.log(10.0)


def ssim(a, b, border: int = 0, y_channel: bool = True):
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5), per image.

    Args: as `psnr`. Images are scaled to 255 first, so the constants `(0.01 * 255)^2` and
    `(0.03 * 255)^2` are those of the original MATLAB code.

    Reference:
        [Image quality assessment: from error visibility to structural similarity](
        https://doi.org/10.1109/TIP.2003.819861).
    """
    a, b = _prepare(a, b, border, y_channel)
    scores = tf.image.ssim(a * 255.0, b * 255.0, max_val=255.0, filter_size=11, filter_sigma=1.5)
    return tf.cast(scores, tf.float32)


class _ImageScore(keras.metrics.Mean):
    """Mean of a per-image score over the images seen (Y channel, `border` crop).

    Predictions are clipped to [0, 1] and, with `quantize` (the default), rounded to 8-bit
    levels first: the image a user saves, the one `kerasr evaluate` scores and BasicSR's
    validation (`tensor2img`) scores.
    """

    score = None  # the per-image function, set by subclasses

    def __init__(self, border=0, y_channel=True, quantize=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.border = border
        self.y_channel = y_channel
        self.quantize = quantize

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
        if self.quantize:
            y_pred = tf.round(y_pred * 255.0) / 255.0
        scores = type(self).score(y_true, y_pred, self.border, self.y_channel)
        return super().update_state(scores, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "border": self.border,
            "y_channel": self.y_channel,
            "quantize": self.quantize,
        }


@keras.saving.register_keras_serializable(package="kerasr")
class PSNR(_ImageScore):
    """Mean PSNR (dB) over the images seen; Y channel with a `border` crop by default."""

    score = staticmethod(psnr)

    def __init__(self, border=0, y_channel=True, quantize=True, name="psnr", **kwargs):
        super().__init__(border, y_channel, quantize, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="kerasr")
class SSIM(_ImageScore):
    """Mean SSIM over the images seen; Y channel with a `border` crop by default."""

    score = staticmethod(ssim)

    def __init__(self, border=0, y_channel=True, quantize=True, name="ssim", **kwargs):
        super().__init__(border, y_channel, quantize, name=name, **kwargs)

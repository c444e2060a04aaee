"""DCGAN generator and discriminator for small sprite images (64x64 by default, 128x128 too).

Both networks are plain functional `keras.Model`s, so they save as `.keras` / `.weights.h5`
and carry no training logic; `kerasr.training.dcgan.DCGAN` is the harness that trains them.

Reference:
    [DCGAN](https://arxiv.org/abs/1511.06434): strided (transposed) convolutions, batch norm
    in the generator, LeakyReLU in the discriminator, tanh output.
"""

from __future__ import annotations

import math

import keras

from kerasr.spectral import SpectralConv2D, SpectralDense

# The DCGAN paper initialises every weight from N(0, 0.02).
_INIT_STDDEV = 0.02

UPSAMPLING = ("transposed", "resize")


def _check_sizes(image_size: int, filters: int, max_filters: int) -> int:
    """Returns the number of stride-2 stages between 4x4 and `image_size`."""
    if not (isinstance(image_size, int) and image_size >= 8 and image_size & (image_size - 1) == 0):
        raise ValueError(
            "`image_size` must be a power of two, at least 8 (e.g. 64 or 128). "
            f"Received: image_size={image_size}"
        )
    if filters < 1 or max_filters < filters:
        raise ValueError(
            "`filters` must be at least 1 and at most `max_filters`. "
            f"Received: filters={filters}, max_filters={max_filters}"
        )
    return int(math.log2(image_size)) - 2


def _init():
    return keras.initializers.RandomNormal(stddev=_INIT_STDDEV)


def _upsample(x, width: int, mode: str, name: str, use_bias: bool):
    """Doubles the resolution of `x`, giving `width` channels."""
    if mode == "transposed":
        return keras.layers.Conv2DTranspose(
            width,
            4,
            strides=2,
            padding="same",
            use_bias=use_bias,
            kernel_initializer=_init(),
            name=name,
        )(x)
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    return keras.layers.Conv2D(
        width, 3, padding="same", use_bias=use_bias, kernel_initializer=_init(), name=name
    )(x)


def build_generator(
    image_size: int = 64,
    latent_dim: int = 128,
    filters: int = 64,
    max_filters: int = 512,
    upsample: str = "transposed",
    name: str = "dcgan_generator",
) -> keras.Model:
    """The DCGAN generator: a latent vector to an RGB image in [-1, 1].

    A dense layer makes a 4x4 map; each stage doubles the resolution with a 4x4 stride-2
    transposed convolution, batch norm and ReLU, halving the channels; the last stage gives
    3 channels and tanh. The stage before the output has `filters` channels, and channel
    counts double towards the 4x4 map, capped at `max_filters`.

    `upsample="resize"` doubles the resolution with a nearest-neighbour upsampling followed
    by a 3x3 convolution instead: a stride-2 4x4 transposed convolution adds each input
    pixel's kernel to overlapping output pixels unevenly, which leaves a checkerboard
    pattern that the generator must learn to cancel; resize-convolution has none.

    Args:
        image_size: output height and width, a power of two >= 8 (64 by default, 128 too).
        latent_dim: length of the input latent vector.
        filters: channels of the last hidden stage (the widest resolution).
        max_filters: cap on channels at low resolution.
        upsample: `"transposed"` (DCGAN) or `"resize"` (nearest upsampling + convolution).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `[n, latent_dim]` to `[n, size, size, 3]`.

    Example:

    >>> g = build_generator(image_size=64, latent_dim=128)
    >>> g(keras.random.normal((2, 128))).shape
    (2, 64, 64, 3)

    Reference:
        [Deconvolution and Checkerboard Artifacts](https://distill.pub/2016/deconv-checkerboard/).
    """
    stages = _check_sizes(image_size, filters, max_filters)
    if latent_dim < 1:
        raise ValueError(f"`latent_dim` must be at least 1. Received: latent_dim={latent_dim}")
    if upsample not in UPSAMPLING:
        raise ValueError(f"`upsample` must be one of {UPSAMPLING}. Received: upsample={upsample!r}")
    widths = [min(filters * 2 ** (stages - 1 - i), max_filters) for i in range(stages)]
    z = keras.Input((latent_dim,), name="latent")
    # use_bias=False wherever batch norm follows: its beta is the bias.
    x = keras.layers.Dense(
        4 * 4 * widths[0], use_bias=False, kernel_initializer=_init(), name="project"
    )(z)
    x = keras.layers.Reshape((4, 4, widths[0]), name="reshape")(x)
    # momentum 0.9 rather than Keras' 0.99: the generator moves fast, and samples are drawn in
    # inference mode, so the moving statistics must keep up with a few hundred steps per run.
    x = keras.layers.BatchNormalization(momentum=0.9, name="project_bn")(x)
    x = keras.layers.ReLU(name="project_relu")(x)
    for i, width in enumerate(widths[1:], start=1):
        x = _upsample(x, width, upsample, f"up{i}", use_bias=False)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"up{i}_bn")(x)
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
    x = _upsample(x, 3, upsample, "to_rgb", use_bias=True)
    image = keras.layers.Activation("tanh", name="tanh", dtype="float32")(x)
    return keras.Model(z, image, name=name)


def build_discriminator(
    image_size: int = 64,
    filters: int = 64,
    max_filters: int = 512,
    spectral_norm: bool = True,
    batch_norm: bool = False,
    name: str = "dcgan_discriminator",
) -> keras.Model:
    """The DCGAN discriminator: an RGB image in [-1, 1] to one unbounded score (a logit).

    Stride-2 4x4 convolutions with LeakyReLU(0.2) halve the resolution down to 4x4, doubling
    the channels from `filters` up to `max_filters`; a dense layer gives the score.
    `batch_norm` adds batch norm after every convolution but the first, as in the DCGAN paper;
    the training harness scores real and fake images in separate calls, so batch statistics
    never mix them. `spectral_norm` makes every convolution and the dense layer spectrally
    normalised (`kerasr.spectral`, as PyTorch), which keeps the discriminator 1-Lipschitz
    and is the main stabiliser on small data sets. Call the model with `training=True` while
    training so that the power iteration updates.

    Args:
        image_size: input height and width, a power of two >= 8.
        filters: channels of the first convolution.
        max_filters: cap on channels.
        spectral_norm: spectral normalisation on the weight layers.
        batch_norm: batch norm after the convolutions (not the first).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `[n, size, size, 3]` to `[n, 1]`.

    Reference:
        [Spectral normalization for GANs](https://arxiv.org/abs/1802.05957).
    """
    stages = _check_sizes(image_size, filters, max_filters)

    conv = SpectralConv2D if spectral_norm else keras.layers.Conv2D
    dense = SpectralDense if spectral_norm else keras.layers.Dense
    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    for i in range(stages):
        width = min(filters * 2**i, max_filters)
        x = conv(
            width, 4, strides=2, padding="same", kernel_initializer=_init(), name=f"down{i + 1}"
        )(x)
        if batch_norm and i > 0:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"down{i + 1}_bn")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"down{i + 1}_lrelu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    score = dense(1, kernel_initializer=_init(), name="score")(x)
    score = keras.layers.Activation("linear", name="logit", dtype="float32")(score)
    return keras.Model(image, score, name=name)

"""A FastGAN-style generator for small image sets: GLU upsampling blocks and skip-layer excitation.

A functional `keras.Model` from a latent vector to an RGB image in [-1, 1], so it saves as
`.keras` / `.weights.h5` and carries no training logic (`kerasr.training.dcgan.DCGAN` is the
harness that trains it, with `kerasr.models.projected.ProjectedDiscriminator` as its critic).

Reference:
    [Towards Faster and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis](
    https://arxiv.org/abs/2101.04775) (FastGAN), and its "lite" generator as used by
    [Projected GANs Converge Faster](https://arxiv.org/abs/2111.01007).
"""

from __future__ import annotations

import math

import keras
from keras import ops

# Channels per resolution as multiples of `filters` (FastGAN's table): wide where the maps are
# small and cheap, narrow at full resolution.
_WIDTH = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 1}


@keras.saving.register_keras_serializable(package="kerasr")
class GLU(keras.layers.Layer):
    """Gated linear unit over channels: the first half times the sigmoid of the second half.

    FastGAN's activation: each block computes twice the channels it keeps, and half of them
    gate the other half, which lets a block switch features off per pixel.

    Reference:
        [Language Modeling with Gated Convolutional Networks](https://arxiv.org/abs/1612.08083).
    """

    def call(self, inputs):
        value, gate = ops.split(inputs, 2, axis=-1)
        return value * ops.sigmoid(gate)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="kerasr")
class PixelNorm(keras.layers.Layer):
    """Scales each vector to unit root-mean-square over its last axis (Progressive GAN's
    latent normalisation: the generator sees latents on a sphere whatever their length)."""

    def call(self, inputs):
        return inputs * ops.rsqrt(ops.mean(ops.square(inputs), axis=-1, keepdims=True) + 1e-8)


def _bn(name):
    # momentum 0.9 as the DCGAN generator: samples come from moving statistics, which must
    # keep up with a generator that moves fast.
    return keras.layers.BatchNormalization(momentum=0.9, name=name)


def _up_block(x, width: int, name: str):
    """Nearest x2, a 3x3 convolution to twice `width`, batch norm, GLU: resize-convolution,
    which has no checkerboard pattern, gated."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
    x = keras.layers.Conv2D(2 * width, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return GLU(name=f"{name}_glu")(_bn(f"{name}_bn")(x))


def _excite(small, big, name: str):
    """Skip-layer excitation: a 4x4 map gates the channels of a full-resolution map, so the
    coarse layout steers the fine layers directly (FastGAN section 3.1)."""
    channels = big.shape[-1]
    if small.shape[1] != 4:
        small = keras.layers.AveragePooling2D(small.shape[1] // 4, name=f"{name}_pool")(small)
    gate = keras.layers.Conv2D(channels, 4, use_bias=False, name=f"{name}_squeeze")(small)
    gate = keras.layers.Activation("swish", name=f"{name}_swish")(gate)
    gate = keras.layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_excite")(gate)
    gate = keras.layers.Activation("sigmoid", name=f"{name}_gate")(gate)
    return keras.layers.Multiply(name=name)([big, gate])


def build_fastgan_generator(
    image_size: int = 64,
    latent_dim: int = 128,
    filters: int = 16,
    name: str = "fastgan_generator",
) -> keras.Model:
    """The FastGAN-lite generator: a latent vector to an RGB image in [-1, 1].

    The latent is normalised to the unit sphere and projected to a 4x4 map (dense, batch
    norm, GLU); each block doubles the resolution by nearest upsampling, a 3x3 convolution,
    batch norm and GLU; the 4x4 map excites the channels of the last block (64 px and up) and
    the 8x8 map those of the 128 px block; a 3x3 convolution and tanh give RGB. Channels per
    resolution are FastGAN's multiples of `filters` (16x at 4x4 down to 2x at 32-64 px).

    Args:
        image_size: output side, a power of two from 16 to 256.
        latent_dim: length of the latent vector.
        filters: the channel unit (FastGAN's `ngf`); 16 gives 2.0 M parameters at 64 px
            with a 128-long latent (half of them in the projection to 4x4).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `[n, latent_dim]` to `[n, size, size, 3]`.

    Example:

    >>> g = build_fastgan_generator(image_size=64, latent_dim=128, filters=8)
    >>> g(keras.random.normal((2, 128))).shape
    (2, 64, 64, 3)

    Reference:
        [FastGAN](https://arxiv.org/abs/2101.04775).
    """
    if not (isinstance(image_size, int) and 16 <= image_size <= 256):
        raise ValueError(f"`image_size` must be 16 to 256. Received: image_size={image_size}")
    if image_size & (image_size - 1):
        raise ValueError(f"`image_size` must be a power of two. Received: image_size={image_size}")
    if latent_dim < 1 or filters < 1:
        raise ValueError(
            "`latent_dim` and `filters` must be at least 1. "
            f"Received: latent_dim={latent_dim}, filters={filters}"
        )
    width = {size: _WIDTH[size] * filters for size in _WIDTH}
    z = keras.Input((latent_dim,), name="latent")
    x = PixelNorm(name="latent_norm")(z)
    x = keras.layers.Dense(4 * 4 * 2 * width[4], use_bias=False, name="project")(x)
    x = keras.layers.Reshape((4, 4, 2 * width[4]), name="reshape")(x)
    x = GLU(name="project_glu")(_bn("project_bn")(x))
    features = {4: x}
    for level in range(3, int(math.log2(image_size)) + 1):
        size = 2**level
        x = _up_block(x, width[size], f"up{size}")
        # FastGAN excites 64 px from 4 px, 128 px from 8 px, 256 px from 16 px.
        if size >= 64:
            x = _excite(features[size // 16], x, f"excite{size}")
        features[size] = x
    x = keras.layers.Conv2D(3, 3, padding="same", name="to_rgb")(x)
    image = keras.layers.Activation("tanh", name="tanh", dtype="float32")(x)
    return keras.Model(z, image, name=name)

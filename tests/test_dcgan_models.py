"""DCGAN networks and DiffAugment: shapes, options, serialization, differentiability."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasr.layers import DiffAugment
from kerasr.models.dcgan import build_discriminator, build_generator
from kerasr.spectral import SpectralConv2D, SpectralDense


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_generator_and_discriminator_shapes(size):
    g = build_generator(image_size=size, latent_dim=8, filters=2, max_filters=8)
    d = build_discriminator(image_size=size, filters=2, max_filters=8)
    images = g(np.random.normal(size=(3, 8)).astype("float32"))
    assert images.shape == (3, size, size, 3)
    # tanh output: the range the data pipeline scales images to.
    assert float(keras.ops.max(keras.ops.abs(images))) <= 1.0
    assert d(images).shape == (3, 1)


def test_generator_widths_double_towards_4x4_and_cap():
    g = build_generator(image_size=64, latent_dim=4, filters=8, max_filters=32)
    widths = [
        layer.filters for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    # 8x8, 16x16, 32x32 stages then RGB; the 4x4 projection has min(8 * 8, 32) channels.
    assert widths == [32, 16, 8, 3]
    assert g.get_layer("reshape").output.shape[-1] == 32


def test_resize_convolution_generator_has_no_transposed_convolution():
    g = build_generator(image_size=16, latent_dim=4, filters=2, max_filters=8, upsample="resize")
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g.layers)
    # A constant feature map stays constant through nearest upsampling and a 3x3 convolution
    # away from the border: the stage adds no checkerboard of its own.
    stage = keras.Model(g.get_layer("up1_resize").input, g.get_layer("up1").output)
    out = np.asarray(stage(np.ones((1, 4, 4, stage.input.shape[-1]), "float32")))[0, 1:-1, 1:-1]
    np.testing.assert_allclose(out, np.broadcast_to(out[:1, :1], out.shape), atol=1e-6)
    # The transposed convolution's output alternates between its kernel's four phases.
    g = build_generator(image_size=16, latent_dim=4, filters=2, max_filters=8)
    stage = keras.Model(g.get_layer("up1").input, g.get_layer("up1").output)
    out = np.asarray(stage(np.ones((1, 4, 4, stage.input.shape[-1]), "float32")))[0, 2:-2, 2:-2]
    assert not np.allclose(out[0::2, 0::2], out[1::2, 1::2], atol=1e-6)
    with pytest.raises(ValueError, match="upsample"):
        build_generator(image_size=16, upsample="bilinear")


@pytest.mark.parametrize("size", [0, 4, 48, 100])
def test_impossible_sizes_raise(size):
    with pytest.raises(ValueError, match="power of two"):
        build_generator(image_size=size)
    with pytest.raises(ValueError, match="power of two"):
        build_discriminator(image_size=size)


def test_spectral_norm_option():
    with_sn = build_discriminator(16, filters=2, max_filters=4, spectral_norm=True)
    without = build_discriminator(16, filters=2, max_filters=4, spectral_norm=False)
    normalised = [x for x in with_sn.layers if isinstance(x, (SpectralConv2D, SpectralDense))]
    assert [x.name for x in normalised] == ["down1", "down2", "score"]
    assert not any(isinstance(x, (SpectralConv2D, SpectralDense)) for x in without.layers)
    # training=True runs the power iteration: sigma = u . (W v) becomes the kernel's top
    # singular value, so every layer applies a kernel of spectral norm ~1.
    x = np.random.uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    for _ in range(30):
        with_sn(x, training=True)
    for layer in normalised:
        kernel = np.asarray(layer.kernel)
        # PyTorch's [out, in] matrix, the layout u and v refer to.
        w = (
            kernel.T
            if kernel.ndim == 2
            else kernel.transpose(3, 2, 0, 1).reshape(kernel.shape[-1], -1)
        )
        sigma = np.asarray(layer.u) @ w @ np.asarray(layer.v)
        assert sigma == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-3)


def test_batch_norm_option_skips_the_first_convolution():
    d = build_discriminator(32, filters=2, max_filters=8, spectral_norm=False, batch_norm=True)
    norms = [x.name for x in d.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert norms == ["down2_bn", "down3_bn"]


def _images(n=4, size=16, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype("float32")


def test_diffaugment_is_identity_at_inference_and_keeps_shape():
    x = _images()
    layer = DiffAugment(seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    y = layer(x, training=True)
    assert y.shape == x.shape
    assert not np.allclose(y, x)


def test_diffaugment_translation_shifts_with_zero_fill():
    x = _images(n=64, size=16)
    y = np.asarray(DiffAugment(["translation"], translation_ratio=0.125, seed=3)(x, training=True))
    shifts = set()
    for a, b in zip(x, y, strict=True):
        found = None
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expect = np.zeros_like(a)
                src = a[max(0, -dy) : 16 - max(0, dy), max(0, -dx) : 16 - max(0, dx)]
                expect[max(0, dy) : 16 - max(0, -dy), max(0, dx) : 16 - max(0, -dx)] = src
                if np.allclose(expect, b, atol=1e-6):
                    found = (dy, dx)
        assert found is not None, "each image must be an integer shift of its input"
        shifts.add(found)
    assert len(shifts) > 5  # each image draws its own shift


def test_diffaugment_cutout_zeroes_one_square():
    x = np.ones((32, 16, 16, 3), "float32")
    y = np.asarray(DiffAugment(["cutout"], cutout_ratio=0.5, seed=0)(x, training=True))
    zero = (y == 0).all(-1)
    assert set(np.unique(y)) <= {0.0, 1.0}
    for mask in zero:
        rows, cols = np.nonzero(mask)
        assert 0 < mask.sum() <= 64  # at most an 8x8 square, clipped at the border
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()


def test_diffaugment_color_changes_each_image_differently():
    x = _images(n=8)
    y = np.asarray(DiffAugment(["color"], seed=0)(x, training=True))
    deltas = (y - x).mean(axis=(1, 2, 3))
    assert np.unique(np.round(deltas, 4)).size == 8


def test_diffaugment_is_differentiable():
    # Its saving round trip is in test_saving.py.
    layer = DiffAugment(seed=2)
    x = tf.Variable(_images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True) ** 2)
    grad = tape.gradient(loss, x)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    assert DiffAugment(["color"]).policy == ("color",)


def test_diffaugment_rejects_unknown_policy():
    with pytest.raises(ValueError, match="policy"):
        DiffAugment(["colour"])

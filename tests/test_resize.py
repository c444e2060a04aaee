"""The cubic kernels (`kerasr.resize`) and their numpy and TensorFlow faces agree."""

import math

import numpy as np
import pytest
import tensorflow as tf

from kerasr.data.resize import interpolate, matlab_bicubic
from kerasr.evaluation.sr import matlab_imresize
from kerasr.models.rescaled import cubic_resize
from kerasr.resize import MATLAB_A, PYTORCH_A, cubic_kernel, cubic_taps

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("a", [MATLAB_A, PYTORCH_A])
def test_the_kernel_is_keys_and_the_same_in_numpy_and_tensorflow(a):
    x = np.linspace(-2.5, 2.5, 101)
    k = cubic_kernel(x, a, np)
    np.testing.assert_allclose(cubic_kernel(tf.constant(x), a, tf).numpy(), k, atol=1e-12)
    # Interpolating: 1 at 0, 0 at the other integers and from 2 on; continuous at 1.
    assert cubic_kernel(np.array([0.0, 1.0, 2.0, 2.5]), a, np).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cubic_kernel(np.array([1 - 1e-9]), a, np)[0] == pytest.approx(0.0, abs=1e-7)
    # The four taps of a sample sum to one and are the kernel at their distances.
    t = np.linspace(0.0, 0.99, 12)
    taps = np.stack(cubic_taps(t, a))
    np.testing.assert_allclose(taps.sum(axis=0), 1.0, atol=1e-12)
    distances = np.stack([t + 1, t, 1 - t, 2 - t])
    np.testing.assert_allclose(taps, cubic_kernel(distances, a, np), atol=1e-12)


def test_the_two_kernels_differ_where_a_matters():
    # A test that would pass with the two constants swapped is no test of either.
    assert cubic_kernel(np.array([1.5]), MATLAB_A, np)[0] == pytest.approx(-0.0625)
    assert cubic_kernel(np.array([1.5]), PYTORCH_A, np)[0] == pytest.approx(-0.09375)


@pytest.mark.parametrize("scale", [0.25, 0.5, 1 / 3, 2.0])
def test_matlab_bicubic_in_tensorflow_is_the_numpy_reference(scale):
    image = RNG.random((13, 10, 3))
    expected = matlab_imresize(image, scale)
    got = matlab_bicubic(image[None].astype("float32"), scale)[0].numpy()
    assert got.shape == (math.ceil(13 * scale), math.ceil(10 * scale), 3)
    np.testing.assert_allclose(got, expected, atol=2e-6)


@pytest.mark.parametrize("factor", [0.5, 0.75])
def test_the_released_x2_x3_resize_is_pytorch_bicubic_by_size(factor):
    images = RNG.random((2, 12, 16, 3)).astype("float32")
    size = (math.floor(12 * factor), math.floor(16 * factor))
    expected = interpolate(images, size, "bicubic").numpy()
    np.testing.assert_allclose(np.asarray(cubic_resize(images, factor)), expected, atol=1e-6)

import numpy as np
import pytest

from kerasr.layers import PixelShuffle, PixelUnshuffle, ResidualDenseBlock


def torch_pixel_unshuffle(x, r):
    """Reference: output channel c*r*r + i*r + j holds pixel (i, j) of each block of channel c."""
    n, h, w, c = x.shape
    out = np.zeros((n, h // r, w // r, c * r * r), x.dtype)
    for ch in range(c):
        for i in range(r):
            for j in range(r):
                out[..., ch * r * r + i * r + j] = x[:, i::r, j::r, ch]
    return out


@pytest.mark.parametrize("r", [2, 4])
def test_pixel_unshuffle_uses_pytorch_channel_order(r):
    x = np.random.default_rng(0).random((2, 8, 12, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(PixelUnshuffle(r)(x)), torch_pixel_unshuffle(x, r))


def test_pixel_shuffle_inverts_unshuffle():
    x = np.random.default_rng(1).random((1, 8, 8, 3)).astype("float32")
    y = PixelShuffle(2)(PixelUnshuffle(2)(x))
    np.testing.assert_array_equal(np.asarray(y), x)


def test_residual_dense_block_shapes_and_scaling():
    block = ResidualDenseBlock(filters=8, growth=4, num_layers=5, residual_scaling=0.0)
    x = np.random.default_rng(2).random((1, 6, 6, 8)).astype("float32")
    # With a zero residual scale the block is the identity, whatever its weights.
    np.testing.assert_allclose(np.asarray(block(x)), x)
    kernels = [conv.kernel.shape for conv in block.convs]
    assert kernels == [(3, 3, 8, 4), (3, 3, 12, 4), (3, 3, 16, 4), (3, 3, 20, 4), (3, 3, 24, 8)]

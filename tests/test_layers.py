import numpy as np
import pytest

from kerasr.layers import PixelShuffle, PixelUnshuffle, ResidualDenseBlock, TorchBatchNorm


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


def test_torch_batch_norm_updates_the_running_variance_unbiased():
    # torch.nn.BatchNorm2d: normalise with the biased batch variance, track the unbiased one,
    # momentum 0.1 (Keras: 0.9), eps 1e-5.
    x = np.random.default_rng(2).normal(3.0, 2.0, (2, 3, 3, 4)).astype("float32")
    bn = TorchBatchNorm()
    out = np.asarray(bn(x, training=True))
    mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.9 + 0.1 * var * 18 / 17, rtol=1e-5)
    inference = np.asarray(bn(x, training=False))
    expected = (x - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + 1e-5)
    np.testing.assert_allclose(inference, expected, rtol=1e-4, atol=1e-5)

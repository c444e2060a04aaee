"""VGG-style and U-Net discriminators: shapes, spectral norm updates, config, saving."""

import keras
import numpy as np
import pytest

from kerasr.models.discriminators import UNetDiscriminator, VGGDiscriminator
from kerasr.spectral import SpectralConv2D


def test_vgg_discriminator_any_patch_size():
    for size in (16, 24):
        d = VGGDiscriminator((8, 8, 16, 16), (12,))
        out = d(np.zeros((2, size, size, 3), np.float32), training=True)
        assert out.shape == (2, 1)
        assert d.downsampling == 4
    with pytest.raises(ValueError, match="multiple of 4"):
        VGGDiscriminator((8, 8, 16, 16)).build((None, 18, 18, 3))


def test_vgg_discriminator_is_basicsr_vggstyle():
    # BasicSR's VGGStyleDiscriminator: pairs of 3x3 / 4x4 stride-2 convolutions (so the
    # 512 -> 512 pair of the default still has a 3x3 first), a bias on the first only,
    # PyTorch's batch norm on all the others, a 4x4 map before the dense layers at 128 px.
    d = VGGDiscriminator()
    d.build((None, 128, 128, 3))
    assert [c.strides[0] for c in d.convs] == [1, 2] * 5
    assert [c.kernel_size[0] for c in d.convs] == [3, 4] * 5
    assert [c.use_bias for c in d.convs] == [True] + [False] * 9
    assert d.norms[0] is None
    assert all(n.epsilon == 1e-5 and n.momentum == 0.9 for n in d.norms[1:])
    assert d.dense[0].kernel.shape == (4 * 4 * 512, 100)
    assert d.downsampling == 32


def test_unet_discriminator_per_pixel_and_spectral_norm_updates_in_training():
    d = UNetDiscriminator(features=4)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    out = d(x, training=True)
    assert out.shape == (2, 16, 16, 1)
    sn = d.conv1
    assert isinstance(sn, SpectralConv2D) and sn.bias is None
    u0 = np.array(sn.u.numpy())
    kernel = np.array(sn.kernel.numpy())
    d(x, training=False)
    np.testing.assert_array_equal(u0, sn.u.numpy())  # inference leaves it alone
    d(x, training=True)
    assert not np.allclose(u0, sn.u.numpy())  # the power iteration runs in training
    # As PyTorch's spectral_norm: the variable stays unnormalised, the call divides by sigma.
    np.testing.assert_array_equal(kernel, sn.kernel.numpy())
    with pytest.raises(ValueError, match="multiples of 8"):
        UNetDiscriminator(4).build((None, 20, 20, 3))


def test_spectral_conv_divides_by_the_largest_singular_value():
    conv = SpectralConv2D(3, 3, padding="same", power_iterations=30)
    conv.build((None, 8, 8, 2))
    rng = np.random.default_rng(1)
    # A kernel with a clear gap between its singular values (3, 1, 0.5), so that 30 power
    # iterations converge from any starting vector (a random kernel may have a tiny gap).
    left, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    right, _ = np.linalg.qr(rng.normal(size=(18, 3)))
    matrix = (left * [3.0, 1.0, 0.5]) @ right.T  # (out, in * 3 * 3), PyTorch's layout
    conv.kernel.assign(matrix.reshape(3, 2, 3, 3).transpose(2, 3, 1, 0).astype(np.float32))
    x = rng.random((1, 8, 8, 2)).astype(np.float32)
    conv(x, training=True)  # converges u, v
    kernel = conv.kernel.numpy()
    sigma = np.linalg.svd(kernel.transpose(3, 2, 0, 1).reshape(3, -1), compute_uv=False)[0]
    assert sigma == pytest.approx(3.0, rel=1e-5)
    plain = keras.layers.Conv2D(3, 3, padding="same")
    plain.build((None, 8, 8, 2))
    plain.set_weights([kernel / sigma, conv.bias.numpy()])
    np.testing.assert_allclose(conv(x), plain(x), rtol=1e-4, atol=1e-5)

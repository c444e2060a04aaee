"""Discriminators for super-resolution GANs: ESRGAN's VGG-style classifier and
Real-ESRGAN's U-Net with spectral normalisation. Networks only; losses live in
`kerasr.losses`, training in `kerasr.training.esrgan`.
"""

from __future__ import annotations

import keras
from keras import ops

from kerasr.layers import TorchBatchNorm, leaky_relu
from kerasr.spectral import SpectralConv2D


@keras.saving.register_keras_serializable(package="kerasr")
class VGGDiscriminator(keras.Model):
    """ESRGAN's VGG-style discriminator: a convolutional classifier returning one logit.

    Each entry of `vgg_blk_ch` is a convolution; they come in pairs, a 3x3 stride-1
    convolution then a 4x4 stride-2 one that halves the resolution. All but the first are
    followed by batch normalisation (PyTorch's: `kerasr.layers.TorchBatchNorm`), all by
    LeakyReLU(0.2); only the first has a bias. The features are flattened (height, width,
    channel order; PyTorch flattens channel first, which weight conversion accounts for),
    so the dense layers are sized for the patch seen at build time: any patch size works,
    one size per network.

    Args:
        vgg_blk_ch: channels of the convolutions. The default is BasicSR's
            `VGGStyleDiscriminator` for 128 px patches (five pairs, base 64, at most 512:
            a 4x4x512 map for the dense layers); its 256 px variant adds a sixth 512 pair.
        fc_features: hidden dense layers (100).

    Example:

        d = VGGDiscriminator((32, 32, 64, 64), (16,))
        logits = d(images, training=True)  # (n, 1)

    Reference:
        [SRGAN](https://arxiv.org/abs/1609.04802) figure 4; [ESRGAN](https://arxiv.org/abs/1809.00219);
        BasicSR's `basicsr/archs/discriminator_arch.py`.
    """

    def __init__(
        self,
        vgg_blk_ch=(64, 64, 128, 128, 256, 256, 512, 512, 512, 512),
        fc_features=(100,),
        **kwargs,
    ):
        if not vgg_blk_ch or any(int(c) < 1 for c in vgg_blk_ch):
            raise ValueError(f"`vgg_blk_ch` must be positive. Received: vgg_blk_ch={vgg_blk_ch}")
        super().__init__(**kwargs)
        self.vgg_blk_ch = tuple(int(c) for c in vgg_blk_ch)
        self.fc_features = tuple(int(f) for f in fc_features)
        dtype = self.dtype_policy
        self.convs, self.norms = [], []
        for i, ch in enumerate(self.vgg_blk_ch):
            down = i % 2 == 1
            self.convs.append(
                keras.layers.Conv2D(
                    ch,
                    4 if down else 3,
                    strides=2 if down else 1,
                    padding="same",
                    use_bias=i == 0,
                    name=f"conv{i}",
                    dtype=dtype,
                )
            )
            # No normalisation on the first layer, as in SRGAN / ESRGAN.
            self.norms.append(None if i == 0 else TorchBatchNorm(name=f"bn{i}", dtype=dtype))
        self.flatten = keras.layers.Flatten(dtype=dtype)
        self.dense = [
            keras.layers.Dense(f, activation=leaky_relu, name=f"fc{i}", dtype=dtype)
            for i, f in enumerate(self.fc_features)
        ]
        self.out = keras.layers.Dense(1, name="logit", dtype=dtype)

    @property
    def downsampling(self) -> int:
        """The total stride: patch sides must be a multiple of it."""
        return 2 ** (len(self.vgg_blk_ch) // 2)

    def build(self, input_shape):
        n, h, w, c = input_shape
        if h is None or w is None:
            raise ValueError("VGGDiscriminator needs a fixed patch size to size its dense layers")
        f = self.downsampling
        if h % f or w % f:
            raise ValueError(
                f"patch size must be a multiple of {f} for vgg_blk_ch={list(self.vgg_blk_ch)}. "
                f"Received: {h}x{w}"
            )
        shape = (n, h, w, c)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            if norm is not None:
                norm.build(shape)
        units = shape[1] * shape[2] * shape[3]
        for dense in self.dense:
            dense.build((n, units))
            units = dense.units
        self.out.build((n, units))

    def call(self, images, training=False):
        x = images
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = conv(x)
            if norm is not None:
                x = norm(x, training=training)
            x = leaky_relu(x)
        x = self.flatten(x)
        for dense in self.dense:
            x = dense(x)
        return ops.cast(self.out(x), "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "vgg_blk_ch": list(self.vgg_blk_ch),
            "fc_features": list(self.fc_features),
        }


@keras.saving.register_keras_serializable(package="kerasr")
class UNetDiscriminator(keras.Model):
    """Real-ESRGAN's U-Net discriminator: one logit per pixel, spectral normalisation.

    Three stride-2 4x4 convolutions down (features x2 each), three bilinear x2 upsamplings
    (half-pixel centres, PyTorch's `align_corners=False`) with skip additions back up, two
    more convolutions and a 1-channel output. Per-pixel realness lets the generator learn
    where an image looks fake, and spectral normalisation keeps the bigger discriminator
    stable against second-order degradations.

    Args:
        features: channels of the first convolution (64).
        spectral_norm: spectrally normalise every convolution but the first and the last
            (`kerasr.spectral.SpectralConv2D`, PyTorch's `spectral_norm`).

    Example:

        d = UNetDiscriminator(features=16)
        logits = d(images, training=True)  # (n, h, w, 1)

    Reference:
        [Real-ESRGAN](https://arxiv.org/abs/2107.10833) section 3.3 and figure 6.
    """

    def __init__(self, features=64, spectral_norm=True, **kwargs):
        if int(features) < 1:
            raise ValueError(f"`features` must be >= 1. Received: features={features}")
        super().__init__(**kwargs)
        self.features = int(features)
        self.spectral_norm = bool(spectral_norm)
        f = self.features
        dtype = self.dtype_policy

        def conv(filters, kernel, stride, name, wrap=True):
            # As Real-ESRGAN: the normalised convolutions have no bias, the first and the
            # last are plain and keep theirs.
            sn = wrap and spectral_norm
            cls = SpectralConv2D if sn else keras.layers.Conv2D
            return cls(
                filters,
                kernel,
                strides=stride,
                padding="same",
                use_bias=not sn,
                name=name,
                dtype=dtype,
            )

        self.conv0 = conv(f, 3, 1, "conv0", wrap=False)
        self.conv1 = conv(f * 2, 4, 2, "conv1")
        self.conv2 = conv(f * 4, 4, 2, "conv2")
        self.conv3 = conv(f * 8, 4, 2, "conv3")
        self.conv4 = conv(f * 4, 3, 1, "conv4")
        self.conv5 = conv(f * 2, 3, 1, "conv5")
        self.conv6 = conv(f, 3, 1, "conv6")
        self.conv7 = conv(f, 3, 1, "conv7")
        self.conv8 = conv(f, 3, 1, "conv8")
        self.conv9 = conv(1, 3, 1, "conv9", wrap=False)

    def build(self, input_shape):
        n, h, w, c = input_shape
        for size in (h, w):
            if size is not None and size % 8:
                raise ValueError(
                    f"UNetDiscriminator needs sides that are multiples of 8. Received: {h}x{w}"
                )
        f = self.features
        self.conv0.build((n, h, w, c))
        self.conv1.build((n, None, None, f))
        self.conv2.build((n, None, None, f * 2))
        self.conv3.build((n, None, None, f * 4))
        self.conv4.build((n, None, None, f * 8))
        self.conv5.build((n, None, None, f * 4))
        self.conv6.build((n, None, None, f * 2))
        for layer in (self.conv7, self.conv8, self.conv9):
            layer.build((n, None, None, f))

    def call(self, images, training=False):
        x0 = leaky_relu(self.conv0(images))
        x1 = leaky_relu(self.conv1(x0, training=training))
        x2 = leaky_relu(self.conv2(x1, training=training))
        x3 = leaky_relu(self.conv3(x2, training=training))
        x = leaky_relu(self.conv4(_up(x3), training=training)) + x2
        x = leaky_relu(self.conv5(_up(x), training=training)) + x1
        x = leaky_relu(self.conv6(_up(x), training=training)) + x0
        x = leaky_relu(self.conv7(x, training=training))
        x = leaky_relu(self.conv8(x, training=training))
        return ops.cast(self.conv9(x), "float32")

    def get_config(self):
        return {
            **super().get_config(),
            "features": self.features,
            "spectral_norm": self.spectral_norm,
        }


def _up(x):
    shape = ops.shape(x)
    return ops.image.resize(x, (shape[1] * 2, shape[2] * 2), interpolation="bilinear")

"""A projected discriminator: small trainable heads on the features of a frozen ImageNet network.

A discriminator trained from scratch on a few hundred images memorises them within a few
thousand steps and its gradients stop teaching the generator anything. A projected
discriminator starts from features that already describe shapes, parts and textures
(EfficientNet-Lite0 trained on ImageNet, frozen) and learns only small heads on them; fixed
random 1x1 convolutions mix the channels of each scale, and each deeper scale is upsampled
and added to the next shallower one, so every head sees every scale and no head can lean on a
few dominant ImageNet channels. The generator is trained through the frozen network.

Reference:
    [Projected GANs Converge Faster](https://arxiv.org/abs/2111.01007), sections 3.1-3.2
    (multi-scale discriminators, cross-channel and cross-scale mixing).
"""

from __future__ import annotations

import keras
from keras import ops

from kerasr.models.efficientnet_lite import LITE0_FEATURE_BLOCKS, EfficientNetLite0
from kerasr.spectral import SpectralConv2D

# The Lite weights were trained on RGB in [0, 255] normalised as (x - 127) / 128.
_LITE_MEAN, _LITE_STD = 127.0, 128.0
# Each head halves its map down to this side, then one convolution gives a map of logits.
_HEAD_END = 8


def _fixed_random(filters: int, seed: int, name: str) -> keras.layers.Conv2D:
    """A 1x1 convolution with PyTorch's default initialisation, never trained."""
    layer = keras.layers.Conv2D(
        filters,
        1,
        kernel_initializer=keras.initializers.VarianceScaling(
            1.0 / 3.0, "fan_in", "uniform", seed=seed
        ),
        name=name,
    )
    layer.trainable = False
    return layer


@keras.saving.register_keras_serializable(package="kerasr")
class ProjectedDiscriminator(keras.Model):
    """Multi-scale heads on frozen, randomly projected EfficientNet-Lite0 features.

    Images in [-1, 1] are resized bilinearly to `feature_size` and described by Lite0 at
    strides 4, 8, 16 and 32 (the first `scales` of them). Cross-channel mixing: a fixed random
    1x1 convolution per scale to `projection_channels` times 1, 2, 4, 8. Cross-scale mixing,
    deepest first: each scale plus the bilinearly upsampled result of the deeper one, through
    a fixed random 1x1 convolution. Each scale then has its own head: spectrally normalised
    4x4 stride-2 convolutions with batch norm and LeakyReLU(0.2) down to 8x8, and one
    spectrally normalised convolution to a map of logits. The output is every head's logits,
    flattened and concatenated: `[n, k]`, to be averaged by a hinge loss.

    Call it with `training=True` while training: the heads' batch norm and power iterations
    update then; Lite0 and the projections never change.

    Args:
        backbone: an `EfficientNetLite0` with ImageNet weights
            (`kerasr.weights.efficientnet.load_efficientnet_lite0()`); it is frozen here.
        image_size: side of the images scored.
        feature_size: side the images are resized to before Lite0 (ImageNet features describe
            a 128 px image far better than a 64 px one; 224 is Lite0's own size).
        scales: how many Lite0 scales get a head, 1 to 4 (from stride 4 on).
        projection_channels: channels of the shallowest projection (doubling with depth).
        filters: channels of the heads' convolutions.
        seed: seeds the fixed random projections.

    Example:

        from kerasr.weights.efficientnet import load_efficientnet_lite0
        d = ProjectedDiscriminator(load_efficientnet_lite0(), image_size=64)
        logits = d(images, training=True)   # [n, k]

    Reference:
        [Projected GANs Converge Faster](https://arxiv.org/abs/2111.01007).
    """

    def __init__(
        self,
        backbone=None,
        image_size=64,
        feature_size=128,
        scales=4,
        projection_channels=64,
        filters=64,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 1 <= scales <= len(LITE0_FEATURE_BLOCKS):
            raise ValueError(f"`scales` must be 1 to 4. Received: scales={scales}")
        if feature_size < 32 or feature_size % 32:
            raise ValueError(
                f"`feature_size` must be a multiple of 32. Received: feature_size={feature_size}"
            )
        self.image_size = image_size
        self.feature_size = feature_size
        self.scales = scales
        self.projection_channels = projection_channels
        self.filters = filters
        self.seed = seed
        self.backbone = backbone if backbone is not None else EfficientNetLite0(include_top=False)
        self.backbone.trainable = False
        self.ends = LITE0_FEATURE_BLOCKS[:scales]
        c = projection_channels
        self.channel_mix = [
            _fixed_random(c * 2**i, seed + i, f"channel_mix{i}") for i in range(scales)
        ]
        # Deeper scales keep twice the channels of the one above; the shallowest keeps c.
        self.scale_mix = [
            _fixed_random(c * 2 ** max(i - 1, 0), seed + 10 + i, f"scale_mix{i}")
            for i in range(scales)
        ]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="bilinear", name="upsample")
        self.heads = [self._head(i) for i in range(scales)]

    def _head(self, i: int) -> keras.Sequential:
        side = self.feature_size // 2 ** (i + 2)
        layers = []
        while side > _HEAD_END:
            k = len(layers) // 3
            layers += [
                SpectralConv2D(self.filters, 4, strides=2, padding="same", name=f"head{i}_down{k}"),
                keras.layers.BatchNormalization(momentum=0.9, name=f"head{i}_bn{k}"),
                keras.layers.LeakyReLU(0.2, name=f"head{i}_lrelu{k}"),
            ]
            side //= 2
        layers.append(SpectralConv2D(1, min(4, side), use_bias=False, name=f"head{i}_logits"))
        return keras.Sequential(layers, name=f"head{i}")

    def build(self, input_shape):
        n = input_shape[0]
        side = self.feature_size
        if not self.backbone.built:  # a loaded backbone is built at its own size already
            self.backbone.build((n, side, side, 3))
        channels = [24, 40, 112, 320]
        for i in range(self.scales):
            s = side // 2 ** (i + 2)
            self.channel_mix[i].build((n, s, s, channels[i]))
            width = self.channel_mix[i].filters
            self.scale_mix[i].build((n, s, s, width))
            self.heads[i].build((n, s, s, self.scale_mix[i].filters))
        self.built = True

    def features(self, images):
        """The mixed feature maps the heads see, shallowest first (no gradient to Lite0's
        weights; gradients do flow to the images)."""
        x = ops.cast(images, "float32")
        if self.feature_size != x.shape[1]:
            size = (self.feature_size, self.feature_size)
            x = ops.image.resize(x, size, interpolation="bilinear", antialias=False)
        x = ((x + 1.0) * 127.5 - _LITE_MEAN) / _LITE_STD
        maps = self.backbone.block_features(x, self.ends, training=False)
        mixed = [mix(m) for mix, m in zip(self.channel_mix, maps, strict=True)]
        fused, carry = [None] * self.scales, None
        for i in reversed(range(self.scales)):
            y = mixed[i] if carry is None else mixed[i] + self.upsample(carry)
            carry = self.scale_mix[i](y)
            fused[i] = carry
        return fused

    def call(self, images, training=False):
        n = ops.shape(images)[0]
        logits = [
            ops.reshape(head(f, training=training), (n, -1))
            for head, f in zip(self.heads, self.features(images), strict=True)
        ]
        return ops.cast(ops.concatenate(logits, axis=1), "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "feature_size": self.feature_size,
                "scales": self.scales,
                "projection_channels": self.projection_channels,
                "filters": self.filters,
                "seed": self.seed,
            }
        )
        return config

"""EfficientNet-Lite0: the mobile variant of EfficientNet-B0, used here as an image feature network.

Lite drops what mobile accelerators handle badly: no squeeze-and-excitation, ReLU6 instead of
swish, and the stem (32 channels) and head (1280 channels) are not scaled with the width.
Layer names follow the PyTorch port's state dict (`conv_stem`, `blocks_3`, `fc`, ...) so that
`kerasr.weights.efficientnet` can convert its ImageNet weights by name.

Convolutions use TensorFlow's "same" padding (for stride 2, one more row and column after than
before), which is what the official TensorFlow model does and what the PyTorch port reproduces
with padding computed for its 224 px input.

Reference:
    [EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks](
    https://arxiv.org/abs/1905.11946); the Lite variants are described in the TensorFlow TPU
    repository's `models/official/efficientnet/lite` README.
"""

from __future__ import annotations

import keras
from keras import layers

# One row per stage: (repeats, kernel size, first stride, expansion, output channels), the
# `r1_k3_s11_e1_i32_o16 ...` block strings of the Lite builder at width and depth 1.0.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# The last block of each stride (4, 8, 16, 32): the stages that end there give 24, 40, 112
# and 320 channels.
LITE0_FEATURE_BLOCKS = (2, 4, 10, 15)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGE_SIZE = 224
# The TensorFlow original's batch norm epsilon (PyTorch's default would be 1e-5).
BN_EPSILON = 1e-3


def _bn(name):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


@keras.saving.register_keras_serializable(package="kerasr")
class MBConvBlock(layers.Layer):
    """Mobile inverted bottleneck without squeeze-excite: expand 1x1, depthwise, project 1x1.

    Args:
        input_channels: channels coming in.
        output_channels: channels going out.
        kernel_size: depthwise kernel side.
        strides: depthwise stride (1 or 2).
        expand_ratio: width of the expanded middle, as a multiple of `input_channels`.
    """

    def __init__(
        self, input_channels, output_channels, kernel_size, strides, expand_ratio, **kwargs
    ):
        super().__init__(**kwargs)
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.kernel_size = kernel_size
        self.strides = strides
        self.expand_ratio = expand_ratio
        middle = input_channels * expand_ratio
        self.expand_conv = None
        if expand_ratio != 1:
            self.expand_conv = layers.Conv2D(middle, 1, use_bias=False, name="expand_conv")
            self.bn0 = _bn("bn0")
        self.depthwise_conv = layers.DepthwiseConv2D(
            kernel_size, strides, padding="same", use_bias=False, name="depthwise_conv"
        )
        self.bn1 = _bn("bn1")
        self.project_conv = layers.Conv2D(output_channels, 1, use_bias=False, name="project_conv")
        self.bn2 = _bn("bn2")
        self.residual = strides == 1 and input_channels == output_channels

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.expand_conv is not None:
            self.expand_conv.build(shape)
            shape = (*shape[:-1], self.input_channels * self.expand_ratio)
            self.bn0.build(shape)
        self.depthwise_conv.build(shape)
        shape = self.depthwise_conv.compute_output_shape(shape)
        self.bn1.build(shape)
        self.project_conv.build(shape)
        self.bn2.build((*shape[:-1], self.output_channels))

    def call(self, inputs, training=False):
        x = inputs
        if self.expand_conv is not None:
            x = keras.ops.relu6(self.bn0(self.expand_conv(x), training=training))
        x = keras.ops.relu6(self.bn1(self.depthwise_conv(x), training=training))
        x = self.bn2(self.project_conv(x), training=training)
        # No activation after the projection (a linear bottleneck, as in MobileNetV2).
        return x + inputs if self.residual else x

    def compute_output_shape(self, input_shape):
        shape = self.depthwise_conv.compute_output_shape(
            (*input_shape[:-1], self.input_channels * self.expand_ratio)
        )
        return (*shape[:-1], self.output_channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_channels": self.input_channels,
                "output_channels": self.output_channels,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "expand_ratio": self.expand_ratio,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kerasr")
class EfficientNetLite0(keras.Model):
    """EfficientNet-Lite0 on normalised RGB images `(n, h, w, 3)`, channels last.

    Inputs are float images already normalised as the ImageNet weights expect (see
    `kerasr.weights.efficientnet.preprocess`); at 224 px the outputs match the PyTorch
    original.

    Args:
        include_top: end with the 1000-class ImageNet classifier (logits); otherwise `call`
            returns the 1280 pooled features.
        num_classes: classifier outputs when `include_top`.

    Example:

        model = EfficientNetLite0(include_top=False)
        features = model(keras.ops.zeros((2, 224, 224, 3)))  # (2, 1280)
    """

    def __init__(self, include_top=True, num_classes=1000, **kwargs):
        super().__init__(**kwargs)
        self.include_top = include_top
        self.num_classes = num_classes
        self.conv_stem = layers.Conv2D(
            STEM_CHANNELS, 3, 2, padding="same", use_bias=False, name="conv_stem"
        )
        self.bn0 = _bn("bn0")
        self.blocks = []
        channels = STEM_CHANNELS
        for repeats, kernel, stride, expand, out in LITE0_STAGES:
            for i in range(repeats):
                block = MBConvBlock(
                    channels,
                    out,
                    kernel,
                    stride if i == 0 else 1,
                    expand,
                    name=f"blocks_{len(self.blocks)}",
                )
                self.blocks.append(block)
                channels = out
        self.conv_head = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="conv_head")
        self.bn1 = _bn("bn1")
        self.fc = layers.Dense(num_classes, name="fc") if include_top else None

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.conv_stem.build(shape)
        shape = self.conv_stem.compute_output_shape(shape)
        self.bn0.build(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.conv_head.build(shape)
        self.bn1.build((*shape[:-1], HEAD_CHANNELS))
        if self.fc is not None:
            self.fc.build((shape[0], HEAD_CHANNELS))
        self.built = True

    def block_features(self, inputs, ends, training=False):
        """The feature maps after the blocks numbered in `ends` (ascending), from the stem on.

        With `LITE0_FEATURE_BLOCKS` these are the outputs at strides 4, 8, 16 and 32, which a
        projected discriminator reads.
        """
        x = keras.ops.relu6(self.bn0(self.conv_stem(inputs), training=training))
        maps = []
        for i, block in enumerate(self.blocks[: ends[-1] + 1]):
            x = block(x, training=training)
            if i in ends:
                maps.append(x)
        return maps

    def pooled_features(self, inputs, training=False):
        """The 1280 globally averaged head activations, before the classifier."""
        x = keras.ops.relu6(self.bn0(self.conv_stem(inputs), training=training))
        for block in self.blocks:
            x = block(x, training=training)
        x = keras.ops.relu6(self.bn1(self.conv_head(x), training=training))
        return keras.ops.mean(x, axis=(1, 2))

    def call(self, inputs, training=False):
        features = self.pooled_features(inputs, training=training)
        return self.fc(features) if self.fc is not None else features

    def get_config(self):
        config = super().get_config()
        config.update({"include_top": self.include_top, "num_classes": self.num_classes})
        return config

"""InceptionV3 as the Frechet Inception Distance uses it: the 2048 pooled features.

This is the network of the TensorFlow graph that FID's reference implementation loads
(`pool_3` of the 2015-12-05 Inception release), not Keras' or torchvision's InceptionV3: its
batch norms have an offset but no scale, and the last block pools its fourth tower with a
3x3 max pool where every other block uses an average pool. Layer names are the module paths
of the TorchScript conversion that `kerasr.weights.inception` reads (`conv_2`,
`mixed_4.tower_1.conv_3`, `mixed_10.tower_2_pool`, ...), so weights convert by name.

Padding: every convolution of this network either has none or pads `kernel // 2` on each
side at stride 1, which is what "same" does at stride 1 with an odd kernel, so PyTorch's
symmetric padding is reproduced exactly. The 3x3 average pools exclude the padding from
their count (PyTorch's `count_include_pad=False`), which is what TensorFlow's "same"
average pool does.

Reference:
    [Rethinking the Inception Architecture for Computer Vision](https://arxiv.org/abs/1512.00567);
    [GANs Trained by a Two Time-Scale Update Rule](https://arxiv.org/abs/1706.08500) (FID).
"""

from __future__ import annotations

import keras
from keras import layers

IMAGE_SIZE = 299
FEATURES = 2048
# The TensorFlow graph's batch norm epsilon.
BN_EPSILON = 1e-3


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


@keras.saving.register_keras_serializable(package="kerasr")
@keras.saving.register_keras_serializable(package="kerasr")
class ConvBN(layers.Layer):
    """Convolution without bias, batch norm with an offset and no scale (inference), ReLU.

    Args:
        filters: output channels.
        kernel_size: int or `(height, width)`.
        strides: the stride on both axes.
        padding: zeros added on each side, int or `(rows, columns)` as PyTorch's `padding`.
        epsilon: added to the variance.
    """

    def __init__(self, filters, kernel_size, strides=1, padding=0, epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = _pair(kernel_size)
        self.strides = strides
        self.padding = _pair(padding)
        self.epsilon = epsilon

    def build(self, input_shape):
        channels = input_shape[-1]
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels, self.filters), name="kernel"
        )
        self.beta = self.add_weight(shape=(self.filters,), initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(
            shape=(self.filters,), initializer="zeros", trainable=False, name="moving_mean"
        )
        self.moving_variance = self.add_weight(
            shape=(self.filters,), initializer="ones", trainable=False, name="moving_variance"
        )

    def _keras_padding(self) -> str | None:
        # "same" only where it pads exactly as PyTorch would; None: pad explicitly first.
        if self.padding == (0, 0):
            return "valid"
        half = tuple(k // 2 for k in self.kernel_size)
        odd = all(k % 2 for k in self.kernel_size)
        return "same" if self.strides == 1 and odd and self.padding == half else None

    def call(self, inputs):
        x = inputs
        padding = self._keras_padding()
        if padding is None:
            (rows, columns), padding = self.padding, "valid"
            x = keras.ops.pad(x, ((0, 0), (rows, rows), (columns, columns), (0, 0)))
        x = keras.ops.conv(x, self.kernel, strides=self.strides, padding=padding)
        scale = keras.ops.rsqrt(self.moving_variance + self.epsilon)
        return keras.ops.relu((x - self.moving_mean) * scale + self.beta)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        sizes = []
        for size, k, p in zip((h, w), self.kernel_size, self.padding, strict=True):
            sizes.append(None if size is None else (size + 2 * p - k) // self.strides + 1)
        return (n, *sizes, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "epsilon": self.epsilon,
            }
        )
        return config


def _conv(x, name, filters, kernel, strides=1, padding=0):
    return ConvBN(filters, kernel, strides, padding, name=name)(x)


def _average_pool(x, name):
    return layers.AveragePooling2D(3, 1, padding="same", name=name)(x)


def _max_pool(x, name, strides=2):
    # Stride 2: no padding. Stride 1 pads by 1, which cannot win a max: "same".
    padding = "valid" if strides == 2 else "same"
    return layers.MaxPooling2D(3, strides, padding=padding, name=name)(x)


def _concat(name, towers):
    return layers.Concatenate(name=name)(towers)


def _block_a(x, name, pool_features):
    # 35 x 35: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | average pool -> 1x1.
    a = _conv(x, f"{name}.conv", 64, 1)
    b = _conv(x, f"{name}.tower.conv", 48, 1)
    b = _conv(b, f"{name}.tower.conv_1", 64, 5, padding=2)
    c = _conv(x, f"{name}.tower_1.conv", 64, 1)
    c = _conv(c, f"{name}.tower_1.conv_1", 96, 3, padding=1)
    c = _conv(c, f"{name}.tower_1.conv_2", 96, 3, padding=1)
    d = _average_pool(x, f"{name}.tower_2.pool")
    d = _conv(d, f"{name}.tower_2.conv", pool_features, 1)
    return _concat(name, [a, b, c, d])


def _block_b(x, name):
    # 35 -> 17: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | max pool stride 2.
    a = _conv(x, f"{name}.conv", 384, 3, strides=2)
    b = _conv(x, f"{name}.tower.conv", 64, 1)
    b = _conv(b, f"{name}.tower.conv_1", 96, 3, padding=1)
    b = _conv(b, f"{name}.tower.conv_2", 96, 3, strides=2)
    c = _max_pool(x, f"{name}.pool")
    return _concat(name, [a, b, c])


def _block_c(x, name, width):
    # 17 x 17 with factorised 7x7 convolutions (1x7 then 7x1) of `width` channels inside.
    a = _conv(x, f"{name}.conv", 192, 1)
    b = _conv(x, f"{name}.tower.conv", width, 1)
    b = _conv(b, f"{name}.tower.conv_1", width, (1, 7), padding=(0, 3))
    b = _conv(b, f"{name}.tower.conv_2", 192, (7, 1), padding=(3, 0))
    c = _conv(x, f"{name}.tower_1.conv", width, 1)
    c = _conv(c, f"{name}.tower_1.conv_1", width, (7, 1), padding=(3, 0))
    c = _conv(c, f"{name}.tower_1.conv_2", width, (1, 7), padding=(0, 3))
    c = _conv(c, f"{name}.tower_1.conv_3", width, (7, 1), padding=(3, 0))
    c = _conv(c, f"{name}.tower_1.conv_4", 192, (1, 7), padding=(0, 3))
    d = _average_pool(x, f"{name}.tower_2.pool")
    d = _conv(d, f"{name}.tower_2.conv", 192, 1)
    return _concat(name, [a, b, c, d])


def _block_d(x, name):
    # 17 -> 8: 1x1 -> 3x3 stride 2 | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 | max pool stride 2.
    a = _conv(x, f"{name}.tower.conv", 192, 1)
    a = _conv(a, f"{name}.tower.conv_1", 320, 3, strides=2)
    b = _conv(x, f"{name}.tower_1.conv", 192, 1)
    b = _conv(b, f"{name}.tower_1.conv_1", 192, (1, 7), padding=(0, 3))
    b = _conv(b, f"{name}.tower_1.conv_2", 192, (7, 1), padding=(3, 0))
    b = _conv(b, f"{name}.tower_1.conv_3", 192, 3, strides=2)
    c = _max_pool(x, f"{name}.pool")
    return _concat(name, [a, b, c])


def _block_e(x, name, max_pool):
    # 8 x 8 with towers that fan out into a 1x3 and a 3x1 convolution side by side.
    a = _conv(x, f"{name}.conv", 320, 1)
    b = _conv(x, f"{name}.tower_conv", 384, 1)
    b1 = _conv(b, f"{name}.tower_mixed_conv", 384, (1, 3), padding=(0, 1))
    b2 = _conv(b, f"{name}.tower_mixed_conv_1", 384, (3, 1), padding=(1, 0))
    c = _conv(x, f"{name}.tower_1_conv", 448, 1)
    c = _conv(c, f"{name}.tower_1_conv_1", 384, 3, padding=1)
    c1 = _conv(c, f"{name}.tower_1_mixed_conv", 384, (1, 3), padding=(0, 1))
    c2 = _conv(c, f"{name}.tower_1_mixed_conv_1", 384, (3, 1), padding=(1, 0))
    # The FID graph's last block max-pools here (a quirk of the 2015 release); the other
    # blocks average.
    pool_name = f"{name}.tower_2_pool"
    d = _max_pool(x, pool_name, strides=1) if max_pool else _average_pool(x, pool_name)
    d = _conv(d, f"{name}.tower_2_conv", 192, 1)
    return _concat(name, [a, b1, b2, c1, c2, d])


def inception_v3_fid(name: str = "inception_v3_fid") -> keras.Model:
    """The FID InceptionV3 on 299 px RGB scaled to [-1, 1), channels last.

    Returns:
        A functional model `(n, 299, 299, 3) -> (n, 2048)`, untrained; weights from
        `kerasr.weights.inception.load_inception`, which also gives the input scaling.

    Example:

        model = inception_v3_fid()
        features = model(keras.ops.zeros((2, 299, 299, 3)))  # (2, 2048)
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = _conv(inputs, "conv", 32, 3, strides=2)
    x = _conv(x, "conv_1", 32, 3)
    x = _conv(x, "conv_2", 64, 3, padding=1)
    x = _max_pool(x, "pool0")
    x = _conv(x, "conv_3", 80, 1)
    x = _conv(x, "conv_4", 192, 3)
    x = _max_pool(x, "pool1")
    x = _block_a(x, "mixed", 32)
    x = _block_a(x, "mixed_1", 64)
    x = _block_a(x, "mixed_2", 64)
    x = _block_b(x, "mixed_3")
    for i, width in enumerate((128, 160, 160, 192), start=4):
        x = _block_c(x, f"mixed_{i}", width)
    x = _block_d(x, "mixed_8")
    x = _block_e(x, "mixed_9", max_pool=False)
    x = _block_e(x, "mixed_10", max_pool=True)
    # 8 x 8 at 299 px: one window, the mean over the map.
    x = layers.AveragePooling2D(8, name="pool2")(x)
    outputs = layers.Flatten(name="features")(x)
    return keras.Model(inputs, outputs, name=name)

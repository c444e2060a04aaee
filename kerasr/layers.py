"""Small reusable layers: pixel (un)shuffle, the residual dense block and RRDB.

Channel orderings follow PyTorch (`torch.nn.PixelShuffle` / `PixelUnshuffle`), so that
weights converted from the official BasicSR / Real-ESRGAN checkpoints drop in unchanged.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasr")
class PixelUnshuffle(keras.layers.Layer):
    """Folds each `factor x factor` block of pixels into channels, as `torch.pixel_unshuffle`.

    Output channel `c * factor**2 + i * factor + j` holds pixel `(i, j)` of each block of
    input channel `c`. (TensorFlow's `space_to_depth` orders the same values block-major.)

    Args:
        factor: the block size; height and width must be multiples of it.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        r = self.factor
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], x.shape[-1]
        x = ops.reshape(x, (-1, h // r, r, w // r, r, c))
        x = ops.transpose(x, (0, 1, 3, 5, 2, 4))
        return ops.reshape(x, (-1, h // r, w // r, c * r * r))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h // r, None if w is None else w // r, c * r * r)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="kerasr")
class PixelShuffle(keras.layers.Layer):
    """Spreads channels into `factor x factor` blocks of pixels, as `torch.pixel_shuffle`.

    The inverse of `PixelUnshuffle`; used by the sub-pixel upsampler.

    Args:
        factor: the block size; the channel count must be a multiple of `factor**2`.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        r = self.factor
        shape = ops.shape(x)
        h, w, c = shape[1], shape[2], x.shape[-1] // (r * r)
        x = ops.reshape(x, (-1, h, w, c, r, r))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        return ops.reshape(x, (-1, h * r, w * r, c))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def conv3x3(filters, name, activation=None, kernel_scale=1.0, dtype=None):
    """A 3x3 same-padded convolution with BasicSR's initialisation.

    BasicSR initialises RRDBNet with Kaiming-normal weights scaled by 0.1: the residual
    branches then start close to identity, which keeps a 23-block network trainable.
    """
    initializer = keras.initializers.VarianceScaling(
        scale=2.0 * kernel_scale**2, mode="fan_in", distribution="untruncated_normal"
    )
    return keras.layers.Conv2D(
        filters,
        3,
        padding="same",
        activation=activation,
        kernel_initializer=initializer,
        name=name,
        dtype=dtype,
    )


def _leaky_relu(x):
    # The negative slope of ESRGAN's LeakyReLU; a named function so that the layer config
    # serialises, and TensorFlow fuses conv + bias + leaky ReLU into one oneDNN kernel.
    return ops.leaky_relu(x, negative_slope=0.2)


@keras.saving.register_keras_serializable(package="kerasr")
class ResidualDenseBlock(keras.layers.Layer):
    """Residual dense block (RDB) of ESRGAN.

    `num_layers` convolutions, each seeing the concatenation of the block input and every
    earlier output (dense connections); the last one maps back to `filters` channels and is
    added to the input after multiplying by `residual_scaling`.

    Args:
        filters: channels of the block input and output (`rrdb_channels`).
        growth: channels each inner convolution adds (`growth_channels`).
        num_layers: convolutions in the block (`num_residual_blocks`, 5 in ESRGAN).
        residual_scaling: factor on the residual branch; ESRGAN's 0.2 keeps deep
            networks stable without batch normalisation.

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219), section 3.1.
    """

    def __init__(self, filters=64, growth=32, num_layers=5, residual_scaling=0.2, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.growth = growth
        self.num_layers = num_layers
        self.residual_scaling = residual_scaling
        self.convs = [
            conv3x3(
                growth,
                f"conv{i + 1}",
                activation=_leaky_relu,
                kernel_scale=0.1,
                dtype=self.dtype_policy,
            )
            for i in range(num_layers - 1)
        ]
        self.convs.append(
            conv3x3(filters, f"conv{num_layers}", kernel_scale=0.1, dtype=self.dtype_policy)
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        for conv in self.convs:
            conv.build((*input_shape[:-1], channels))
            channels += self.growth

    def call(self, x):
        features = [x]
        for conv in self.convs[:-1]:
            features.append(conv(ops.concatenate(features, axis=-1)))
        out = self.convs[-1](ops.concatenate(features, axis=-1))
        return out * self.residual_scaling + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "growth": self.growth,
            "num_layers": self.num_layers,
            "residual_scaling": self.residual_scaling,
        }


@keras.saving.register_keras_serializable(package="kerasr")
class RRDB(keras.layers.Layer):
    """Residual-in-residual dense block: `num_dense_blocks` RDBs inside a scaled skip.

    Args:
        filters: channels of the block input and output.
        growth: growth channels of each dense block.
        num_dense_blocks: RDBs in the block (3 in ESRGAN).
        num_layers: convolutions per RDB (5 in ESRGAN).
        residual_scaling: factor on the residual branch of the RRDB and of each RDB.

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219), figure 4.
    """

    def __init__(
        self,
        filters=64,
        growth=32,
        num_dense_blocks=3,
        num_layers=5,
        residual_scaling=0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = filters
        self.growth = growth
        self.num_dense_blocks = num_dense_blocks
        self.num_layers = num_layers
        self.residual_scaling = residual_scaling
        self.blocks = [
            ResidualDenseBlock(
                filters,
                growth,
                num_layers,
                residual_scaling,
                name=f"rdb{i + 1}",
                dtype=self.dtype_policy,
            )
            for i in range(num_dense_blocks)
        ]

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)

    def call(self, x):
        out = x
        for block in self.blocks:
            out = block(out)
        return out * self.residual_scaling + x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "growth": self.growth,
            "num_dense_blocks": self.num_dense_blocks,
            "num_layers": self.num_layers,
            "residual_scaling": self.residual_scaling,
        }


# --- DCGAN layers (issue 5) ---

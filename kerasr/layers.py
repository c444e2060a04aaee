"""Small reusable layers: pixel (un)shuffle, the residual dense block and RRDB, DiffAugment,
spectral and PyTorch-style batch normalisation.

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


def upsample_nearest(x, factor):
    """Nearest-neighbour upsampling by an integer factor, as a broadcast: one copy, no
    resize kernel (and exactly PyTorch's `interpolate(mode="nearest")` for integer factors)."""
    shape = ops.shape(x)
    n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
    r = factor
    x = ops.broadcast_to(ops.reshape(x, (n, h, 1, w, 1, c)), (n, h, r, w, r, c))
    return ops.reshape(x, (n, h * r, w * r, c))


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


def leaky_relu(x):
    """LeakyReLU with ESRGAN's negative slope 0.2 (its generator and both SR
    discriminators). A named function, so a layer config that holds it serialises, and
    TensorFlow fuses conv + bias + leaky ReLU into one oneDNN kernel."""
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
                activation=leaky_relu,
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


# --- DCGAN layers ---
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")


@keras.saving.register_keras_serializable(package="kerasr")
class DiffAugment(keras.layers.Layer):
    """Differentiable augmentation applied to both real and fake images before a GAN critic.

    With a few hundred training images the discriminator memorises them and its gradients stop
    helping the generator. DiffAugment shows the discriminator randomly augmented images, real
    and generated alike, through differentiable operations so that the generator is trained
    through the augmentation; the augmented images never leak into the generator's output.
    Each image gets its own random draw:

    - `"color"`: brightness shift in [-0.5, 0.5], saturation factor in [0, 2], contrast factor
      in [0.5, 1.5] (for images in [-1, 1]).
    - `"translation"`: an integer shift of up to `translation_ratio` of the size in each axis,
      filling with zeros (mid grey in [-1, 1]).
    - `"cutout"`: one square of `cutout_ratio` of the size, at a random place, set to zero.

    The layer augments only when called with `training=True`, so it is the identity at
    inference.

    Args:
        policy: a sequence of the names above (an empty sequence disables the layer).
        translation_ratio: largest shift, as a fraction of the image size (1/8 in the paper).
        cutout_ratio: side of the cut-out square, as a fraction of the image size (1/2).
        seed: an int seed for the layer's `keras.random.SeedGenerator`.

    Reference:
        [Differentiable Augmentation for Data-Efficient GAN Training](
        https://arxiv.org/abs/2006.10738), section 3.
    """

    def __init__(
        self,
        policy=DIFFAUGMENT_POLICIES,
        translation_ratio=0.125,
        cutout_ratio=0.5,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        policy = tuple(policy)
        unknown = [p for p in policy if p not in DIFFAUGMENT_POLICIES]
        if unknown:
            raise ValueError(
                f"`policy` items must be among {DIFFAUGMENT_POLICIES}. Received: policy={policy}"
            )
        if not 0.0 <= translation_ratio < 0.5 or not 0.0 <= cutout_ratio <= 1.0:
            raise ValueError(
                "`translation_ratio` must be in [0, 0.5) and `cutout_ratio` in [0, 1]. Received: "
                f"translation_ratio={translation_ratio}, cutout_ratio={cutout_ratio}"
            )
        self.policy = policy
        self.translation_ratio = translation_ratio
        self.cutout_ratio = cutout_ratio
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or not self.policy:
            return images
        x = images
        for name in self.policy:
            x = getattr(self, f"_{name}")(x)
        return x

    def _uniform(self, x, shape_tail, minval=0.0, maxval=1.0):
        shape = (ops.shape(x)[0], *shape_tail)
        return keras.random.uniform(shape, minval, maxval, dtype=x.dtype, seed=self.seed_generator)

    def _color(self, x):
        x = x + (self._uniform(x, (1, 1, 1)) - 0.5)
        mean = ops.mean(x, axis=-1, keepdims=True)
        x = (x - mean) * self._uniform(x, (1, 1, 1), 0.0, 2.0) + mean
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) * self._uniform(x, (1, 1, 1), 0.5, 1.5) + mean

    def _shift_matrix(self, n, size, max_shift, dtype):
        # A one-hot [n, size, size] matrix per image: row i picks source pixel i - shift, or
        # nothing when that falls outside the image. A matmul translates every image by its
        # own amount, stays differentiable and compiles under XLA (no gather, no padding).
        shift = keras.random.randint((n, 1, 1), -max_shift, max_shift + 1, seed=self.seed_generator)
        rows = ops.arange(size)[None, :, None]
        cols = ops.arange(size)[None, None, :]
        return ops.cast(ops.equal(cols, rows - shift), dtype)

    def _translation(self, x):
        n = ops.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        rows = self._shift_matrix(n, height, int(height * self.translation_ratio + 0.5), x.dtype)
        cols = self._shift_matrix(n, width, int(width * self.translation_ratio + 0.5), x.dtype)
        x = ops.einsum("nij,njwc->niwc", rows, x)
        return ops.einsum("nwv,nhvc->nhwc", cols, x)

    def _cutout(self, x):
        n = ops.shape(x)[0]
        height, width = x.shape[1], x.shape[2]
        cut_h = int(height * self.cutout_ratio + 0.5)
        cut_w = int(width * self.cutout_ratio + 0.5)
        # The square's top-left corner may hang over the border, as in the paper.
        top = keras.random.randint(
            (n, 1, 1, 1), -(cut_h // 2), height - cut_h // 2 + 1, seed=self.seed_generator
        )
        left = keras.random.randint(
            (n, 1, 1, 1), -(cut_w // 2), width - cut_w // 2 + 1, seed=self.seed_generator
        )
        rows = ops.arange(height)[None, :, None, None]
        cols = ops.arange(width)[None, None, :, None]
        inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
        return x * ops.cast(ops.logical_not(inside), x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "policy": list(self.policy),
            "translation_ratio": self.translation_ratio,
            "cutout_ratio": self.cutout_ratio,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="kerasr")
class TorchBatchNorm(keras.layers.BatchNormalization):
    """`BatchNormalization` as `torch.nn.BatchNorm2d` computes it, the norm of the reference
    discriminators (BasicSR's VGG-style one).

    Two differences from Keras' defaults: PyTorch's epsilon 1e-5 and momentum 0.1 (Keras
    counts momentum the other way: 0.9 here; Keras' defaults are 1e-3 and 0.99), and the
    moving variance is updated with the unbiased batch variance (`n / (n - 1)` times the one
    that normalises the batch), as PyTorch does. On a discriminator's last 4x4 features with a
    batch of 16, Keras' biased estimate is 1/256 low at every update.

    Args:
        momentum, epsilon: Keras' meaning (`torch momentum = 1 - momentum`).
        **kwargs: other `keras.layers.BatchNormalization` arguments.

    Reference:
        `torch.nn.BatchNorm2d` (https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html).
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        axis = self.axis % len(x.shape)
        reduced = [i for i in range(len(x.shape)) if i != axis]
        mean, variance = ops.moments(x, axes=reduced, synchronized=self.synchronized)
        dims = ops.shape(x)
        n = 1
        for i in reduced:
            n = n * dims[i]
        n = ops.cast(n, x.dtype)
        m = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * m + mean * (1.0 - m))
        unbiased = variance * n / ops.maximum(n - 1.0, 1.0)
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * m + unbiased * (1.0 - m)
        )
        # (x - mean) * rsqrt(var + eps), as PyTorch: TensorFlow's batch_normalization folds
        # the mean into the offset (x * inv - mean * inv), which loses float32 digits to
        # cancellation when the mean is large against the spread.
        shape = [1] * len(x.shape)
        shape[self.axis] = x.shape[self.axis]
        inv = ops.rsqrt(ops.reshape(variance, shape) + self.epsilon)
        if self.scale:
            inv = inv * ops.reshape(ops.cast(self.gamma, x.dtype), shape)
        outputs = (x - ops.reshape(mean, shape)) * inv
        if self.center:
            outputs = outputs + ops.reshape(ops.cast(self.beta, x.dtype), shape)
        return ops.cast(outputs, self.compute_dtype)

"""An upscaler followed by a fixed bicubic resize: the x2 / x3 variants of an x4 network.

Real-ESRGAN's ncnn releases of realesr-animevideov3 ship x2 and x3 models whose weights are
those of the x4 network: the graph only adds a final bicubic resize by 0.5 or 0.75. The
resize is PyTorch's `interpolate(mode="bicubic", align_corners=False)` (and ncnn's `Interp`
type 3): the Keys cubic with a = -0.75, half-pixel centres, edge pixels repeated, no
antialiasing filter. TensorFlow's `resize` uses a = -0.5 (and antialiases when asked), so it
is written out here.
"""

import keras
from keras import ops

from kerasr.resize import PYTORCH_A, cubic_taps


def _resize_axis(x, factor, axis):
    length = ops.shape(x)[axis]
    size = ops.cast(ops.floor(ops.cast(length, "float32") * factor), "int32")
    # Source coordinate of each output pixel centre, as ncnn computes it: scale = in / out.
    step = ops.cast(length, "float32") / ops.cast(size, "float32")
    src = (ops.cast(ops.arange(size), "float32") + 0.5) * step - 0.5
    first = ops.floor(src)
    weights = cubic_taps(src - first, PYTORCH_A)
    first = ops.cast(first, "int32")
    shape = [1, 1, 1, 1]
    shape[axis] = -1
    out = 0.0
    for k, weight in enumerate(weights):
        index = ops.clip(first + (k - 1), 0, length - 1)
        out = out + ops.take(x, index, axis=axis) * ops.reshape(weight, shape)
    return out


def cubic_resize(x, factor):
    """Resizes `(n, h, w, c)` images by `factor` (output `floor(h * factor)`) with PyTorch's
    bicubic interpolation, without antialiasing."""
    x = ops.cast(x, "float32")
    return _resize_axis(_resize_axis(x, factor, 1), factor, 2)


@keras.saving.register_keras_serializable(package="kerasr")
class Rescaled(keras.Model):
    """`network` followed by `cubic_resize(..., factor)`; its `scale` is the product.

    Args:
        network: an upscaler with a `scale` attribute (an `RRDBNet`, a `SRVGGNetCompact`).
        factor: the resize factor; `network.scale * factor` must be a whole number.

    Example:

        x2 = Rescaled(SRVGGNetCompact(upscale=4), 0.5)  # realesr-animevideov3 UP2X
    """

    def __init__(self, network, factor, **kwargs):
        scale = network.scale * factor
        if not (factor > 0 and scale >= 1 and float(scale).is_integer()):
            raise ValueError(
                "`network.scale * factor` must be a whole number >= 1. "
                f"Received: scale={network.scale}, factor={factor}"
            )
        super().__init__(**kwargs)
        self.network = network
        self.factor = float(factor)
        self.scale = int(scale)
        self.in_channels = getattr(network, "in_channels", 3)

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)

    def call(self, x):
        return cubic_resize(self.network(x), self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        c = self.network.compute_output_shape(input_shape)[-1]
        s = self.network.scale * self.factor
        return (n, None if h is None else int(h * s), None if w is None else int(w * s), c)

    def get_config(self):
        return {
            **super().get_config(),
            "network": keras.saving.serialize_keras_object(self.network),
            "factor": self.factor,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)

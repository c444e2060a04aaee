"""Spectral normalisation as PyTorch computes it (`torch.nn.utils.spectral_norm`), the one
spectral norm of every kerasr discriminator: the Real-ESRGAN U-Net (whose weights and
power-iteration state carry over from BasicSR / Real-ESRGAN unchanged), the DCGAN's and the
projected discriminator's heads.
"""

import keras
from keras import ops


def _unit_normal(shape, dtype=None):
    x = keras.random.normal(shape, dtype="float32")
    return ops.cast(x / ops.sqrt(ops.sum(ops.square(x))), dtype or "float32")


def _normalize(x, eps):
    return x / ops.maximum(ops.sqrt(ops.sum(ops.square(x))), eps)


def _sigma(layer, w, training):
    """The largest singular value estimate `u . (W v)` of the `[out, in]` matrix `w`, after
    the layer's power-iteration steps when training (which store the new `u`, `v`)."""
    u, v = ops.cast(layer.u, "float32"), ops.cast(layer.v, "float32")
    if training:
        for _ in range(layer.power_iterations):
            v = _normalize(ops.matmul(u, w), layer.eps)
            u = _normalize(ops.matmul(w, v), layer.eps)
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        layer.u.assign(u)
        layer.v.assign(v)
    return ops.sum(u * ops.matmul(w, v))


class _PowerIteration:
    """What a spectral-normalised Keras layer adds to it: the power-iteration settings, and
    saving `u` and `v` with the weights (Keras' `Conv2D` and `Dense` save only their kernel
    and bias)."""

    def __init__(self, *args, power_iterations=1, eps=1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = int(power_iterations)
        self.eps = float(eps)

    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations, "eps": self.eps}


@keras.saving.register_keras_serializable(package="kerasr")
class SpectralConv2D(_PowerIteration, keras.layers.Conv2D):
    """A `Conv2D` whose kernel is divided by its largest singular value, as PyTorch's
    `torch.nn.utils.spectral_norm` does it (BasicSR's and Real-ESRGAN's U-Net discriminator).

    The trainable `kernel` is the unnormalised weight (PyTorch's `weight_orig`); each call
    convolves with `kernel / sigma`, the gradient flowing through `sigma = u . (W v)`, `W` the
    kernel as an `[out, in * kh * kw]` matrix (PyTorch's layout: `u`, `v` convert unchanged).
    A training call first runs `power_iterations` steps of `v = W^T u / |W^T u|, u = W v /
    |W v|` (norms clamped to `eps`) and stores `u`, `v`. (`keras.layers.SpectralNormalization`
    writes `W / sigma` into the kernel instead: Adam steps on it and `sigma` gets no gradient.)

    Args:
        power_iterations: power-iteration steps per training call (1, as PyTorch).
        eps: the norm clamp (1e-12, as PyTorch).
        Others: as `keras.layers.Conv2D`.

    Reference:
        [Spectral normalization for GANs](https://arxiv.org/abs/1802.05957).
    """

    def build(self, input_shape):
        super().build(input_shape)
        kh, kw, cin, cout = self.kernel.shape
        # The same on every replica (they depend on the weights only), hence first replica.
        for name, shape in (("u", (cout,)), ("v", (kh * kw * cin,))):
            weight = self.add_weight(shape, _unit_normal, trainable=False, name=name,
                                     aggregation="only_first_replica")  # fmt: skip
            setattr(self, name, weight)

    def call(self, inputs, training=False):
        kernel = ops.cast(self.kernel, "float32")
        w = ops.reshape(ops.transpose(kernel, (3, 2, 0, 1)), (self.filters, -1))
        sigma = _sigma(self, w, training)
        kernel = ops.cast(kernel / sigma, self.compute_dtype)
        outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(self.bias, (1, 1, 1, self.filters)))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package="kerasr")
class SpectralDense(_PowerIteration, keras.layers.Dense):
    """A `Dense` layer with PyTorch's spectral normalisation, as `SpectralConv2D`: the kernel
    `[in, out]` is read as PyTorch's `[out, in]` matrix; `u` has `out` entries, `v` `in`.

    Args:
        power_iterations: power-iteration steps per training call (1, as PyTorch).
        eps: the norm clamp (1e-12, as PyTorch).
        Others: as `keras.layers.Dense`.
    """

    def build(self, input_shape):
        super().build(input_shape)
        cin, cout = self.kernel.shape
        for name, shape in (("u", (cout,)), ("v", (cin,))):
            weight = self.add_weight(shape, _unit_normal, trainable=False, name=name,
                                     aggregation="only_first_replica")  # fmt: skip
            setattr(self, name, weight)

    def call(self, inputs, training=False):
        kernel = ops.cast(self.kernel, "float32")
        sigma = _sigma(self, ops.transpose(kernel), training)
        outputs = ops.matmul(inputs, ops.cast(kernel / sigma, self.compute_dtype))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

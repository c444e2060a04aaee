"""Adam as PyTorch applies it, the optimizer of the reference trainers (BasicSR, Real-ESRGAN).

Keras' Adam folds the bias corrections into the step size and adds epsilon to the raw
`sqrt(v)`; PyTorch divides `sqrt(v)` by `sqrt(1 - beta_2^t)` first and adds epsilon after,
and its default epsilon is 1e-8 (Keras: 1e-7). Early in training, when `1 - beta_2^t` is
small, Keras' epsilon is in effect up to `1 / sqrt(1 - beta_2^t)` times larger (100x at
the first step with beta_2 = 0.99 and the default epsilons), which changes the first updates of
parameters with small gradients by a few percent.

Reference: `torch.optim.Adam` (https://pytorch.org/docs/stable/generated/torch.optim.Adam.html);
Kingma & Ba, Adam, https://arxiv.org/abs/1412.6980 (algorithm 1).
"""

from __future__ import annotations

import keras
from keras import ops

from kerasr.keras_compat import adam_moments


@keras.saving.register_keras_serializable(package="kerasr")
class TorchAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` with PyTorch's update rule and default epsilon:

        m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2
        w -= lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)

    The same variables as Keras' Adam (checkpoints are interchangeable); no AMSGrad.

    Args:
        learning_rate, beta_1, beta_2: as `keras.optimizers.Adam`.
        epsilon: added to the bias-corrected `sqrt(v)` (PyTorch's default 1e-8).
        **kwargs: other `keras.optimizers.Optimizer` arguments.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("TorchAdam does not implement AMSGrad. Received: amsgrad=True")
        kwargs.pop("amsgrad", None)
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad=False, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), t)
        correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), t)
        m, v = adam_moments(self, variable)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign(
            v, ops.add(ops.multiply(v, self.beta_2), (1 - self.beta_2) * ops.square(gradient))
        )
        denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(correction_2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction_1), denom))

    def get_config(self):
        config = super().get_config()
        config.pop("amsgrad", None)
        return config

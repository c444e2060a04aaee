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


@keras.saving.register_keras_serializable(package="kerasr")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate * gamma ** (number of milestones passed) * scale`.

    PyTorch's `StepLR` / `MultiStepLR` as used by ESRGAN (halve every 200k steps in
    pretraining; at 50k, 100k, 200k, 300k in the GAN stage). `scale` is a variable that
    memory support lowers after a blow-up; it is checkpointed with the model, and the step
    is the optimizer's own counter, so a resumed run follows the same schedule.

    Args:
        learning_rate: the initial rate.
        milestones: steps at which the rate is multiplied by `gamma`.
        gamma: the factor (0.5).
        scale: a scalar float variable (or None for 1).
    """

    def __init__(self, learning_rate, milestones=(), gamma=0.5, scale=None):
        self.learning_rate = float(learning_rate)
        self.milestones = tuple(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.scale = scale

    def __call__(self, step):
        lr = ops.convert_to_tensor(self.learning_rate, "float32")
        if self.milestones:
            passed = ops.sum(
                ops.cast(
                    ops.greater_equal(
                        ops.cast(step, "int64"), ops.convert_to_tensor(self.milestones, "int64")
                    ),
                    "float32",
                )
            )
            lr = lr * ops.power(ops.convert_to_tensor(self.gamma, "float32"), passed)
        if self.scale is not None:
            lr = lr * ops.cast(self.scale, "float32")
        return lr

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }


def make_optimizer(optim, scale, loss_scaling: bool = False):
    """Adam (PyTorch's update rule, as the reference trainers use) with a `StepDecay`
    schedule from an `SROptimConfig`; wrapped in a
    `LossScaleOptimizer` for float16 (its gradients would underflow otherwise)."""
    schedule = StepDecay(optim.learning_rate, optim.milestones, optim.gamma, scale)
    optimizer = TorchAdam(schedule, optim.beta_1, optim.beta_2, optim.epsilon)
    if loss_scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_learning_rate(optimizer) -> float:
    """The rate the optimizer applies at its next step, as a Python float."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(ops.convert_to_numpy(lr))

"""PSNR-oriented pretraining (the first stage of ESRGAN) and the pieces both SR stages share:
the step-decay schedule, the generator EMA and the distribution-aware loss reduction.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from kerasr.errors import KerasrError
from kerasr.keras_compat import merge_call
from kerasr.losses import pixel_loss
from kerasr.metrics import PSNR, SSIM
from kerasr.training.distribute import MultiWorkerFit
from kerasr.training.optimizers import TorchAdam


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


def replica_mean(per_sample):
    """The mean of a per-sample loss, divided by the number of replicas.

    Keras' TensorFlow optimizers sum gradients over replicas, so each replica contributes
    its local mean over `num_replicas`: the sum is then the mean over the global batch
    (`tf.nn.compute_average_loss` with equal per-replica batches). Without a strategy this
    is the plain mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return ops.mean(per_sample) / replicas


# The generator EMA is a network of its own, updated after every step, rather than Keras'
# optimizer EMA (`use_ema=True`) with the `SwapEMAWeights` callback: that one swaps the EMA
# into the generator's own variables in place around validation, so a checkpoint, a
# memory-support rollback or a Ctrl-C landing while they are swapped would store or restore
# exchanged weights; sample grids, evaluation and export would need the same swap; run folders
# already hold the EMA as `ema_weights` in their checkpoints; and the optimizer EMA goes
# through the same private merge call (`kerasr.keras_compat.merge_call`) anyway.
def clone_network(model):
    """A built copy of a subclassed network with the same weights (for the EMA)."""
    copy = model.__class__.from_config(model.get_config())
    copy.build((None, None, None, getattr(model, "in_channels", 3)))
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def update_ema(ema_weights, weights, decay: float):
    """`ema = decay * ema + (1 - decay) * w` for each pair, distribution-safe.

    The update runs once in cross-replica context (through a merge call when called from a
    replica, as Keras' own optimizer EMA does), since the weights are identical on every
    replica after the optimizer step.
    """
    pairs = list(zip(ema_weights, weights, strict=True))

    def apply(_strategy=None):
        for e, w in pairs:
            e.assign(decay * e.value + (1.0 - decay) * ops.cast(w.value, e.dtype))

    merge_call(apply, tf.distribute.get_strategy())


@keras.saving.register_keras_serializable(package="kerasr")
class LastValue(keras.metrics.Metric):
    """The value of the last update (not a mean): memory support watches it per step."""

    def __init__(self, name="last", **kwargs):
        super().__init__(name=name, **kwargs)
        self.value = self.add_variable((), initializer="zeros", name="value", aggregation="mean")

    def update_state(self, value):
        self.value.assign(ops.cast(value, self.value.dtype))

    def result(self):
        return self.value.value

    def reset_state(self):
        self.value.assign(0.0)


class SRHarness(MultiWorkerFit, keras.Model):
    """What the PSNR and GAN stages share: generator, optional EMA, step counter,
    learning-rate scale, validation metrics, the on-device degradation hook and the
    unsharp-masked GT (`usm`: `(weight, radius, threshold)` of Real-ESRGAN's `USMSharp`, or
    None when the recipe never sharpens)."""

    def __init__(self, generator, ema_decay=0.0, degradation=None, seed=0, usm=None, **kwargs):
        super().__init__(**kwargs)
        self.usm = None if usm is None else tuple(usm)
        self.generator = generator
        self.scale = generator.scale
        self.ema_decay = float(ema_decay)
        self.ema_generator = clone_network(generator) if ema_decay > 0 else None
        self.degradation = degradation
        self.seed = int(seed)
        # One counter per harness: the optimizers' own counters may differ once memory
        # support or loss scaling skips an update; this one counts steps taken.
        self.step = keras.Variable(
            0, dtype="int64", trainable=False, name="step", aggregation="only_first_replica"
        )
        self.lr_scale = keras.Variable(
            1.0, dtype="float32", trainable=False, name="lr_scale",
            aggregation="only_first_replica",
        )  # fmt: skip
        self.val_psnr = PSNR(border=self.scale, name="psnr")
        self.val_ssim = SSIM(border=self.scale, name="ssim")
        self.val_pixel = keras.metrics.Mean(name="l1")

    def build(self, input_shape=None):
        # The networks arrive built; the harness's own state (step, lr scale, metrics) is
        # created in __init__.
        self.built = True

    @property
    def sr_network(self):
        """The network validated and exported: the EMA when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    def pair(self, data):
        """(lr, hr) from a batch; an HR-only batch is degraded here (on-device degradation)."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is not None:
            return x, y
        if self.degradation is None:
            raise KerasrError("the training data yields HR images only but no degradation is set")
        from kerasr.data import degrade_batch

        # Under a strategy each replica degrades its own share of the global batch: with the
        # replica in the seed, they do not all draw the same kernels and noise.
        replica = tf.distribute.get_replica_context()
        replica_id = 0 if replica is None else replica.replica_id_in_sync_group
        base = ops.convert_to_tensor(self.seed, "int64") + 1_000_003 * ops.cast(replica_id, "int64")
        seed = ops.stack([base, self.step.value])
        return degrade_batch(x, seed, self.degradation, self.scale)

    def sharpened(self, hr, wanted: bool):
        """The GT a loss compares against: Real-ESRGAN's unsharp-masked GT when `wanted` and
        the recipe sharpens (made here from the final GT batch, as Real-ESRGAN's `feed_data`
        does after its crop and pool), else `hr` itself."""
        if not wanted or self.usm is None:
            return hr
        from kerasr.data import usm_sharpen

        weight, radius, threshold = self.usm
        return usm_sharpen(hr, weight, radius, threshold)

    def after_step(self):
        self.step.assign_add(1)
        if self.ema_generator is not None:
            update_ema(self.ema_generator.weights, self.generator.weights, self.ema_decay)

    def test_step(self, data):
        lr, hr = keras.utils.unpack_x_y_sample_weight(data)[:2]
        sr = self.sr_network(lr, training=False)
        self.val_psnr.update_state(hr, sr)
        self.val_ssim.update_state(hr, sr)
        self.val_pixel.update_state(pixel_loss(hr, sr, "l1"))
        return {m.name: m.result() for m in (self.val_psnr, self.val_ssim, self.val_pixel)}


class SRModel(SRHarness):
    """PSNR-oriented training of a super-resolution generator (ESRGAN's first stage).

    One step: SR = G(LR), loss = pixel(HR, SR) (l1, l2 or charbonnier), one Adam update,
    then the EMA. Validation (`test_step`) scores the EMA generator (when enabled) with PSNR
    and SSIM on the Y channel with `scale` border pixels cropped, as the papers report.

    Args:
        generator: an `RRDBNet` (anything with a `scale` attribute mapping LR to SR).
        pixel: `"l1"`, `"l2"` or `"charbonnier"`.
        ema_decay: decay of the generator EMA (0: off).
        degradation: a `DegradationConfig` for HR-only batches (on-device degradation).
        seed: base seed of the on-device degradation.
        usm: `(weight, radius, threshold)` of the GT sharpening, or None (never sharpen).
        l1_gt_usm: the pixel loss compares against the sharpened GT (Real-ESRNet's `gt_usm`).

    Example:

        model = SRModel(RRDBNet(num_basic_blocks=6, rrdb_channels=32), pixel="l1")
        model.compile(make_optimizer(SROptimConfig(), model.lr_scale), jit_compile=True)
        model.fit(make_sr_dataset(data_config), steps_per_epoch=1000, epochs=10)

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219) section 4.1 (PSNR-oriented pretraining).
    """

    def __init__(
        self,
        generator,
        pixel="l1",
        ema_decay=0.0,
        degradation=None,
        seed=0,
        usm=None,
        l1_gt_usm=True,
        **kwargs,
    ):
        super().__init__(generator, ema_decay, degradation, seed, usm, **kwargs)
        self.pixel = pixel
        self.l1_gt_usm = bool(l1_gt_usm)
        self.loss_tracker = keras.metrics.Mean(name="pixel_loss")
        self.last_loss = LastValue(name="last_g_loss")

    @property
    def metrics(self):
        return [self.loss_tracker, self.last_loss, self.val_psnr, self.val_ssim, self.val_pixel]

    def compile(self, g_optimizer, **kwargs):
        """Sets the generator optimizer; `**kwargs` (e.g. `jit_compile`) go to `Model.compile`."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        # Built now so that a checkpoint restores its moments before the first step.
        g_optimizer.build(self.generator.trainable_variables)

    def train_step(self, data):
        lr, hr = self.pair(data)
        target = self.sharpened(hr, self.l1_gt_usm)
        g_vars = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            per_sample = pixel_loss(target, sr, self.pixel)
            loss = replica_mean(per_sample)
            scaled = self.g_optimizer.scale_loss(loss)
        self.g_optimizer.apply(tape.gradient(scaled, g_vars), g_vars)
        self.after_step()
        mean_loss = ops.mean(per_sample)
        self.loss_tracker.update_state(mean_loss)
        self.last_loss.update_state(mean_loss)
        return {m.name: m.result() for m in (self.loss_tracker, self.last_loss)}

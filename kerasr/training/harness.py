"""The base every training harness shares, and its super-resolution specialisation.

`Harness` holds what the SR pretraining (`kerasr.training.pretrain.SRModel`), the ESRGAN /
Real-ESRGAN GAN stage (`kerasr.training.esrgan.ESRGAN`) and the Pokemon GAN
(`kerasr.training.dcgan.DCGAN`) do alike: the generator, the step counter, the learning-rate
scale that memory support lowers, the generator EMA (a network of its own, cloned at the
start and updated after every step) and `inference_network`, the one network a run samples,
validates, checkpoints as its result and exports: the EMA when there is one.
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


class Harness(keras.Model):
    """A training harness around `self.generator`: step counter, learning-rate scale, EMA.

    Subclasses call `setup_harness` in their `__init__` (after `keras.Model.__init__`) and
    `after_step` at the end of every `train_step`. Only the networks are meant to be saved;
    the harness is not (save `.inference_network`).
    """

    def setup_harness(self, generator, ema_decay=0.0, ema_warmup=False, lr_scale=True) -> None:
        """Sets the generator and creates the harness's own state.

        Args:
            generator: the network trained.
            ema_decay: decay of the generator EMA `ema_generator` (0: none).
            ema_warmup: ramp the decay up as `min(ema_decay, (1 + step) / (10 + step))`, as
                TensorFlow's `ExponentialMovingAverage` with `num_updates`: a run of a few
                hundred steps would otherwise sample from an average of its random start.
            lr_scale: create `lr_scale`, the factor on the learning-rate schedules that
                memory support lowers after a blow-up (the SR harnesses).
        """
        self.generator = generator
        self.ema_decay = float(ema_decay)
        self.ema_warmup = bool(ema_warmup)
        self.ema_generator = clone_network(generator) if ema_decay > 0 else None
        # One counter per harness: the optimizers' own counters may differ once memory
        # support or loss scaling skips an update; this one counts steps taken, and a run
        # interrupted inside an epoch resumes at it (`kerasr.training.checkpoints`).
        self.step = keras.Variable(
            0, dtype="int64", trainable=False, name="step", aggregation="only_first_replica"
        )
        if lr_scale:
            self.lr_scale = keras.Variable(
                1.0, dtype="float32", trainable=False, name="lr_scale",
                aggregation="only_first_replica",
            )  # fmt: skip

    @property
    def inference_network(self):
        """The network the run samples, validates and exports: the EMA when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def after_step(self) -> None:
        """The step tail: updates the EMA, then counts the step."""
        if self.ema_generator is not None:
            decay = self.ema_decay
            if self.ema_warmup:
                steps = ops.cast(self.step, "float32")
                decay = ops.minimum(self.ema_decay, (1.0 + steps) / (10.0 + steps))
            update_ema(self.ema_generator.weights, self.generator.weights, decay)
        self.step.assign_add(1)


# The generator EMA is a network of its own, updated after every step, rather than Keras'
# optimizer EMA (`use_ema=True`) with the `SwapEMAWeights` callback: that one swaps the EMA
# into the generator's own variables in place around validation, so a checkpoint, a
# memory-support rollback or a Ctrl-C landing while they are swapped would store or restore
# exchanged weights; sample grids, evaluation and export would need the same swap; run folders
# already hold the EMA as `ema_weights` in their checkpoints; and the optimizer EMA goes
# through the same private merge call (`kerasr.keras_compat.merge_call`) anyway.
def clone_network(model):
    """A built, frozen copy of a network (subclassed or functional) with the same weights.
    Every weight is copied, batch norm's moving statistics too: they describe the averaged
    network's activations better than the live generator's last steps."""
    copy = model.__class__.from_config(model.get_config())
    if not copy.built:
        copy.build((None, None, None, getattr(model, "in_channels", 3)))
    copy.set_weights(model.get_weights())
    copy.trainable = False
    return copy


def update_ema(ema_weights, weights, decay) -> None:
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


def replica_mean(per_sample):
    """The mean of a per-sample loss, divided by the number of replicas.

    Keras' TensorFlow optimizers sum gradients over replicas, so each replica contributes
    its local mean over `num_replicas`: the sum is then the mean over the global batch
    (`tf.nn.compute_average_loss` with equal per-replica batches). Without a strategy this
    is the plain mean.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return ops.mean(per_sample) / replicas


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


class SRHarness(MultiWorkerFit, Harness):
    """What the PSNR and GAN stages of super-resolution add to `Harness`: validation
    metrics, the on-device degradation hook and the unsharp-masked GT (`usm`: `(weight,
    radius, threshold)` of Real-ESRGAN's `USMSharp`, or None when the recipe never
    sharpens)."""

    def __init__(self, generator, ema_decay=0.0, degradation=None, seed=0, usm=None, **kwargs):
        super().__init__(**kwargs)
        self.setup_harness(generator, ema_decay)
        self.usm = None if usm is None else tuple(usm)
        self.scale = generator.scale
        self.degradation = degradation
        self.seed = int(seed)
        self.val_psnr = PSNR(border=self.scale, name="psnr")
        self.val_ssim = SSIM(border=self.scale, name="ssim")
        self.val_pixel = keras.metrics.Mean(name="l1")

    def build(self, input_shape=None):
        # The networks arrive built; the harness's own state (step, lr scale, metrics) is
        # created in __init__.
        self.built = True

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

    def test_step(self, data):
        lr, hr = keras.utils.unpack_x_y_sample_weight(data)[:2]
        sr = self.inference_network(lr, training=False)
        self.val_psnr.update_state(hr, sr)
        self.val_ssim.update_state(hr, sr)
        self.val_pixel.update_state(pixel_loss(hr, sr, "l1"))
        return {m.name: m.result() for m in (self.val_psnr, self.val_ssim, self.val_pixel)}

"""PSNR-oriented pretraining, the first stage of ESRGAN: the generator alone on a pixel loss."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from kerasr.losses import pixel_loss
from kerasr.training.harness import LastValue, SRHarness, replica_mean


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

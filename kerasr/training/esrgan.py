"""The GAN stage of ESRGAN / Real-ESRGAN: generator, discriminator and a frozen VGG."""

from __future__ import annotations

import dataclasses
import functools

import tensorflow as tf
from keras import ops

from kerasr.config.sr import SRLossConfig
from kerasr.errors import KerasrError
from kerasr.losses import d_loss_terms, pixel_loss, realness, relativistic_d_loss
from kerasr.training.gan import GANHarness
from kerasr.training.harness import LastValue, SRHarness, replica_mean

_LOSS_KEYS = frozenset(f.name for f in dataclasses.fields(SRLossConfig))


class ESRGAN(GANHarness, SRHarness):
    """A GAN training harness for super-resolution (ESRGAN, Real-ESRGAN).

    One `train_step`, as BasicSR's `ESRGANModel`: first the generator update with the
    discriminator frozen, on `perceptual_weight * perceptual + gan_weight * adversarial +
    pixel_weight * pixel`; then one discriminator update on the (detached) SR images. The
    discriminator is called with `training=True` throughout, so that spectral normalisation
    runs its power iteration and batch normalisation uses (and updates its running statistics
    with) each call's batch, in the reference's order. Only the networks are meant to be saved
    (`harness.generator`, `harness.discriminator`); this wrapper is a harness.

    Args:
        generator: an `RRDBNet`.
        discriminator: `VGGDiscriminator` (one logit) or `UNetDiscriminator` (per pixel).
        perceptual: a `kerasr.losses.PerceptualLoss` (frozen VGG), or None to drop the term.
        loss: the recipe's `SRLossConfig` (default: ESRGAN's): `gan_type` (`"relativistic"`,
            ESRGAN, or `"vanilla"`, Real-ESRGAN; see `kerasr.losses.gan_losses`), `pixel`,
            the weights `pixel_weight`, `perceptual_weight`, `gan_weight` (ESRGAN: 1e-2, 1,
            5e-3; Real-ESRGAN: 1, 1, 0.1), `relativistic_detach` (BasicSR's discriminator
            loss, True: the real half against the detached mean of a first call on the SR
            batch, then the fake half against the detached mean of the real call: three
            discriminator calls; False: the 2018 ESRGAN code's loss, gradients through both
            means, two calls) and `l1_gt_usm`, `percep_gt_usm`, `gan_gt_usm` (which losses
            see the sharpened GT when `usm` is set; Real-ESRGAN x4plus: pixel and perceptual
            yes, the discriminator no). Any of these given as a keyword replaces the
            config's value (`gan_type="vanilla"`).
        net_d_iters, net_d_init_iters: the generator trains at step `t` (from 1) only when
            `t % net_d_iters == 0 and t > net_d_init_iters` (BasicSR's options; 1, 0: always).
        ema_decay, degradation, seed, usm: as `SRModel`.

    Example:

        gan = ESRGAN(RRDBNet(), VGGDiscriminator(), PerceptualLoss("vgg19"))
        gan.compile(g_optimizer, d_optimizer, jit_compile=True)
        gan.fit(dataset, steps_per_epoch=1000, epochs=400)

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219) section 3.2-3.3;
        [Real-ESRGAN](https://arxiv.org/abs/2107.10833) section 4.1;
        BasicSR's `basicsr/models/esrgan_model.py`.
    """

    def __init__(
        self,
        generator,
        discriminator,
        perceptual=None,
        *,
        loss: SRLossConfig | None = None,
        ema_decay=0.0,
        degradation=None,
        seed=0,
        net_d_iters=1,
        net_d_init_iters=0,
        usm=None,
        **kwargs,
    ):
        replaced = {k: kwargs.pop(k) for k in list(kwargs) if k in _LOSS_KEYS}
        loss = dataclasses.replace(loss or SRLossConfig(), **replaced)
        super().__init__(generator, ema_decay, degradation, seed, usm, **kwargs)
        names = ("g_loss", "pixel_loss", "perceptual_loss", "adversarial_loss", "d_loss")
        names = (*names, "d_real_loss", "d_fake_loss", "d_real", "d_fake")
        self.setup_gan(discriminator, loss.gan_type, names)
        self.gt_usm = {"l1": loss.l1_gt_usm, "percep": loss.percep_gt_usm, "gan": loss.gan_gt_usm}
        self.perceptual = perceptual
        self.gan_type = loss.gan_type
        self.pixel = loss.pixel
        self.pixel_weight = loss.pixel_weight
        self.perceptual_weight = loss.perceptual_weight if perceptual is not None else 0.0
        self.gan_weight = loss.gan_weight
        self.three_calls = loss.gan_type == "relativistic" and loss.relativistic_detach
        if self.three_calls:
            self.d_loss_fn = functools.partial(relativistic_d_loss, detach=True)
        if int(net_d_iters) < 1 or int(net_d_init_iters) < 0:
            raise ValueError(
                "`net_d_iters` must be >= 1 and `net_d_init_iters` >= 0. "
                f"Received: net_d_iters={net_d_iters}, net_d_init_iters={net_d_init_iters}"
            )
        self.net_d_iters = int(net_d_iters)
        self.net_d_init_iters = int(net_d_init_iters)
        if self.skips_generator and tf.distribute.has_strategy():
            # The skipped update is a tf.cond around the optimizer's gradient all-reduce, which
            # tf.distribute cannot synchronise from inside a replica.
            raise KerasrError(
                "train.net_d_iters > 1 or train.net_d_init_iters > 0 needs a single device "
                "(no --strategy). Received: "
                f"net_d_iters={self.net_d_iters}, net_d_init_iters={self.net_d_init_iters}"
            )
        self.last_loss = LastValue(name="last_g_loss")

    @property
    def skips_generator(self) -> bool:
        """Whether some steps train the discriminator alone (BasicSR's warm-up options)."""
        return self.net_d_iters != 1 or self.net_d_init_iters != 0

    @property
    def metrics(self):
        return [
            *self.trackers.values(),
            self.last_loss,
            self.val_psnr,
            self.val_ssim,
            self.val_pixel,
        ]

    def generator_step(self, lr, gts):
        """The generator's update; returns the SR batch (before the update) and the losses.
        `gts`: the GT of the pixel, perceptual and adversarial losses."""
        l1_gt, percep_gt, gan_gt = gts
        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            pix = pixel_loss(l1_gt, sr, self.pixel)
            total = self.pixel_weight * pix
            perc = ops.zeros_like(pix)
            if self.perceptual is not None:
                perc = self.perceptual(percep_gt, sr)
                total = total + self.perceptual_weight * perc
            # The real logits only steer the relativistic loss; no gradient flows into D here.
            # The other losses ignore them and, as Real-ESRGAN, D sees only the SR batch (every
            # training call of a spectrally normalised D advances its power iteration).
            real_logits = None
            if self.gan_type == "relativistic":
                real_logits = ops.stop_gradient(self.discriminator(gan_gt, training=True))
            fake_logits = self.discriminator(sr, training=True)
            adv = self.g_loss_fn(real_logits, fake_logits)
            total = total + self.gan_weight * adv
            g_loss = replica_mean(total)
            scaled = self.g_optimizer.scale_loss(g_loss)
        self.update(self.g_optimizer, tape, scaled, self.generator.trainable_variables)
        return sr, (ops.mean(total), ops.mean(pix), ops.mean(perc), ops.mean(adv))

    def generator_forward(self, lr):
        """The discriminator's warm-up steps: the SR batch without a generator update (the
        generator's losses are reported as 0)."""
        sr = self.generator(lr, training=True)
        zero = ops.zeros((), "float32")
        return sr, (zero, zero, zero, zero)

    def train_step(self, data):
        lr, hr = self.pair(data)
        # Real-ESRGAN's switches: each loss compares against the GT or its sharpened version.
        usm = self.sharpened(hr, any(self.gt_usm.values()))
        gts = tuple(usm if self.gt_usm[k] else hr for k in ("l1", "percep", "gan"))
        if not self.skips_generator:
            sr, g_values = self.generator_step(lr, gts)
        else:
            # BasicSR's `current_iter`, counted from 1.
            step = ops.cast(self.step.value, "int64") + 1
            train_g = ops.logical_and(
                ops.equal(step % self.net_d_iters, 0), ops.greater(step, self.net_d_init_iters)
            )
            sr, g_values = tf.cond(
                train_g, lambda: self.generator_step(lr, gts), lambda: self.generator_forward(lr)
            )

        fake = ops.stop_gradient(sr)
        with tf.GradientTape() as tape:
            if self.three_calls:
                # BasicSR's first call on the SR batch gives the real half its (detached) fake
                # mean; with batch statistics it equals the third call, but it also moves the
                # batch-norm running statistics, so it is made all the same.
                self.discriminator(fake, training=True)
            real_logits = self.discriminator(gts[2], training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_per_sample = self.d_loss_fn(real_logits, fake_logits)
            d_loss = replica_mean(d_per_sample)
            scaled = self.d_optimizer.scale_loss(d_loss)
        self.update(self.d_optimizer, tape, scaled, self.discriminator.trainable_variables)
        self.after_step()

        d_real, d_fake = realness(real_logits, fake_logits, self.gan_type)
        mean_total, pix, perc, adv = g_values
        d_real_loss, d_fake_loss = d_loss_terms(real_logits, fake_logits, self.gan_type)
        values = {
            "g_loss": mean_total,
            "pixel_loss": pix,
            "perceptual_loss": perc,
            "adversarial_loss": adv,
            "d_loss": ops.mean(d_per_sample),
            "d_real_loss": ops.mean(d_real_loss),
            "d_fake_loss": ops.mean(d_fake_loss),
            "d_real": d_real,
            "d_fake": d_fake,
        }
        self.last_loss.update_state(mean_total)
        return {**self.track(values), self.last_loss.name: self.last_loss.result()}

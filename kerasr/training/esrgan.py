"""The GAN stage of ESRGAN / Real-ESRGAN: generator, discriminator and a frozen VGG."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from kerasr.losses import pixel_loss, realness
from kerasr.training.gan import GANHarness
from kerasr.training.sr import LastValue, SRHarness, replica_mean


class ESRGAN(GANHarness, SRHarness):
    """A GAN training harness for super-resolution (ESRGAN, Real-ESRGAN).

    One `train_step`, as BasicSR's `ESRGANModel`: first the generator update with the
    discriminator frozen, on `perceptual_weight * perceptual + gan_weight * adversarial +
    pixel_weight * pixel`; then one discriminator update on the (detached) SR images. The
    discriminator is called with `training=True` in both, so that spectral normalisation
    runs its power iteration. Only the networks are meant to be saved (`harness.generator`,
    `harness.discriminator`); this wrapper is a harness.

    Args:
        generator: an `RRDBNet`.
        discriminator: `VGGDiscriminator` (one logit) or `UNetDiscriminator` (per pixel).
        perceptual: a `kerasr.losses.PerceptualLoss` (frozen VGG), or None to drop the term.
        gan_type: `"relativistic"` (ESRGAN) or `"vanilla"` (Real-ESRGAN); see
            `kerasr.losses.gan_losses`.
        pixel: pixel loss kind.
        pixel_weight, perceptual_weight, gan_weight: the loss weights (ESRGAN: 1e-2, 1, 5e-3;
            Real-ESRGAN: 1, 1, 0.1).
        ema_decay, degradation, seed: as `SRModel`.

    Example:

        gan = ESRGAN(RRDBNet(), VGGDiscriminator(), PerceptualLoss("vgg19"))
        gan.compile(g_optimizer, d_optimizer, jit_compile=True)
        gan.fit(dataset, steps_per_epoch=1000, epochs=400)

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219) section 3.2-3.3;
        [Real-ESRGAN](https://arxiv.org/abs/2107.10833) section 4.1.
    """

    def __init__(
        self,
        generator,
        discriminator,
        perceptual=None,
        gan_type="relativistic",
        pixel="l1",
        pixel_weight=1e-2,
        perceptual_weight=1.0,
        gan_weight=5e-3,
        ema_decay=0.0,
        degradation=None,
        seed=0,
        **kwargs,
    ):
        super().__init__(generator, ema_decay, degradation, seed, **kwargs)
        names = ("g_loss", "pixel_loss", "perceptual_loss", "adversarial_loss", "d_loss")
        self.setup_gan(discriminator, gan_type, (*names, "d_real", "d_fake"))
        self.perceptual = perceptual
        self.gan_type = gan_type
        self.pixel = pixel
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight if perceptual is not None else 0.0
        self.gan_weight = gan_weight
        self.last_loss = LastValue(name="last_g_loss")

    @property
    def metrics(self):
        return [
            *self.trackers.values(),
            self.last_loss,
            self.val_psnr,
            self.val_ssim,
            self.val_pixel,
        ]

    def train_step(self, data):
        lr, hr = self.pair(data)
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables

        with tf.GradientTape() as tape:
            sr = self.generator(lr, training=True)
            pix = pixel_loss(hr, sr, self.pixel)
            total = self.pixel_weight * pix
            perc = ops.zeros_like(pix)
            if self.perceptual is not None:
                perc = self.perceptual(hr, sr)
                total = total + self.perceptual_weight * perc
            # The real logits only steer the relativistic loss; no gradient flows into D here.
            real_logits = ops.stop_gradient(self.discriminator(hr, training=True))
            fake_logits = self.discriminator(sr, training=True)
            adv = self.g_loss_fn(real_logits, fake_logits)
            total = total + self.gan_weight * adv
            g_loss = replica_mean(total)
            scaled = self.g_optimizer.scale_loss(g_loss)
        self.update(self.g_optimizer, tape, scaled, g_vars)

        fake = ops.stop_gradient(sr)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(hr, training=True)
            fake_logits = self.discriminator(fake, training=True)
            d_loss = replica_mean(self.d_loss_fn(real_logits, fake_logits))
            scaled = self.d_optimizer.scale_loss(d_loss)
        self.update(self.d_optimizer, tape, scaled, d_vars)
        self.after_step()

        d_real, d_fake = realness(real_logits, fake_logits, self.gan_type)
        mean_total = ops.mean(total)
        values = {
            "g_loss": mean_total,
            "pixel_loss": ops.mean(pix),
            "perceptual_loss": ops.mean(perc),
            "adversarial_loss": ops.mean(adv),
            "d_loss": ops.mean(self.d_loss_fn(real_logits, fake_logits)),
            "d_real": d_real,
            "d_fake": d_fake,
        }
        self.last_loss.update_state(mean_total)
        return {**self.track(values), self.last_loss.name: self.last_loss.result()}

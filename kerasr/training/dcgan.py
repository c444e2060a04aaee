"""The Pokemon DCGAN's training harness: one simultaneous update of both networks per step.

The recipe that trains it and fills a run folder is `kerasr.training.train_dcgan`.

Reference:
    [DCGAN](https://arxiv.org/abs/1511.06434),
    [DiffAugment](https://arxiv.org/abs/2006.10738).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from kerasr.config import DCGANConfig
from kerasr.errors import KerasrError
from kerasr.layers import DiffAugment
from kerasr.training.gan import GANHarness
from kerasr.weights.networks import build_network

LOSSES = ("hinge", "nonsaturating")


class DCGAN(GANHarness):
    """A GAN training harness around a generator and a discriminator.

    One `train_step` draws a latent batch, generates fakes, scores real and fake images
    (after optional instance noise and DiffAugment, applied to both alike) and updates both
    networks from that one forward pass: the discriminator on its loss, the generator on its
    own (simultaneous updates, which save a second generator and discriminator pass). Only
    the networks are meant to be saved; this wrapper is a harness (save `.generator`).

    Args:
        generator: latent `[n, latent_dim]` -> image `[n, h, w, 3]` in [-1, 1].
        discriminator: image -> logit `[n, 1]`.
        augment: a layer applied with `training=True` to every image the discriminator sees
            (e.g. `kerasr.layers.DiffAugment`), or None.
        loss: `"hinge"` or `"nonsaturating"`.
        label_smoothing: one-sided smoothing of the real target (non-saturating loss only).
        instance_noise: std of Gaussian noise added to the discriminator's inputs.
        ema_decay: decay of the generator EMA `ema_generator`, updated after every step
            (0: none), its decay ramped up over the first steps; `inference_network` is
            the network to draw samples from.
        seed: seed of the latent / noise `keras.random.SeedGenerator`.

    Example:

        g, d = build_network("dcgan"), build_network("dcgan_discriminator")
        gan = DCGAN(g, d, augment=DiffAugment(seed=1))
        gan.compile(keras.optimizers.Adam(2e-4, 0.5), keras.optimizers.Adam(2e-4, 0.5))
        gan.fit(dataset, epochs=100)

    Reference:
        Keras guide "Customizing what happens in fit() with TensorFlow" (the GAN example).
    """

    def __init__(
        self,
        generator,
        discriminator,
        augment=None,
        loss="hinge",
        label_smoothing=0.0,
        instance_noise=0.0,
        ema_decay=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise KerasrError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")
        # Fixed learning rates: no `lr_scale` (memory support runs on the SR harnesses).
        self.setup_harness(generator, ema_decay, ema_warmup=True, lr_scale=False)
        # Mean logits on the (augmented) real and fake batches: the gap between them is what
        # the generator is closing; hinge keeps them near +1 / -1 when D is winning.
        self.setup_gan(
            discriminator,
            loss,
            ("d_loss", "g_loss", "d_real", "d_fake"),
            label_smoothing=label_smoothing if loss == "nonsaturating" else 0.0,
        )
        self.augment = augment
        self.loss_name = loss
        self.label_smoothing = label_smoothing
        self.instance_noise = instance_noise
        self.latent_dim = generator.input_shape[-1]
        self.seed_generator = keras.random.SeedGenerator(seed)
        # Epochs completed, set by the run's monitor before each checkpoint.
        self.epoch = keras.Variable(
            0, dtype="int64", trainable=False, name="epoch", aggregation="only_first_replica"
        )
        self.steps_per_epoch = 1  # set by the recipe from the data

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, latents, training=False):
        return self.generator(latents, training=training)

    def losses_from_scores(self, real, fake):
        """The discriminator and generator losses (batch means) from real and fake logits."""
        return ops.mean(self.d_loss_fn(real, fake)), ops.mean(self.g_loss_fn(real, fake))

    def score(self, images):
        """Discriminator logits, after instance noise and augmentation (training mode)."""
        if self.instance_noise:
            images = images + self.instance_noise * keras.random.normal(
                ops.shape(images), seed=self.seed_generator
            )
        if self.augment is not None:
            images = self.augment(images, training=True)
        return ops.cast(self.discriminator(images, training=True), "float32")

    def train_step(self, data):
        # fit() on a dataset of images passes a tensor; train_on_batch passes (x, y, w).
        real, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        n = ops.shape(real)[0]
        latents = keras.random.normal((n, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as d_tape, tf.GradientTape() as g_tape:
            fake = self.generator(latents, training=True)
            # Real and fake go through D in separate calls: with batch norm in D, one mixed
            # batch would let D tell them apart by batch statistics instead of by content.
            # training=True: spectral normalisation updates its power iteration only then.
            real_scores = self.score(ops.cast(real, fake.dtype))
            fake_scores = self.score(fake)
            d_loss, g_loss = self.losses_from_scores(real_scores, fake_scores)
        self.update(self.d_optimizer, d_tape, d_loss, self.discriminator.trainable_variables)
        self.update(self.g_optimizer, g_tape, g_loss, self.generator.trainable_variables)
        self.after_step()
        return self.track(
            {
                "d_loss": d_loss,
                "g_loss": g_loss,
                "d_real": ops.mean(real_scores),
                "d_fake": ops.mean(fake_scores),
            }
        )


def build_dcgan(config: DCGANConfig) -> DCGAN:
    """Builds and compiles the harness, networks and optimizers described by `config`."""
    model, train = config.model, config.train
    keras.utils.set_random_seed(train.seed)
    arguments = generator_architecture(model)
    generator = build_network(arguments.pop("kind"), **arguments)
    if model.discriminator == "projected":
        from kerasr.weights.efficientnet import load_efficientnet_lite0

        discriminator = build_network(
            "projected_discriminator",
            input_shape=(None, model.image_size, model.image_size, 3),
            backbone=load_efficientnet_lite0(),
            image_size=model.image_size,
            feature_size=model.feature_size,
            scales=model.feature_scales,
            projection_channels=model.projection_channels,
            filters=model.d_filters,
            seed=train.seed + 3,
        )
    else:
        discriminator = build_network(
            "dcgan_discriminator",
            image_size=model.image_size,
            filters=model.d_filters,
            max_filters=model.max_filters,
            spectral_norm=model.spectral_norm,
            batch_norm=model.d_batch_norm,
        )
    if train.init:
        _load_init(generator, train.init)
    augment = DiffAugment(train.diffaugment, seed=train.seed + 1) if train.diffaugment else None
    gan = DCGAN(
        generator,
        discriminator,
        augment=augment,
        loss=train.loss,
        label_smoothing=train.label_smoothing,
        instance_noise=train.instance_noise,
        ema_decay=train.ema_decay,
        seed=train.seed + 2,
    )
    gan.compile(
        g_optimizer=keras.optimizers.Adam(train.g_learning_rate, train.beta_1, train.beta_2),
        d_optimizer=keras.optimizers.Adam(train.d_learning_rate, train.beta_1, train.beta_2),
        jit_compile=train.jit_compile,
    )
    return gan


def generator_architecture(model) -> dict:
    """The generator's kind and builder arguments described by a `[model]` config (what the
    preset beside each of a run's generator files records)."""
    if model.generator == "fastgan":
        return {
            "kind": "fastgan",
            "image_size": model.image_size,
            "latent_dim": model.latent_dim,
            "filters": model.g_filters,
        }
    return {
        "kind": "dcgan",
        "image_size": model.image_size,
        "latent_dim": model.latent_dim,
        "filters": model.g_filters,
        "max_filters": model.max_filters,
        "upsample": model.upsample,
    }


def _load_init(generator, spec: str) -> None:
    """Copies the weights of a generator file or registry name into `generator`."""
    from kerasr.weights.resolve import load_generator

    source = load_generator(spec)
    if [w.shape for w in source.weights] != [w.shape for w in generator.weights]:
        raise KerasrError(f"train.init {spec} does not fit the [model] config of this run")
    generator.set_weights(source.get_weights())

"""Training the Pokemon DCGAN: the GAN harness, quality signals and the per-epoch monitor.

`train_dcgan(config, out_dir)` is the whole recipe; `kerasr train-dcgan` is a thin call to it.
The run folder it fills:

    config.toml                 the resolved configuration
    generator.json              architecture of the generators below
    generators/epoch_0001.weights.h5 ...  the generator of every epoch (pick one by epoch)
    checkpoints/                tf.train.CheckpointManager: G, D, both optimizers, epoch, RNGs
    grids/epoch_0001.png ...    fixed-seed sample grids (seeds 0..63, as `kerasr generate`)
    history.csv                 per epoch: losses, D(real) / D(fake), quality signals, KID
    quality.txt                 the quality signals of the last epoch, in words
    tensorboard/                scalars and sample grids
    progress.gif, losses.png    written at the end

Reference:
    [DCGAN](https://arxiv.org/abs/1511.06434),
    [DiffAugment](https://arxiv.org/abs/2006.10738),
    [KID](https://arxiv.org/abs/1801.01401).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kerasr.config import DCGANConfig, to_toml
from kerasr.data.sprites import load_sprites, sprite_dataset
from kerasr.errors import KerasrError
from kerasr.generation import generate, write_architecture
from kerasr.images import write_image
from kerasr.io import append_csv, atomic_path, image_grid, read_csv, save_gif, write_text
from kerasr.layers import DiffAugment
from kerasr.models.dcgan import build_discriminator, build_generator
from kerasr.training.callbacks import TimeLimit, plot_history

LOSSES = ("hinge", "nonsaturating")


class DCGAN(keras.Model):
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
        seed: seed of the latent / noise `keras.random.SeedGenerator`.

    Example:

        gan = DCGAN(build_generator(), build_discriminator(), augment=DiffAugment(seed=1))
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
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}. Received: loss={loss!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.augment = augment
        self.loss_name = loss
        self.label_smoothing = label_smoothing
        self.instance_noise = instance_noise
        self.latent_dim = generator.input_shape[-1]
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        # Mean logits on the (augmented) real and fake batches: the gap between them is what
        # the generator is closing; hinge keeps them near +1 / -1 when D is winning.
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Sets the two optimizers; `**kwargs` (e.g. `jit_compile`) go to `Model.compile`."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built here, not on the first apply(), so that a checkpoint restores their slots
        # before training and the compiled step creates no variables.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, latents, training=False):
        return self.generator(latents, training=training)

    def losses_from_scores(self, real, fake):
        """The discriminator and generator losses from real and fake logits."""
        if self.loss_name == "hinge":
            d_loss = ops.mean(ops.relu(1.0 - real)) + ops.mean(ops.relu(1.0 + fake))
            return d_loss, -ops.mean(fake)
        target = 1.0 - self.label_smoothing
        d_loss = ops.mean(
            ops.binary_crossentropy(ops.full_like(real, target), real, from_logits=True)
        ) + ops.mean(ops.binary_crossentropy(ops.zeros_like(fake), fake, from_logits=True))
        # Non-saturating: the generator maximises log D(fake) instead of minimising
        # log(1 - D(fake)), which has no gradient when D confidently rejects fakes.
        g_loss = ops.mean(ops.softplus(-fake))
        return d_loss, g_loss

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
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        self.d_optimizer.apply(d_tape.gradient(d_loss, d_vars), d_vars)
        self.g_optimizer.apply(g_tape.gradient(g_loss, g_vars), g_vars)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(ops.mean(real_scores))
        self.d_fake_tracker.update_state(ops.mean(fake_scores))
        return {m.name: m.result() for m in self.metrics}


def build_dcgan(config: DCGANConfig) -> DCGAN:
    """Builds and compiles the harness, networks and optimizers described by `config`."""
    model, train = config.model, config.train
    keras.utils.set_random_seed(train.seed)
    generator = build_generator(
        model.image_size, model.latent_dim, model.g_filters, model.max_filters
    )
    discriminator = build_discriminator(
        model.image_size,
        model.d_filters,
        model.max_filters,
        spectral_norm=model.spectral_norm,
        batch_norm=model.d_batch_norm,
    )
    augment = DiffAugment(train.diffaugment, seed=train.seed + 1) if train.diffaugment else None
    gan = DCGAN(
        generator,
        discriminator,
        augment=augment,
        loss=train.loss,
        label_smoothing=train.label_smoothing,
        instance_noise=train.instance_noise,
        seed=train.seed + 2,
    )
    gan.compile(
        g_optimizer=keras.optimizers.Adam(train.g_learning_rate, train.beta_1, train.beta_2),
        d_optimizer=keras.optimizers.Adam(train.d_learning_rate, train.beta_1, train.beta_2),
        jit_compile=train.jit_compile,
    )
    return gan


# --- quality signals -------------------------------------------------------------------------


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square pixel distances (0..1) between rows of `a` and `b` (flattened)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0) / a.shape[1])


class QualityReference:
    """The real-image side of the quality signals, computed once per run.

    Args:
        images: uint8 `[n, h, w, 3]` training images (before augmentation).
        count: how many samples / real images the diversity signal compares (64).
        seed: picks the fixed real subset.
    """

    def __init__(self, images: np.ndarray, count: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.count = min(count, len(images))
        subset = rng.choice(len(images), self.count, replace=False)
        self.real_subset = images[subset]
        # Nearest neighbours are searched among the training images and their mirror images,
        # since the generator learns from flipped copies too.
        self.train = _flat(np.concatenate([images, images[:, :, ::-1]]))
        real = _flat(self.real_subset)
        self.real_pairwise = _mean_offdiagonal(_pairwise(real, real))
        d = _pairwise(real, self.train)
        n = len(images)
        # Exclude each image and its own mirror image from its neighbour search.
        rows = np.arange(self.count)
        d[rows, subset] = np.inf
        d[rows, subset + n] = np.inf
        self.real_nearest = float(np.median(d.min(1)))


def _mean_offdiagonal(d: np.ndarray) -> float:
    n = len(d)
    return float((d.sum() - np.trace(d)) / max(n * (n - 1), 1))


def quality_signals(samples: np.ndarray, reference: QualityReference) -> dict[str, float]:
    """Mode-collapse and memorisation signals of generated samples.

    - `diversity`: mean pairwise distance among the samples divided by the same among as many
      real images; near 1 is healthy, well below 1 (e.g. < 0.5) means mode collapse.
    - `nearest_ratio`: median distance of each sample to its nearest training image (or its
      mirror image) divided by the median real-to-other-real nearest distance; near or above 1
      means new images, well below 1 means the generator copies training images.
    - `copies`: fraction of samples closer to a training image than half the typical
      real-to-real nearest distance.

    Distances are root-mean-square pixel differences in [0, 1].

    Args:
        samples: uint8 `[n, h, w, 3]` generated images.
        reference: the real side, from `QualityReference`.

    Returns:
        The three signals and the raw distances they compare.
    """
    fake = _flat(samples)
    sample_pairwise = _mean_offdiagonal(_pairwise(fake, fake))
    nearest = _pairwise(fake, reference.train).min(1)
    return {
        "diversity": sample_pairwise / reference.real_pairwise,
        "sample_pairwise": sample_pairwise,
        "real_pairwise": reference.real_pairwise,
        "nearest_ratio": float(np.median(nearest)) / reference.real_nearest,
        "sample_nearest": float(np.median(nearest)),
        "real_nearest": reference.real_nearest,
        "copies": float((nearest < 0.5 * reference.real_nearest).mean()),
    }


def describe_quality(signals: dict[str, float]) -> str:
    """The quality signals as two sentences for people."""
    diversity, ratio = signals["diversity"], signals["nearest_ratio"]
    collapse = "no sign of mode collapse" if diversity >= 0.6 else "POSSIBLE MODE COLLAPSE"
    memory = "no sign of memorisation" if signals["copies"] <= 0.05 else "POSSIBLE MEMORISATION"
    return (
        f"diversity {diversity:.2f} (sample pairwise distance {signals['sample_pairwise']:.3f} "
        f"vs real {signals['real_pairwise']:.3f}): {collapse}.\n"
        f"nearest-training ratio {ratio:.2f} "
        f"(median sample-to-train {signals['sample_nearest']:.3f} "
        f"vs real-to-real {signals['real_nearest']:.3f}), near copies {signals['copies']:.0%}: "
        f"{memory}.\n"
    )


# --- KID with an ImageNet Inception network, when its weights are on disk --------------------

INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def inception_weights_path() -> Path:
    """Where Keras keeps the ImageNet InceptionV3 weights (`$KERAS_HOME/models`)."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(home) / "models" / INCEPTION_WEIGHTS


def inception_features_model():
    """InceptionV3 pooled features (2048-d) with local ImageNet weights, or None if absent.

    Never downloads: training must not depend on the network.
    """
    path = inception_weights_path()
    if not path.is_file():
        return None
    return keras.applications.InceptionV3(
        include_top=False, weights=str(path), pooling="avg", input_shape=(299, 299, 3)
    )


def inception_features(model, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """2048-d features of uint8 images, resized to 299x299 bilinearly."""
    feats = []
    for i in range(0, len(images), batch_size):
        x = tf.image.resize(tf.cast(images[i : i + batch_size], tf.float32), (299, 299))
        x = keras.applications.inception_v3.preprocess_input(x)
        feats.append(np.asarray(model(x, training=False)))
    return np.concatenate(feats)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel `(x.y / d + 1) ** 3`.

    Args:
        real: features `[m, d]` of real images.
        fake: features `[n, d]` of generated images.

    Returns:
        KID (lower is better; about 0 when the two sets come from one distribution).

    Reference:
        [Demystifying MMD GANs](https://arxiv.org/abs/1801.01401), section 4.
    """
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    d = real.shape[1]
    m, n = len(real), len(fake)
    k_rr = (real @ real.T / d + 1.0) ** 3
    k_ff = (fake @ fake.T / d + 1.0) ** 3
    k_rf = (real @ fake.T / d + 1.0) ** 3
    return float(
        (k_rr.sum() - np.trace(k_rr)) / (m * (m - 1))
        + (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
        - 2.0 * k_rf.mean()
    )


# --- the per-epoch monitor -------------------------------------------------------------------


class DCGANMonitor(keras.callbacks.Callback):
    """After every epoch: sample grid, TensorBoard, quality signals, generator, checkpoint.

    Args:
        run_dir: the run folder (see the module docstring for its layout).
        reference: real-image side of the quality signals.
        checkpoint_manager: a `tf.train.CheckpointManager` over the harness and an `epoch`
            variable (`epoch_variable`).
        epoch_variable: an int64 `tf.Variable` saved with the checkpoint.
        grid_size: the grid shows seeds `0 .. grid_size**2 - 1`.
        kid_every: KID every this many epochs (0: never); needs `inception`.
        inception: an Inception feature model, or None (KID skipped).
        real_kid_features: Inception features of real images, when `inception` is set.
        kid_note: why KID is skipped, written to `quality.txt` (empty when it runs).
    """

    def __init__(
        self,
        run_dir,
        reference,
        checkpoint_manager,
        epoch_variable,
        grid_size=8,
        kid_every=0,
        inception=None,
        real_kid_features=None,
        kid_note="",
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.reference = reference
        self.checkpoint_manager = checkpoint_manager
        self.epoch_variable = epoch_variable
        self.grid_seeds = list(range(grid_size * grid_size))
        # The signals compare `reference.count` samples with as many real images; their seeds
        # are kept away from the grid's so both are independent draws.
        self.signal_seeds = list(range(10_000, 10_000 + reference.count))
        self.kid_every = kid_every
        self.inception = inception
        self.real_kid_features = real_kid_features
        self.kid_note = kid_note
        self.writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self.last_row = None

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        generator = self.model.generator
        grid = image_grid(
            generate(generator, self.grid_seeds), columns=int(len(self.grid_seeds) ** 0.5)
        )
        write_image(self.run_dir / "grids" / f"epoch_{number:04d}.png", grid, make_parents=True)
        signals = quality_signals(generate(generator, self.signal_seeds), self.reference)
        row = {"epoch": number, **{k: float(v) for k, v in (logs or {}).items()}}
        row.update({k: signals[k] for k in ("diversity", "nearest_ratio", "copies")})
        row["kid"] = self._kid(generator) if self.kid_every and number % self.kid_every == 0 else ""
        append_csv(self.run_dir / "history.csv", row)
        write_text(
            self.run_dir / "quality.txt",
            f"epoch {number}\n{describe_quality(signals)}{self.kid_note}\n",
        )
        with self.writer.as_default(step=number):
            for key, value in row.items():
                if key != "epoch" and value != "":
                    tf.summary.scalar(key, value)
            tf.summary.image("samples", grid[None], max_outputs=1)
        self.writer.flush()
        with atomic_path(self.run_dir / "generators" / f"epoch_{number:04d}.weights.h5") as tmp:
            generator.save_weights(tmp)
        self.epoch_variable.assign(number)
        self.checkpoint_manager.save(checkpoint_number=number)
        self.last_row = row

    def _kid(self, generator, count=64):
        if self.inception is None:
            return ""
        fake = inception_features(
            self.inception, generate(generator, range(20_000, 20_000 + count))
        )
        return kernel_inception_distance(self.real_kid_features, fake)


# --- the recipe ------------------------------------------------------------------------------


def train_dcgan(
    config: DCGANConfig,
    run_dir: str | Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume: bool = True,
) -> dict:
    """Trains a DCGAN on a sprite folder, filling `run_dir` (layout in the module docstring).

    Args:
        config: the recipe; `config.data.folder` must be set.
        run_dir: the run folder; an existing checkpoint there is resumed when `resume`.
        callbacks: extra Keras callbacks (e.g. a progress bar).
        resume: continue from the latest checkpoint in `run_dir/checkpoints`.

    Returns:
        A summary: `epochs` (completed), `initial_epoch`, `images` (training images),
        `seconds` (wall time of this call), `last` (the last epoch's logged row),
        `kid_note` (why KID was skipped, or ""), `run_dir`.

    Raises:
        KerasrError: on unusable data (missing or empty folder, no image left by the filter,
            fewer images than a batch).
    """
    start = time.monotonic()
    run_dir = Path(run_dir)
    if not config.data.folder:
        raise KerasrError("no data folder: pass DATA or set data.folder in the config")
    data, model_cfg, train = config.data, config.model, config.train
    images = load_sprites(
        data.folder,
        image_size=model_cfg.image_size,
        background=data.background,
        white_background_only=data.white_background_only,
        white_border=data.white_border,
    )
    dataset = sprite_dataset(
        images, train.batch_size, flip=data.flip, seed=train.seed, cache=data.cache
    )
    steps_per_epoch = len(images) // train.batch_size

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.toml", to_toml(config))
    write_architecture(
        run_dir / "generators",
        image_size=model_cfg.image_size,
        latent_dim=model_cfg.latent_dim,
        filters=model_cfg.g_filters,
        max_filters=model_cfg.max_filters,
    )

    gan = build_dcgan(config)
    epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
    checkpoint = tf.train.Checkpoint(
        gan=gan, g_optimizer=gan.g_optimizer, d_optimizer=gan.d_optimizer, epoch=epoch
    )
    manager = tf.train.CheckpointManager(
        checkpoint, str(run_dir / "checkpoints"), max_to_keep=train.keep_checkpoints
    )
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    initial_epoch = int(epoch.numpy())

    inception = inception_features_model() if train.kid_every else None
    kid_note = ""
    real_kid = None
    if train.kid_every and inception is None:
        kid_note = (
            f"KID skipped: ImageNet InceptionV3 weights not found at {inception_weights_path()}"
        )
    elif inception is not None:
        real_kid = inception_features(
            inception, QualityReference(images, 256, train.seed).real_subset
        )

    monitor = DCGANMonitor(
        run_dir,
        QualityReference(images, 64, train.seed),
        manager,
        epoch,
        grid_size=train.grid_size,
        kid_every=train.kid_every,
        inception=inception,
        real_kid_features=real_kid,
        kid_note=kid_note,
    )
    limit = TimeLimit(train.max_minutes)
    if initial_epoch < train.epochs:
        gan.fit(
            dataset,
            epochs=train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=[monitor, limit, *callbacks],
            shuffle=False,  # the dataset shuffles itself, with a seed
            verbose=0,
        )
    finish_run(run_dir)
    return {
        "epochs": int(epoch.numpy()),
        "initial_epoch": initial_epoch,
        "images": len(images),
        "seconds": time.monotonic() - start,
        "last": monitor.last_row,
        "kid_note": kid_note,
        "run_dir": run_dir,
    }


def finish_run(run_dir: str | Path) -> None:
    """Writes the end-of-run summaries: `progress.gif` of the grids and `losses.png`."""
    run_dir = Path(run_dir)
    frames = sorted((run_dir / "grids").glob("epoch_*.png"))
    # A GIF of hundreds of frames is tens of MB; about 60 evenly spaced frames tell the story.
    if len(frames) > 60:
        keep = np.unique(np.linspace(0, len(frames) - 1, 60).round().astype(int))
        frames = [frames[i] for i in keep]
    save_gif(run_dir / "progress.gif", frames)
    rows = read_csv(run_dir / "history.csv")
    if rows:
        plot_history(
            run_dir / "losses.png", rows, ("d_loss", "g_loss", "d_real", "d_fake"), "DCGAN losses"
        )
        plot_history(
            run_dir / "quality.png", rows, ("diversity", "nearest_ratio"), "quality signals"
        )

"""The Pokemon DCGAN recipe: `configs/pokemon_dcgan.toml` (see `kerasr.training.dcgan`)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from kerasr.config.loader import check

DiffAugmentPolicy = Literal["color", "translation", "cutout"]


@dataclasses.dataclass(frozen=True)
class DCGANModelConfig:
    """The GAN's networks: the DCGAN pair (`kerasr.models.dcgan`), or a FastGAN generator
    (`kerasr.models.fastgan`) with a projected discriminator (`kerasr.models.projected`).

    Args:
        generator: `"dcgan"` (transposed or resize convolutions with batch norm) or
            `"fastgan"` (GLU upsampling blocks with skip-layer excitation).
        discriminator: `"dcgan"` (strided convolutions from the pixels up) or `"projected"`
            (small heads on frozen ImageNet EfficientNet-Lite0 features; needs the
            `quality` extra).
        image_size: generated image side: a power of two from 8 to 256 (64 or 128 for
            sprites; 16 to 256 for the FastGAN generator).
        latent_dim: length of the generator's latent vector.
        g_filters: generator width: DCGAN channels at the widest resolution (doubling
            towards 4x4), or FastGAN's channel unit `ngf` (16x at 4x4, 2x at 64 px).
        d_filters: discriminator width: the DCGAN's first convolution (doubling towards 4x4),
            or the channels of the projected discriminator's heads.
        max_filters: channel cap of the DCGAN networks.
        spectral_norm: spectral normalisation on every DCGAN discriminator weight layer (the
            projected discriminator's heads always have it).
        d_batch_norm: batch norm in the DCGAN discriminator (DCGAN paper), after each
            convolution but the first.
        upsample: how the DCGAN generator doubles its resolution: `"transposed"` (4x4 stride-2
            transposed convolutions, DCGAN) or `"resize"` (nearest upsampling and a 3x3
            convolution, free of checkerboard patterns).
        feature_size: the projected discriminator resizes images to this side before
            EfficientNet-Lite0 (a multiple of 32; ImageNet features of a 64 px image are poor).
        feature_scales: Lite0 scales with a head, 1 to 4 (strides 4, 8, 16, 32).
        projection_channels: channels of the shallowest fixed random projection (doubling
            with depth).
    """

    generator: Literal["dcgan", "fastgan"] = "dcgan"
    discriminator: Literal["dcgan", "projected"] = "dcgan"
    image_size: int = 64
    latent_dim: int = 128
    g_filters: int = 64
    d_filters: int = 64
    max_filters: int = 512
    spectral_norm: bool = True
    d_batch_norm: bool = False
    upsample: Literal["transposed", "resize"] = "transposed"
    feature_size: int = 128
    feature_scales: int = 4
    projection_channels: int = 64

    def __post_init__(self):
        size = self.image_size
        check(
            8 <= size <= 256 and size & (size - 1) == 0,
            f"image_size must be a power of two from 8 to 256. Received: {size}",
        )
        check(
            self.generator != "fastgan" or size >= 16,
            f"the fastgan generator needs image_size >= 16. Received: {size}",
        )
        check(
            32 <= self.feature_size <= 512 and self.feature_size % 32 == 0,
            f"feature_size must be a multiple of 32 from 32 to 512. Received: {self.feature_size}",
        )
        check(
            1 <= self.feature_scales <= 4,
            f"feature_scales must be 1 to 4. Received: {self.feature_scales}",
        )
        check(
            self.projection_channels >= 1,
            f"projection_channels must be >= 1. Received: {self.projection_channels}",
        )
        check(self.latent_dim >= 1, f"latent_dim must be >= 1. Received: {self.latent_dim}")
        for key in ("g_filters", "d_filters"):
            value = getattr(self, key)
            check(
                1 <= value <= self.max_filters,
                f"{key} must be in 1..max_filters ({self.max_filters}). Received: {value}",
            )


@dataclasses.dataclass(frozen=True)
class DCGANDataConfig:
    """The sprite folder and how it is read (see `kerasr.data.sprites`).

    Args:
        folder: a folder of images; the CLI's DATA argument overrides it.
        background: RGB colour composited behind transparent pixels (white, as in the
            PokemonGan web app).
        white_background_only: train on the images whose border is white only.
        white_border: fraction of border pixels that must be white for that filter.
        fit_to_frame: crop each sprite to its creature and centre it with a small margin,
            so that every creature fills the frame (sprites leave 40 % of it empty on median).
        flip: random horizontal flips.
        cache: cache the decoded images in `tf.data`.
    """

    folder: str = ""
    background: tuple[int, int, int] = (255, 255, 255)
    white_background_only: bool = False
    white_border: float = 0.99
    fit_to_frame: bool = False
    flip: bool = True
    cache: bool = True

    def __post_init__(self):
        check(
            all(0 <= c <= 255 for c in self.background),
            f"background must be three values in 0..255. Received: {list(self.background)}",
        )
        check(
            0.0 < self.white_border <= 1.0,
            f"white_border must be in (0, 1]. Received: {self.white_border}",
        )


@dataclasses.dataclass(frozen=True)
class DCGANTrainConfig:
    """The DCGAN training recipe (see `kerasr.training.dcgan`).

    Args:
        epochs: epochs to train.
        steps_per_epoch: training steps between the epoch-end outputs (grid, signals,
            generator file, checkpoint); 0 is one pass over the images.
        max_minutes: stop after the first epoch that ends past this wall time (0: no limit).
        batch_size: images per step.
        g_learning_rate: Adam learning rate of the generator.
        d_learning_rate: Adam learning rate of the discriminator.
        beta_1: Adam beta_1 (0.5 in DCGAN: less momentum for a moving target).
        beta_2: Adam beta_2.
        loss: `"hinge"` (SAGAN / BigGAN) or `"nonsaturating"` (the original GAN, logistic).
        label_smoothing: one-sided: real targets become `1 - label_smoothing`
            (non-saturating loss only).
        instance_noise: std of Gaussian noise added to every image the discriminator sees.
        diffaugment: DiffAugment policies applied to real and fake images (empty: off).
        ema_decay: decay of an exponential moving average of the generator's weights, updated
            after every step; grids, KID and the saved generators use it (0: off, the
            generator itself). The decay ramps up as `(1 + step) / (10 + step)` until it
            reaches this value, so that early averages do not hold the random start.
        init: starting generator of a new run: "" (random), a `.weights.h5` / `.keras`
            file or a registry name such as `pokemon-dcgan-64` (fine-tuning; the
            architecture must match `[model]`).
        seed: seeds the networks, the noise, the augmentations and the data order.
        jit_compile: compile the train step with XLA.
        grid_size: the fixed-noise sample grid is `grid_size x grid_size` images.
        kid_every: KID on EfficientNet-Lite0 features every this many epochs, when the
            `quality` extra is installed; the epoch with the lowest KID is the run's best.
            0 turns it off.
        best_nearest_ratio: an epoch can be the best only if its nearest-training ratio is at
            least this (0: no bound); KID alone rewards a generator that copies.
        best_copies: ... and its fraction of near copies at most this (1: no bound).
        keep_checkpoints: full checkpoints (both networks, both optimizers) kept for resuming;
            the generator of every epoch is kept separately.
    """

    epochs: int = 200
    steps_per_epoch: int = 0
    max_minutes: float = 0.0
    batch_size: int = 64
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    loss: Literal["hinge", "nonsaturating"] = "hinge"
    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    diffaugment: tuple[DiffAugmentPolicy, ...] = ("color", "translation", "cutout")
    ema_decay: float = 0.0
    init: str = ""
    seed: int = 0
    jit_compile: bool = True
    grid_size: int = 8
    kid_every: int = 10
    best_nearest_ratio: float = 0.0
    best_copies: float = 1.0
    keep_checkpoints: int = 3

    def __post_init__(self):
        check(self.epochs >= 1, f"epochs must be >= 1. Received: {self.epochs}")
        check(
            self.steps_per_epoch >= 0,
            f"steps_per_epoch must be >= 0. Received: {self.steps_per_epoch}",
        )
        check(self.max_minutes >= 0, f"max_minutes must be >= 0. Received: {self.max_minutes}")
        check(self.batch_size >= 1, f"batch_size must be >= 1. Received: {self.batch_size}")
        for key in ("g_learning_rate", "d_learning_rate"):
            check(getattr(self, key) > 0, f"{key} must be > 0. Received: {getattr(self, key)}")
        for key in ("beta_1", "beta_2"):
            check(
                0 <= getattr(self, key) < 1,
                f"{key} must be in [0, 1). Received: {getattr(self, key)}",
            )
        check(
            0 <= self.label_smoothing < 0.5,
            f"label_smoothing must be in [0, 0.5). Received: {self.label_smoothing}",
        )
        check(
            self.label_smoothing == 0 or self.loss == "nonsaturating",
            'label_smoothing needs loss = "nonsaturating" (hinge has no labels)',
        )
        check(
            self.instance_noise >= 0,
            f"instance_noise must be >= 0. Received: {self.instance_noise}",
        )
        check(
            len(set(self.diffaugment)) == len(self.diffaugment),
            f"diffaugment lists a policy twice. Received: {list(self.diffaugment)}",
        )
        check(
            0 <= self.ema_decay < 1,
            f"ema_decay must be in [0, 1). Received: {self.ema_decay}",
        )
        check(
            1 <= self.grid_size <= 16,
            f"grid_size must be in 1..16. Received: {self.grid_size}",
        )
        check(self.kid_every >= 0, f"kid_every must be >= 0. Received: {self.kid_every}")
        check(
            self.best_nearest_ratio >= 0,
            f"best_nearest_ratio must be >= 0. Received: {self.best_nearest_ratio}",
        )
        check(
            0 <= self.best_copies <= 1,
            f"best_copies must be in [0, 1]. Received: {self.best_copies}",
        )
        check(
            self.keep_checkpoints >= 1,
            f"keep_checkpoints must be >= 1. Received: {self.keep_checkpoints}",
        )


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
    """The whole Pokemon DCGAN recipe: `configs/pokemon_dcgan.toml`."""

    model: DCGANModelConfig = DCGANModelConfig()
    data: DCGANDataConfig = DCGANDataConfig()
    train: DCGANTrainConfig = DCGANTrainConfig()

"""Super-resolution recipes: PSNR pretraining and GAN training of an RRDBNet or compact
SRVGG generator.

`configs/esrgan_x4_psnr.toml` and `configs/esrgan_x4_gan.toml` follow the ESRGAN paper's
two stages, `configs/realesrnet_x4plus.toml` and `configs/realesrgan_x4plus.toml` the two
stages of Real-ESRGAN's x4plus recipe,
`configs/realesr_general_x4v3.toml` that recipe with Real-ESRGAN's compact generator.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from kerasr.config.data import DataConfig
from kerasr.config.loader import check


@dataclasses.dataclass(frozen=True)
class SRGeneratorConfig:
    """The generator. `kind = "rrdbnet"` (see `kerasr.models.RRDBNet`): the ESRGAN paper's
    and BasicSR's defaults (23 blocks; the enhanced-srgan PyTorch project uses a lighter 16).
    `kind = "srvgg"` (see `kerasr.models.SRVGGNetCompact`): Real-ESRGAN's
    compact network, read from `num_feat`, `num_conv` and `act_type` (the RRDB knobs are
    then unused); realesr-general-x4v3 is 64 features, 32 convolutions, PReLU."""

    kind: Literal["rrdbnet", "srvgg"] = "rrdbnet"
    scale: int = 4
    rrdb_channels: int = 64
    growth_channels: int = 32
    num_basic_blocks: int = 23
    num_dense_blocks: int = 3
    num_residual_blocks: int = 5
    residual_scaling: float = 0.2
    upsampler: Literal["nearest", "subpixel"] = "nearest"
    num_feat: int = 64
    num_conv: int = 32
    act_type: Literal["prelu", "relu", "leakyrelu"] = "prelu"

    def network(self) -> tuple[str, dict]:
        """The registry kind and constructor arguments of the network
        (`kerasr.weights.networks.build_network(kind, **arguments)`)."""
        if self.kind == "srvgg":
            return "srvgg", {
                "num_feat": self.num_feat,
                "num_conv": self.num_conv,
                "upscale": self.scale,
                "act_type": self.act_type,
            }
        return "rrdbnet", {
            "scale": self.scale,
            "rrdb_channels": self.rrdb_channels,
            "growth_channels": self.growth_channels,
            "num_basic_blocks": self.num_basic_blocks,
            "num_dense_blocks": self.num_dense_blocks,
            "num_residual_blocks": self.num_residual_blocks,
            "residual_scaling": self.residual_scaling,
            "upsampler": self.upsampler,
        }

    def __post_init__(self):
        if self.kind == "srvgg":
            check(self.scale in (1, 2, 3, 4), f"scale must be 1, 2, 3 or 4. Received: {self.scale}")
            check(self.num_feat >= 1, f"num_feat must be >= 1. Received: {self.num_feat}")
            check(self.num_conv >= 0, f"num_conv must be >= 0. Received: {self.num_conv}")
            return
        check(self.scale in (1, 2, 4), f"scale must be 1, 2 or 4. Received: {self.scale}")
        for key in (
            "rrdb_channels",
            "growth_channels",
            "num_basic_blocks",
            "num_dense_blocks",
            "num_residual_blocks",
        ):
            value = getattr(self, key)
            check(value >= 1, f"{key} must be >= 1. Received: {value}")


@dataclasses.dataclass(frozen=True)
class SRDiscriminatorConfig:
    """The discriminator: ESRGAN's VGG-style classifier or Real-ESRGAN's U-Net.

    `vgg_blk_ch`: output channels of each convolution, in pairs (3x3, then 4x4 stride 2 that
    halves the resolution); the default is BasicSR's `VGGStyleDiscriminator` for 128 px
    patches. `fc_features`: hidden dense layers. `unet_features`: base channels of the U-Net;
    `spectral_norm` applies to it.
    """

    kind: Literal["vgg", "unet"] = "vgg"
    vgg_blk_ch: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    fc_features: tuple[int, ...] = (100,)
    unet_features: int = 64
    spectral_norm: bool = True

    def network(self) -> tuple[str, dict]:
        """The registry kind and constructor arguments of the network
        (`kerasr.weights.networks.build_network(kind, **arguments)`)."""
        if self.kind == "vgg":
            return "vgg_discriminator", {
                "vgg_blk_ch": self.vgg_blk_ch,
                "fc_features": self.fc_features,
            }
        return "unet_discriminator", {
            "features": self.unet_features,
            "spectral_norm": self.spectral_norm,
        }

    def __post_init__(self):
        check(
            len(self.vgg_blk_ch) >= 1 and all(c >= 1 for c in self.vgg_blk_ch),
            f"vgg_blk_ch must be positive channel counts. Received: {list(self.vgg_blk_ch)}",
        )
        check(
            all(f >= 1 for f in self.fc_features),
            f"fc_features must be positive. Received: {list(self.fc_features)}",
        )
        check(
            self.unet_features >= 1,
            f"unet_features must be >= 1. Received: {self.unet_features}",
        )


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
    """Perceptual loss: distances between VGG features taken before their ReLU (ESRGAN).

    `layer_weights` maps layer names (`conv5_4`, `conv3_1`...) to weights. `weights` is
    `"imagenet"` (Keras' download, VGG16/19 only), `"none"` (random: tests only) or a local
    weights file (Keras `.h5`, or torchvision's `.pth`, BasicSR's, with `input_norm =
    "torchvision"`). `normalize_input` applies the preprocessing the weights were trained with;
    `normalize_loss` divides by the sum of the layer weights. `input_norm` is what
    `normalize_input` does, and must match the weights: `"caffe"` (BGR, 0..255, channel means
    removed) for Keras' ImageNet weights, converted from the original Caffe VGG; `"torchvision"`
    (RGB `(x - mean) / std`) for torchvision's VGG weights, which BasicSR loads.
    """

    vgg_type: Literal["vgg11", "vgg13", "vgg16", "vgg19"] = "vgg19"
    layer_weights: dict[str, float] = dataclasses.field(default_factory=lambda: {"conv5_4": 1.0})
    criterion: Literal["l1", "l2"] = "l1"
    normalize_input: bool = True
    normalize_loss: bool = False
    weights: str = "imagenet"
    input_norm: Literal["caffe", "torchvision"] = "caffe"

    def __post_init__(self):
        # Which names are layers of `vgg_type` is the network's table (`kerasr.models.vgg`);
        # training checks them before it starts.
        check(bool(self.layer_weights), "layer_weights must name at least one layer")
        check(
            all(w >= 0 for w in self.layer_weights.values()),
            "layer_weights must be >= 0",
        )
        check(
            self.weights in ("imagenet", "none") or not self.weights.startswith("http"),
            f"weights must be imagenet, none or a local file. Received: {self.weights}",
        )
        check(
            not self.weights.endswith((".pth", ".pt")) or self.input_norm == "torchvision",
            f"weights: {self.weights} is a PyTorch (torchvision) VGG; it expects "
            'perceptual.input_norm = "torchvision"',
        )
        check(
            self.weights != "imagenet" or self.vgg_type in ("vgg16", "vgg19"),
            f"weights: Keras ships ImageNet weights for vgg16 and vgg19 only; for "
            f"{self.vgg_type} use a local weights file",
        )


@dataclasses.dataclass(frozen=True)
class SRLossConfig:
    """Loss terms. Pretraining uses the pixel loss alone (weight 1); the GAN stage adds
    `perceptual_weight * perceptual + gan_weight * adversarial + pixel_weight * pixel`.

    `gan_type`: `"relativistic"` (ESRGAN's relativistic average GAN) or `"vanilla"`
    (Real-ESRGAN, binary cross-entropy per U-Net pixel).

    `relativistic_detach`: the discriminator's relativistic loss as BasicSR computes it (the
    default): in two halves, each with the other side's mean logit held constant. `false` is
    the original 2018 ESRGAN code, where the gradient also flows through both means (and
    the discriminator sees the SR batch once per step instead of twice).

    `l1_gt_usm`, `percep_gt_usm`, `gan_gt_usm` (Real-ESRGAN's switches, x4plus values): which
    losses compare against the unsharp-masked GT rather than the GT itself. They apply when
    the data recipe sharpens (`data.degradation.kind = "realesrgan"`, with its `usm_*`
    parameters), also to paired data, as Real-ESRGAN's `feed_data`; the bicubic recipe
    (ESRGAN) never sharpens. Pretraining uses `l1_gt_usm` (Real-ESRNet's `gt_usm`), on
    synthesised pairs only, as Real-ESRNet.
    """

    pixel: Literal["l1", "l2", "charbonnier"] = "l1"
    pixel_weight: float = 1e-2
    perceptual_weight: float = 1.0
    gan_type: Literal["relativistic", "vanilla"] = "relativistic"
    gan_weight: float = 5e-3
    relativistic_detach: bool = True
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False

    def __post_init__(self):
        for key in ("pixel_weight", "perceptual_weight", "gan_weight"):
            check(getattr(self, key) >= 0, f"{key} must be >= 0. Received: {getattr(self, key)}")


@dataclasses.dataclass(frozen=True)
class SROptimConfig:
    """Adam with a step schedule: the rate is multiplied by `gamma` at each milestone step."""

    learning_rate: float = 2e-4
    beta_1: float = 0.9
    beta_2: float = 0.99
    milestones: tuple[int, ...] = (200_000, 400_000, 600_000, 800_000)
    gamma: float = 0.5
    # PyTorch's Adam epsilon, added after the bias correction of sqrt(v) (kerasr's TorchAdam).
    epsilon: float = 1e-8

    def __post_init__(self):
        check(self.learning_rate > 0, f"learning_rate must be > 0. Received: {self.learning_rate}")
        check(self.epsilon > 0, f"epsilon must be > 0. Received: {self.epsilon}")
        for key in ("beta_1", "beta_2"):
            value = getattr(self, key)
            check(0 <= value < 1, f"{key} must be in [0, 1). Received: {value}")
        check(
            list(self.milestones) == sorted(set(self.milestones)) and all(self.milestones),
            f"milestones must be increasing positive steps. Received: {list(self.milestones)}",
        )
        check(0 < self.gamma <= 1, f"gamma must be in (0, 1]. Received: {self.gamma}")


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Memory support (the "memory supported" training of the ESRGAN Upresser project): keep
    the last good generator state, roll back on a blow-up.

    Every `check_every` steps the generator loss is compared with its running mean (an
    exponential mean with `momentum`); `patience` checks in a row above `factor` times that
    mean, or one NaN / Inf, restore the remembered weights and optimizer moments and
    multiply the learning rates by `lr_factor`. A good state is remembered every
    `remember_every` healthy checks.
    """

    enabled: bool = True
    check_every: int = 10
    factor: float = 3.0
    patience: int = 3
    momentum: float = 0.9
    remember_every: int = 5
    lr_factor: float = 0.5
    warmup_checks: int = 5

    def __post_init__(self):
        check(self.check_every >= 1, f"check_every must be >= 1. Received: {self.check_every}")
        check(self.factor > 1, f"factor must be > 1. Received: {self.factor}")
        check(self.patience >= 1, f"patience must be >= 1. Received: {self.patience}")
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1). Received: {self.momentum}")
        check(
            self.remember_every >= 1,
            f"remember_every must be >= 1. Received: {self.remember_every}",
        )
        check(
            0 < self.lr_factor <= 1,
            f"lr_factor must be in (0, 1]. Received: {self.lr_factor}",
        )
        check(self.warmup_checks >= 0, "warmup_checks must be >= 0")


@dataclasses.dataclass(frozen=True)
class SRTrainConfig:
    """The training loop.

    Args:
        steps: total optimisation steps (one G update, and in the GAN stage one D update).
        max_minutes: also stop after this wall time (0: no limit); a checkpoint is written.
        init: starting generator: "" (random, or the checkpoint when resuming), a
            `kerasr pretrain` run folder, a `.weights.h5` / `.keras` file or a registry name
            such as `realesrgan-x4plus` (fine-tuning).
        ema_decay: generator EMA decay (0: off); the EMA is validated and exported.
        jit_compile: compile the train step with XLA: true, false or "auto" (on with a
            GPU or TPU, off on a CPU, where TensorFlow's oneDNN kernels run the step faster
            than XLA's; `bench/train.py` measures both).
        precision: `float32`, `mixed_bfloat16` or `mixed_float16` (with loss scaling).
        checkpoint_every, keep_checkpoints: checkpoint cadence and how many are kept.
        log_every: TensorBoard scalars cadence; val_every: validation cadence;
        image_every: LR | SR | HR grid cadence (also the frames of the final GIF).
        val_images: validation images used (0: all).
        seed: seeds the networks and the data order.
        net_d_iters, net_d_init_iters: the GAN stage updates the generator at step `t`
            (counted from 1) only when `t % net_d_iters == 0` and `t > net_d_init_iters`; the
            discriminator is updated at every step. BasicSR's options and defaults (1, 0:
            both networks at every step); `net_d_init_iters` warms the discriminator up.
    """

    steps: int = 400_000
    max_minutes: float = 0.0
    init: str = ""
    ema_decay: float = 0.0
    jit_compile: bool | Literal["auto"] = "auto"
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    log_every: int = 100
    val_every: int = 5000
    image_every: int = 5000
    val_images: int = 0
    seed: int = 0
    net_d_iters: int = 1
    net_d_init_iters: int = 0

    def __post_init__(self):
        check(self.steps >= 1, f"steps must be >= 1. Received: {self.steps}")
        check(self.max_minutes >= 0, f"max_minutes must be >= 0. Received: {self.max_minutes}")
        check(
            0 <= self.ema_decay < 1,
            f"ema_decay must be in [0, 1). Received: {self.ema_decay}",
        )
        for key in (
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "val_every",
            "image_every",
        ):
            check(getattr(self, key) >= 1, f"{key} must be >= 1. Received: {getattr(self, key)}")
        check(self.val_images >= 0, f"val_images must be >= 0. Received: {self.val_images}")
        check(self.net_d_iters >= 1, f"net_d_iters must be >= 1. Received: {self.net_d_iters}")
        check(
            self.net_d_init_iters >= 0,
            f"net_d_init_iters must be >= 0. Received: {self.net_d_init_iters}",
        )


@dataclasses.dataclass(frozen=True)
class SRRecipe:
    """A super-resolution training recipe: `configs/esrgan_x4_psnr.toml` and friends.

    `kerasr pretrain` uses data, generator, g_optim, loss.pixel, train and memory;
    `kerasr train-gan` uses every table.
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    generator: SRGeneratorConfig = SRGeneratorConfig()
    discriminator: SRDiscriminatorConfig = SRDiscriminatorConfig()
    perceptual: PerceptualConfig = PerceptualConfig()
    loss: SRLossConfig = SRLossConfig()
    g_optim: SROptimConfig = SROptimConfig()
    d_optim: SROptimConfig = SROptimConfig(learning_rate=1e-4)
    train: SRTrainConfig = SRTrainConfig()
    memory: MemoryConfig = MemoryConfig()

    def __post_init__(self):
        check(
            self.data.scale == self.generator.scale,
            f"data.scale ({self.data.scale}) and generator.scale ({self.generator.scale}) "
            "must be equal",
        )
        check(
            self.data.patch_size // self.data.scale >= 4,
            f"data.patch_size must be at least 4 LR pixels. Received: {self.data.patch_size}",
        )
        # SSIM's 11x11 window must fit in the validation patch once `scale` pixels are
        # cropped from each border.
        check(
            not self.data.val_source or self.data.patch_size - 2 * self.data.scale >= 11,
            f"data.patch_size must be at least {11 + 2 * self.data.scale} for validation "
            f"(SSIM window 11 after a border of {self.data.scale}). "
            f"Received: {self.data.patch_size}",
        )

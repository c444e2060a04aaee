"""Data settings: where training pairs come from, how they are cut, augmented and degraded.

`DataConfig` is the `[data]` table of a super-resolution recipe (`configs/esrgan_x4_psnr.toml`)
and the whole of a data-only file (`configs/data_realesrgan_x4plus.toml`, read by
`kerasr degrade` and `load_data_config`). The degradation defaults are Real-ESRGAN's x4plus
recipe (`options/train_realesrgan_x4plus.yml`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from kerasr.config.loader import apply_override, check, from_dict, read_toml

# The blur kernel families of Real-ESRGAN. `kerasr.data.kernels` numbers them by their index
# here (odd = anisotropic: two widths and a rotation), so the order matters.
KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)


def _check_range(name: str, pair: tuple[float, float], low: float, high: float) -> None:
    check(
        low <= pair[0] <= pair[1] <= high,
        f"'{name}' must be [min, max] with {low} <= min <= max <= {high}. Received: {list(pair)}",
    )


def _check_prob(name: str, p: float) -> None:
    check(0.0 <= p <= 1.0, f"'{name}' must be a probability in [0, 1]. Received: {p}")


def _check_probs(name: str, probs: tuple[float, ...], n: int) -> None:
    check(
        len(probs) == n and all(p >= 0 for p in probs) and sum(probs) > 0,
        f"'{name}' must be {n} non-negative weights, not all zero. Received: {list(probs)}",
    )


@dataclasses.dataclass(frozen=True)
class BlurConfig:
    """Random blur kernels of one degradation stage (Real-ESRGAN `kernel_list` & co).

    Kernel sizes are odd and drawn uniformly from `kernel_range`; `sinc_prob` replaces the
    kernel by a 2-D sinc (ringing) kernel. `betag_range` / `betap_range` are the shape
    exponents of the generalized Gaussian and plateau kernels.
    """

    kernel_range: tuple[int, int] = (7, 21)
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    sigma_range: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)

    def __post_init__(self):
        lo, hi = self.kernel_range
        check(
            lo % 2 == 1 and hi % 2 == 1 and 1 <= lo <= hi <= 41,
            f"'kernel_range' must be two odd sizes 1 <= min <= max <= 41. Received: {[lo, hi]}",
        )
        bad = [k for k in self.kernel_list if k not in KERNEL_TYPES]
        check(
            not bad and self.kernel_list,
            f"'kernel_list' items must be among {', '.join(KERNEL_TYPES)}. Received: {bad}",
        )
        _check_probs("kernel_prob", self.kernel_prob, len(self.kernel_list))
        _check_prob("sinc_prob", self.sinc_prob)
        _check_range("sigma_range", self.sigma_range, 1e-3, 100.0)
        _check_range("betag_range", self.betag_range, 1e-2, 100.0)
        _check_range("betap_range", self.betap_range, 1e-2, 100.0)


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One stage of Real-ESRGAN's degradation: blur, resize, noise, JPEG.

    `resize_prob` weighs (up, down, keep); the scale is drawn in [1, resize_range[1]] for
    up and [resize_range[0], 1] for down. Noise is Gaussian with `gaussian_noise_prob`,
    Poisson otherwise, grey (same on all channels) with `gray_noise_prob`.
    Noise sigmas are on the 0-255 scale, as in the Real-ESRGAN options.
    """

    blur_prob: float = 1.0
    blur: BlurConfig = BlurConfig()
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_modes: tuple[str, ...] = ("area", "bilinear", "bicubic")
    gaussian_noise_prob: float = 0.5
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)

    def __post_init__(self):
        _check_prob("blur_prob", self.blur_prob)
        _check_probs("resize_prob", self.resize_prob, 3)
        lo, hi = self.resize_range
        check(
            0.01 <= lo <= 1.0 <= hi <= 4.0,
            f"'resize_range' must be [min, max] with 0.01 <= min <= 1 <= max <= 4. "
            f"Received: {[lo, hi]}",
        )
        bad = [m for m in self.resize_modes if m not in ("area", "bilinear", "bicubic")]
        check(
            not bad and self.resize_modes,
            f"'resize_modes' items must be among area, bilinear, bicubic. Received: {bad}",
        )
        _check_prob("gaussian_noise_prob", self.gaussian_noise_prob)
        _check_range("noise_range", self.noise_range, 0.0, 255.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, 0.0, 100.0)
        _check_prob("gray_noise_prob", self.gray_noise_prob)
        _check_range("jpeg_range", self.jpeg_range, 1, 100)


# Real-ESRGAN x4plus, second stage: milder blur, resize and noise, blur not always applied.
# Subclasses rather than instances, so that a TOML table that sets one key of stage 2 keeps
# the stage-2 defaults for the others.
@dataclasses.dataclass(frozen=True)
class Blur2Config(BlurConfig):
    """`BlurConfig` with the defaults of Real-ESRGAN's second stage."""

    sigma_range: tuple[float, float] = (0.2, 1.5)


@dataclasses.dataclass(frozen=True)
class Stage2Config(StageConfig):
    """`StageConfig` with the defaults of Real-ESRGAN's second stage."""

    blur_prob: float = 0.8
    blur: Blur2Config = Blur2Config()
    resize_prob: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range: tuple[float, float] = (0.3, 1.2)
    noise_range: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range: tuple[float, float] = (0.05, 2.5)


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """How LR images are made from HR ones.

    `kind = "bicubic"` is the classic ESRGAN setting (antialiased bicubic downscaling);
    `kind = "realesrgan"` is the second-order pipeline of Real-ESRGAN with the defaults of
    its x4plus training options (`options/train_realesrgan_x4plus.yml`), except
    `crop_pad_size` (0 here, 400 in the Real-ESRGAN recipes: see its comment).

    Reference: Wang et al., Real-ESRGAN, https://arxiv.org/abs/2107.10833
    """

    kind: Literal["bicubic", "realesrgan"] = "realesrgan"
    stage1: StageConfig = StageConfig()
    stage2: Stage2Config = Stage2Config()
    # The last step: resize to the LR size followed by a sinc filter, and JPEG, in random order.
    final_sinc_prob: float = 0.8
    final_kernel_range: tuple[int, int] = (7, 21)
    # Unsharp masking (Real-ESRGAN's USMSharp): the degradations start from the sharpened GT;
    # which losses compare against it is `loss.l1_gt_usm` / `percep_gt_usm` / `gan_gt_usm`.
    usm_weight: float = 0.5
    usm_radius: int = 50
    usm_threshold: float = 10.0
    # Exact Poisson sampling is ~10x slower on CPU than its Gaussian approximation
    # N(lambda, lambda), which differs only for the darkest pixels.
    poisson_exact: bool = False
    # BasicSR draws one grey Gaussian noise field for the whole batch (each grey sample scales
    # it by its own sigma); false draws one per sample, so grey-noise samples of a batch do
    # not share a pattern.
    shared_gray_noise: bool = True
    # Real-ESRGAN draws resize and noise type once per batch; this pool of degraded pairs
    # (its `queue_size`) mixes batches so that a batch sees several of them. 0 disables it.
    pool_size: int = 180
    # true: the tf.data pipeline yields (HR, HR) and the train step calls `degrade_batch`
    # on the accelerator, as Real-ESRGAN does on GPU.
    on_device: bool = False
    # Real-ESRGAN crops (or reflect-pads) each HR image to 400 px, degrades it whole and only
    # then cuts the training patch: the patch's blur, resize and noise see real neighbours,
    # not the image's padded edge, and the Poisson level count is the 400 px image's.
    # 0 cuts the patch first and degrades only the patch: (256 / 400)^2 = 41% of the work.
    # The Real-ESRGAN recipes set 400.
    crop_pad_size: int = 0

    def __post_init__(self):
        _check_prob("final_sinc_prob", self.final_sinc_prob)
        lo, hi = self.final_kernel_range
        check(
            lo % 2 == 1 and hi % 2 == 1 and 1 <= lo <= hi <= 41,
            f"'final_kernel_range' must be two odd sizes. Received: {[lo, hi]}",
        )
        check(self.usm_radius >= 1, f"'usm_radius' must be >= 1. Received: {self.usm_radius}")
        check(self.usm_weight >= 0, f"'usm_weight' must be >= 0. Received: {self.usm_weight}")
        check(self.pool_size >= 0, f"'pool_size' must be >= 0. Received: {self.pool_size}")
        check(
            self.crop_pad_size >= 0,
            f"'crop_pad_size' must be >= 0. Received: {self.crop_pad_size}",
        )
        check(
            not (self.on_device and self.crop_pad_size),
            "'crop_pad_size' must be 0 with on_device = true (the train step degrades the "
            f"patch itself). Received: crop_pad_size={self.crop_pad_size}",
        )


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Paired augmentations, applied to training pairs only.

    Flips and transpose act on LR and HR alike (together they give all eight rotations and
    reflections); JPEG and coarse dropout act on the LR only. Dropout holes are squares
    whose side is a fraction (`dropout_size`) of the LR side, filled with 0.
    """

    hflip_prob: float = 0.5
    vflip_prob: float = 0.5
    transpose_prob: float = 0.5
    jpeg_prob: float = 0.25
    jpeg_range: tuple[int, int] = (50, 95)
    dropout_prob: float = 0.25
    dropout_holes: tuple[int, int] = (1, 4)
    dropout_size: tuple[float, float] = (0.05, 0.15)

    def __post_init__(self):
        for name in ("hflip_prob", "vflip_prob", "transpose_prob", "jpeg_prob", "dropout_prob"):
            _check_prob(name, getattr(self, name))
        _check_range("jpeg_range", self.jpeg_range, 1, 100)
        _check_range("dropout_holes", self.dropout_holes, 1, 64)
        _check_range("dropout_size", self.dropout_size, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training pairs come from and how they are cut.

    `source` is a folder of HR images, or `tfds:NAME` (e.g. `tfds:div2k/bicubic_x4`, read
    from `data_dir`). With `lr_source`, LR images come from that folder, matched to HR files
    by stem (`0001x4.png` matches `0001.png`), and no degradation is applied.
    `val_source` / `val_lr_source` are the same for validation ("" = no validation set;
    for TFDS, `val_source = "tfds:NAME"` reads the `validation` split).
    `patch_size` is the HR patch side and must be a multiple of `scale`.
    `small_images` decides what happens to an image smaller than a patch.
    """

    source: str = ""
    lr_source: str = ""
    val_source: str = ""
    val_lr_source: str = ""
    data_dir: str = ""
    scale: int = 4
    patch_size: int = 256
    batch_size: int = 16
    val_batch_size: int = 1
    seed: int = 0
    small_images: Literal["skip", "upsample"] = "skip"
    shuffle_buffer: int = 1024
    cache: bool = False
    # Random crops taken from each decoded image. Decoding a photo costs more than degrading
    # its patch (Real-ESRGAN pre-cuts its dataset into 400x400 sub-images for the same
    # reason); >1 spreads that cost, and the pair pool mixes the crops across batches.
    patches_per_image: int = 1
    augment: AugmentConfig = AugmentConfig()
    degradation: DegradationConfig = DegradationConfig()

    def __post_init__(self):
        check(
            self.scale in (1, 2, 3, 4, 8),
            f"'scale' must be 1, 2, 3, 4 or 8. Received: {self.scale}",
        )
        check(
            self.patch_size > 0 and self.patch_size % self.scale == 0,
            f"'patch_size' must be a positive multiple of scale={self.scale}. "
            f"Received: patch_size={self.patch_size}",
        )
        check(self.batch_size >= 1, f"'batch_size' must be >= 1. Received: {self.batch_size}")
        check(
            self.val_batch_size >= 1,
            f"'val_batch_size' must be >= 1. Received: {self.val_batch_size}",
        )
        check(
            self.shuffle_buffer >= 1,
            f"'shuffle_buffer' must be >= 1. Received: {self.shuffle_buffer}",
        )
        check(
            self.patches_per_image >= 1,
            f"'patches_per_image' must be >= 1. Received: {self.patches_per_image}",
        )
        pre = self.degradation.crop_pad_size
        check(
            pre == 0 or (pre >= self.patch_size and pre % self.scale == 0),
            f"'degradation.crop_pad_size' must be 0 or a multiple of scale={self.scale} "
            f"at least patch_size={self.patch_size}. Received: {pre}",
        )
        check(
            not (self.lr_source and self.source.startswith("tfds:")),
            "'lr_source' cannot be used with a tfds: source (TFDS pairs come from the dataset)",
        )


def load_data_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> DataConfig:
    """Reads a `DataConfig` from a TOML file: its `[data]` table when it has one (a full
    training recipe), else the whole file; then applies `key=value` overrides (an optional
    `data.` prefix on the keys is accepted).

    Raises:
        ConfigError: as `load_config`.
    """
    table = read_toml(path) if path is not None else {}
    if isinstance(table.get("data"), dict):
        table = table["data"]
    for item in overrides:
        apply_override(table, item.removeprefix("data."))
    return from_dict(DataConfig, table, "data")

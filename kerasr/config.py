"""Typed run configuration: frozen dataclasses, TOML files and `--set a.b=c` overrides.

A recipe is a tree of frozen dataclasses. `load_config(Recipe, "configs/x.toml", ["a.b=3"])`
reads the file, applies the overrides, converts every value to the annotated type and
raises `ConfigError` (one line, naming the valid keys) on an unknown key or a bad value.
This module never imports Keras or TensorFlow, so it is cheap to use from the CLI.

Example:

    @dataclasses.dataclass(frozen=True)
    class Optim:
        lr: float = 2e-4
        milestones: tuple[int, ...] = (200_000,)

    @dataclasses.dataclass(frozen=True)
    class Recipe:
        optim: Optim = Optim()

    cfg = load_config(Recipe, overrides=["optim.lr=1e-4"])
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from kerasr.errors import KerasrError

T = TypeVar("T")


class ConfigError(KerasrError):
    """A configuration file, key or value that cannot be used."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Builds a `cls` instance from an optional TOML file and `key.path=value` overrides.

    Args:
        cls: a (frozen) dataclass type; nested dataclass fields become TOML tables.
        path: a TOML file; `None` uses the dataclass defaults.
        overrides: strings such as `"train.batch_size=8"`; values are read as TOML literals
            (`8`, `1e-4`, `true`, `[1, 2]`, `"text"`), and anything that is not one is a string.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: on a missing or malformed file, an unknown key or a value of the wrong type.
    """
    data = read_toml(path) if path is not None else {}
    for item in overrides:
        _apply_override(data, item)
    return from_dict(cls, data)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Reads a TOML file; `ConfigError` if it is missing, unreadable or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Converts a nested mapping to the dataclass `cls`, checking keys and types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{where}] must be a table. Received: {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(where, unknown[0])
        raise ConfigError(
            f"unknown config key '{key}'; valid keys{_in(where)}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config{_in(where)}: {e}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """The inverse of `from_dict`: a plain nested dict (tuples become lists), for TOML/JSON."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def to_toml(config: Any) -> str:
    """Renders a configuration as TOML text (for run folders and TensorBoard)."""
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if scalars and prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items() if v is not None)
        if scalars:
            lines.append("")
        for k, v in tables.items():
            emit(v, _join(prefix, k))

    emit(to_dict(config), "")
    return "\n".join(lines)


def check(condition: bool, message: str) -> None:
    """Raises `ConfigError(message)` unless `condition`; for dataclass `__post_init__` checks."""
    if not condition:
        raise ConfigError(message)


def _apply_override(data: dict[str, Any], item: str) -> None:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override must look like section.key=value. Received: {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{key}': '{part}' is a value, not a table")
        node = child
    node[leaf] = value


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"'{where}' must be one of {choices}. Received: {value!r}")
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"'{where}' must be a list. Received: {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"'{where}' must have {len(args)} items. Received: {value!r}")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{where}' must be a table. Received: {value!r}")
        return {
            _convert(args[0], k, where): _convert(args[1], v, _join(where, k))
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"'{where}' must be true or false. Received: {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"'{where}' must be an integer. Received: {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"'{where}' must be a number. Received: {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"'{where}' must be a string. Received: {value!r}")
    if tp is Any:
        return value
    raise TypeError(f"kerasr.config cannot convert to {tp!r} (at '{where}')")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _in(where: str) -> str:
    return f" in [{where}]" if where else ""


# --- data pipeline configuration (issue 7) ---


_KERNEL_TYPES = (
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
    kernel_list: tuple[str, ...] = _KERNEL_TYPES
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
        bad = [k for k in self.kernel_list if k not in _KERNEL_TYPES]
        check(
            not bad and self.kernel_list,
            f"'kernel_list' items must be among {', '.join(_KERNEL_TYPES)}. Received: {bad}",
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
    its x4plus training options (`options/train_realesrgan_x4plus.yml`).

    Reference: Wang et al., Real-ESRGAN, https://arxiv.org/abs/2107.10833
    """

    kind: Literal["bicubic", "realesrgan"] = "realesrgan"
    stage1: StageConfig = StageConfig()
    stage2: Stage2Config = Stage2Config()
    # The last step: resize to the LR size followed by a sinc filter, and JPEG, in random order.
    final_sinc_prob: float = 0.8
    final_kernel_range: tuple[int, int] = (7, 21)
    # Unsharp masking of the GT (Real-ESRGAN trains x4plus against the sharpened GT).
    sharpen_gt: bool = True
    usm_weight: float = 0.5
    usm_radius: int = 50
    usm_threshold: float = 10.0
    # Exact Poisson sampling is ~10x slower on CPU than its Gaussian approximation
    # N(lambda, lambda), which differs only for the darkest pixels.
    poisson_exact: bool = False
    # Real-ESRGAN draws resize and noise type once per batch; this pool of degraded pairs
    # (its `queue_size`) mixes batches so that a batch sees several of them. 0 disables it.
    pool_size: int = 180
    # true: the tf.data pipeline yields (HR, HR) and the train step calls `degrade_batch`
    # on the accelerator, as Real-ESRGAN does on GPU.
    on_device: bool = False

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
        _apply_override(table, item.removeprefix("data."))
    return from_dict(DataConfig, table, "data")


# --- DCGAN configuration (issue 5) ---


DiffAugmentPolicy = Literal["color", "translation", "cutout"]


@dataclasses.dataclass(frozen=True)
class DCGANModelConfig:
    """The DCGAN networks (see `kerasr.models.dcgan`).

    Args:
        image_size: generated image side: a power of two from 8 to 256 (64 or 128 for sprites).
        latent_dim: length of the generator's latent vector.
        g_filters: generator channels at the widest resolution (doubling towards 4x4).
        d_filters: discriminator channels of its first convolution (doubling towards 4x4).
        max_filters: channel cap of both networks.
        spectral_norm: spectral normalisation on every discriminator weight layer.
        d_batch_norm: batch norm in the discriminator (DCGAN paper), after each convolution
            but the first.
    """

    image_size: int = 64
    latent_dim: int = 128
    g_filters: int = 64
    d_filters: int = 64
    max_filters: int = 512
    spectral_norm: bool = True
    d_batch_norm: bool = False

    def __post_init__(self):
        size = self.image_size
        check(
            8 <= size <= 256 and size & (size - 1) == 0,
            f"model.image_size must be a power of two from 8 to 256. Received: {size}",
        )
        check(self.latent_dim >= 1, f"model.latent_dim must be >= 1. Received: {self.latent_dim}")
        for key in ("g_filters", "d_filters"):
            value = getattr(self, key)
            check(
                1 <= value <= self.max_filters,
                f"model.{key} must be in 1..max_filters ({self.max_filters}). Received: {value}",
            )


@dataclasses.dataclass(frozen=True)
class DCGANDataConfig:
    """The sprite folder and how it is read (see `kerasr.data.sprites`).

    Args:
        folder: a folder of images; the CLI's DATA argument overrides it.
        background: RGB colour composited behind transparent pixels (white, as in seed 004).
        white_background_only: train on the images whose border is white only.
        white_border: fraction of border pixels that must be white for that filter.
        flip: random horizontal flips.
        cache: cache the decoded images in `tf.data`.
    """

    folder: str = ""
    background: tuple[int, int, int] = (255, 255, 255)
    white_background_only: bool = False
    white_border: float = 0.99
    flip: bool = True
    cache: bool = True

    def __post_init__(self):
        check(
            all(0 <= c <= 255 for c in self.background),
            f"data.background must be three values in 0..255. Received: {list(self.background)}",
        )
        check(
            0.0 < self.white_border <= 1.0,
            f"data.white_border must be in (0, 1]. Received: {self.white_border}",
        )


@dataclasses.dataclass(frozen=True)
class DCGANTrainConfig:
    """The DCGAN training recipe (see `kerasr.training.dcgan`).

    Args:
        epochs: passes over the data.
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
        seed: seeds the networks, the noise, the augmentations and the data order.
        jit_compile: compile the train step with XLA.
        grid_size: the fixed-noise sample grid is `grid_size x grid_size` images.
        kid_every: compute KID every this many epochs (and at the end) when the ImageNet
            Inception weights are on disk; 0 turns it off.
        keep_checkpoints: full checkpoints (both networks, both optimizers) kept for resuming;
            the generator of every epoch is kept separately.
    """

    epochs: int = 200
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
    seed: int = 0
    jit_compile: bool = True
    grid_size: int = 8
    kid_every: int = 10
    keep_checkpoints: int = 3

    def __post_init__(self):
        check(self.epochs >= 1, f"train.epochs must be >= 1. Received: {self.epochs}")
        check(
            self.max_minutes >= 0, f"train.max_minutes must be >= 0. Received: {self.max_minutes}"
        )
        check(self.batch_size >= 1, f"train.batch_size must be >= 1. Received: {self.batch_size}")
        for key in ("g_learning_rate", "d_learning_rate"):
            check(
                getattr(self, key) > 0, f"train.{key} must be > 0. Received: {getattr(self, key)}"
            )
        for key in ("beta_1", "beta_2"):
            check(
                0 <= getattr(self, key) < 1,
                f"train.{key} must be in [0, 1). Received: {getattr(self, key)}",
            )
        check(
            0 <= self.label_smoothing < 0.5,
            f"train.label_smoothing must be in [0, 0.5). Received: {self.label_smoothing}",
        )
        check(
            self.label_smoothing == 0 or self.loss == "nonsaturating",
            'train.label_smoothing needs train.loss = "nonsaturating" (hinge has no labels)',
        )
        check(
            self.instance_noise >= 0,
            f"train.instance_noise must be >= 0. Received: {self.instance_noise}",
        )
        check(
            len(set(self.diffaugment)) == len(self.diffaugment),
            f"train.diffaugment lists a policy twice. Received: {list(self.diffaugment)}",
        )
        check(
            1 <= self.grid_size <= 16,
            f"train.grid_size must be in 1..16. Received: {self.grid_size}",
        )
        check(self.kid_every >= 0, f"train.kid_every must be >= 0. Received: {self.kid_every}")
        check(
            self.keep_checkpoints >= 1,
            f"train.keep_checkpoints must be >= 1. Received: {self.keep_checkpoints}",
        )


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
    """The whole Pokemon DCGAN recipe: `configs/pokemon_dcgan.toml`."""

    model: DCGANModelConfig = DCGANModelConfig()
    data: DCGANDataConfig = DCGANDataConfig()
    train: DCGANTrainConfig = DCGANTrainConfig()


# --- training configuration (issue 3) ---


@dataclasses.dataclass(frozen=True)
class SRGeneratorConfig:
    """The RRDBNet generator (see `kerasr.models.RRDBNet`); ESRGAN defaults but 16 blocks
    as in seed 001 (the paper and Real-ESRGAN use 23)."""

    scale: int = 4
    rrdb_channels: int = 64
    growth_channels: int = 32
    num_basic_blocks: int = 16
    num_dense_blocks: int = 3
    num_residual_blocks: int = 5
    residual_scaling: float = 0.2
    upsampler: Literal["nearest", "subpixel"] = "nearest"

    def __post_init__(self):
        check(self.scale in (1, 2, 4), f"generator.scale must be 1, 2 or 4. Received: {self.scale}")
        for key in (
            "rrdb_channels",
            "growth_channels",
            "num_basic_blocks",
            "num_dense_blocks",
            "num_residual_blocks",
        ):
            value = getattr(self, key)
            check(value >= 1, f"generator.{key} must be >= 1. Received: {value}")


@dataclasses.dataclass(frozen=True)
class SRDiscriminatorConfig:
    """The discriminator: ESRGAN's VGG-style classifier or Real-ESRGAN's U-Net.

    `vgg_blk_ch`: output channels of each convolution; a convolution with the same channels
    as the one before it halves the resolution (seed 001). `fc_features`: hidden dense
    layers. `unet_features`: base channels of the U-Net; `spectral_norm` applies to it.
    """

    kind: Literal["vgg", "unet"] = "vgg"
    vgg_blk_ch: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512)
    fc_features: tuple[int, ...] = (100,)
    unet_features: int = 64
    spectral_norm: bool = True

    def __post_init__(self):
        check(
            len(self.vgg_blk_ch) >= 1 and all(c >= 1 for c in self.vgg_blk_ch),
            f"discriminator.vgg_blk_ch must be positive channel counts. "
            f"Received: {list(self.vgg_blk_ch)}",
        )
        check(
            all(f >= 1 for f in self.fc_features),
            f"discriminator.fc_features must be positive. Received: {list(self.fc_features)}",
        )
        check(
            self.unet_features >= 1,
            f"discriminator.unet_features must be >= 1. Received: {self.unet_features}",
        )


_VGG_LAYERS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3)}
_VGG_LAYERS["vgg19"] = (2, 2, 4, 4, 4)


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
    """Perceptual loss: distances between VGG features taken before their ReLU (ESRGAN).

    `layer_weights` maps layer names (`conv5_4`, `conv3_1`...) to weights. `weights` is
    `"imagenet"` (Keras' download, VGG16/19 only), `"none"` (random: tests only) or a local
    weights file. `normalize_input` applies the preprocessing the weights were trained with;
    `normalize_loss` divides by the sum of the layer weights.
    """

    vgg_type: Literal["vgg11", "vgg13", "vgg16", "vgg19"] = "vgg19"
    layer_weights: dict[str, float] = dataclasses.field(default_factory=lambda: {"conv5_4": 1.0})
    criterion: Literal["l1", "l2"] = "l1"
    normalize_input: bool = True
    normalize_loss: bool = False
    weights: str = "imagenet"

    def __post_init__(self):
        counts = _VGG_LAYERS[self.vgg_type]
        valid = [f"conv{b + 1}_{i + 1}" for b, n in enumerate(counts) for i in range(n)]
        bad = [k for k in self.layer_weights if k not in valid]
        check(
            bool(self.layer_weights) and not bad,
            f"perceptual.layer_weights keys must be layers of {self.vgg_type}: "
            f"{', '.join(valid)}. Received: {bad or 'none'}",
        )
        check(
            all(w >= 0 for w in self.layer_weights.values()),
            "perceptual.layer_weights must be >= 0",
        )
        check(
            self.weights in ("imagenet", "none") or not self.weights.startswith("http"),
            f"perceptual.weights must be imagenet, none or a local file. Received: {self.weights}",
        )
        check(
            self.weights != "imagenet" or self.vgg_type in ("vgg16", "vgg19"),
            f"Keras ships ImageNet weights for vgg16 and vgg19 only; for {self.vgg_type} set "
            "perceptual.weights to a local weights file",
        )


@dataclasses.dataclass(frozen=True)
class SRLossConfig:
    """Loss terms. Pretraining uses the pixel loss alone (weight 1); the GAN stage adds
    `perceptual_weight * perceptual + gan_weight * adversarial + pixel_weight * pixel`.

    `gan_type`: `"relativistic"` (ESRGAN's relativistic average GAN) or `"vanilla"`
    (Real-ESRGAN, binary cross-entropy per U-Net pixel).
    """

    pixel: Literal["l1", "l2", "charbonnier"] = "l1"
    pixel_weight: float = 1e-2
    perceptual_weight: float = 1.0
    gan_type: Literal["relativistic", "vanilla"] = "relativistic"
    gan_weight: float = 5e-3

    def __post_init__(self):
        for key in ("pixel_weight", "perceptual_weight", "gan_weight"):
            check(
                getattr(self, key) >= 0, f"loss.{key} must be >= 0. Received: {getattr(self, key)}"
            )


@dataclasses.dataclass(frozen=True)
class SROptimConfig:
    """Adam with a step schedule: the rate is multiplied by `gamma` at each milestone step."""

    learning_rate: float = 2e-4
    beta_1: float = 0.9
    beta_2: float = 0.99
    milestones: tuple[int, ...] = (200_000, 400_000, 600_000, 800_000)
    gamma: float = 0.5

    def __post_init__(self):
        check(self.learning_rate > 0, f"learning_rate must be > 0. Received: {self.learning_rate}")
        check(0 <= self.beta_1 < 1 and 0 <= self.beta_2 < 1, "beta_1 and beta_2 must be in [0, 1)")
        check(
            list(self.milestones) == sorted(set(self.milestones)) and all(self.milestones),
            f"milestones must be increasing positive steps. Received: {list(self.milestones)}",
        )
        check(0 < self.gamma <= 1, f"gamma must be in (0, 1]. Received: {self.gamma}")


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Memory support (seed 000): keep the last good generator state, roll back on a blow-up.

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
        check(
            self.check_every >= 1, f"memory.check_every must be >= 1. Received: {self.check_every}"
        )
        check(self.factor > 1, f"memory.factor must be > 1. Received: {self.factor}")
        check(self.patience >= 1, f"memory.patience must be >= 1. Received: {self.patience}")
        check(
            0 <= self.momentum < 1, f"memory.momentum must be in [0, 1). Received: {self.momentum}"
        )
        check(
            self.remember_every >= 1,
            f"memory.remember_every must be >= 1. Received: {self.remember_every}",
        )
        check(
            0 < self.lr_factor <= 1,
            f"memory.lr_factor must be in (0, 1]. Received: {self.lr_factor}",
        )
        check(self.warmup_checks >= 0, "memory.warmup_checks must be >= 0")


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
        jit_compile: compile the train step with XLA.
        precision: `float32`, `mixed_bfloat16` or `mixed_float16` (with loss scaling).
        checkpoint_every, keep_checkpoints: checkpoint cadence and how many are kept.
        log_every: TensorBoard scalars cadence; val_every: validation cadence;
        image_every: LR | SR | HR grid cadence (also the frames of the final GIF).
        val_images: validation images used (0: all).
        seed: seeds the networks and the data order.
    """

    steps: int = 400_000
    max_minutes: float = 0.0
    init: str = ""
    ema_decay: float = 0.0
    jit_compile: bool = True
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    log_every: int = 100
    val_every: int = 5000
    image_every: int = 5000
    val_images: int = 0
    seed: int = 0

    def __post_init__(self):
        check(self.steps >= 1, f"train.steps must be >= 1. Received: {self.steps}")
        check(
            self.max_minutes >= 0, f"train.max_minutes must be >= 0. Received: {self.max_minutes}"
        )
        check(
            0 <= self.ema_decay < 1,
            f"train.ema_decay must be in [0, 1). Received: {self.ema_decay}",
        )
        for key in (
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
            "val_every",
            "image_every",
        ):
            check(
                getattr(self, key) >= 1, f"train.{key} must be >= 1. Received: {getattr(self, key)}"
            )
        check(self.val_images >= 0, f"train.val_images must be >= 0. Received: {self.val_images}")


@dataclasses.dataclass(frozen=True)
class SRRecipe:
    """A super-resolution training recipe: `configs/esrgan_x4_psnr.toml` and friends.

    `kerasr pretrain` uses data, generator, g_optim, loss.pixel, train and memory;
    `kerasr train-gan` uses every table.
    """

    data: DataConfig = DataConfig()
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

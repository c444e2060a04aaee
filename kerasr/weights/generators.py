"""Registry of the Pokemon generators shipped inside the package (`kerasr/weights/*.weights.h5`).

Each entry is a name, a one-line legend saying which data, how long and which epoch, and the
architecture needed to rebuild the network around the weights (its kind and builder
arguments). The FastGAN generator is the default; the DCGANs are the PokemonGan web app's
design in its two variants (all sprites, and the white-background subset). Keras is imported
only to build a network, so listing is instant.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from kerasr.errors import KerasrError, first_line

WEIGHTS_DIR = Path(__file__).resolve().parent

DEFAULT_GENERATOR = "pokemon-fastgan-64"


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


# Architecture of each entry: the kind and the keyword arguments of its builder
# (`kerasr.weights.networks.build_network`), as a preset's `kind` and `arguments` hold them.
_POKEMON_64 = {"image_size": 64, "latent_dim": 128, "filters": 32, "max_filters": 512}
_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "pokemon-fastgan-64": {"kind": "fastgan", "image_size": 64, "latent_dim": 128, "filters": 16},
    "pokemon-dcgan-64": _POKEMON_64,
    "pokemon-dcgan-64-white": _POKEMON_64,
}

_DESCRIPTIONS = {
    "pokemon-fastgan-64": "FastGAN generator trained against a projected discriminator on "
    "frozen EfficientNet-Lite0 features, on all 898 sprites composited on white, 110 min on "
    "2 CPU cores (4400 steps of 64, the epoch with the lowest Lite0 KID); serves the "
    "white-background variant too, since that subset keeps 890 of the 898 sprites.",
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
    from kerasr.weights.networks import build_network

    info = registry()[name]
    if not info.path.is_file():
        raise KerasrError(
            f"generator '{name}' is registered but its weights are missing: {info.path}"
        )
    arguments = architecture(name)
    model = build_network(arguments.pop("kind", "dcgan"), **arguments)
    try:
        model.load_weights(info.path)
    except Exception as e:  # h5py / Keras raise many types for a wrong or corrupt file
        raise KerasrError(
            f"{info.path} does not hold the weights of {name}: {first_line(e)}"
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

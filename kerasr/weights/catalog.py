"""Every model kerasr can name: the pretrained upscalers and the shipped DCGAN generators.

No Keras import, so `kerasr models` answers at once.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class UpscalerEntry:
    """A pretrained upscaler of the registry."""

    name: str
    scale: int
    parameters: int
    source: str
    description: str
    cached: bool


@dataclasses.dataclass(frozen=True)
class GeneratorEntry:
    """A DCGAN generator shipped in the package."""

    name: str
    image_size: int
    shipped: bool
    description: str


@dataclasses.dataclass(frozen=True)
class ModelCatalog:
    """The upscalers (default first) and the generators."""

    upscalers: list[UpscalerEntry]
    generators: list[GeneratorEntry]


def catalog() -> ModelCatalog:
    """Lists the registries, with whether each upscaler is cached and each generator shipped."""
    from kerasr.weights.cache import is_cached
    from kerasr.weights.generators import registry
    from kerasr.weights.pretrained import list_models

    upscalers = [
        UpscalerEntry(e.name, e.scale, e.parameters, e.source, e.description, is_cached(e.name))
        for e in list_models()
    ]
    generators = [
        GeneratorEntry(g.name, g.image_size, g.path.is_file(), g.description)
        for g in registry().values()
    ]
    return ModelCatalog(upscalers, generators)

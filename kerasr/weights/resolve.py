"""Which model does `-m SPEC` name? One answer for every command and the web app.

A spec is tried in one order:

1. a registry name: the pretrained upscalers (`kerasr models`), then the shipped DCGAN
   generators;
2. a file, by its suffix: an ncnn `.param` / `.bin` pair is an upscaler; a `.weights.h5`
   file is what its preset (`NAME.json` beside it, `kerasr.weights.presets`) says; a
   `.keras` archive is loaded once and is an upscaler when the model has a `scale`, a
   generator when it maps latents to images;
3. anything else is refused in one line: a SavedModel folder (an export, which serves
   TensorFlow Serving and cannot be loaded back), a folder, a missing file, an unknown name.

When the caller asks for one kind (`upscale` wants an upscaler, `generate` a generator), a
model of the other kind is refused by name.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Any

from kerasr.errors import KerasrError, first_line, shorten
from kerasr.weights.generators import DEFAULT_GENERATOR
from kerasr.weights.pretrained import DEFAULT_MODEL, REGISTRY, load_pretrained

UPSCALER = "upscaler"
GENERATOR = "generator"
KINDS = (UPSCALER, GENERATOR)

_SUFFIXES = ".keras, .weights.h5 or ncnn .param"


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """A loaded model and what it is.

    Attributes:
        network: the Keras model; an upscaler has a `scale` attribute, a generator maps
            latents `[n, latent_dim]` to images in [-1, 1].
        kind: `"upscaler"` or `"generator"`.
        name: the registry name, or the file name.
        description: the registry's one-line legend, or where the file came from.
    """

    network: Any
    kind: str
    name: str
    description: str


def resolve_model(spec: str | os.PathLike, kind: str | None = None) -> ResolvedModel:
    """Loads the model a registry name or a file names (see the module docstring).

    Args:
        spec: a registry name or a model file.
        kind: `"upscaler"` or `"generator"` to accept only that kind; None for either.

    Returns:
        A `ResolvedModel`.

    Raises:
        KerasrError: one line naming the problem: unknown name, missing or corrupt file,
            a SavedModel folder, a model of the other kind.
    """
    if kind not in (None, *KINDS):
        raise ValueError(f"`kind` must be None or one of {KINDS}. Received: kind={kind!r}")
    from kerasr.weights.generators import registry as generator_registry

    spec = str(spec)
    generators = generator_registry()
    if spec in REGISTRY:
        _check_kind(spec, UPSCALER, kind)
        return _load_registered_upscaler(spec)
    if spec in generators:
        _check_kind(spec, GENERATOR, kind)
        from kerasr.weights.generators import load_registered_generator

        return ResolvedModel(
            load_registered_generator(spec), GENERATOR, spec, generators[spec].description
        )
    path = Path(spec)
    suffix = _suffix(path)
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long for a file, or with a NUL byte in it
        exists = False
    if not exists:
        if suffix in (".param", ".bin", ".keras", ".weights.h5", ".h5"):
            raise KerasrError(f"model file not found: {shorten(str(path))}")
        names = [*REGISTRY, *generators] if kind is None else _names(kind, generators)
        what = "generator" if kind == GENERATOR else "model"
        raise KerasrError(
            f"unknown {what} '{shorten(spec)}': use a file or one of {', '.join(names)} "
            f"(a file: {_SUFFIXES})"
        )
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise KerasrError(
                f"{path} is a SavedModel export (for TensorFlow Serving), which kerasr cannot "
                "load back; use the .keras or .weights.h5 file it was exported from"
            )
        raise KerasrError(f"{path} is a folder, not a model file ({_SUFFIXES})")
    described = f"{(kind or 'model').capitalize()} loaded from {spec}."
    if suffix in (".param", ".bin"):
        _check_kind(spec, UPSCALER, kind)
        from kerasr.weights.ncnn import load_ncnn

        network = load_ncnn(path.with_suffix(".param"), path.with_suffix(".bin"))
        return ResolvedModel(network, UPSCALER, path.name, described)
    if suffix == ".weights.h5":
        from kerasr.weights.kinds import GENERATORS, UPSCALERS
        from kerasr.weights.networks import load_weights
        from kerasr.weights.presets import read_preset

        preset = read_preset(path)
        if preset.kind in UPSCALERS:
            found = UPSCALER
        elif preset.kind in GENERATORS:
            found = GENERATOR
        else:
            raise KerasrError(f"{path} holds a {preset.kind}, not an upscaler or a generator")
        _check_kind(spec, found, kind)
        network, preset = load_weights(path)
        return ResolvedModel(network, found, path.name, preset.source or described)
    if suffix == ".keras":
        network = load_keras_archive(path)
        found = _kind_of(network, path, kind)
        return ResolvedModel(network, found, path.name, described)
    raise KerasrError(f"{path}: not a model file; kerasr loads {_SUFFIXES} files")


def load_model(spec: str | os.PathLike | None = None):
    """Loads an upscaler by registry name or from a file.

    Args:
        spec: a registry name (default `realesrgan-x4plus`), an ncnn `.param` file (the
            `.bin` beside it), a `.keras` model or a `.weights.h5` file with its preset.

    Returns:
        A built Keras model mapping `[0, 1]` float images `(n, h, w, c)` to upscaled ones;
        its `scale` attribute gives the factor.

    Raises:
        KerasrError: for an unknown name, a missing or unreadable file, weights that do
            not fit the architecture, or a generator.
    """
    return resolve_model(spec or DEFAULT_MODEL, UPSCALER).network


def load_generator(spec: str | os.PathLike = DEFAULT_GENERATOR):
    """Loads a generator by registry name or from a file.

    Args:
        spec: a registry name (`"pokemon-dcgan-64"`, `"pokemon-dcgan-64-white"`), a `.keras`
            generator, or a `.weights.h5` file with its preset (as `kerasr train-dcgan`
            writes for the generator of every epoch).

    Returns:
        The generator, a `keras.Model` from latents `[n, latent_dim]` to images in [-1, 1].

    Raises:
        KerasrError: on an unknown name, a missing file or a file that is not a generator.
    """
    return resolve_model(spec, GENERATOR).network


def load_keras_archive(path: str | os.PathLike):
    """Loads a `.keras` file (any Keras model; kerasr's layers are registered first).

    Raises:
        KerasrError: the file is not a zip archive (truncated, corrupt, or another format),
            or Keras cannot rebuild the model from it.
    """
    import keras

    import kerasr.models  # noqa: F401  (registers the kerasr layers for deserialisation)

    path = Path(path)
    # Keras says "File not found" for any archive it cannot open; check the archive first.
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except zipfile.BadZipFile:
        raise KerasrError(
            f"{path}: corrupt or truncated .keras file (not a readable zip archive)"
        ) from None
    except PermissionError:
        raise
    except OSError as e:
        raise KerasrError(f"{path}: cannot read ({e.strerror or e})") from None
    if broken is not None:
        raise KerasrError(f"{path}: corrupt .keras file ({broken} fails its checksum)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for an archive it cannot rebuild
        raise KerasrError(f"cannot load Keras model {path}: {first_line(e)}") from None


def _load_registered_upscaler(name: str) -> ResolvedModel:
    return ResolvedModel(load_pretrained(name), UPSCALER, name, REGISTRY[name].description)


def _kind_of(network, path: Path, wanted: str | None) -> str:
    from kerasr.weights.generators import is_generator

    if hasattr(network, "scale"):
        found = UPSCALER
    elif is_generator(network):
        found = GENERATOR
    else:
        maps = f"it maps {network.input_shape} -> {network.output_shape}"
        if wanted == UPSCALER:
            raise KerasrError(f"{path} is not a kerasr upscaler (no `scale` attribute)")
        if wanted == GENERATOR:
            raise KerasrError(
                f"{path} is not a generator (latent [n, d] -> image [n, h, w, 3]); {maps}"
            )
        raise KerasrError(
            f"{path} is neither an upscaler (a kerasr model with a `scale`) nor a generator "
            f"(latent [n, d] -> image [n, h, w, 3]); {maps}"
        )
    _check_kind(str(path), found, wanted)
    return found


def _check_kind(spec: str, found: str, wanted: str | None) -> None:
    if wanted is not None and found != wanted:
        raise KerasrError(f"{spec} is {_article(found)}, not {_article(wanted)}")


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _names(kind: str, generators) -> list[str]:
    return list(REGISTRY) if kind == UPSCALER else list(generators)


def _suffix(path: Path) -> str:
    return ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix.lower()

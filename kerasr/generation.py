"""Drawing images from DCGAN generators: the shipped registry, seeds to latents, serving.

A seed names an image: `generate(g, [7])` draws the same picture whether seed 7 comes alone or
in a batch of 64, because each latent vector comes from its own seed through TensorFlow's
stateless RNG and the generator runs in inference mode (batch norm uses its moving
statistics, so images in a batch do not influence each other).

Example:

    from kerasr.generation import generate, list_generators, load_generator

    g = load_generator("pokemon-dcgan-64")
    images = generate(g, seeds=[0, 1, 2, 3, 4])  # uint8 [5, 64, 64, 3]
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import to_uint8
from kerasr.io import write_text
from kerasr.weights.generators import DEFAULT_GENERATOR, GeneratorInfo, architecture, registry

__all__ = [
    "DEFAULT_GENERATOR",
    "GeneratorInfo",
    "generate",
    "generator_serving_module",
    "latents_from_seeds",
    "list_generators",
    "load_generator",
]

# Name of the architecture file written beside per-epoch `.weights.h5` generators of a run.
GENERATOR_JSON = "generator.json"

MAX_SEED = 2**63 - 1

# A compiled single-image function per generator; weak keys, so generators can be freed.
_DRAW_ONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def list_generators() -> list[GeneratorInfo]:
    """The generators shipped in the package whose weights are present, default first."""
    infos = [info for info in registry().values() if info.path.is_file()]
    return sorted(infos, key=lambda info: (info.name != DEFAULT_GENERATOR, info.name))


def load_generator(spec: str | Path = DEFAULT_GENERATOR):
    """Loads a generator by registry name or from a file.

    Args:
        spec: a registry name (`"pokemon-dcgan-64"`, `"pokemon-dcgan-64-white"`), a `.keras`
            generator, or a `.weights.h5` file with a `generator.json` beside it (as
            `kerasr train-dcgan` writes for the generator of every epoch).

    Returns:
        The generator, a `keras.Model` from latents `[n, latent_dim]` to images in [-1, 1].

    Raises:
        KerasrError: on an unknown name, a missing file or a file that is not a generator.
    """
    import keras

    from kerasr.models.dcgan import build_generator

    spec = str(spec)
    known = registry()
    if spec in known:
        info = known[spec]
        if not info.path.is_file():
            raise KerasrError(
                f"generator '{spec}' is registered but its weights are missing: {info.path}"
            )
        kwargs, path = architecture(spec), info.path
        name = spec
    else:
        path = Path(spec)
        if path.suffix not in (".keras", ".h5") and not path.exists():
            names = ", ".join(known)
            raise KerasrError(
                f"unknown generator '{spec}'; use one of {names} or a .keras / .weights.h5 file"
            )
        if not path.is_file():
            raise KerasrError(f"generator file not found: {path}")
        if path.name.endswith(".keras"):
            try:
                model = keras.saving.load_model(path, compile=False)
            except Exception as e:  # Keras raises many types for a bad archive
                raise KerasrError(f"cannot load generator {path}: {_one_line(e)}") from None
            _check_generator(model, path)
            return model
        if not path.name.endswith(".weights.h5"):
            raise KerasrError(f"generator file must end in .keras or .weights.h5: {path}")
        kwargs = _read_architecture(path)
        name = path.name.removesuffix(".weights.h5")
    model = build_generator(**kwargs, name="dcgan_generator")
    try:
        model.load_weights(path)
    except Exception as e:  # h5py / Keras raise many types for a wrong or corrupt file
        raise KerasrError(
            f"{path} does not hold weights of this generator ({name}): {_one_line(e)}"
        ) from None
    return model


def latents_from_seeds(seeds, latent_dim: int):
    """One standard-normal latent vector per seed, each from its own stateless RNG stream.

    Args:
        seeds: int64 tensor or sequence `[n]`.
        latent_dim: length of each vector.

    Returns:
        float32 tensor `[n, latent_dim]`; row `i` depends on `seeds[i]` only.
    """
    import tensorflow as tf

    seeds = tf.convert_to_tensor(seeds, tf.int64)
    # stateless_normal takes a [2] seed per call; map it over the seeds so that rows are
    # independent of each other (one call for the batch would tie every row to seeds[0]).
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([latent_dim], tf.stack([s, tf.constant(0, tf.int64)])),
        seeds,
        fn_output_signature=tf.float32,
    )


def generate(generator, seeds: Sequence[int]) -> np.ndarray:
    """Draws one image per seed.

    Args:
        generator: a generator from `load_generator` (or `kerasr.models.dcgan.build_generator`).
        seeds: non-negative integers; equal seeds give equal images with the same generator,
            whatever else is in the batch.

    Returns:
        uint8 `[len(seeds), H, W, 3]`.

    Raises:
        KerasrError: on a negative or too large seed.
    """
    seeds = [int(s) for s in seeds]
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise KerasrError(f"seeds must be integers in 0..2**63-1. Received: {bad[0]}")
    size = generator.output_shape[1]
    if not seeds:
        return np.zeros((0, size, size, 3), np.uint8)
    draw = _one_image_function(generator)
    latent_dim = generator.input_shape[-1]
    latents = latents_from_seeds(seeds, latent_dim)
    # One image per call: oneDNN may choose a different convolution algorithm for another
    # batch size, which can move a pixel by one level; single-image calls rule that out.
    return np.concatenate([draw(latents[i : i + 1]).numpy() for i in range(len(seeds))])


def _one_image_function(generator):
    import tensorflow as tf

    fn = _DRAW_ONE.get(generator)
    if fn is None:
        latent_dim = generator.input_shape[-1]

        @tf.function(input_signature=[tf.TensorSpec([1, latent_dim], tf.float32)])
        def fn(z):
            return to_uint8(generator(z, training=False), (-1.0, 1.0))

        _DRAW_ONE[generator] = fn
    return fn


def generator_serving_module(generator):
    """A `tf.Module` that serves a generator, for `tf.saved_model.save`.

    Args:
        generator: a DCGAN generator.

    Returns:
        A `tf.Module` with two `tf.function`s:
        - `serve(seeds)`: int64 `[n]` -> uint8 `[n, H, W, 3]`, the same images as `generate`;
        - `from_latents(latents)`: float32 `[n, latent_dim]` -> uint8 `[n, H, W, 3]`.
        It also has `latent_dim` and `image_size` attributes.

    Example:

        module = generator_serving_module(load_generator("pokemon-dcgan-64"))
        tf.saved_model.save(module, "out", signatures={"serving_default": module.serve,
                                                       "from_latents": module.from_latents})
    """
    import tensorflow as tf

    latent_dim = int(generator.input_shape[-1])

    class GeneratorModule(tf.Module):
        def __init__(self):
            super().__init__(name="dcgan_generator")
            self.generator = generator
            self.latent_dim = latent_dim
            self.image_size = int(generator.output_shape[1])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seeds")])
        def serve(self, seeds):
            return self._draw(latents_from_seeds(seeds, self.latent_dim))

        @tf.function(
            input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name="latents")]
        )
        def from_latents(self, latents):
            return self._draw(latents)

        def _draw(self, latents):
            # Image by image, as `generate` does, so that a served seed gives the same pixels.
            return tf.map_fn(
                lambda z: to_uint8(self.generator(z[None], training=False), (-1.0, 1.0))[0],
                latents,
                fn_output_signature=tf.TensorSpec([self.image_size, self.image_size, 3], tf.uint8),
            )

    return GeneratorModule()


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
        raise KerasrError(f"cannot read {path}: {_one_line(e)}") from None
    allowed = {"image_size", "latent_dim", "filters", "max_filters"}
    if not isinstance(kwargs, dict) or not set(kwargs) <= allowed:
        raise KerasrError(f"{path} must hold an object with keys among {sorted(allowed)}")
    return kwargs


def _check_generator(model, path: Path) -> None:
    shape_in, shape_out = model.input_shape, model.output_shape
    if not (
        isinstance(shape_in, tuple)
        and len(shape_in) == 2
        and isinstance(shape_out, tuple)
        and len(shape_out) == 4
        and shape_out[-1] == 3
    ):
        raise KerasrError(
            f"{path} is not a generator (latent [n, d] -> image [n, h, w, 3]); "
            f"it maps {shape_in} -> {shape_out}"
        )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

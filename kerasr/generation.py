"""Drawing images from generators: seeds to latents, images, grids, serving.

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

import dataclasses
import math
import secrets
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import (
    IMAGE_SUFFIXES,
    SPRITE_SUFFIXES,
    WRITABLE,
    WRITE_SUFFIXES,
    to_uint8,
    write_image,
)
from kerasr.io import image_grid
from kerasr.weights.generators import DEFAULT_GENERATOR, GeneratorInfo, list_generators
from kerasr.weights.resolve import load_generator

__all__ = [
    "DEFAULT_GENERATOR",
    "MAX_SEED",
    "Drawing",
    "GeneratorInfo",
    "choose_seeds",
    "draw",
    "generate",
    "generator_serving_module",
    "latents_from_seeds",
    "list_generators",
    "load_generator",
    "save_drawing",
]

# The largest seed: seeds stay within int32, so JavaScript numbers (the web app) hold them
# exactly and every backend takes them.
MAX_SEED = 2**31 - 1

# A compiled single-image function per generator; weak keys, so generators can be freed.
_DRAW_ONE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
        raise KerasrError(f"seeds must be integers in 0..{MAX_SEED}. Received: {bad[0]}")
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


def choose_seeds(count: int, first: int | None = None) -> list[int]:
    """The seeds of `count` images: `first, first + 1, ...`, from a random `first` if None.

    Consecutive seeds let a user name a whole drawing by its first seed and draw any of its
    images again alone.

    Raises:
        KerasrError: `count` below 1, or seeds outside `0..MAX_SEED`.
    """
    if count < 1:
        raise KerasrError(f"n must be at least 1. Received: n={count}")
    if first is None:
        first = secrets.randbelow(MAX_SEED - count + 2)
    if first < 0 or first + count - 1 > MAX_SEED:
        raise KerasrError(
            f"seed + n - 1 must be at most {MAX_SEED} (and seed at least 0). "
            f"Received: seed={first}, n={count}"
        )
    return list(range(first, first + count))


def draw(
    generator,
    seeds: Sequence[int],
    upscale: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Draws one image per seed, each upscaled by `upscale` when given.

    Args:
        generator: a generator from `load_generator`, or a function from seeds to uint8
            images `[n, H, W, 3]` (such as the web app's served generators).
        seeds: see `generate`.
        upscale: maps one uint8 image to its upscaled version, e.g.
            `kerasr.upscaling.inference.Upscaler(model).upscale`.

    Returns:
        uint8 `[len(seeds), H', W', 3]`.
    """
    is_keras_model = hasattr(generator, "input_shape")
    images = generate(generator, seeds) if is_keras_model else np.asarray(generator(seeds))
    if upscale is not None:
        images = np.stack([upscale(image) for image in images])
    return images


@dataclasses.dataclass(frozen=True)
class Drawing:
    """What `save_drawing` wrote.

    Attributes:
        paths: the files, one per image, or the grid alone.
        seeds: the seeds drawn, in order.
        grid: whether the images went into one grid image.
    """

    paths: list[Path]
    seeds: list[int]
    grid: bool


def drawing_paths(
    out: str | Path, seeds: Sequence[int], *, grid: bool, name: str, overwrite: bool = False
) -> list[Path]:
    """Where `save_drawing` will write, checked before anything is drawn.

    Args:
        out: a folder (created if needed), or with `grid` an image file (`.png`, `.jpg`,
            `.webp`, `.bmp`; a folder gets `grid.png`).
        seeds: the seeds; files are named `{name}-seed{seed}.png`.
        grid: one grid image instead of one file per image.
        name: the generator's name, for the file names.
        overwrite: allow replacing existing files.

    Raises:
        KerasrError: `out` names an image file without `grid`, a format kerasr cannot
            write, or an existing file without `overwrite`.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    names_a_file = suffix in {*IMAGE_SUFFIXES, *SPRITE_SUFFIXES} and not out.is_dir()
    if grid:
        if names_a_file and suffix not in WRITE_SUFFIXES:
            raise KerasrError(f"{out}: cannot write '{suffix}' files; use {WRITABLE}")
        paths = [out if names_a_file else out / "grid.png"]
    elif names_a_file:
        raise KerasrError(f"--out must be a folder unless --grid is given. Received: {out}")
    else:
        paths = [out / f"{name}-seed{seed}.png" for seed in seeds]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise KerasrError(f"{existing[0]} already exists{more}; use --overwrite to replace it")
    return paths


def save_drawing(
    images: np.ndarray,
    seeds: Sequence[int],
    out: str | Path,
    *,
    grid: bool = False,
    name: str = DEFAULT_GENERATOR,
    overwrite: bool = False,
) -> Drawing:
    """Writes drawn images (see `draw`) as PNG files, or as one square grid image.

    Args:
        images: uint8 `[n, H, W, 3]`.
        seeds: their seeds.
        out, grid, name, overwrite: see `drawing_paths`.

    Returns:
        A `Drawing`.
    """
    seeds = list(seeds)
    paths = drawing_paths(out, seeds, grid=grid, name=name, overwrite=overwrite)
    if grid:
        columns = math.isqrt(len(images) - 1) + 1
        write_image(paths[0], image_grid(np.asarray(images), columns=columns), make_parents=True)
    else:
        for path, image in zip(paths, images, strict=True):
            write_image(path, image, make_parents=True)
    return Drawing(paths, seeds, grid)


def model_name(spec: str | Path) -> str:
    """The name of a generator for file names: the registry name, or the file's stem."""
    return Path(spec).name.split(".")[0]


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

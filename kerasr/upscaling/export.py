"""Exporting models: a SavedModel with a uint8 serving signature, `.keras`, ONNX and LiteRT."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import to_uint8
from kerasr.io import atomic_path, disk_full_error, is_disk_full

FORMATS = ("savedmodel", "keras", "onnx", "litert")
# Formats for other runtimes, written by `kerasr.upscaling.export_formats`.
PORTABLE = ("onnx", "litert")
PRECISIONS = ("float32", "float16")
# File formats: the suffix added to a destination without it.
SUFFIXES = {"keras": ".keras", "onnx": ".onnx", "litert": ".tflite"}


def upscaler_serving_module(model):
    """A `tf.Module` whose `serve(image)` maps a uint8 `(h, w, 3)` image to the upscaled one.

    The signature takes any height and width; pixels are scaled to `[0, 1]`, run through
    the network, clipped and rounded back to uint8 exactly as `kerasr upscale` does.
    """
    import tensorflow as tf

    class UpscalerModule(tf.Module):
        def __init__(self, network):
            super().__init__(name="kerasr_upscaler")
            self.network = network
            self.scale = tf.constant(int(network.scale))

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
        def serve(self, image):
            x = tf.cast(image, tf.float32)[None] / 255.0
            return to_uint8(self.network(x, training=False)[0])

    return UpscalerModule(model)


@dataclasses.dataclass(frozen=True)
class Export:
    """What `export` wrote.

    Attributes:
        path: the SavedModel folder, or the `.keras`, `.onnx` or `.tflite` file.
        kind: `"upscaler"` or `"generator"`.
        format: one of `FORMATS`.
        precision: `"float32"` or `"float16"` (weights; ONNX and LiteRT).
        max_error: ONNX and LiteRT: the largest difference, in uint8 levels, between the
            file run in its runtime and the Keras model on a test input; None otherwise.
    """

    path: Path
    kind: str
    format: str
    precision: str = "float32"
    max_error: int | None = None


def export(
    spec: str | os.PathLike,
    destination: str | os.PathLike,
    fmt: str = "savedmodel",
    *,
    precision: str = "float32",
    tile: int | None = None,
    overwrite: bool = False,
) -> Export:
    """Exports an upscaler or a generator, named as `-m` names it.

    An upscaler's SavedModel maps a uint8 image of any size to the upscaled uint8 image
    (`upscaler_serving_module`); a generator's maps int64 seeds (or, signature
    `from_latents`, a latent batch) to images (`kerasr.generation.generator_serving_module`).
    ONNX and LiteRT files take float32 images or latents, as
    `kerasr.upscaling.export_formats` lays out.

    Args:
        spec: registry name or model file (see `kerasr.weights.resolve`).
        destination, fmt, precision, tile, overwrite: see `export_network`.

    Returns:
        An `Export`.
    """
    check_options(fmt, precision, tile)
    from kerasr.weights.resolve import resolve_model

    resolved = resolve_model(spec)
    return export_network(
        resolved.network,
        resolved.kind,
        destination,
        fmt,
        precision=precision,
        tile=tile,
        overwrite=overwrite,
    )


def check_options(fmt: str, precision: str = "float32", tile: int | None = None) -> None:
    """Refuses, in one line, a format, precision or tile that cannot go together, and a
    format whose converter is not installed; before any model is loaded."""
    if fmt not in FORMATS:
        raise KerasrError(f"format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    if precision not in PRECISIONS:
        raise KerasrError(
            f"precision must be one of {', '.join(PRECISIONS)}. Received: {precision!r}"
        )
    if precision != "float32" and fmt not in PORTABLE:
        raise KerasrError(f"--precision {precision} applies to --format onnx and litert only")
    if tile is not None and fmt != "litert":
        raise KerasrError("--tile applies to --format litert only (the others take any size)")
    if fmt in PORTABLE:
        from kerasr.upscaling.export_formats import check_installed

        check_installed(fmt, precision)


def export_network(
    network,
    kind: str,
    destination: str | os.PathLike,
    fmt: str = "savedmodel",
    *,
    precision: str = "float32",
    tile: int | None = None,
    overwrite: bool = False,
) -> Export:
    """Writes a network in one format, atomically.

    Args:
        network: a built upscaler or generator.
        kind: `"upscaler"` or `"generator"`.
        destination: the folder (SavedModel) or file to create; the format's suffix
            (`.keras`, `.onnx`, `.tflite`) is added when missing.
        fmt: `savedmodel`, `keras`, `onnx` or `litert`.
        precision: `float32`, or `float16` weights (ONNX and LiteRT).
        tile: LiteRT upscalers: the input's height and width (default
            `kerasr.upscaling.export_formats.LITERT_TILE`), 0 for any size.
        overwrite: replace an existing destination, but only if it is a previous export
            (a SavedModel folder, or a `.keras`, `.onnx` or `.tflite` file); anything else is
            never deleted.

    Returns:
        An `Export`.

    Raises:
        KerasrError: a bad option; the destination exists (and `overwrite` is off, or it is
            not an export); the format cannot express the network (see
            `kerasr.upscaling.export_formats.write`); the disk is full (nothing is left behind, an
            export being replaced is kept).
    """
    check_options(fmt, precision, tile)
    destination = Path(destination)
    suffix = SUFFIXES.get(fmt)
    if suffix and destination.suffix != suffix:
        destination = destination.with_name(destination.name + suffix)
    replaced = _check_destination(destination, fmt, overwrite)
    max_error = None
    import tensorflow as tf

    try:
        with atomic_path(destination) as staging:
            if fmt == "savedmodel":
                _write_savedmodel(network, kind, staging)
            elif fmt == "keras":
                network.save(staging)
            else:
                from kerasr.upscaling.export_formats import write

                max_error = write(network, kind, staging, fmt, precision, tile)
            if replaced is not None:
                # A folder cannot be renamed over a non-empty one: the old export goes first.
                shutil.rmtree(replaced) if replaced.is_dir() else replaced.unlink()
    except (OSError, tf.errors.OpError) as e:
        if not is_disk_full(e):
            raise
        # The weights are most of an export; the graph adds little.
        weights = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in network.weights)
        raise disk_full_error(destination, weights) from None
    return Export(destination, kind, fmt, precision, max_error)


def _write_savedmodel(network, kind: str, folder: Path) -> None:
    import tensorflow as tf

    from kerasr.generation import generator_serving_module
    from kerasr.weights.resolve import GENERATOR

    module = (generator_serving_module if kind == GENERATOR else upscaler_serving_module)(network)
    signatures = {"serving_default": module.serve}
    if hasattr(module, "from_latents"):
        signatures["from_latents"] = module.from_latents
    tf.saved_model.save(module, str(folder), signatures=signatures)


def _check_destination(destination: Path, fmt: str, overwrite: bool) -> Path | None:
    """The previous export to replace, if any; refuses anything that is not one: a SavedModel
    replaces only a SavedModel folder, a file format only a file (of its own suffix)."""
    if not destination.exists() and not destination.is_symlink():
        return None
    if fmt == "savedmodel":
        previous = destination.is_dir() and (destination / "saved_model.pb").is_file()
        what = "a folder that is not a SavedModel" if destination.is_dir() else "not a folder"
    else:
        previous = destination.is_file()
        what = "a folder" if destination.is_dir() else "not a file"
    if previous:
        if overwrite:
            return destination
        raise KerasrError(f"{destination} already exists; pass --overwrite to replace it")
    raise KerasrError(
        f"{destination} exists and is {what}; choose a new name (it is never deleted)"
    )

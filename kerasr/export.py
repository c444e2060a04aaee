"""Exporting models: TensorFlow SavedModel with a uint8 serving signature, or `.keras`."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.images import to_uint8
from kerasr.io import atomic_path

FORMATS = ("savedmodel", "keras")


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
        path: the SavedModel folder or `.keras` file.
        kind: `"upscaler"` or `"generator"`.
        format: `"savedmodel"` or `"keras"`.
    """

    path: Path
    kind: str
    format: str


def export(
    spec: str | os.PathLike,
    destination: str | os.PathLike,
    fmt: str = "savedmodel",
    *,
    overwrite: bool = False,
) -> Export:
    """Exports an upscaler or a DCGAN generator, named as `-m` names it.

    An upscaler's SavedModel maps a uint8 image of any size to the upscaled uint8 image
    (`upscaler_serving_module`); a generator's maps int64 seeds (or, signature
    `from_latents`, a latent batch) to images (`kerasr.generation.generator_serving_module`).

    Args:
        spec: registry name or model file (see `kerasr.weights.resolve`).
        destination, fmt, overwrite: see `export_model`.

    Returns:
        An `Export`.
    """
    if fmt not in FORMATS:
        raise KerasrError(f"format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    from kerasr.generation import generator_serving_module
    from kerasr.weights.resolve import GENERATOR, resolve_model

    resolved = resolve_model(spec)
    network = resolved.network
    if fmt == "savedmodel":
        module = generator_serving_module if resolved.kind == GENERATOR else upscaler_serving_module
        network = module(network)
    written = export_model(network, destination, fmt, overwrite=overwrite)
    return Export(written, resolved.kind, fmt)


def export_model(
    module_or_model,
    destination: str | os.PathLike,
    fmt: str = "savedmodel",
    *,
    overwrite: bool = False,
) -> Path:
    """Writes `savedmodel` (a folder) or `keras` (a `.keras` file), atomically.

    Args:
        module_or_model: for `savedmodel`, a `tf.Module` with a `serve` function (see
            `upscaler_serving_module`; a generator's module also has `from_latents`, exported
            as a second signature); for `keras`, a Keras model.
        destination: the folder or file to create.
        fmt: `savedmodel` or `keras`.
        overwrite: replace an existing destination, but only if it is a previous export
            (a SavedModel folder, or a `.keras` file); anything else is never deleted.

    Returns:
        The path written.

    Raises:
        KerasrError: the destination exists (and `overwrite` is off, or it is not an export).
    """
    if fmt not in FORMATS:
        raise KerasrError(f"format must be one of {', '.join(FORMATS)}. Received: {fmt!r}")
    destination = Path(destination)
    if fmt == "keras" and destination.suffix != ".keras":
        destination = destination.with_name(destination.name + ".keras")
    replaced = _check_destination(destination, overwrite)
    with atomic_path(destination) as staging:
        if fmt == "savedmodel":
            import tensorflow as tf

            signatures = {"serving_default": module_or_model.serve}
            if hasattr(module_or_model, "from_latents"):
                signatures["from_latents"] = module_or_model.from_latents
            tf.saved_model.save(module_or_model, str(staging), signatures=signatures)
        else:
            module_or_model.save(staging)
        if replaced is not None:
            # A folder cannot be renamed over a non-empty one: the old export goes first.
            shutil.rmtree(replaced) if replaced.is_dir() else replaced.unlink()
    return destination


def _check_destination(destination: Path, overwrite: bool) -> Path | None:
    """The previous export to replace, if any; refuses anything that is not one."""
    if not destination.exists() and not destination.is_symlink():
        return None
    is_savedmodel = destination.is_dir() and (destination / "saved_model.pb").is_file()
    is_keras = destination.is_file() and destination.suffix == ".keras"
    if is_savedmodel or is_keras:
        if overwrite:
            return destination
        raise KerasrError(f"{destination} already exists; pass --overwrite to replace it")
    what = "a folder that is not a SavedModel" if destination.is_dir() else "not a .keras file"
    raise KerasrError(
        f"{destination} exists and is {what}; choose a new name (it is never deleted)"
    )

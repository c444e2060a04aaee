"""Network interpolation (ESRGAN section 3.4): blend a PSNR-oriented and a GAN generator.

`(1 - alpha) * psnr + alpha * gan`, weight by weight. Unlike blending the two output
images, this removes the GAN's artefacts and noise while keeping its textures, and `alpha`
moves smoothly between the two without retraining.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.io import atomic_path


def interpolate_models(model_a, model_b, alpha: float):
    """Returns a new model whose weights are `(1 - alpha) * a + alpha * b`.

    Args:
        model_a: the PSNR-oriented network (alpha 0).
        model_b: the GAN network (alpha 1), same architecture.
        alpha: in [0, 1]; ESRGAN shows 0.8.

    Returns:
        A built model of `model_a`'s class and config with the blended weights.

    Raises:
        KerasrError: on an alpha outside [0, 1] or two different architectures.

    Example:

        blended = interpolate_models(load_model("psnr.weights.h5"),
                                     load_model("gan.weights.h5"), 0.8)

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219) section 3.4.
    """
    if not 0.0 <= alpha <= 1.0:
        raise KerasrError(f"alpha must be in [0, 1]. Received: alpha={alpha}")
    a, b = model_a.get_weights(), model_b.get_weights()
    shapes_a, shapes_b = [w.shape for w in a], [w.shape for w in b]
    if shapes_a != shapes_b or getattr(model_a, "scale", None) != getattr(model_b, "scale", None):
        raise KerasrError(
            "the two models have different architectures "
            f"({len(shapes_a)} vs {len(shapes_b)} weights); interpolation needs the same network"
        )
    blended = model_a.__class__.from_config(model_a.get_config())
    blended.build((None, None, None, getattr(model_a, "in_channels", 3)))
    blended.set_weights(
        [
            ((1.0 - alpha) * x.astype(np.float32) + alpha * y.astype(np.float32))
            for x, y in zip(a, b, strict=True)
        ]
    )
    return blended


def save_model_file(model, path: str | os.PathLike, source: str = "") -> Path:
    """Saves a network as `.keras`, or `.weights.h5` with its preset (`source` says where
    the weights came from), atomically. Returns the path."""
    path = Path(path)
    name = path.name
    _check_output_name(path)
    if name.endswith(".keras"):
        with atomic_path(path) as tmp:
            model.save(tmp)
        return path
    from kerasr.weights.networks import preset_of
    from kerasr.weights.presets import save_weights

    return save_weights(model, path, preset_of(model, source))


def load_interpolated(psnr_spec: str | os.PathLike, gan_spec: str | os.PathLike, alpha: float):
    """Loads two upscalers (registry names or files) and returns their interpolation."""
    from kerasr.weights.resolve import load_model

    return interpolate_models(load_model(psnr_spec), load_model(gan_spec), alpha)


def interpolate_to_file(
    psnr_spec: str | os.PathLike,
    gan_spec: str | os.PathLike,
    alpha: float,
    output: str | os.PathLike,
) -> Path:
    """Writes the network interpolation of two upscalers to a `.weights.h5` or `.keras` file.

    The output name is checked before the (possibly slow) models are loaded.

    Returns:
        The path written.
    """
    _check_output_name(Path(output))
    source = f"interpolation of {psnr_spec} and {gan_spec}, alpha {alpha}"
    return save_model_file(load_interpolated(psnr_spec, gan_spec, alpha), output, source)


def _check_output_name(path: Path) -> None:
    if not (path.name.endswith(".weights.h5") or path.name.endswith(".keras")):
        raise KerasrError(f"output must end with .weights.h5 or .keras. Received: {path}")

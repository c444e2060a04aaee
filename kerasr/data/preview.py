"""A labelled grid of one image degraded n ways: what the model will learn from.

Used by `kerasr degrade` (written to a PNG) and by the training commands (logged to
TensorBoard as an image).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from kerasr.config import KERNEL_TYPES, DataConfig
from kerasr.data.degradations import bicubic_downscale, realesrgan_degrade
from kerasr.data.sources import load_image
from kerasr.errors import KerasrError
from kerasr.images import write_image

_LABEL_LINES = 6
# Enough to see the spread of the degradations; each takes a degradation run and a tile.
MAX_VARIANTS = 64
_LINE_HEIGHT = 12


def _kernel_text(k, i) -> str:
    kind = int(k["type"][i])
    size = int(k["size"][i])
    if kind < 0:
        return f"sinc k{size} w{float(k['omega'][i]):.2f}"
    name = KERNEL_TYPES[kind].replace("generalized", "gen")
    text = f"{name} k{size} s{float(k['sigma_x'][i]):.1f}"
    if kind % 2:
        text += f"/{float(k['sigma_y'][i]):.1f} r{math.degrees(float(k['theta'][i])):.0f}"
    if kind >= 2:
        text += f" b{float(k['beta'][i]):.1f}"
    return text


def _stage_text(n: int, p, modes, i) -> str:
    blur = _kernel_text(p["kernel"], i) if bool(p["blurred"]) else "no blur"
    mode = modes[int(p["resize_mode"])]
    grey = " grey" if bool(p["gray"][i]) else ""
    noise = (
        f"gauss s{float(p['noise'][i]):.0f}{grey}"
        if bool(p["gaussian"])
        else f"poisson x{float(p['noise'][i]):.2f}{grey}"
    )
    return f"{n}: {blur}; {mode} x{float(p['resize']):.2f}; {noise}; jpeg {int(p['jpeg'][i])}"


def describe(params, modes, i: int = 0) -> list[str]:
    """Text lines for sample `i` of the parameters returned by `realesrgan_degrade`."""
    order = "sinc>jpeg" if bool(params["sinc_first"]) else "jpeg>sinc"
    final = f"final: {order}, jpeg {int(params['final_jpeg'][i])}"
    if not bool(params["final_sinc"][i]):
        final += ", no sinc"
    return [
        _stage_text(1, params["stage1"], modes, i),
        _stage_text(2, params["stage2"], modes, i),
        final,
    ]


def _centre_patch(image: np.ndarray, patch: int, scale: int) -> np.ndarray:
    h, w = image.shape[:2]
    ph = min(patch, h - h % scale)
    pw = min(patch, w - w % scale)
    if ph < scale * 2 or pw < scale * 2:
        raise KerasrError(f"image of {w}x{h} pixels is too small for scale {scale}")
    top, left = (h - ph) // 2, (w - pw) // 2
    return image[top : top + ph, left : left + pw]


@functools.lru_cache(maxsize=4)
def _traced(deg, scale):
    # One traced graph per configuration: training logs this grid again and again.
    return tf.function(lambda x, s: realesrgan_degrade(x, s, deg, scale))


def degrade_variants(hr: np.ndarray, config: DataConfig, seed: int = 0, n: int = 8):
    """Degrades one HR image `n` ways (seeds `[seed, 0..n-1]`).

    Args:
        hr: [H, W, 3] float32 in [0, 1], H and W multiples of `config.scale`.
        config: data configuration (its `degradation` and `scale`).
        seed: base seed.
        n: number of variants.

    Returns:
        A list of `(lr, label_lines)`: lr [H/scale, W/scale, 3] float32.
    """
    deg, scale = config.degradation, config.scale
    batch = tf.constant(hr[None], tf.float32)
    if deg.kind == "bicubic":
        lr = bicubic_downscale(batch, scale)[0].numpy()
        return [(lr, [f"bicubic x{scale} (antialiased)"])] * n
    fn = _traced(deg, scale)
    out = []
    for i in range(n):
        lr, _, params = fn(batch, tf.constant([seed, i], tf.int64))
        params = tf.nest.map_structure(lambda t: t.numpy(), params)
        out.append((lr[0].numpy(), describe(params, deg.stage1.resize_modes)))
    return out


def preview_grid(hr: np.ndarray, config: DataConfig, seed: int = 0, n: int = 8) -> np.ndarray:
    """A grid image: the (centre-cropped) HR, then `n` degraded LR versions shown at the HR
    size (nearest neighbour, so the pixels the model sees stay visible), each labelled with
    the parameters drawn.

    Args:
        hr: [H, W, 3] float image in [0, 1] (cropped to at most `config.patch_size`).
        config: the data configuration.
        seed: base seed; the same seed gives the same grid.
        n: number of degraded versions.

    Returns:
        [rows, cols, 3] uint8 array (for a PNG or `tf.summary.image`).
    """
    from PIL import Image, ImageDraw, ImageFont

    hr = _centre_patch(np.asarray(hr, np.float32), config.patch_size, config.scale)
    h, w = hr.shape[:2]
    tiles = [(hr, ["HR (input)"])]
    for lr, label in degrade_variants(hr, config, seed, n):
        up = np.repeat(np.repeat(lr, config.scale, 0), config.scale, 1)
        tiles.append((up, label))
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    label_h = _LABEL_LINES * _LINE_HEIGHT + 4
    tile_w = max(w, 300)  # room for the labels
    canvas = Image.new("RGB", (cols * tile_w, rows * (h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, (pixels, label) in enumerate(tiles):
        x0, y0 = (k % cols) * tile_w, (k // cols) * (h + label_h)
        canvas.paste(
            Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)), (x0, y0)
        )
        lines = _wrap(label, tile_w)
        for j, line in enumerate(lines[:_LABEL_LINES]):
            draw.text((x0 + 2, y0 + h + 2 + j * _LINE_HEIGHT), line, fill="black", font=font)
    return np.asarray(canvas)


def _wrap(lines: list[str], width: int) -> list[str]:
    limit = max(width // 6, 20)
    out = []
    for line in lines:
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(line[:cut])
            line = "  " + line[cut:].lstrip()
        out.append(line)
    return out


@dataclasses.dataclass(frozen=True)
class Preview:
    """What `write_preview` wrote: the PNG grid, and how it was drawn."""

    path: Path
    n: int
    seed: int


def write_preview(
    image_path: str | Path, output: str | Path, config: DataConfig, seed: int = 0, n: int = 8
) -> Preview:
    """Reads an image, builds `preview_grid` and writes it as PNG atomically.

    Returns:
        A `Preview`.

    Raises:
        KerasrError: unreadable image or output folder.
    """
    image_path, output = Path(image_path), Path(output)
    if not image_path.is_file():
        raise KerasrError(f"image not found: {image_path}")
    if not 1 <= n <= MAX_VARIANTS:
        raise KerasrError(f"-n must be between 1 and {MAX_VARIANTS}. Received: {n}")
    try:
        hr = load_image(str(image_path)).numpy()
    except tf.errors.OpError:
        raise KerasrError(f"cannot decode image {image_path}") from None
    grid = preview_grid(hr, config, seed, n)
    if not output.parent.is_dir():
        raise KerasrError(f"output folder does not exist: {output.parent}")
    write_image(output, grid)
    return Preview(output, n, seed)

"""Sprite folders for the Pokemon DCGAN: decode, composite on a background, filter, batch.

Sprites are small palette or RGBA PNGs with transparent backgrounds. They are decoded once
with Pillow into one uint8 array (a few hundred 64x64 images are a few MB), and `tf.data`
then serves shuffled, randomly flipped float batches in [-1, 1] from that array.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kerasr.data.sources import DataWarning
from kerasr.errors import KerasrError
from kerasr.images import SPRITE_FORMATS, SPRITE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside `folder`, sorted by name.

    Raises:
        KerasrError: if `folder` is not a directory or holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise KerasrError(f"image folder not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SPRITE_SUFFIXES
    )
    if not files:
        raise KerasrError(f"no images in {folder} (looked for {', '.join(SPRITE_SUFFIXES)})")
    return files


def composite(path: str | Path, background: Sequence[int] = (255, 255, 255)) -> np.ndarray:
    """Decodes one image and composites its transparency over `background`.

    Args:
        path: an image file (palette PNGs with a transparent index work too).
        background: the RGB colour behind transparent pixels.

    Returns:
        uint8 `[h, w, 3]`.

    Raises:
        KerasrError: if the file cannot be decoded as an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=SPRITE_FORMATS) as image:
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise KerasrError(f"cannot read image {path}: {' '.join(str(e).split())}") from None
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    canvas.alpha_composite(rgba)
    return np.asarray(canvas.convert("RGB"))


def white_border_fraction(image: np.ndarray, threshold: int = 240) -> float:
    """The fraction of the one-pixel border whose three channels are all >= `threshold`."""
    border = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    return float((border.min(axis=-1) >= threshold).mean())


# Space left around a creature fitted to the frame, as a fraction of the side on each edge:
# the sprites' own outlines stay inside the frame after the resize's ringing.
FRAME_MARGIN = 1 / 16


def fit_to_frame(image: np.ndarray, background: Sequence[int], tolerance: int = 8) -> np.ndarray:
    """Crops an image to the bounding box of its pixels that are not `background`, then
    pads it back to a square with a margin of `FRAME_MARGIN`, the creature centred.

    Sprites place creatures of every size in one 96 px frame (the median spans 60 % of it);
    fitted, every creature fills the frame and the generator's pixels go to its details.
    An image without background pixels at its edge (its own backdrop) is returned as is.
    """
    distance = np.abs(image.astype(np.int16) - np.asarray(background, np.int16)).max(axis=-1)
    ys, xs = np.nonzero(distance > tolerance)
    if len(ys) == 0:
        return image
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape[:2]
    side = round(max(h, w) / (1 - 2 * FRAME_MARGIN))
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = np.asarray(background, np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = crop
    return canvas


def _square_resize(image: np.ndarray, size: int, background: Sequence[int]) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    if h != w:
        # Pad rather than crop: a sprite cut in half is no longer a creature.
        side = max(h, w)
        canvas = np.empty((side, side, 3), np.uint8)
        canvas[:] = np.asarray(background, np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        canvas[top : top + h, left : left + w] = image
        image = canvas
    if image.shape[0] == size:
        return image
    # LANCZOS keeps sprite outlines crisp when shrinking 96 -> 64 (BILINEAR blurs them).
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


def load_sprites(
    folder: str | Path,
    image_size: int = 64,
    background: Sequence[int] = (255, 255, 255),
    white_background_only: bool = False,
    white_border: float = 0.99,
    fit: bool = False,
) -> np.ndarray:
    """Loads every image of `folder` as one uint8 array of square RGB sprites.

    Args:
        folder: a folder of images (not searched recursively).
        image_size: output side; images are padded to square with `background` and resized.
        background: RGB colour composited behind transparent pixels.
        white_background_only: keep only images whose border is white after compositing on
            `background` (the PokemonGan web app offered a second generator trained on this
            subset). With the default white background this drops sprites that touch the
            frame or bring their own coloured backdrop.
        white_border: fraction of border pixels that must be white (>= 240 in every channel).
        fit: crop each image to its creature and centre it, filling the frame
            (`fit_to_frame`), after the white-border filter.

    Returns:
        uint8 `[n, image_size, image_size, 3]`.

    Raises:
        KerasrError: on a missing or empty folder, or when no image is readable or the
            filter leaves none. An unreadable image alone is skipped with a `DataWarning`.
    """
    if len(background) != 3 or any(not 0 <= int(c) <= 255 for c in background):
        raise KerasrError(f"background must be three values in 0..255. Received: {background}")
    images = []
    for path in list_images(folder):
        try:
            image = composite(path, background)
        except KerasrError as e:  # one bad sprite does not stop a run (as in SR training)
            warnings.warn(f"skipping unreadable image {path}: {e}", DataWarning, stacklevel=2)
            continue
        if white_background_only and white_border_fraction(image) < white_border:
            continue
        if fit:
            image = fit_to_frame(image, background)
        images.append(_square_resize(image, image_size, background))
    if not images and not white_background_only:
        raise KerasrError(f"no readable image in {folder}")
    if not images:
        raise KerasrError(f"no image in {folder} has a white border; drop --white-background-only")
    return np.stack(images)


def sprite_dataset(
    images: np.ndarray, batch_size: int, flip: bool = True, seed: int = 0, cache: bool = True
):
    """An endless `tf.data` pipeline over a uint8 sprite array.

    Each epoch is a new shuffle; images are scaled to [-1, 1] (the generator's tanh range) and,
    with `flip`, mirrored left-right at random. Randomness comes from explicit seeds (the
    shuffle seed and a stateless flip seeded by a per-element counter), so a run repeats.

    Args:
        images: uint8 `[n, h, w, 3]`.
        batch_size: images per batch; the last partial batch is dropped so that every step
            has the same shape (one XLA compilation).
        flip: random horizontal flips.
        seed: the pipeline seed.
        cache: cache the float images after conversion.

    Returns:
        A `tf.data.Dataset` of float32 `[batch_size, h, w, 3]`.

    Raises:
        KerasrError: if there are fewer images than `batch_size`.
    """
    import tensorflow as tf

    if len(images) < batch_size:
        raise KerasrError(
            f"batch_size {batch_size} is larger than the {len(images)} training images; lower it"
        )
    ds = tf.data.Dataset.from_tensor_slices(images)
    ds = ds.map(lambda x: tf.cast(x, tf.float32) / 127.5 - 1.0, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if flip:
        counter = tf.data.Dataset.counter()
        ds = tf.data.Dataset.zip((ds, counter)).map(
            lambda x, i: tf.image.stateless_random_flip_left_right(
                x, tf.stack([tf.constant(seed, tf.int64), i])
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    # Batches within one shuffle, then endless: an epoch of `fit` may be more steps than one
    # pass over the images.
    ds = ds.batch(batch_size, drop_remainder=True).repeat()
    return ds.prefetch(tf.data.AUTOTUNE)

"""Where images come from: a folder of HR images, paired LR/HR folders, or a TFDS dataset.

Folders are scanned in Python once (headers only, through Pillow), so unreadable files and
images too small for a patch are reported by name before training starts; decoding happens
in the tf.data graph.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import tensorflow as tf

from kerasr.errors import KerasrError
from kerasr.images import DATASET_FORMATS, DATASET_SUFFIXES

TFDS_PREFIX = "tfds:"


class DataWarning(UserWarning):
    """An input image was skipped or changed (unreadable, too small for a patch)."""


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One readable image file: its path and size (from the header)."""

    path: str
    height: int
    width: int


@dataclasses.dataclass(frozen=True)
class FolderScan:
    """The usable images of a folder, and the files skipped (path, reason)."""

    folder: str
    records: tuple[ImageRecord, ...]
    skipped: tuple[tuple[str, str], ...]


def _list_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in DATASET_SUFFIXES and p.is_file()
    )


def scan_folder(folder: str | Path) -> FolderScan:
    """Lists the images of a folder recursively, skipping unreadable ones with a warning.

    Args:
        folder: a directory; files ending in .png, .jpg, .jpeg, .webp or .bmp (any case) count.

    Returns:
        A `FolderScan`; `skipped` counts the files that could not be read.

    Raises:
        KerasrError: if the folder does not exist or holds no usable image.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise KerasrError(f"image folder not found: {root}")
    records, skipped = [], []
    for path in _list_images(root):
        try:
            with Image.open(path, formats=DATASET_FORMATS) as im:
                width, height = im.size
                # verify() walks the file (PNG chunks and CRCs, headers of the others) without
                # decoding it: truncated or garbled files are caught here, cheaply.
                im.verify()
        except (
            OSError,
            UnidentifiedImageError,
            SyntaxError,
            ValueError,
            Image.DecompressionBombError,  # not an OSError: a header that claims gigapixels
        ) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            warnings.warn(f"skipping unreadable image {path}: {reason}", DataWarning, stacklevel=2)
            skipped.append((str(path), reason))
            continue
        records.append(ImageRecord(str(path), height, width))
    if not records:
        what = f"{len(skipped)} unreadable file(s)" if skipped else "no image file"
        raise KerasrError(
            f"no usable image in {root} ({what}; looked for {', '.join(DATASET_SUFFIXES)})"
        )
    return FolderScan(str(root), tuple(records), tuple(skipped))


def hr_stem(lr_stem: str, scale: int | None = None) -> str:
    """The HR file stem an LR file stem pairs with: the one LR/HR naming rule.

    DIV2K names LR files `0001x4.png` and BasicSR's Set5/Set14 copies `baby_x4.png`; both
    pair with the HR file of the stem without the `x{scale}` (or `_x{scale}`) ending. With
    `scale` None, any factor is stripped.
    """
    factor = str(scale) if scale is not None else r"\d+"
    return re.sub(rf"_?[xX]{factor}$", "", lr_stem)


def _key(path: str, root: str, strip_scale: int | None) -> str:
    rel = Path(path).relative_to(root).with_suffix("")
    stem = rel.name if strip_scale is None else hr_stem(rel.name, strip_scale)
    return str(rel.with_name(stem))


def _names(keys, limit=5) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def pair_folders(
    hr_scan: FolderScan, lr_scan: FolderScan, scale: int
) -> list[tuple[ImageRecord, ImageRecord]]:
    """Matches LR to HR images by relative path and stem (an LR stem may end in `x{scale}`).

    Returns:
        (lr, hr) record pairs, sorted by HR path.

    Raises:
        KerasrError: naming the unmatched files, duplicated stems, or pairs whose sizes do not
            differ by `scale`.
    """

    def index(scan, strip):
        table = {}
        for r in scan.records:
            k = _key(r.path, scan.folder, strip)
            if k in table:
                raise KerasrError(
                    f"two images share the name '{k}' in {scan.folder}: "
                    f"{Path(table[k].path).name} and {Path(r.path).name}"
                )
            table[k] = r
        return table

    hr = index(hr_scan, None)
    lr = index(lr_scan, scale)
    missing_lr, missing_hr = set(hr) - set(lr), set(lr) - set(hr)
    if missing_lr or missing_hr:
        parts = []
        if missing_lr:
            parts.append(f"HR without LR: {_names(missing_lr)}")
        if missing_hr:
            parts.append(f"LR without HR: {_names(missing_hr)}")
        raise KerasrError(
            f"unmatched images between {hr_scan.folder} and {lr_scan.folder}: " + "; ".join(parts)
        )
    pairs = []
    for k in sorted(hr):
        h, lo = hr[k], lr[k]
        if h.height // scale != lo.height or h.width // scale != lo.width:
            raise KerasrError(
                f"LR image {lo.path} is {lo.width}x{lo.height} but HR {h.path} is "
                f"{h.width}x{h.height}; expected the HR size divided by scale={scale}"
            )
        pairs.append((lo, h))
    return pairs


def decode_rgb(data):
    """Decodes PNG / JPEG / WebP / BMP bytes to float32 RGB in [0, 1].

    Greyscale is expanded to three channels; an alpha channel is composited over white
    (the usual background of images with transparency).
    """
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    image = tf.cast(image, tf.float32) / 255.0
    channels = tf.shape(image)[-1]

    def composite(rgb, alpha):
        return rgb * alpha + (1.0 - alpha)

    image = tf.switch_case(
        tf.clip_by_value(channels - 1, 0, 3),
        [
            lambda: tf.tile(image[..., :1], [1, 1, 3]),
            lambda: tf.tile(composite(image[..., :1], image[..., 1:2]), [1, 1, 3]),
            lambda: image[..., :3],
            lambda: composite(image[..., :3], image[..., 3:4]),
        ],
    )
    return tf.ensure_shape(image, [None, None, 3])


def load_image(path):
    """Reads and decodes one image file in the graph (see `decode_rgb`)."""
    return decode_rgb(tf.io.read_file(path))


def is_tfds(source: str) -> bool:
    return source.startswith(TFDS_PREFIX)


def tfds_dataset(source: str, split: str, data_dir: str = ""):
    """Loads `tfds:NAME` as a dataset of `(lr, hr)` (if it has both) or `hr` float images.

    Args:
        source: `tfds:` followed by a TFDS name, e.g. `tfds:div2k/bicubic_x4`.
        split: "train" or "validation" ("validation" falls back to "test").
        data_dir: TFDS data folder ("" = TFDS default).

    Returns:
        `(dataset, paired)`: elements are dicts with "hr" and, when `paired`, "lr".

    Raises:
        KerasrError: unknown dataset, missing split, or no image feature.
    """
    import tensorflow_datasets as tfds

    name = source[len(TFDS_PREFIX) :]
    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
    except Exception as e:  # TFDS raises several types (DatasetNotFoundError, ValueError)
        reason = " ".join(str(e).split())[:200]
        raise KerasrError(f"unknown TFDS dataset '{name}': {reason}") from None
    splits = set(builder.info.splits.keys()) if builder.info.splits else set()
    if split == "validation" and "validation" not in splits and "test" in splits:
        split = "test"
    features = builder.info.features
    if "hr" in features and "lr" in features:
        keys = ("lr", "hr")
    elif "image" in features:
        keys = ("image",)
    elif "hr" in features:
        keys = ("hr",)
    else:
        raise KerasrError(
            f"TFDS dataset '{name}' has no 'image' or 'hr' feature; it has: "
            f"{', '.join(features.keys())}"
        )
    try:
        builder.download_and_prepare()
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as e:
        raise KerasrError(f"cannot load TFDS dataset '{name}' split '{split}': {e}") from None

    def convert(example):
        out = {}
        for k in keys:
            image = tf.cast(example[k], tf.float32) / 255.0
            if image.shape[-1] == 1:
                image = tf.tile(image, [1, 1, 3])
            out["hr" if k == "image" else k] = image[..., :3]
        return out

    return ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE), len(keys) == 2

"""Reading and writing image files as numpy arrays, keeping bit depth and alpha.

Images are `(height, width, channels)` arrays with 1 (grey), 2 (grey+alpha), 3 (RGB) or
4 (RGBA) channels, `uint8` or `uint16`. Pillow reads and writes most formats; 16-bit colour
PNG, which Pillow would reduce to 8 bits, goes through TensorFlow's PNG codec (loaded only
for those files).
Writes go to a temporary file in the destination folder, renamed when complete, and can
carry a source file's colour profile and EXIF (`kerasr.image_metadata`).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kerasr.errors import KerasrError, first_line
from kerasr.image_metadata import ImageMetadata
from kerasr.io import write_bytes

MAX_FILE_BYTES = 2**30
# The one list of which files are images, per use:
# - IMAGE_SUFFIXES: what `read_image` takes from a folder (`upscale`, `evaluate`);
# - DATASET_SUFFIXES: SR training folders, decoded inside the tf.data graph, whose decoder
#   reads no TIFF;
# - SPRITE_SUFFIXES: DCGAN sprite folders, read with Pillow; sprite sets often come as GIF;
# - WRITE_SUFFIXES: what `write_image` writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DATASET_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SPRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
WRITABLE = "png, jpg, webp, bmp or tiff"
# Pillow's name of each format.
_PILLOW_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}


def _pillow_formats(suffixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_PILLOW_FORMATS[suffix] for suffix in suffixes))


# What Pillow may decode, per use: every `Image.open` in kerasr passes one of these, so a
# file, whatever its name, only reaches the plugins of the formats kerasr documents. Left to
# itself Pillow tries all of them, and its EPS/PS plugin hands the file to Ghostscript.
# - READ_FORMATS: `read_image` / `decode_image` (`upscale`, `evaluate`, web uploads); a GIF
#   given by name is read too (its first frame);
# - DATASET_FORMATS: the header scan of SR training folders;
# - SPRITE_FORMATS: DCGAN sprite folders.
READ_FORMATS = _pillow_formats((*IMAGE_SUFFIXES, ".gif"))
DATASET_FORMATS = _pillow_formats(DATASET_SUFFIXES)
SPRITE_FORMATS = _pillow_formats(SPRITE_SUFFIXES)
NOT_AN_IMAGE = f"not an image in a format kerasr reads ({', '.join(READ_FORMATS)})"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file.

    Args:
        path: the file.

    Returns:
        `(h, w, c)` array, `c` in {1, 2, 3, 4} (grey, grey+alpha, RGB, RGBA), dtype
        `uint8` or `uint16` (16-bit PNG). Palette images become RGB, or RGBA when they
        have transparency.

    Raises:
        KerasrError: missing, unreadable, truncated, empty or not an image.
    """
    path = Path(path)
    try:
        _check_readable_size(path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise KerasrError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise KerasrError(f"{path}: is a folder, not an image") from None
    except OSError as e:
        raise KerasrError(f"{path}: cannot read ({e.strerror or e})") from None
    return decode_image(data, str(path))


def _check_readable_size(path: Path) -> None:
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(path)
    # A device or pipe (/dev/zero) would be read until memory runs out.
    if not stat.S_ISREG(info.st_mode):
        raise KerasrError(f"{path}: not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise KerasrError(
            f"{path}: file is {info.st_size / 2**30:.1f} GiB, over the limit of "
            f"{MAX_FILE_BYTES // 2**30} GiB for an image"
        )


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decodes image file bytes (see `read_image`); `name` is used in error messages.

    EXIF orientation is applied, as photo viewers do, so a portrait photo stays upright.
    """
    if not data:
        raise KerasrError(f"{name}: empty file")
    depth = _png_bit_depth(data)
    if depth is not None:
        width, height = struct.unpack(">II", data[16:24])
        if 0 in (width, height):
            raise KerasrError(f"{name}: image has zero size")
        # Pillow refuses oversized 8-bit images itself; 16-bit ones bypass it, so the same
        # limit is applied to the header before anything is decoded.
        if depth == 16:
            if width * height > decode_pixel_limit():
                raise KerasrError(_too_large(name, width, height))
            return _decode_png16(data, name)
    try:
        with Image.open(io.BytesIO(data), formats=READ_FORMATS) as im:
            if getattr(im, "is_animated", False):
                warnings.warn(
                    f"{name}: animated image with {im.n_frames} frames; only the first is used",
                    stacklevel=3,
                )
            im.load()
            pixels = _to_array(ImageOps.exif_transpose(im))
    except KerasrError as e:  # a readable image kerasr does not take
        raise KerasrError(f"{name}: {e}") from None
    except Image.DecompressionBombError:
        raise KerasrError(_too_large(name, *_header_size(data))) from None
    except UnidentifiedImageError:
        raise KerasrError(f"{name}: {NOT_AN_IMAGE}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise KerasrError(f"{name}: corrupt or truncated image ({e})") from None
    if pixels.size == 0:
        raise KerasrError(f"{name}: image has zero size")
    return pixels


def decode_pixel_limit() -> int:
    """The largest image (width x height) kerasr decodes: Pillow's decompression-bomb limit."""
    return 2 * Image.MAX_IMAGE_PIXELS


def _header_size(data: bytes) -> tuple[int, int]:
    # Pillow will not even open an oversized image, so only a PNG header tells its size here.
    if _png_bit_depth(data) is None:
        return 0, 0
    return struct.unpack(">II", data[16:24])


def _too_large(name: str, width: int, height: int) -> str:
    size = f" ({width}x{height})" if width else ""
    limit = f"{decode_pixel_limit():,}"
    return f"{name}: image is too large to decode safely{size}; the limit is {limit} pixels"


def _to_array(im: Image.Image) -> np.ndarray:
    if im.mode == "F":
        return _float_to_uint16(np.asarray(im))[..., None]
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(im)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise KerasrError("32-bit integer images are not supported; save as 16-bit")
        return pixels.astype(np.uint16)[..., None]  # 16-bit greyscale
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    elif im.mode in ("LA", "La") or (im.mode == "L" and "transparency" in im.info):
        im = im.convert("LA")  # grey stays grey, with its alpha
    elif im.mode in ("1", "L"):
        im = im.convert("L")
    elif im.mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    pixels = np.asarray(im)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _float_to_uint16(pixels: np.ndarray) -> np.ndarray:
    # Floating-point images (32-bit TIFF) hold intensities in [0, 1]; 16 bits keep their
    # precision, where a plain conversion would truncate 0..1 to black.
    finite = pixels[np.isfinite(pixels)]
    if finite.size != pixels.size or finite.min() < 0.0 or finite.max() > 1.0:
        raise KerasrError("floating-point images must hold finite values in [0, 1]")
    return np.round(pixels * 65535.0).astype(np.uint16)


def _png_bit_depth(data: bytes) -> int | None:
    # IHDR is always the first chunk: signature (8), length (4), "IHDR" (4), width, height, depth.
    if len(data) >= 25 and data[:8] == _PNG_SIGNATURE and data[12:16] == b"IHDR":
        return data[24]
    return None


def _decode_png16(data: bytes, path: Path) -> np.ndarray:
    import tensorflow as tf

    try:
        return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
        raise KerasrError(f"{path}: corrupt or truncated PNG ({first_line(e.message)})") from None


def write_image(
    path: str | os.PathLike,
    pixels: np.ndarray,
    quality: int = 95,
    *,
    make_parents: bool = False,
    metadata: ImageMetadata | None = None,
) -> None:
    """Writes `pixels` to `path` atomically; the format follows the suffix.

    16-bit images must go to PNG. JPEG has no alpha: transparent areas are flattened onto
    white (`flatten_alpha`); callers that want to keep them choose PNG. TIFF is written
    uncompressed: Pillow compresses through libtiff, which cannot write the EXIF.
    `metadata` (from `kerasr.image_metadata.read_metadata`) puts the source's ICC profile
    and EXIF in PNG, JPEG, WebP and TIFF files.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise KerasrError(f"{path}: cannot write '{suffix}' files; use {WRITABLE}")
    if pixels.dtype == np.uint16 and suffix != ".png":
        raise KerasrError(f"{path}: 16-bit images can only be written as PNG")
    payload = _encode(pixels, _PILLOW_FORMATS[suffix], quality, metadata=metadata)
    write_bytes(path, payload, make_parents=make_parents)


def to_uint8(x, value_range: tuple[float, float] = (0.0, 1.0)):
    """Quantises floats in `value_range` to uint8 levels: clip, scale, round to nearest.

    The one rounding rule for network outputs, used for files, grids, scores and serving.
    Takes a numpy array (returns one) or a TensorFlow tensor (returns a tensor, so it can
    run inside a compiled function).

    Args:
        x: float pixels.
        value_range: the floats that map to 0 and 255: `(0, 1)` for the upscalers,
            `(-1, 1)` for the DCGAN generators' tanh output, `(0, 255)` for already-scaled values.
    """
    low, high = value_range
    scale = 255.0 / (high - low)
    if type(x).__module__.startswith("tensorflow"):
        import tensorflow as tf

        levels = tf.round(tf.clip_by_value((x - low) * scale, 0.0, 255.0))
        return tf.cast(levels, tf.uint8)
    levels = np.round(np.clip((np.asarray(x, np.float32) - low) * scale, 0.0, 255.0))
    return levels.astype(np.uint8)


def has_transparency(pixels: np.ndarray) -> bool:
    """Whether an `(h, w, c)` image has an alpha channel (c 2 or 4) that is not all opaque."""
    if pixels.ndim != 3 or pixels.shape[-1] not in (2, 4):
        return False
    return bool(np.any(pixels[..., -1] != np.iinfo(pixels.dtype).max))


def flatten_alpha(pixels: np.ndarray, background: int = 255) -> np.ndarray:
    """Composites grey+alpha or RGBA uint8 pixels onto a flat background (default white).

    White is the background sprites and transparent drawings are usually shown on, and
    the one kerasr's training data use for images with transparency.
    """
    colour = pixels[..., :-1].astype(np.float32)
    alpha = pixels[..., -1:].astype(np.float32) / 255.0
    return to_uint8(colour * alpha + background * (1.0 - alpha), (0.0, 255.0))


def encode_png(
    pixels: np.ndarray, compress_level: int = 6, metadata: ImageMetadata | None = None
) -> bytes:
    """PNG bytes of an `(h, w, c)` uint8 or uint16 array (for the web app and exports).

    `compress_level` 3 is several times faster than the default 6 on large images, for a
    few per cent in size. `metadata`: as in `write_image`.
    """
    return _encode(pixels, "PNG", 95, compress_level, metadata)


def _encode(
    pixels: np.ndarray,
    fmt: str,
    quality: int,
    compress_level: int = 6,
    metadata: ImageMetadata | None = None,
) -> bytes:
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    icc_profile, exif = metadata.for_output(pixels, fmt) if metadata else (None, None)
    if pixels.dtype == np.uint16 and pixels.shape[-1] != 1:
        import tensorflow as tf

        return _with_png_metadata(tf.io.encode_png(pixels).numpy(), icc_profile, exif)
    channels = pixels.shape[-1]
    if fmt == "JPEG" and channels in (2, 4):
        pixels, channels = flatten_alpha(pixels), channels - 1
    # Pillow picks the mode from dtype and shape (L, RGB, RGBA, I;16).
    im = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if channels == 1 else pixels))
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        options = {"compress_level": compress_level}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if exif:
        options["exif"] = exif
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _with_png_metadata(png: bytes, icc_profile: bytes | None, exif: bytes | None) -> bytes:
    # TensorFlow's PNG encoder takes no metadata. Both chunks must precede the image data;
    # they go right after IHDR, the first chunk, which ends 33 bytes in (signature 8,
    # length 4, type 4, data 13, CRC 4).
    chunks = b""
    if icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if exif:
        chunks += _png_chunk(b"eXIf", exif.removeprefix(b"Exif\0\0"))
    return png[:33] + chunks + png[33:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

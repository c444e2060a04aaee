"""The colour profile and EXIF of an image file, carried over to its upscaled version.

A photo's ICC profile says how its numbers map to colours: without it, a wide-gamut or
Display P3 photo looks dull in a colour-managed viewer. Its EXIF holds the camera, the
date, the exposure and the place. Both are read from PNG, JPEG, WebP and TIFF files and
written into PNG, JPEG and WebP outputs, with the EXIF made true of the new image: its
orientation is 1 once `kerasr.images.decode_image` has turned the pixels upright, its
pixel dimensions are the new size, and the thumbnail (a picture of the old pixels) and the
tags that describe how a TIFF stores its pixels are left out.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats whose ICC profile and EXIF Pillow reads at open, before any pixel is decoded.
_READ_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
# Formats kerasr writes that can hold both (BMP cannot).
_WRITE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_ORIENTATION = 0x0112
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
# Tags of a TIFF's first directory that describe its stored pixels (size, layout,
# compression, strips and tiles, the old JPEG thumbnail pointers), or data carried
# otherwise (ICC profile) or not at all (XMP, IPTC, Photoshop blocks, whose copies of the
# size and orientation would go stale). In a JPEG's EXIF they are absent or stale.
_PIXEL_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281}
    | {284, 288, 289, 290, 291, 292, 293, 317, 320, 322, 323, 324, 325, 330, 332, 338}
    | {339, 340, 341, 347, *range(512, 522), 529, 530, 531, 532, 700, 33723, 34377}
    | {34675, 37724}
)
# A JPEG segment holds at most 65535 bytes, its length field included.
_JPEG_MAX_EXIF = 65533


@dataclasses.dataclass(frozen=True)
class ImageMetadata:
    """What an image file says about its pixels, beside the pixels.

    Attributes:
        icc_profile: the ICC profile, or None.
        exif: EXIF (TIFF-structured bytes, as Pillow writes them) without thumbnail and
            pixel-layout tags, or None.
        upright: whether decoding applied the EXIF orientation to the pixels (so outputs
            say orientation 1); 16-bit PNGs are decoded as stored.
        source: the file's name, for warnings.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None
    upright: bool = True
    source: str = "image"

    def for_output(self, pixels: np.ndarray, fmt: str) -> tuple[bytes | None, bytes | None]:
        """The ICC profile and EXIF bytes to write with `pixels` in Pillow format `fmt`.

        The profile is left out, with a warning, when its colour space is not the output's
        (a CMYK profile after the conversion to RGB; a grey one in a WebP, which is RGB).
        """
        if fmt not in _WRITE_FORMATS:
            return None, None
        return self._profile_for(pixels, fmt), self._exif_for(pixels, fmt)

    def _profile_for(self, pixels: np.ndarray, fmt: str) -> bytes | None:
        profile = self.icc_profile
        if not profile:
            return None
        grey = pixels.shape[-1] in (1, 2) and fmt != "WEBP"
        wanted = b"GRAY" if grey else b"RGB "
        space = profile[16:20]
        if space != wanted:
            warnings.warn(
                f"{self.source}: its {space.decode('latin-1').strip() or 'unknown'} colour "
                f"profile does not describe the {wanted.decode().strip()} output; left out",
                stacklevel=4,
            )
            return None
        return profile

    def _exif_for(self, pixels: np.ndarray, fmt: str) -> bytes | None:
        if not self.exif:
            return None
        exif = Image.Exif()
        exif.load(self.exif)
        if self.upright and _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        height, width = pixels.shape[:2]
        details = exif.get_ifd(_EXIF_IFD)
        details[_PIXEL_X], details[_PIXEL_Y] = width, height
        if _EXIF_IFD not in exif:
            exif[_EXIF_IFD] = details
        data = exif.tobytes()
        if fmt == "JPEG" and len(data) > _JPEG_MAX_EXIF:
            warnings.warn(
                f"{self.source}: its EXIF ({len(data):,} bytes) does not fit in a JPEG "
                f"(at most {_JPEG_MAX_EXIF:,}); left out",
                stacklevel=4,
            )
            return None
        return data


def read_metadata(source: bytes | str | os.PathLike, name: str | None = None) -> ImageMetadata:
    """Reads the ICC profile and EXIF of an image file without decoding its pixels.

    Args:
        source: the file, or its bytes.
        name: the file's name in warnings (default: the path).

    Returns:
        An `ImageMetadata`; an empty one for a format that carries neither, or when the
        metadata cannot be read (the pixels, read on their own, still can be).
    """
    if isinstance(source, bytes):
        name, head, stream = name or "image", source[:25], io.BytesIO(source)
    else:
        name, stream = name or str(source), source
        try:
            with open(source, "rb") as f:
                head = f.read(25)
        except OSError:
            return ImageMetadata(source=name)
    try:
        with Image.open(stream, formats=_READ_FORMATS) as im:
            profile = im.info.get("icc_profile") or None
            exif = _readable_exif(im, name)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return ImageMetadata(source=name)
    # `decode_image` reads 16-bit PNGs with TensorFlow's codec, which ignores orientation.
    upright = not (head[:8] == _PNG_SIGNATURE and head[24:25] == b"\x10")
    return ImageMetadata(profile, exif, upright, name)


def _readable_exif(im: Image.Image, name: str) -> bytes | None:
    try:
        return _carried_exif(im)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error) as e:
        warnings.warn(f"{name}: its EXIF cannot be read ({e}); left out", stacklevel=4)
        return None


def _carried_exif(im: Image.Image) -> bytes | None:
    # A PNG's eXIf after the pixel data is only seen by decoding them: left out.
    raw = im.info.get("exif")
    if raw is None and im.format != "TIFF":
        return None
    source = Image.Exif()
    if raw is not None:
        source.load(raw)
    else:
        source = im.getexif()  # a TIFF's first directory is its EXIF
    exif = Image.Exif()
    for tag, value in source.items():
        if tag not in _PIXEL_TAGS and tag not in (_EXIF_IFD, _GPS_IFD):
            exif[tag] = value
    details = dict(source.get_ifd(_EXIF_IFD))
    interop = source.get_ifd(_INTEROP_IFD) if _INTEROP_IFD in details else {}
    details.pop(_INTEROP_IFD, None)
    if interop:
        details[_INTEROP_IFD] = dict(interop)
    if details:
        exif[_EXIF_IFD] = details
    gps = source.get_ifd(_GPS_IFD)
    if gps:
        exif[_GPS_IFD] = dict(gps)
    if not len(exif):
        return None
    return exif.tobytes()

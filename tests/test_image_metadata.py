"""Upscaled images keep the source's ICC profile and EXIF, made true of the new image."""

import io
import struct

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.image_metadata import read_metadata
from kerasr.images import _with_png_metadata, read_image, write_image

runner = CliRunner()
ORIENTATION, MAKE = ExifTags.Base.Orientation, ExifTags.Base.Make
PIXEL_X, PIXEL_Y = ExifTags.Base.ExifImageWidth, ExifTags.Base.ExifImageHeight


# Made once: a profile's header holds the time it was made.
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


THUMBNAIL = _thumbnail()


def camera_exif(width: int, height: int, orientation: int = 6) -> bytes:
    """EXIF as a camera writes it: make, orientation, pixel size, a JPEG thumbnail in IFD1."""

    def ifd(entries, next_offset):  # entries: (tag, type, count, 4 value bytes)
        body = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack("<HHI", tag, kind, count) + value
        return body + struct.pack("<I", next_offset)

    def short(n):
        return struct.pack("<HH", n, 0)

    def long(n):
        return struct.pack("<I", n)

    # Little-endian TIFF header, then IFD0 at 8 (3 entries: 42 bytes), the Exif IFD at 50
    # (2 entries: 30 bytes), IFD1 at 80 (3 entries: 42 bytes) and the thumbnail at 122.
    ifd0 = ifd([(MAKE, 2, 2, b"C\0\0\0"), (ORIENTATION, 3, 1, short(orientation)),
                (0x8769, 4, 1, long(50))], 80)  # fmt: skip
    details = ifd([(PIXEL_X, 4, 1, long(width)), (PIXEL_Y, 4, 1, long(height))], 0)
    ifd1 = ifd([(259, 3, 1, short(6)), (513, 4, 1, long(122)),
                (514, 4, 1, long(len(THUMBNAIL)))], 0)  # fmt: skip
    return b"Exif\0\0II*\0" + long(8) + ifd0 + details + ifd1 + THUMBNAIL


@pytest.fixture
def photo_file(tmp_path, photo):
    """A 32x24 JPEG stored sideways (orientation 6), with an ICC profile, EXIF and thumbnail."""
    path = tmp_path / "in" / "camera.jpg"
    path.parent.mkdir()
    exif = camera_exif(32, 24)
    Image.fromarray(photo[:24, :32]).save(path, quality=95, icc_profile=SRGB, exif=exif)
    with Image.open(path) as im:  # the fixture is what it claims to be
        assert im.getexif()[ORIENTATION] == 6 and im.getexif()[MAKE] == "C"
        assert im.getexif().get_ifd(ExifTags.IFD.IFD1)[514] == len(THUMBNAIL)
    assert THUMBNAIL in path.read_bytes()
    return path


def check_output(path, size):
    """Same profile and make, orientation 1, the new size, no thumbnail."""
    with Image.open(path) as im:
        assert im.size == size
        assert im.info.get("icc_profile") == SRGB
        exif = im.getexif()
        assert exif[MAKE] == "C" and exif[ORIENTATION] == 1
        details = exif.get_ifd(ExifTags.IFD.Exif)
        assert (details[PIXEL_X], details[PIXEL_Y]) == size
        assert not exif.get_ifd(ExifTags.IFD.IFD1)
    assert THUMBNAIL not in path.read_bytes()


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "tif"])
def test_upscale_keeps_the_profile_and_exif_with_the_orientation_applied_once(
    photo_file, tmp_path, tiny_model_file, ext
):
    out = tmp_path / "out"
    args = [str(photo_file), "-o", str(out), "-m", str(tiny_model_file), "--ext", ext]
    result = runner.invoke(app, ["upscale", *args, "--precision", "float32"])
    assert result.exit_code == 0, result.output
    target = out / f"camera_out.{ext}"
    # Stored 32x24 and turned upright on reading: 24x32, then x4. Orientation 1 means no
    # viewer turns it a second time.
    check_output(target, (96, 128))


def test_sixteen_bit_png_written_by_tensorflow_keeps_both(tmp_path, photo):
    import tensorflow as tf

    source = tmp_path / "deep.png"
    deep = photo[:16, :16].astype(np.uint16) * 257
    png = tf.io.encode_png(deep).numpy()
    source.write_bytes(_with_png_metadata(png, SRGB, camera_exif(16, 16, orientation=1)))
    metadata = read_metadata(source)
    big = np.repeat(np.repeat(read_image(source), 2, 0), 2, 1)
    write_image(tmp_path / "big.png", big, metadata=metadata)
    assert read_image(tmp_path / "big.png").dtype == np.uint16
    check_output(tmp_path / "big.png", (32, 32))


def test_sixteen_bit_png_decoded_as_stored_keeps_its_orientation(tmp_path, photo):
    import tensorflow as tf

    source = tmp_path / "deep.png"
    png = tf.io.encode_png(photo[:8, :12].astype(np.uint16) * 257).numpy()
    source.write_bytes(_with_png_metadata(png, None, camera_exif(12, 8)))
    write_image(tmp_path / "o.png", read_image(source), metadata=read_metadata(source))
    with Image.open(tmp_path / "o.png") as im:
        # TensorFlow's decoder does not turn the pixels, so viewers still have to.
        assert im.size == (12, 8) and im.getexif()[ORIENTATION] == 6


def test_tiff_camera_tags_are_kept_and_its_pixel_layout_tags_are_not(tmp_path, photo):
    source = tmp_path / "scan.tif"
    exif = Image.Exif()
    exif[MAKE], exif[ORIENTATION] = "C", 1
    Image.fromarray(photo[:8, :8]).save(source, icc_profile=SRGB, exif=exif)
    write_image(tmp_path / "o.png", read_image(source), metadata=read_metadata(source))
    with Image.open(tmp_path / "o.png") as im:
        assert im.info["icc_profile"] == SRGB
        kept = im.getexif()
    assert kept[MAKE] == "C"
    for tag in (256, 257, 258, 273, 279, 34675):  # size, depth, strips, the ICC tag
        assert tag not in kept


def test_a_profile_of_another_colour_space_is_left_out_with_a_warning(tmp_path, photo):
    source = tmp_path / "grey.png"
    Image.fromarray(photo[:8, :8, 0]).save(source, icc_profile=SRGB)  # RGB profile, grey
    with pytest.warns(UserWarning, match=r"grey.png: its RGB colour profile .* GRAY output"):
        write_image(tmp_path / "o.png", read_image(source), metadata=read_metadata(source))
    with Image.open(tmp_path / "o.png") as im:
        assert "icc_profile" not in im.info


def test_a_grey_profile_stays_with_grey_pixels(tmp_path, photo):
    grey = SRGB[:16] + b"GRAY" + SRGB[20:]  # only the colour-space field is checked
    source = tmp_path / "grey.jpg"
    Image.fromarray(photo[:8, :8, 0]).save(source, icc_profile=grey)
    write_image(tmp_path / "o.jpg", read_image(source), metadata=read_metadata(source))
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.info["icc_profile"] == grey

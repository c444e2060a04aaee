"""Reading images: the decompression-bomb limit for every bit depth, floating-point TIFF."""

import numpy as np
import pytest
from PIL import Image

from kerasr.errors import KerasrError
from kerasr.images import decode_pixel_limit, read_image


@pytest.mark.parametrize("depth", [8, 16])
def test_oversized_png_is_refused_before_decoding(tmp_path, depth, png_header_only):
    side = int(decode_pixel_limit() ** 0.5) + 100
    path = png_header_only(tmp_path / f"bomb{depth}.png", side, side, depth)
    with pytest.raises(KerasrError, match=rf"too large to decode safely \({side}x{side}\)"):
        read_image(path)


def test_float_tiff_in_unit_range_keeps_its_values(tmp_path):
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    pixels = read_image(tmp_path / "f.tif")
    assert pixels.dtype == np.uint16 and pixels.shape == (8, 8, 1)
    np.testing.assert_allclose(pixels[..., 0] / 65535.0, ramp, atol=1 / 65535)
    assert pixels.max() == 65535  # not truncated to 0/1 (a black image)


def test_float_tiff_out_of_range_is_one_clear_error(tmp_path):
    Image.fromarray(np.full((4, 4), 300.0, np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(KerasrError, match=r"f.tif: floating-point images must hold finite"):
        read_image(tmp_path / "f.tif")

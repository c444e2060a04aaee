import numpy as np
import pytest
from PIL import Image

from kerasr.errors import KerasrError
from kerasr.upscaling.inference import (
    Upscaler,
    _ramp,
    native_bfloat16,
    plan_axis,
    resolve_precision,
)


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


@pytest.mark.parametrize("length,tile", [(256, 96), (100, 32), (97, 96), (50, 64), (1000, 256)])
def test_tile_plan_partitions_the_axis_and_blends_to_one(length, tile):
    plan = plan_axis(length, tile, pad=32, overlap=16)
    assert len(plan.cores) == max(1, -(-length // tile))  # no more windows than needed
    assert plan.cores[0][0] == 0 and plan.cores[-1][1] == length
    total = np.zeros(length * 4)
    for i, (start, (begin, end)) in enumerate(zip(plan.starts, plan.cores, strict=True)):
        assert start >= 0 and start + plan.window <= length  # windows stay inside the image
        assert start <= begin - plan.blend * (i > 0)  # the cross-fade lies in the window
        assert end + plan.blend * (i < len(plan.cores) - 1) <= start + plan.window
        total[start * 4 : (start + plan.window) * 4] += _ramp(plan, i, 4)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)  # every output pixel fully covered
    if len(plan.cores) > 1:
        assert plan.blend == 8


def test_tiled_output_has_no_visible_seams(x4plus_on_photo):
    """96x96 crop of the photograph, 48-px tiles with 16 px of padding (2 x 2 windows of 80
    px, so seams through detail that no window sees whole): tiled vs the network's output
    on the whole crop."""
    image = x4plus_on_photo.image
    whole = np.clip(x4plus_on_photo.output, 0.0, 1.0)
    tiled_upscaler = Upscaler(x4plus_on_photo.model, tile=48, tile_pad=16, precision="float32")
    tiled = tiled_upscaler.upscale_float(image)
    assert tiled_upscaler.count_tiles(96, 96) == 4
    assert 50.0 <= psnr(tiled, whole) < 100.0  # close, but the windows did not see it whole
    assert np.abs(tiled - whole).max() <= 0.1
    # All windows share one shape: the compiled forward pass was traced once for the tiles.
    assert tiled_upscaler._forward.experimental_get_tracing_count() == 1


def test_batched_tiles_match_single_tiles(tiny_model, photo):
    image = photo[:100, :90].astype(np.float32) / 255
    one = Upscaler(tiny_model, tile=32, batch_size=1, precision="float32").upscale_float(image)
    four = Upscaler(tiny_model, tile=32, batch_size=4, precision="float32").upscale_float(image)
    np.testing.assert_allclose(one, four, atol=1e-5)


def test_rgb_uint8_is_the_network_output_rounded_to_8_bits(tiny_model, photo):
    image = photo[:20, :30]
    out = Upscaler(tiny_model, precision="float32").upscale(image)
    assert out.dtype == np.uint8
    expected = np.asarray(tiny_model(image[None].astype(np.float32) / 255))[0]
    expected = np.rint(np.clip(expected, 0, 1) * 255)
    differ = np.abs(out.astype(np.float32) - expected)
    # Rounded, not truncated: only a value within float32 noise of .5 may land one level off.
    assert differ.max() <= 1 and (differ > 0).mean() < 0.01


def test_greyscale_stays_greyscale(tiny_model, photo):
    grey = photo[:20, :24, 1]
    up = Upscaler(tiny_model, precision="float32")
    out = up.upscale(grey)
    assert out.shape == (80, 96, 1) and out.dtype == np.uint8
    # Same result as running the RGB replica and taking BT.601 luma.
    rgb = up.upscale(np.repeat(grey[..., None], 3, -1)).astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    assert np.abs(out[..., 0].astype(np.float32) - luma).max() <= 1.0


def test_sixteen_bit_keeps_its_depth(tiny_model, photo):
    deep = photo[:16, :16].astype(np.uint16) * 257 + 3  # values no 8-bit image can hold
    up = Upscaler(tiny_model, precision="float32")
    out = up.upscale(deep)
    assert out.dtype == np.uint16 and out.shape == (64, 64, 3)
    eight = up.upscale(photo[:16, :16]).astype(np.float32) * 257
    assert np.abs(out.astype(np.float32) - eight).max() < 2 * 257  # same picture
    assert np.any(out % 257 != 0)  # and finer steps than 8 bits


def test_alpha_is_upscaled_separately(tiny_model, photo):
    rgba = np.concatenate([photo[:16, :16], np.zeros((16, 16, 1), np.uint8)], -1)
    rgba[4:12, 4:12, 3] = 255
    up = Upscaler(tiny_model, precision="float32")
    out = up.upscale(rgba)
    assert out.shape == (64, 64, 4)
    np.testing.assert_array_equal(out[..., :3], up.upscale(photo[:16, :16]))  # colour unaffected
    alpha = up.upscale(np.repeat(rgba[..., 3:], 3, -1))[..., 0]
    np.testing.assert_array_equal(out[..., 3], alpha)  # alpha went through the model alone
    assert up.work_for(rgba) == 2
    opaque = rgba.copy()
    opaque[..., 3] = 255
    assert up.work_for(opaque) == 1 and np.all(up.upscale(opaque)[..., 3] == 255)


def test_outscale_resizes_after_the_model(tiny_model, photo):
    up = Upscaler(tiny_model, precision="float32")
    native = up.upscale(photo[:20, :30])  # x4, 80x120
    for outscale, size in ((2.5, (75, 50)), (0.5, (15, 10))):
        out = up.upscale(photo[:20, :30], outscale=outscale)
        # Lanczos of the model's x4 output, as Pillow computes it on the 8-bit image: 0.1
        # levels apart on average (rounding, clipping between passes); bicubic is 0.5 apart.
        expected = np.asarray(Image.fromarray(native).resize(size, Image.LANCZOS), np.float32)
        assert out.shape == expected.shape
        assert np.abs(out - expected).mean() < 0.3
    with pytest.raises(KerasrError, match="outscale"):
        up.upscale(photo[:20, :30], outscale=-1)


def test_progress_counts_windows(tiny_model, photo):
    calls = []
    up = Upscaler(tiny_model, tile=16, precision="float32")
    up.upscale(photo[:40, :40], progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == up.count_tiles(40, 40) > 1


def test_bfloat16_stays_close_to_float32(tiny_model, photo):
    image = photo[:32, :32]
    f32 = Upscaler(tiny_model, precision="float32").upscale(image).astype(np.float32) / 255
    bf16 = Upscaler(tiny_model, precision="bfloat16").upscale(image).astype(np.float32) / 255
    assert psnr(bf16, f32) > 35  # a random tiny net; the real bound is measured in bench/


def test_auto_precision_follows_the_cpu():
    expected = "bfloat16" if native_bfloat16() else "float32"
    assert resolve_precision("auto") == expected
    with pytest.raises(KerasrError, match="precision"):
        resolve_precision("int8")


@pytest.mark.parametrize("bad", [{"tile": -1}, {"batch_size": 0}, {"alpha": "magic"}])
def test_bad_options(tiny_model, bad):
    with pytest.raises(KerasrError):
        Upscaler(tiny_model, **bad)

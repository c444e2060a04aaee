import numpy as np
import pytest

from kerasr.models import RRDBNet

TINY = {"num_basic_blocks": 1, "rrdb_channels": 8, "growth_channels": 4}


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("upsampler", ["nearest", "subpixel"])
def test_output_shape(scale, upsampler):
    model = RRDBNet(scale=scale, upsampler=upsampler, **TINY)
    y = model(np.zeros((2, 8, 12, 3), "float32"))
    assert tuple(y.shape) == (2, 8 * scale, 12 * scale, 3)
    assert y.dtype == "float32"


def test_channels_and_block_knobs():
    model = RRDBNet(
        in_channels=1,
        out_channels=1,
        num_basic_blocks=2,
        num_dense_blocks=2,
        num_residual_blocks=3,
        rrdb_channels=8,
        growth_channels=4,
    )
    assert tuple(model(np.zeros((1, 4, 4, 1), "float32")).shape) == (1, 16, 16, 1)
    rdb = model.body[0].blocks[0]
    assert len(model.body) == 2 and len(model.body[0].blocks) == 2 and len(rdb.convs) == 3
    # A scale-2 model folds its input: conv_first sees 4x the channels.
    x2 = RRDBNet(scale=2, **TINY)
    x2.build((None, None, None, 3))
    assert x2.conv_first.kernel.shape == (3, 3, 12, 8)


def test_parameter_count_matches_real_esrgan_x4plus():
    model = RRDBNet()  # the defaults are Real-ESRGAN x4plus
    model.build((None, None, None, 3))
    assert model.count_params() == 16_697_987


@pytest.mark.parametrize("bad", [{"scale": 3}, {"upsampler": "bilinear"}, {"num_basic_blocks": 0}])
def test_bad_arguments_are_clear(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RRDBNet(**bad)

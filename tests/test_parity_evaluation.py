"""The evaluation protocol against BasicSR: MATLAB-style bicubic imresize and the Y-channel
PSNR / SSIM of `basicsr.metrics` (`test_y_channel=True`, `crop_border`), by golden values.

tests/fixtures/parity_evaluation.npz is written by BasicSR (tests/parity/make_fixtures.py).
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasr.data.degradations import bicubic_downscale
from kerasr.evaluation.sr import matlab_imresize
from kerasr.metrics import psnr, ssim

FIXTURE = Path(__file__).parent / "fixtures" / "parity_evaluation.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.mark.parametrize("name", ["hr", "odd"])
@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 4])
def test_matlab_imresize_matches_basicsr(ref, name, scale):
    expected = ref[f"imresize_{name}_{scale:.4f}"]
    out = matlab_imresize(ref[f"imresize_{name}"].astype(np.float64), scale)
    assert out.shape == expected.shape
    # BasicSR resizes in float32, kerasr in float64.
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)


def test_bicubic_downscale_is_matlab_imresize_on_8_bit_levels(ref):
    hr = ref["imresize_hr"]
    lr = bicubic_downscale(tf.constant(hr[None]), 4)[0].numpy()
    expected = np.clip(np.round(ref["imresize_hr_0.2500"].astype(np.float64) * 255), 0, 255)
    # Rounding can only differ where the float32 and float64 resizes straddle a half level.
    assert np.mean(np.abs(lr * 255 - expected) > 0.5) < 0.001
    assert np.max(np.abs(lr * 255 - expected)) <= 1.0 + 1e-4


@pytest.mark.parametrize("name", ["bicubic", "noisy"])
@pytest.mark.parametrize("border", [0, 4])
def test_y_channel_psnr_and_ssim_match_basicsr(ref, name, border):
    hr = ref["metric_hr"].astype(np.float32)[None] / 255.0
    sr = ref[f"metric_{name}"].astype(np.float32)[None] / 255.0
    p = float(psnr(hr, sr, border=border)[0])
    s = float(ssim(hr, sr, border=border)[0])
    assert p == pytest.approx(float(ref[f"metric_{name}_psnr_border{border}"]), abs=1e-4)
    assert s == pytest.approx(float(ref[f"metric_{name}_ssim_border{border}"]), abs=1e-5)

"""PSNR / SSIM against scikit-image, an independent implementation, on fixed arrays."""

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from kerasr.metrics import PSNR, SSIM, psnr, rgb_to_y, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.random((2, 40, 48, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    return a, b


def y_of(image):
    return rgb2ycbcr(image)[..., 0] / 255.0


def test_y_channel_is_matlab_rgb2ycbcr(pair):
    np.testing.assert_allclose(np.asarray(rgb_to_y(pair[0]))[..., 0], y_of(pair[0]), atol=1e-5)


def test_psnr_on_y_with_border(pair):
    a, b = pair
    ours = np.asarray(psnr(a, b, border=4))
    for i in range(2):
        ref = peak_signal_noise_ratio(
            y_of(a[i])[4:-4, 4:-4], y_of(b[i])[4:-4, 4:-4], data_range=1.0
        )
        assert ours[i] == pytest.approx(ref, abs=1e-3)


def test_ssim_on_y_with_border(pair):
    a, b = pair
    ours = np.asarray(ssim(a, b, border=4))
    for i in range(2):
        ya, yb = y_of(a[i])[4:-4, 4:-4] * 255, y_of(b[i])[4:-4, 4:-4] * 255
        ref = structural_similarity(
            ya, yb, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert ours[i] == pytest.approx(ref, abs=1e-4)


def test_keras_metrics_average_over_images(pair):
    a, b = pair
    m, s = PSNR(border=4, quantize=False), SSIM(border=4, quantize=False)
    m.update_state(a, b)
    s.update_state(a, b)
    assert float(m.result()) == pytest.approx(float(np.mean(psnr(a, b, border=4))), abs=1e-4)
    assert float(s.result()) == pytest.approx(float(np.mean(ssim(a, b, border=4))), abs=1e-5)
    # By default the prediction is scored as saved: rounded to 8-bit levels.
    b8 = np.round(np.clip(b, 0, 1) * 255) / 255
    assert np.abs(b8 - b).max() > 1e-3
    m, s = PSNR(border=4), SSIM(border=4)
    m.update_state(a, b)
    s.update_state(a, b)
    assert float(m.result()) == pytest.approx(float(np.mean(psnr(a, b8, border=4))), abs=1e-4)
    assert float(s.result()) == pytest.approx(float(np.mean(ssim(a, b8, border=4))), abs=1e-5)
    assert PSNR.from_config(m.get_config()).quantize

"""Real-ESRGAN's degradation ops against the reference implementation (BasicSR / Real-ESRGAN).

The expected values are in tests/fixtures/parity_degradations.npz, written by BasicSR and
Real-ESRGAN themselves (tests/parity/make_fixtures.py; `bash tests/parity/run.sh` regenerates
them and reruns these tests). Tolerances are for float32 on the CPU.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kerasr.data import kernels as K
from kerasr.data.degradations import add_gaussian_noise, add_poisson_noise, jpeg_batch, usm_sharpen
from kerasr.data.resize import interpolate
from kerasr.data.transforms import crop_pair_at

FIXTURE = Path(__file__).parent / "fixtures" / "parity_degradations.npz"


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE) as data:
        return dict(data)


GAUSSIAN_FAMILY = {
    "iso": 0,
    "aniso": 0,
    "generalized_iso": 0,
    "generalized_aniso": 0,
    "plateau_iso": 1,
    "plateau_aniso": 1,
}


@pytest.mark.parametrize("name", sorted(GAUSSIAN_FAMILY))
def test_gaussian_family_kernels_match_basicsr(ref, name):
    size, sx, sy, theta, beta = ref[f"kernel_{name}_params"]
    k = K.gaussian_family_kernels(
        tf.constant([sx], tf.float32),
        tf.constant([sy], tf.float32),
        tf.constant([theta], tf.float32),
        tf.constant([beta], tf.float32),
        tf.constant([GAUSSIAN_FAMILY[name]]),
        int(size),
    )
    k = (k / tf.reduce_sum(k))[0].numpy()
    np.testing.assert_allclose(k, ref[f"kernel_{name}"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ["sinc_21", "sinc_9_pad21"])
def test_sinc_kernels_match_basicsr(ref, name):
    size, cutoff, pad_to = ref[f"kernel_{name}_params"]
    grid = int(max(size, pad_to))
    # Computed on the padded grid, masked to the kernel size and normalised, as random_kernels
    # does; BasicSR computes it at its size and pads with zeros.
    k = K.sinc_kernels(tf.constant([cutoff], tf.float32), grid)
    k = K._normalize(k * K._size_mask(tf.constant([int(size)]), grid))[0].numpy()
    np.testing.assert_allclose(k, ref[f"kernel_{name}"], rtol=0, atol=2e-7)


def test_filter2d_matches_basicsr(ref):
    out = K.filter_batch(tf.constant(ref["filter_images"]), tf.constant(ref["filter_kernels"]))
    np.testing.assert_allclose(out.numpy(), ref["filter_out"], rtol=0, atol=1e-6)


def test_usm_sharpening_matches_realesrgan(ref):
    out = usm_sharpen(tf.constant(ref["usm_images"])).numpy()
    # A 51x51 blur applied as two 1-D passes (BasicSR: one 2-D pass): float32 sums differ.
    np.testing.assert_allclose(out, ref["usm_out"], rtol=0, atol=2e-6)


def test_gaussian_noise_matches_basicsr_given_its_draws(ref):
    draws = (tf.constant(ref["gauss_z"]), tf.constant(ref["gauss_z_gray"]))
    out = add_gaussian_noise(
        tf.constant(ref["noise_images"]),
        None,
        tf.constant(ref["gauss_sigma"]) / 255.0,
        tf.constant(ref["gauss_gray"] > 0),
        draws=draws,
    )
    np.testing.assert_allclose(out.numpy(), ref["gauss_out"], rtol=0, atol=1e-6)


def test_poisson_noise_matches_basicsr_given_its_draws(ref):
    from kerasr.data.degradations import grey_levels, to_uint8_levels

    images = tf.constant(ref["noise_images"])
    # The third image has few grey levels: BasicSR's scale is then below 256.
    levels = grey_levels(to_uint8_levels(images)).numpy()
    np.testing.assert_array_equal(levels, ref["poisson_levels"])
    luma = to_uint8_levels(tf.image.rgb_to_grayscale(images))
    np.testing.assert_array_equal(grey_levels(luma).numpy(), ref["poisson_levels_gray"])
    assert ref["poisson_levels"][2] < 256

    draws = (tf.constant(ref["poisson_counts"]), tf.constant(ref["poisson_counts_gray"]))
    out = add_poisson_noise(
        images,
        None,
        tf.constant(ref["poisson_scale"]),
        tf.constant(ref["poisson_gray"] > 0),
        draws=draws,
    )
    np.testing.assert_allclose(out.numpy(), ref["poisson_out"], rtol=0, atol=1e-6)


def _resize_cases(ref):
    for key in sorted(ref):
        if key.startswith("resize_") and key != "resize_images":
            yield key


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_matches_torch_interpolate(ref, mode):
    images = tf.constant(ref["resize_images"])
    h, w = images.shape[1:3]
    cases = [k for k in _resize_cases(ref) if k.startswith(f"resize_{mode}_")]
    assert len(cases) == 5
    for key in cases:
        kind, value = key.split("_")[2:4]
        if kind == "factor":
            factor = float(value)
            size, arg = (int(h * factor), int(w * factor)), factor
        else:
            size, arg = tuple(int(v) for v in value.split("x")), None
        out = interpolate(images, size, mode, arg).numpy()
        assert out.shape == ref[key].shape, key
        np.testing.assert_allclose(out, ref[key], rtol=0, atol=2e-6, err_msg=key)


def test_paired_crop_matches_basicsr(ref):
    top, left = (int(v) for v in ref["crop_offsets"])
    for i in range(2):
        lq, gt = crop_pair_at(ref["crop_lq"][i], ref["crop_gt"][i], top, left, 4, 4)
        np.testing.assert_array_equal(lq.numpy(), ref["crop_lq_out"][i])
        np.testing.assert_array_equal(gt.numpy(), ref["crop_gt_out"][i])


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2))


# TensorFlow's libjpeg and Real-ESRGAN's DiffJPEG share the quantisation tables, their
# quality scaling and 4:2:0 chroma; they differ in colour conversion, rounding and chroma
# resampling, so the artefacts differ while their strength matches. Measured on a 64x64 photo
# crop at qualities 30 / 50 / 70 / 95: kerasr vs DiffJPEG 31.6 / 34.3 / 34.5 / 37.2 dB; the
# JPEG loss (vs the input) 28.05 / 29.72 / 31.29 / 35.98 dB for kerasr and 27.95 / 29.65 /
# 31.29 / 37.41 dB for DiffJPEG.
JPEG_MIN_PSNR = 30.0
JPEG_LOSS_DB = 1.5


def test_jpeg_is_close_to_diffjpeg_at_equal_quality(ref):
    images, q = ref["jpeg_images"], ref["jpeg_quality"]
    out = jpeg_batch(tf.constant(images), tf.constant(q)).numpy()
    for i in range(len(q)):
        assert _psnr(out[i], ref["jpeg_out"][i]) > JPEG_MIN_PSNR, int(q[i])
        loss, ref_loss = _psnr(out[i], images[i]), _psnr(ref["jpeg_out"][i], images[i])
        assert abs(loss - ref_loss) < JPEG_LOSS_DB, int(q[i])

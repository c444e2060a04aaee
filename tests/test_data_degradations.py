"""Degradations checked against independent NumPy / SciPy computations on small arrays."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, special

from kerasr.config import BlurConfig, DegradationConfig, from_dict
from kerasr.data import kernels as K
from kerasr.data.degradations import (
    add_gaussian_noise,
    add_poisson_noise,
    bicubic_downscale,
    degrade_batch,
    jpeg_batch,
    random_jpeg_quality,
    realesrgan_degrade,
    usm_sharpen,
)

SEED = tf.constant([3, 7], tf.int64)


def _smooth_image(b=2, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((b, h, w, 3)), sigma=(0, 2, 2, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32)


def test_gaussian_kernel_matches_closed_form_and_sums_to_one():
    size, sx, sy, theta = 21, 2.0, 0.7, 0.6
    k = K.gaussian_family_kernels(
        tf.constant([sx]),
        tf.constant([sy]),
        tf.constant([theta]),
        tf.constant([1.0]),
        tf.constant([0]),
        size,
    )[0].numpy()
    k = k / k.sum()
    # Closed form: N(0, R diag(sx^2, sy^2) R^T) evaluated on the integer grid.
    r = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = r @ np.diag([sx**2, sy**2]) @ r.T
    inv = np.linalg.inv(cov)
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    d = np.stack([xx, yy], -1)
    ref = np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inv, d))
    ref /= ref.sum()
    np.testing.assert_allclose(k, ref, atol=1e-6)
    assert abs(k.sum() - 1.0) < 1e-5


def test_plateau_and_generalized_kernels_closed_form():
    size, s, beta = 15, 1.5, 2.0
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    q = (xx**2 + yy**2) / s**2
    for family, ref in ((0, np.exp(-0.5 * q**beta)), (1, 1 / (q**beta + 1))):
        k = K.gaussian_family_kernels(
            tf.constant([s]),
            tf.constant([s]),
            tf.constant([0.0]),
            tf.constant([beta]),
            tf.constant([family]),
            size,
        )[0].numpy()
        np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-7)


def test_sinc_kernel_matches_bessel_formula():
    size, omega = 13, 1.3
    k = K.sinc_kernels(tf.constant([omega]), size)[0].numpy()
    ax = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(ax, ax)
    r = np.hypot(xx, yy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = omega * special.j1(omega * r) / (2 * np.pi * r)
    ref[r == 0] = omega**2 / (4 * np.pi)
    np.testing.assert_allclose(k, ref, rtol=1e-4, atol=1e-6)


def test_random_kernels_sum_to_one_fit_their_size_and_follow_the_config():
    blur = BlurConfig(kernel_range=(7, 11), sinc_prob=0.3)
    kernels, info = K.random_kernels(SEED, 64, blur, size=21, return_info=True)
    kernels = kernels.numpy()
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
    sizes = info["size"].numpy()
    assert set(sizes) <= {7, 9, 11}
    for k, n in zip(kernels, sizes, strict=True):
        half = (21 - n) // 2
        outside = np.ones_like(k, bool)
        outside[half : half + n, half : half + n] = False
        assert np.all(k[outside] == 0)
    types = info["type"].numpy()
    assert (types == -1).any() and (types >= 0).any()  # both sinc and Gaussian family drawn
    sx, sy = info["sigma_x"].numpy(), info["sigma_y"].numpy()
    assert np.all((sx >= 0.2) & (sx <= 3.0))
    iso = np.isin(types, [0, 2, 4])
    np.testing.assert_array_equal(sx[iso], sy[iso])


def test_only_iso_config_gives_rotation_free_kernels():
    blur = from_dict(BlurConfig, {"kernel_list": ["iso"], "kernel_prob": [1.0], "sinc_prob": 0})
    kernels = K.random_kernels(SEED, 8, blur).numpy()
    np.testing.assert_allclose(kernels, np.transpose(kernels, (0, 2, 1)), atol=1e-7)


def test_final_sinc_is_identity_when_probability_zero():
    k = K.final_sinc_kernels(SEED, 4, 0.0, (7, 21)).numpy()
    assert np.all(k[:, 10, 10] == 1.0) and k.sum() == 4.0


def test_filter_batch_matches_per_image_convolution():
    x = np.random.default_rng(1).random((3, 16, 20, 3)).astype(np.float32)
    kernels = K.random_kernels(SEED, 3, BlurConfig(kernel_range=(5, 9)), size=9).numpy()
    y = K.filter_batch(tf.constant(x), tf.constant(kernels)).numpy()
    for i in range(3):
        for c in range(3):
            # scipy "mirror" = reflect without repeating the edge (OpenCV's default).
            ref = ndimage.correlate(x[i, ..., c], kernels[i], mode="mirror")
            np.testing.assert_allclose(y[i, ..., c], ref, atol=1e-5)


def test_reflect_pad_larger_than_image():
    x = np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1)
    y = K.reflect_pad(tf.constant(x), 0, 5).numpy()[0, 0, :, 0]
    np.testing.assert_array_equal(y, [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1])


def test_bicubic_downscale_keeps_a_constant_image_constant():
    for scale in (2, 4):
        hr = tf.fill([2, 32, 24, 3], 0.6)
        lr = bicubic_downscale(hr, scale).numpy()
        assert lr.shape == (2, 32 // scale, 24 // scale, 3)
        np.testing.assert_allclose(lr, round(0.6 * 255) / 255, atol=1e-6)


def test_bicubic_downscale_averages_like_antialiased_resize():
    # A 2-pixel checkerboard has no energy below Nyquist of the x2 grid: antialiasing must
    # average it to grey, where plain decimation would keep one of the two values.
    hr = np.indices((16, 16)).sum(0) % 2
    hr = np.repeat(hr[None, ..., None], 3, -1).astype(np.float32)
    lr = bicubic_downscale(tf.constant(hr), 2).numpy()
    assert np.all(np.abs(lr[:, 2:-2, 2:-2] - 0.5) < 0.02)


def test_jpeg_quality_100_is_near_identity_and_low_quality_is_not():
    x = _smooth_image()
    hi = jpeg_batch(tf.constant(x), tf.constant([100, 100])).numpy()
    lo = jpeg_batch(tf.constant(x), tf.constant([100, 5])).numpy()

    def luma(a):
        return a @ np.array([0.299, 0.587, 0.114], np.float32)

    # JPEG subsamples chroma 2x even at quality 100 (as Real-ESRGAN's DiffJPEG does), so
    # "near identity" is judged on luma, and on a grey image in full.
    assert np.abs(luma(hi) - luma(x)).mean() < 2.0 / 255
    grey = np.repeat(luma(x)[..., None], 3, -1)
    grey_hi = jpeg_batch(tf.constant(grey), tf.constant([100, 100])).numpy()
    assert np.abs(grey_hi - grey).mean() < 2.0 / 255
    assert np.abs(luma(lo[1]) - luma(x[1])).mean() > 5 * np.abs(luma(hi[1]) - luma(x[1])).mean()
    np.testing.assert_array_equal(lo[0], hi[0])  # per-sample quality


def test_gaussian_noise_has_the_requested_sigma():
    x = tf.fill([2, 64, 64, 3], 0.5)
    sigma = tf.constant([0.05, 0.1])
    y = add_gaussian_noise(x, SEED, sigma, tf.constant([False, True])).numpy() - 0.5
    np.testing.assert_allclose(y.reshape(2, -1).std(axis=1), [0.05, 0.1], rtol=0.05)
    assert abs(y.mean()) < 0.005
    # Grey noise: identical on all channels; colour noise: independent channels.
    np.testing.assert_array_equal(y[1, ..., 0], y[1, ..., 2])
    assert abs(np.corrcoef(y[0, ..., 0].ravel(), y[0, ..., 1].ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("exact", [False, True])
def test_poisson_noise_variance_follows_the_signal(exact):
    levels = np.array([26, 204], np.float32) / 255.0  # on 8-bit levels
    x = np.broadcast_to(levels[:, None, None, None], (2, 64, 64, 3)).copy()
    # The first 4 rows hold all 256 levels: BasicSR's Poisson scale is then 256 (a flat image
    # would have one level, hence a scale of 1 and far stronger noise).
    x[:, :4] = (np.arange(256, dtype=np.float32).reshape(4, 64) / 255.0)[None, :, :, None]
    scale = tf.constant([2.0, 2.0])
    y = add_poisson_noise(tf.constant(x), SEED, scale, tf.constant([False, False]), exact=exact)
    noise = (y.numpy() - x)[:, 4:].reshape(2, -1)
    expected = 2.0 * np.sqrt(levels / 256.0)  # scale * sqrt(lambda) / 256
    np.testing.assert_allclose(noise.std(axis=1), expected, rtol=0.06)


def test_usm_sharpen_matches_a_numpy_reference():
    x = _smooth_image(1, 40, 40)
    x[:, 15:25, 15:25] += 0.3  # a sharp square: strong residual there, none in flat areas
    x = np.clip(x, 0, 1)
    y = usm_sharpen(tf.constant(x), weight=0.5, radius=11, threshold=10).numpy()
    sigma = 0.3 * ((11 - 1) * 0.5 - 1) + 0.8
    ax = np.arange(11) - 5
    k1 = np.exp(-0.5 * (ax / sigma) ** 2)
    k1 /= k1.sum()

    def blur(a):
        a = ndimage.correlate1d(a, k1, axis=1, mode="mirror")
        return ndimage.correlate1d(a, k1, axis=2, mode="mirror")

    res = x - blur(x)
    mask = (np.abs(res) * 255 > 10).astype(np.float32)
    soft = blur(mask)
    ref = soft * np.clip(x + 0.5 * res, 0, 1) + (1 - soft) * x
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert np.abs(y - x).max() > 0.01


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("kind", ["bicubic", "realesrgan"])
def test_degrade_batch_shapes_dtypes_and_range(scale, kind):
    cfg = DegradationConfig(kind=kind)
    hr = tf.constant(_smooth_image(3, 32, 32))
    lr, gt = degrade_batch(hr, SEED, cfg, scale)
    assert lr.shape == (3, 32 // scale, 32 // scale, 3) and lr.dtype == tf.float32
    assert gt.shape == hr.shape and gt.dtype == tf.float32
    lr = lr.numpy()
    assert lr.min() >= 0 and lr.max() <= 1
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-3)  # 8-bit levels


def test_degrade_batch_is_reproducible_and_seed_dependent():
    cfg = DegradationConfig()
    hr = tf.constant(_smooth_image(2, 32, 32))
    fn = tf.function(lambda x, s: degrade_batch(x, s, cfg, 4))
    a, _ = fn(hr, SEED)
    a2, _ = fn(hr, SEED)
    b, _ = degrade_batch(hr, SEED, cfg, 4)
    c, _ = fn(hr, tf.constant([3, 8], tf.int64))
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    # Eager and traced agree up to float rounding of the graph optimizer (x / 255 vs x * c).
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    assert np.abs(a.numpy() - c.numpy()).mean() > 1e-3


def test_jpeg_quality_is_the_references_float_draw_rounded():
    # Real-ESRGAN draws a float quality uniformly in jpeg_range; rounded, the ends of the range
    # are half as likely as the inner qualities (a uniform integer draw would make all equal).
    q = random_jpeg_quality(tf.constant([1, 2], tf.int64), 6000, (40, 42)).numpy()
    assert q.dtype == np.int32 and set(q) == {40, 41, 42}
    share = np.bincount(q - 40, minlength=3) / q.size
    np.testing.assert_allclose(share, [0.25, 0.5, 0.25], atol=0.03)
    wide = random_jpeg_quality(tf.constant([3, 4], tf.int64), 20000, (30, 95)).numpy()
    assert wide.min() == 30 and wide.max() == 95
    assert abs(wide.mean() - 62.5) < 0.5


def test_grey_gaussian_noise_is_one_field_per_batch_unless_asked_per_sample():
    x = tf.fill([3, 32, 32, 3], 0.5)
    sigma = tf.constant([0.02, 0.04, 0.03])
    gray = tf.constant([True, True, False])
    shared = add_gaussian_noise(x, SEED, sigma, gray, shared_gray=True).numpy() - 0.5
    # BasicSR: the grey samples carry the same field, each scaled by its own sigma.
    np.testing.assert_allclose(shared[1] / 0.04, shared[0] / 0.02, atol=1e-4)
    np.testing.assert_array_equal(shared[0, ..., 0], shared[0, ..., 2])
    own = add_gaussian_noise(x, SEED, sigma, gray).numpy() - 0.5
    assert abs(np.corrcoef(own[0, ..., 0].ravel(), own[1, ..., 0].ravel())[0, 1]) < 0.2
    np.testing.assert_array_equal(own[0, ..., 0], own[0, ..., 2])
    # The config switch reaches the pipeline: grey Gaussian noise only, flat image.
    flat = {"blur_prob": 0.0, "resize_prob": [0, 0, 1], "gaussian_noise_prob": 1.0}
    flat |= {"gray_noise_prob": 1.0, "noise_range": [20, 20], "jpeg_range": [100, 100]}
    for per_batch in (True, False):
        cfg = from_dict(
            DegradationConfig,
            {
                "stage1": flat,
                "stage2": flat,
                "final_sinc_prob": 0.0,
                "shared_gray_noise": per_batch,
            },
        )
        lr, _, _ = realesrgan_degrade(tf.fill([2, 64, 64, 3], 0.5), SEED, cfg, 4)
        d = lr.numpy() - lr.numpy().mean()
        corr = np.corrcoef(d[0, ..., 0].ravel(), d[1, ..., 0].ravel())[0, 1]
        assert (corr > 0.8) if per_batch else (abs(corr) < 0.3), (per_batch, corr)


def test_realesrgan_parameters_follow_the_config():
    cfg = from_dict(
        DegradationConfig,
        {
            "stage1": {
                "resize_prob": [0, 1, 0],
                "resize_range": [0.5, 1.0],
                "jpeg_range": [40, 41],
            },
            "stage2": {"blur_prob": 0.0, "gaussian_noise_prob": 1.0, "noise_range": [5, 6]},
        },
    )
    hr = tf.constant(_smooth_image(4, 32, 32))
    for s in range(3):
        _, gt, p = realesrgan_degrade(hr, tf.constant([s, 0], tf.int64), cfg, 4)
        assert 0.5 <= float(p["stage1"]["resize"]) <= 1.0
        assert set(p["stage1"]["jpeg"].numpy()) <= {40, 41}
        assert not bool(p["stage2"]["blurred"]) and bool(p["stage2"]["gaussian"])
        assert np.all((p["stage2"]["noise"].numpy() >= 5) & (p["stage2"]["noise"].numpy() <= 6))
        np.testing.assert_array_equal(gt.numpy(), hr.numpy())  # the losses sharpen it


def test_degrade_batch_runs_inside_a_tf_function_with_unknown_batch():
    cfg = DegradationConfig()

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3]), tf.TensorSpec([2], tf.int64)])
    def step(hr, seed):
        lr, gt = degrade_batch(hr, seed, cfg, 4)
        return tf.reduce_mean(tf.abs(tf.image.resize(lr, [32, 32]) - gt))

    assert float(step(tf.constant(_smooth_image(2, 32, 32)), SEED)) > 0


def test_standard_normal_is_standard():
    from kerasr.data.degradations import standard_normal

    z = standard_normal(tf.constant([50, 101]), SEED).numpy()  # odd count: Box-Muller pairs
    assert z.shape == (50, 101)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert abs((np.abs(z) < 1).mean() - 0.6827) < 0.02  # Gaussian, not e.g. uniform


def test_defaults_are_realesrgan_x4plus_options_and_the_shipped_toml_matches():
    from pathlib import Path

    from kerasr.config import load_data_config, to_dict

    d = DegradationConfig()
    assert d.stage1.resize_prob == (0.2, 0.7, 0.1) and d.stage1.resize_range == (0.15, 1.5)
    assert d.stage1.noise_range == (1, 30) and d.stage1.poisson_scale_range == (0.05, 3)
    assert d.stage1.blur.sigma_range == (0.2, 3) and d.stage1.blur.sinc_prob == 0.1
    assert d.stage2.blur_prob == 0.8 and d.stage2.resize_prob == (0.3, 0.4, 0.3)
    assert d.stage2.resize_range == (0.3, 1.2) and d.stage2.noise_range == (1, 25)
    assert d.stage2.poisson_scale_range == (0.05, 2.5) and d.stage2.blur.sigma_range == (0.2, 1.5)
    assert d.stage1.blur.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert (d.final_sinc_prob, d.pool_size, d.stage1.gray_noise_prob) == (0.8, 180, 0.4)
    toml = Path(__file__).resolve().parents[1] / "configs" / "data_realesrgan_x4plus.toml"
    # crop_pad_size is the one exception: 0 (degrade the patch) unless a recipe sets 400.
    assert d.crop_pad_size == 0
    shipped = load_data_config(toml).degradation
    assert to_dict(shipped) == to_dict(dataclasses.replace(d, crop_pad_size=400))
    # A table that sets one stage-2 key keeps the other stage-2 defaults.
    partial = from_dict(DegradationConfig, {"stage2": {"noise_range": [2, 3]}})
    assert partial.stage2.blur_prob == 0.8 and partial.stage2.blur.sigma_range == (0.2, 1.5)

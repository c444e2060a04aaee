"""Reference values of Real-ESRGAN's degradation ops, computed by BasicSR / Real-ESRGAN.

Runs only in the parity environment (PyTorch, BasicSR, Real-ESRGAN); see run.sh. Every
function returns a flat dict of numpy arrays for `np.savez`, channels-last (NHWC) so the
kerasr side reads them without transposing.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
import torch.nn.functional as F
from basicsr.data import degradations as deg
from basicsr.utils.diffjpeg import DiffJPEG
from basicsr.utils.img_process_util import USMSharp, filter2D


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float()


# (name, family, size, sigma_x, sigma_y, theta, beta); family: gaussian, generalized, plateau.
KERNELS = [
    ("iso", "gaussian", 21, 2.0, 2.0, 0.0, 1.0),
    ("aniso", "gaussian", 15, 3.0, 1.2, 0.7, 1.0),
    ("generalized_iso", "generalized", 21, 2.5, 2.5, 0.0, 0.6),
    ("generalized_aniso", "generalized", 17, 3.0, 1.5, -1.1, 1.7),
    ("plateau_iso", "plateau", 13, 1.8, 1.8, 0.0, 1.3),
    ("plateau_aniso", "plateau", 21, 3.2, 1.1, 2.3, 3.5),
]
# (name, cutoff, size, pad_to)
SINCS = [("sinc_21", math.pi / 4, 21, 0), ("sinc_9_pad21", 2.0, 9, 21)]


def kernels() -> dict:
    out = {}
    for name, family, size, sx, sy, theta, beta in KERNELS:
        iso = sx == sy and theta == 0.0
        if family == "gaussian":
            k = deg.bivariate_Gaussian(size, sx, sy, theta, isotropic=iso)
        elif family == "generalized":
            k = deg.bivariate_generalized_Gaussian(size, sx, sy, theta, beta, isotropic=iso)
        else:
            k = deg.bivariate_plateau(size, sx, sy, theta, beta, isotropic=iso)
        out[f"kernel_{name}"] = k.astype(np.float32)
        out[f"kernel_{name}_params"] = np.array([size, sx, sy, theta, beta], np.float64)
    for name, cutoff, size, pad_to in SINCS:
        k = deg.circular_lowpass_kernel(cutoff, size, pad_to=pad_to)
        out[f"kernel_{name}"] = k.astype(np.float32)
        out[f"kernel_{name}_params"] = np.array([size, cutoff, pad_to], np.float64)
    return out


def filters(photo: np.ndarray) -> dict:
    """filter2D with one kernel per sample, and Real-ESRGAN's USM sharpening of the GT."""
    images = np.stack([photo[:24, :28], photo[40:64, 100:128]])  # [2, 24, 28, 3]
    k1 = deg.bivariate_Gaussian(21, 3.0, 1.2, 0.7, isotropic=False)
    k2 = deg.circular_lowpass_kernel(math.pi / 4, 21)
    ks = np.stack([k1, k2]).astype(np.float32)
    filtered = filter2D(nchw(images), torch.from_numpy(ks))
    gt = np.stack([photo[64:128, 64:136], photo[160:224, 8:80]])  # [2, 64, 72, 3]
    usm = USMSharp()(nchw(gt))  # radius 50 -> 51, sigma from OpenCV's rule
    return {
        "filter_images": images,
        "filter_kernels": ks,
        "filter_out": nhwc(filtered),
        "usm_images": gt,
        "usm_out": nhwc(usm),
    }


def _rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.functional import rgb_to_grayscale

    return rgb_to_grayscale(img, num_output_channels=1)


def noise(photo: np.ndarray) -> dict:
    """Gaussian and Poisson noise with their random draws recovered by replaying the seed."""
    base = np.stack([photo[:16, :20], photo[100:116, 50:70], photo[200:216, 200:220]])
    base = base * 1.1 - 0.05  # as after a bicubic resize: a little outside [0, 1]
    # The third image has only a few grey levels, so BasicSR's level count is below 256.
    base[2] = np.round(base[2] * 5) / 5
    img = nchw(base.astype(np.float32))
    b, _, h, w = img.shape
    sigma = torch.tensor([3.0, 17.0, 29.0])
    gray = torch.tensor([0.0, 1.0, 1.0])
    torch.manual_seed(7)
    g_out = deg.add_gaussian_noise_pt(img, sigma=sigma, gray_noise=gray, clip=True, rounds=False)
    torch.manual_seed(7)  # replay: grey draws first (one [h, w] field for the batch), then colour
    z_gray = torch.randn(h, w)
    z = torch.randn(b, 3, h, w)

    scale = torch.tensor([0.4, 2.5, 1.7])
    pgray = torch.tensor([1.0, 0.0, 1.0])
    torch.manual_seed(11)
    p_out = deg.add_poisson_noise_pt(img, scale=scale, gray_noise=pgray, clip=True, rounds=False)
    # Replay: the grey counts first, then the colour counts, on images rounded to 8 bits.
    torch.manual_seed(11)
    y = torch.clamp((_rgb_to_gray(img) * 255.0).round(), 0, 255) / 255.0
    vals_y = [2 ** np.ceil(np.log2(len(torch.unique(y[i])))) for i in range(b)]
    counts_y = torch.poisson(y * torch.tensor(vals_y, dtype=torch.float32).view(b, 1, 1, 1))
    rgb = torch.clamp((img * 255.0).round(), 0, 255) / 255.0
    vals = [2 ** np.ceil(np.log2(len(torch.unique(rgb[i])))) for i in range(b)]
    counts = torch.poisson(rgb * torch.tensor(vals, dtype=torch.float32).view(b, 1, 1, 1))
    return {
        "noise_images": base.astype(np.float32),
        "gauss_sigma": sigma.numpy(),
        "gauss_gray": gray.numpy(),
        "gauss_z": nhwc(z),
        "gauss_z_gray": z_gray.numpy()[None, :, :, None],
        "gauss_out": nhwc(g_out),
        "poisson_scale": scale.numpy(),
        "poisson_gray": pgray.numpy(),
        "poisson_counts": nhwc(counts),
        "poisson_counts_gray": nhwc(counts_y),
        "poisson_levels": np.array(vals, np.float32),
        "poisson_levels_gray": np.array(vals_y, np.float32),
        "poisson_out": nhwc(p_out),
    }


# Real-ESRGAN resizes by a factor in the first stage (F.interpolate(scale_factor=...)) and
# to a size in the second stage and at the end (F.interpolate(size=...)).
RESIZE_FACTORS = (0.37, 0.8, 1.3)
RESIZE_SIZES = ((10, 13), (31, 29))


def resizes(photo: np.ndarray) -> dict:
    images = np.stack([photo[:24, :28], photo[120:144, 30:58]]) * 1.2 - 0.1
    x = nchw(images.astype(np.float32))
    out = {"resize_images": images.astype(np.float32)}
    for mode in ("area", "bilinear", "bicubic"):
        for f in RESIZE_FACTORS:
            out[f"resize_{mode}_factor_{f}"] = nhwc(F.interpolate(x, scale_factor=f, mode=mode))
        for size in RESIZE_SIZES:
            y = F.interpolate(x, size=size, mode=mode)
            out[f"resize_{mode}_size_{size[0]}x{size[1]}"] = nhwc(y)
    return out


def crop() -> dict:
    """BasicSR's paired_random_crop on tensors, its offsets recovered by replaying the seed."""
    from basicsr.data.transforms import paired_random_crop

    scale, gt_patch = 4, 16
    gt = torch.arange(2 * 3 * 40 * 48, dtype=torch.float32).view(2, 3, 40, 48)
    lq = torch.arange(2 * 3 * 10 * 12, dtype=torch.float32).view(2, 3, 10, 12) + 0.5
    random.seed(5)
    gt_crop, lq_crop = paired_random_crop(gt, lq, gt_patch, scale)
    random.seed(5)
    top = random.randint(0, 10 - gt_patch // scale)
    left = random.randint(0, 12 - gt_patch // scale)
    return {
        "crop_gt": nhwc(gt),
        "crop_lq": nhwc(lq),
        "crop_offsets": np.array([top, left], np.int32),
        "crop_gt_out": nhwc(gt_crop),
        "crop_lq_out": nhwc(lq_crop),
    }


JPEG_QUALITIES = (30, 50, 70, 95)


def jpeg(photo: np.ndarray) -> dict:
    # One 64x64 crop (face and background) at each quality, so the figures compare.
    images = np.stack([photo[24:88, 88:152]] * len(JPEG_QUALITIES))
    jpeger = DiffJPEG(differentiable=False)
    q = torch.tensor(JPEG_QUALITIES, dtype=torch.float32)
    out = jpeger(nchw(images), quality=q)
    return {
        "jpeg_images": images,
        "jpeg_quality": np.array(JPEG_QUALITIES, np.int32),
        "jpeg_out": nhwc(out),
    }


def all_fixtures(photo: np.ndarray) -> dict:
    return {
        **kernels(),
        **filters(photo),
        **noise(photo),
        **resizes(photo),
        **crop(),
        **jpeg(photo),
    }

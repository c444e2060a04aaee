"""Reference values of the evaluation protocol, computed by BasicSR.

MATLAB-style bicubic `imresize` (basicsr.utils.matlab_functions) and the Y-channel PSNR /
SSIM of basicsr.metrics (`test_y_channel=True, crop_border=4`). BasicSR reads images with
OpenCV, so its functions take BGR: the fixtures store RGB and flip the channels here.
"""

from __future__ import annotations

import numpy as np
from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
from basicsr.utils.matlab_functions import imresize


def evaluation(photo: np.ndarray) -> dict:
    small = photo[16:64, 40:88]  # 48 x 48, float in [0, 1]
    odd = photo[3:30, 150:181]  # 27 x 31: sizes that are not multiples of the scale
    out = {"imresize_hr": small, "imresize_odd": odd}
    for name, img in (("hr", small), ("odd", odd)):
        for scale in (1 / 4, 1 / 3, 1 / 2, 2, 4):
            key = f"imresize_{name}_{scale:.4f}"
            out[key] = imresize(img[..., ::-1].copy(), scale)[..., ::-1].astype(np.float32)

    # A uint8 LR image as an evaluation makes it, and two "restorations" of it to score.
    hr = photo[16:144, 40:168]  # 128 x 128
    hr8 = np.round(hr * 255).astype(np.uint8)
    lr8 = np.clip(np.round(imresize(hr, 1 / 4) * 255), 0, 255).astype(np.uint8)
    up = np.clip(np.round(imresize(lr8.astype(np.float64) / 255, 4) * 255), 0, 255)
    rng = np.random.default_rng(3)
    noisy = np.clip(hr8.astype(np.int16) + rng.integers(-6, 7, hr8.shape), 0, 255)
    out["metric_hr"] = hr8
    for name, sr in (("bicubic", up.astype(np.uint8)), ("noisy", noisy.astype(np.uint8))):
        out[f"metric_{name}"] = sr
        bgr_hr, bgr_sr = hr8[..., ::-1], sr[..., ::-1]
        for border in (0, 4):
            psnr = calculate_psnr(bgr_hr, bgr_sr, crop_border=border, test_y_channel=True)
            ssim = calculate_ssim(bgr_hr, bgr_sr, crop_border=border, test_y_channel=True)
            out[f"metric_{name}_psnr_border{border}"] = np.float64(psnr)
            out[f"metric_{name}_ssim_border{border}"] = np.float64(ssim)
    return out

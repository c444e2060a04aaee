"""tf.data for super-resolution: image sources, paired transforms and degradations.

`make_sr_dataset(config, split)` turns a folder of photos, paired LR/HR folders or a TFDS
dataset into batches of (LR, HR) pairs; `degrade_batch(hr, seed, config, scale)` is the
batch-level degradation it uses, also callable inside a train step.
"""

from kerasr.data.degradations import (
    add_gaussian_noise,
    add_poisson_noise,
    bicubic_downscale,
    degrade_batch,
    jpeg_batch,
    realesrgan_degrade,
    usm_sharpen,
)
from kerasr.data.kernels import filter_batch, final_sinc_kernels, random_kernels
from kerasr.data.pipeline import make_sr_dataset
from kerasr.data.preview import preview_grid
from kerasr.data.sources import DataWarning, decode_rgb, pair_folders, scan_folder
from kerasr.data.transforms import augment_lr_batch, crop_pair, flip_pair

__all__ = [
    "DataWarning",
    "add_gaussian_noise",
    "add_poisson_noise",
    "augment_lr_batch",
    "bicubic_downscale",
    "crop_pair",
    "decode_rgb",
    "degrade_batch",
    "filter_batch",
    "final_sinc_kernels",
    "flip_pair",
    "jpeg_batch",
    "make_sr_dataset",
    "pair_folders",
    "preview_grid",
    "random_kernels",
    "realesrgan_degrade",
    "scan_folder",
    "usm_sharpen",
]

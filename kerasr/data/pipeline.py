"""`make_sr_dataset`: any image source to an endless, reproducible stream of (LR, HR) batches.

Stages, in order: file list (shuffled per epoch with the seed) -> decode -> crop in LR
coordinates (random for training, centred for validation) -> flips / transpose (training) ->
batch -> degradation of the whole batch (HR-only sources) -> LR JPEG / dropout (training)
-> pair pool (Real-ESRGAN) -> prefetch. Each element and each batch gets a seed made of the
base seed and its index, so a run repeats exactly and parallel maps stay deterministic. A
folder's epochs are permutations drawn from their number, so a resumed run continues the
stream where it stopped.
"""

from __future__ import annotations

import warnings
from typing import Literal

import tensorflow as tf

from kerasr.config import DataConfig
from kerasr.data.degradations import degrade_batch
from kerasr.data.kernels import fold
from kerasr.data.sources import (
    DataWarning,
    is_tfds,
    load_image,
    pair_folders,
    scan_folder,
    tfds_dataset,
)
from kerasr.data.transforms import (
    augment_lr_batch,
    crop_batch_pair,
    crop_or_pad,
    crop_pair,
    fit_to_patch,
    flip_pair,
)
from kerasr.errors import KerasrError

AUTOTUNE = tf.data.AUTOTUNE

# Salts that keep the random streams of the stages independent of each other.
_ELEMENT, _DEGRADE, _LR_AUGMENT, _POOL, _FILES, _CUT = 11, 12, 13, 14, 15, 16


def _seed(base: int, salt: int, index):
    return fold(tf.stack([tf.constant(base, tf.int64), tf.cast(index, tf.int64)]), salt)


def _filter_small(records, lr_patch, scale, policy, lr_records=None):
    """Keeps the images (or pairs) large enough for a patch; warns once per other image."""
    kept = []
    for i, r in enumerate(records):
        lr_h, lr_w = r.height // scale, r.width // scale
        if min(lr_h, lr_w) >= lr_patch:
            kept.append(i)
            continue
        action = "skipped" if policy == "skip" else "upsampled to fit"
        warnings.warn(
            f"image {r.path} ({r.width}x{r.height}) is smaller than the patch "
            f"{lr_patch * scale}x{lr_patch * scale}; {action}",
            DataWarning,
            stacklevel=3,
        )
        if policy == "upsample":
            kept.append(i)
    return kept


def _folder_paths(config: DataConfig, source: str, lr_source: str) -> dict[str, list[str]]:
    """The training files of folders: {"hr": paths[, "lr": paths]}."""
    lr_patch = config.patch_size // config.scale
    hr_scan = scan_folder(source)
    if lr_source:
        pairs = pair_folders(hr_scan, scan_folder(lr_source), config.scale)
        hr_records = [h for _, h in pairs]
        kept = _filter_small(hr_records, lr_patch, config.scale, config.small_images)
        paths = {
            "lr": [pairs[i][0].path for i in kept],
            "hr": [pairs[i][1].path for i in kept],
        }
    else:
        records = list(hr_scan.records)
        kept = _filter_small(records, lr_patch, config.scale, config.small_images)
        paths = {"hr": [records[i].path for i in kept]}
    if not paths["hr"]:
        raise KerasrError(
            f"no usable image in {source}: all images are smaller than the patch "
            f'{config.patch_size}x{config.patch_size} (set data.small_images="upsample" '
            "or a smaller data.patch_size)"
        )
    return paths


def _decode(paths):
    return {k: load_image(v) for k, v in paths.items()}


def _file_order(paths: dict[str, list[str]], seed: int, first: int) -> tf.data.Dataset:
    """The endless training order of a folder's files, from element `first` on.

    Each epoch is a permutation drawn from the seed and the epoch's number, whatever reads
    it: TensorFlow's reshuffling `shuffle` draws each epoch's seed from a generator shared
    by all iterators of the dataset, so the sample grid's iterator changed the order of
    training, and a resumed run could not find its place. Here starting at `first` is free.
    """
    count = len(paths["hr"])
    table = {k: tf.constant(v) for k, v in paths.items()}

    def pick(i):
        position = tf.random.experimental.index_shuffle(
            i % count, _seed(seed, _FILES, i // count), count - 1
        )
        return {k: tf.gather(v, position) for k, v in table.items()}

    return tf.data.Dataset.range(first, tf.int64.max).map(pick)


def make_sr_dataset(
    config: DataConfig,
    split: Literal["train", "validation"] = "train",
    sharpen_gt=False,
    first_batch: int = 0,
) -> tf.data.Dataset:
    """Builds the tf.data pipeline of (LR, HR) batches for super-resolution.

    Args:
        config: the data configuration (`source`, `scale`, `patch_size`, augmentations,
            degradation...).
        split: "train" (endless, shuffled, augmented, random crops) or "validation" (one pass,
            centre crops, fixed degradation per image).
        sharpen_gt: with Real-ESRGAN degradations made here (not paired, not on the device),
            yield the unsharp-masked HR, sharpened before the patch is cut, as Real-ESRNet's
            `gt_usm` does (see `SRLossConfig.l1_gt_usm`).
        first_batch: for training, the stream starts as if this many batches had been
            taken (a resumed run's step). From a folder without `cache` it is then the same
            stream; otherwise the file order starts a new epoch, and Real-ESRGAN's pair pool
            starts empty.

    Returns:
        A dataset of `(lr, hr)` float32 batches in [0, 1]: lr [B, P/scale, P/scale, 3],
        hr [B, P, P, 3]. For training with `degradation.on_device = true` and an HR-only
        source it yields HR batches only; the train step then calls `degrade_batch`.

    Raises:
        KerasrError: missing folder, no usable image, unmatched LR/HR files, unknown TFDS name.

    Example:

        config = load_config(DataConfig, overrides=["source=photos", "scale=4"])
        for lr, hr in make_sr_dataset(config).take(1):
            ...
    """
    if split not in ("train", "validation"):
        raise KerasrError(f"split must be 'train' or 'validation'. Received: split={split!r}")
    train = split == "train"
    source = config.source if train else config.val_source
    lr_source = config.lr_source if train else config.val_lr_source
    if not source:
        key = "source" if train else "val_source"
        raise KerasrError(f"no {split} images: set data.{key} to a folder or tfds:NAME")
    scale, lr_patch = config.scale, config.patch_size // config.scale
    seed = config.seed

    crops = config.patches_per_image if train else 1
    first_batch = first_batch if train else 0
    # Element e gives patches e * crops ... e * crops + crops - 1; batches are cut from those.
    first_element, first_crop = divmod(first_batch * config.batch_size, crops)

    paths = None
    if is_tfds(source):
        elements, paired = tfds_dataset(source, split, config.data_dir)
        count = None
    else:
        paths = _folder_paths(config, source, lr_source)
        elements, count = tf.data.Dataset.from_tensor_slices(paths), len(paths["hr"])
        paired = bool(lr_source)
        if config.cache:
            elements = elements.map(_decode, num_parallel_calls=AUTOTUNE).cache()

    decoded = is_tfds(source) or config.cache
    if is_tfds(source) and config.small_images == "skip":
        # TFDS sizes are only known once decoded; too-small images are dropped here.
        elements = elements.filter(lambda item: _big_enough(item, lr_patch, scale))
    if train and paths is not None and not config.cache:
        elements = _file_order(paths, seed, first_element)
    elif train:
        buffer = min(config.shuffle_buffer, count) if count else config.shuffle_buffer
        elements = elements.shuffle(buffer, seed=seed + _FILES, reshuffle_each_iteration=True)
        elements = elements.repeat()

    degradation = config.degradation
    # Real-ESRGAN degrades a 400 px crop whole and cuts the patch afterwards (crop_pad_size);
    # 0 cuts the patch first and degrades only the patch.
    pre_size = degradation.crop_pad_size if not (paired or degradation.on_device) else 0

    def element(index, item):
        images = item if decoded else _decode(item)
        lr, hr = images.get("lr"), images["hr"]
        if config.small_images == "upsample":
            lr, hr = fit_to_patch(lr, hr, lr_patch, scale)
        out = []
        for j in range(crops):
            s = _seed(seed, _ELEMENT, index)
            s = s if crops == 1 else fold(s, j)
            if pre_size:
                hr_j = crop_or_pad(hr, s, pre_size, random=train)
                if train:
                    _, hr_j = flip_pair(None, hr_j, s, config.augment)
                out.append(hr_j)
                continue
            lr_j, hr_j = crop_pair(lr, hr, s, lr_patch, scale, random=train)
            if train:
                lr_j, hr_j = flip_pair(lr_j, hr_j, s, config.augment)
            out.append((lr_j, hr_j) if paired else hr_j)
        if crops == 1:
            return out[0]
        return tf.nest.map_structure(lambda *t: tf.stack(t), *out)

    ds = elements.enumerate(first_element).map(element, num_parallel_calls=AUTOTUNE)
    if crops > 1:
        ds = ds.unbatch().skip(first_crop)
    # A file that passed the scan but still fails to decode must not stop a long run.
    ds = ds.ignore_errors(log_warning=True)

    batch = config.batch_size if train else config.val_batch_size
    ds = ds.batch(batch, drop_remainder=train, num_parallel_calls=AUTOTUNE)

    if not paired:
        if train and degradation.on_device:
            return ds.prefetch(AUTOTUNE)

        def degrade(index, hr):
            base = seed + (0 if train else 1)
            lr, gt = degrade_batch(hr, _seed(base, _DEGRADE, index), degradation, scale, sharpen_gt)
            if pre_size:
                cut = _seed(base, _CUT, index)
                lr, gt = crop_batch_pair(lr, gt, cut, lr_patch, scale, random=train)
            return lr, gt

        ds = ds.enumerate(first_batch).map(degrade, num_parallel_calls=AUTOTUNE)
    if train:

        def augment(index, pair):
            lr, hr = pair
            return augment_lr_batch(lr, _seed(seed, _LR_AUGMENT, index), config.augment), hr

        augment_cfg = config.augment
        if augment_cfg.jpeg_prob > 0 or augment_cfg.dropout_prob > 0:
            ds = ds.enumerate(first_batch).map(augment, num_parallel_calls=AUTOTUNE)
        if not paired and degradation.kind == "realesrgan" and degradation.pool_size > 0:
            # Real-ESRGAN's training-pair pool: batch-level choices (resize, noise type)
            # are mixed across batches before the model sees them.
            ds = ds.unbatch().shuffle(degradation.pool_size, seed=seed + _POOL)
            ds = ds.batch(batch, drop_remainder=True)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(AUTOTUNE)


def _big_enough(item, lr_patch, scale):
    shape = tf.shape(item["hr"])
    return tf.minimum(shape[0] // scale, shape[1] // scale) >= lr_patch

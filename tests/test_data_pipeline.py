"""make_sr_dataset: sources, bad inputs, paired crops, shapes, reproducibility."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasr.config import AugmentConfig, ConfigError, DataConfig, DegradationConfig, load_config
from kerasr.data import (
    DataWarning,
    augment_lr_batch,
    make_sr_dataset,
    pair_folders,
    scan_folder,
)
from kerasr.data.sources import load_image
from kerasr.errors import KerasrError
from kerasr.evaluation.sr import matlab_imresize

NO_LR_AUG = AugmentConfig(jpeg_prob=0.0, dropout_prob=0.0)
NO_FLIPS = dataclasses.replace(NO_LR_AUG, hflip_prob=0.0, vflip_prob=0.0, transpose_prob=0.0)


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 3.0 + yy / 5.0)], -1)
    return (np.clip(base + 0.05 * rng.random((h, w, 3)), 0, 1) * 255).astype(np.uint8)


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def _folder(tmp_path, n=4, size=(48, 40)):
    root = tmp_path / "hr"
    for i in range(n):
        _save(root / f"img{i}.png", _photo(*size, seed=i))
    return root


def _config(source, **kw):
    kw.setdefault("scale", 4)
    kw.setdefault("patch_size", 32)
    kw.setdefault("batch_size", 2)
    kw.setdefault("augment", NO_LR_AUG)
    kw.setdefault("degradation", DegradationConfig(kind="bicubic"))
    return DataConfig(source=str(source), **kw)


def _take(ds, n):
    return [tuple(t.numpy() for t in item) for item in ds.take(n)]


def test_folder_scan_is_recursive_and_reads_every_format(tmp_path):
    root = tmp_path / "photos"
    rgb = _photo(20, 24)
    _save(root / "a.png", rgb)
    _save(root / "sub" / "b.JPG", rgb)
    _save(root / "sub" / "deeper" / "c.jpeg", rgb)
    _save(root / "d.webp", rgb)
    _save(root / "e.bmp", rgb)
    grey = _save(root / "f.png", rgb[..., 0], mode="L")
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[..., 0] = 255  # fully transparent red: composited over white
    rgba[:, :12, 3] = 255  # left half opaque red
    _save(root / "g.png", rgba, mode="RGBA")
    (root / "notes.txt").write_text("not an image")
    scan = scan_folder(root)
    names = sorted(p.split("/")[-1] for p in (r.path for r in scan.records))
    assert names == ["a.png", "b.JPG", "c.jpeg", "d.webp", "e.bmp", "f.png", "g.png"]
    assert all((r.height, r.width) == (20, 24) for r in scan.records)
    for r in scan.records:
        assert load_image(r.path).shape == (20, 24, 3)
    g = load_image(str(grey)).numpy()
    np.testing.assert_array_equal(g[..., 0], g[..., 2])
    c = load_image(str(root / "g.png")).numpy()
    np.testing.assert_allclose(c[:, :12], np.broadcast_to([1.0, 0.0, 0.0], (20, 12, 3)))
    np.testing.assert_allclose(c[:, 12:], np.ones((20, 12, 3)))


def test_corrupt_images_are_skipped_with_one_warning_each_and_counted(tmp_path, png_header_only):
    root = _folder(tmp_path, n=2)
    (root / "garbage.png").write_bytes(b"this is not a png")
    good = (root / "img0.png").read_bytes()
    (root / "truncated.png").write_bytes(good[: len(good) // 2])
    png_header_only(root / "bomb.png", 20000, 20000)
    with pytest.warns(DataWarning) as record:
        scan = scan_folder(root)
    messages = [str(w.message) for w in record]
    assert len(messages) == 3
    for name in ("garbage.png", "truncated.png", "bomb.png"):
        assert any(name in m for m in messages)
    assert len(scan.skipped) == 3 and len(scan.records) == 2
    with pytest.warns(DataWarning):
        _, hr = _take(make_sr_dataset(_config(root)), 1)[0]
    assert hr.shape == (2, 32, 32, 3)


def test_missing_and_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(KerasrError, match="image folder not found"):
        make_sr_dataset(_config(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(KerasrError, match="no usable image"):
        make_sr_dataset(_config(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.warns(DataWarning), pytest.raises(KerasrError, match="1 unreadable"):
        make_sr_dataset(_config(tmp_path / "bad"))
    with pytest.raises(KerasrError, match="val_source"):
        make_sr_dataset(_config(tmp_path / "empty"), "validation")


def _paired(tmp_path, names_hr, names_lr, scale=4, size=(48, 40)):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    for i, n in enumerate(names_hr):
        _save(hr_dir / n, _photo(*size, seed=i))
    for i, n in enumerate(names_lr):
        hr = _photo(*size, seed=i).astype(np.float32)
        h, w = size[0] // scale, size[1] // scale
        # LR = mean of each scale x scale HR block: lets tests check crop alignment.
        lr = hr[: h * scale, : w * scale].reshape(h, scale, w, scale, 3).mean((1, 3))
        _save(lr_dir / n, np.round(lr).astype(np.uint8))
    return hr_dir, lr_dir


def test_paired_folders_match_by_stem_including_div2k_suffix(tmp_path):
    hr_dir, lr_dir = _paired(tmp_path, ["0001.png", "0002.png"], ["0001x4.png", "0002.png"])
    pairs = pair_folders(scan_folder(hr_dir), scan_folder(lr_dir), 4)
    assert [(p[0].path.split("/")[-1], p[1].path.split("/")[-1]) for p in pairs] == [
        ("0001x4.png", "0001.png"),
        ("0002.png", "0002.png"),
    ]


def test_unmatched_pairs_name_the_files(tmp_path):
    hr_dir, lr_dir = _paired(tmp_path, ["a.png", "b.png"], ["a.png", "c.png"])
    cfg = dataclasses.replace(_config(hr_dir), lr_source=str(lr_dir))
    with pytest.raises(KerasrError, match=r"HR without LR: b.*LR without HR: c"):
        make_sr_dataset(cfg)


def test_paired_sizes_must_differ_by_scale(tmp_path):
    hr_dir, lr_dir = _paired(tmp_path, ["a.png"], ["a.png"], scale=2)
    cfg = dataclasses.replace(_config(hr_dir), lr_source=str(lr_dir))
    with pytest.raises(KerasrError, match="expected the HR size divided by scale=4"):
        make_sr_dataset(cfg)


def test_paired_random_crops_and_flips_stay_aligned(tmp_path):
    hr_dir, lr_dir = _paired(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "b.png", "c.png"])
    aug = dataclasses.replace(NO_LR_AUG, hflip_prob=0.5, vflip_prob=0.5, transpose_prob=0.5)
    cfg = dataclasses.replace(_config(hr_dir, augment=aug), lr_source=str(lr_dir), patch_size=16)
    for lr, hr in _take(make_sr_dataset(cfg), 6):
        assert lr.shape == (2, 4, 4, 3) and hr.shape == (2, 16, 16, 3)
        blocks = hr.reshape(2, 4, 4, 4, 4, 3).mean((2, 4))
        np.testing.assert_allclose(lr, blocks, atol=1.0 / 255 + 1e-6)


def test_small_images_are_skipped_or_upsampled_with_a_warning(tmp_path):
    root = _folder(tmp_path, n=2)
    _save(root / "tiny.png", _photo(12, 20))
    with pytest.warns(DataWarning, match=r"tiny.png \(20x12\).*skipped"):
        ds = make_sr_dataset(_config(root))
    assert _take(ds, 1)[0][1].shape == (2, 32, 32, 3)
    with pytest.warns(DataWarning, match="upsampled"):
        ds = make_sr_dataset(_config(root, small_images="upsample"))
    assert all(hr.shape == (2, 32, 32, 3) for _, hr in _take(ds, 3))
    only_tiny = tmp_path / "tiny"
    _save(only_tiny / "t.png", _photo(12, 20))
    with pytest.warns(DataWarning), pytest.raises(KerasrError, match="smaller than the patch"):
        make_sr_dataset(_config(only_tiny))
    with pytest.warns(DataWarning):
        ds = make_sr_dataset(_config(only_tiny, small_images="upsample"))
    lr, hr = _take(ds, 1)[0]
    assert lr.shape == (2, 8, 8, 3) and hr.shape == (2, 32, 32, 3)


def test_impossible_patch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="multiple of scale=4"):
        load_config(DataConfig, overrides=["patch_size=30"])
    with pytest.raises(ConfigError, match="unknown config key 'degradation.stage1.nosie_range'"):
        load_config(DataConfig, overrides=["degradation.stage1.nosie_range=[1, 2]"])


# Real-ESRGAN at scale 2 is covered batch-wise in test_data_degradations (graphs are slow
# to build, and the pipeline code path is the same).
@pytest.mark.parametrize(("kind", "scale"), [("bicubic", 2), ("bicubic", 4), ("realesrgan", 4)])
def test_each_lr_is_its_own_hr_degraded(tmp_path, scale, kind):
    deg = DegradationConfig(kind=kind, pool_size=4)
    flips = AugmentConfig(jpeg_prob=0.0, dropout_prob=0.0)  # flips and transposes only
    cfg = _config(_folder(tmp_path), scale=scale, degradation=deg, augment=flips)
    for lr, hr in make_sr_dataset(cfg).take(2):
        assert lr.dtype == tf.float32 and hr.dtype == tf.float32
        lr, hr = lr.numpy(), hr.numpy()
        # The papers' LR of this very patch: MATLAB imresize (numpy), saved as 8 bits.
        bicubic = np.stack([matlab_imresize(p, 1 / scale) for p in hr])
        bicubic = np.round(np.clip(bicubic, 0, 1) * 255) / 255
        assert lr.shape == bicubic.shape and lr.min() >= 0 and lr.max() <= 1
        if kind == "bicubic":
            np.testing.assert_allclose(lr, bicubic, atol=1 / 255 + 1e-6)
        else:  # the second-order degradation ran, not a fallback to the bicubic LR
            assert np.abs(lr - bicubic).mean() > 0.02


def test_two_runs_with_a_seed_give_identical_batches_and_seeds_differ(tmp_path):
    root = _folder(tmp_path, n=5)
    deg = DegradationConfig(pool_size=4)
    cfg = _config(root, degradation=deg, augment=AugmentConfig(jpeg_prob=0.5, dropout_prob=0.5))
    a = _take(make_sr_dataset(cfg), 3)
    b = _take(make_sr_dataset(cfg), 3)
    c = _take(make_sr_dataset(dataclasses.replace(cfg, seed=1)), 3)
    for (la, ha), (lb, hb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ha, hb)
    assert any(np.abs(la - lc).mean() > 1e-3 for (la, _), (lc, _) in zip(a, c, strict=True))


@pytest.mark.parametrize("crops", [1, 3])
def test_the_stream_ignores_other_iterators_and_starts_at_any_batch(tmp_path, crops):
    # 5 images, batches of 2, 1 or 3 crops per image: epochs and batches do not line up.
    root = _folder(tmp_path, n=5)
    aug = AugmentConfig(jpeg_prob=0.5, dropout_prob=0.5)
    cfg = _config(root, patches_per_image=crops, augment=aug)
    fresh = _take(make_sr_dataset(cfg), 9)

    ds = make_sr_dataset(cfg)
    ahead = iter(ds)  # another reader, several epochs ahead (as a run's sample grid)
    for _ in range(8):
        next(ahead)
    later = _take(make_sr_dataset(cfg, first_batch=5), 4)  # a run resumed at step 5
    for (la, ha), (lb, hb) in zip(_take(ds, 9) + later, fresh + fresh[5:], strict=True):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ha, hb)


def test_validation_is_one_deterministic_pass_of_centre_crops(tmp_path):
    root = _folder(tmp_path, n=3, size=(48, 40))
    deg = DegradationConfig()
    cfg = dataclasses.replace(_config(root, degradation=deg), val_source=str(root))
    ds = make_sr_dataset(cfg, "validation")
    first, second = _take(ds, 10), _take(ds, 10)
    assert len(first) == 3  # val_batch_size = 1, one pass
    for (l1, h1), (l2, h2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(l1, l2)
        np.testing.assert_array_equal(h1, h2)
    # Centre crop of img0 (48x40, scale 4: LR grid 12x10, LR patch 8 -> offset (2, 1)).
    raw = np.asarray(Image.open(root / "img0.png"), np.float32) / 255
    ref = raw[8:40, 4:36]
    np.testing.assert_allclose(first[0][1][0], ref, atol=1e-6)


def test_on_device_training_yields_hr_batches_for_the_train_step(tmp_path):
    root = _folder(tmp_path, n=1)
    cfg = _config(root, degradation=DegradationConfig(on_device=True), augment=NO_FLIPS)
    hr = next(iter(make_sr_dataset(cfg))).numpy()
    assert hr.shape == (2, 32, 32, 3)
    raw = np.asarray(Image.open(root / "img0.png"), np.float32) / 255
    for patch in hr:  # HR crops in [0, 1] at LR-grid offsets, for the step to degrade
        assert any(
            np.allclose(raw[y : y + 32, x : x + 32], patch, atol=1e-6)
            for y in range(0, 17, 4)
            for x in range(0, 9, 4)
        )


def test_lr_augmentations_jpeg_and_dropout():
    lr = tf.random.stateless_uniform([4, 16, 16, 3], [0, 1])
    aug = AugmentConfig(
        jpeg_prob=0.0, dropout_prob=1.0, dropout_holes=(2, 2), dropout_size=(0.25, 0.25)
    )
    out = augment_lr_batch(lr, tf.constant([0, 2], tf.int64), aug).numpy()
    zero = np.all(out == 0, axis=-1)
    assert np.all(zero.sum(axis=(1, 2)) >= 16)  # at least one 4x4 hole per image
    np.testing.assert_array_equal(out[~zero], lr.numpy()[~zero])
    aug = AugmentConfig(jpeg_prob=1.0, jpeg_range=(10, 10), dropout_prob=0.0)
    out = augment_lr_batch(lr, tf.constant([0, 2], tf.int64), aug).numpy()
    assert np.abs(out - lr.numpy()).mean() > 0.02


def test_tfds_sources_hr_only_and_paired():
    import tensorflow_datasets as tfds  # a dependency of kerasr: missing is a failure

    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        cfg = _config("tfds:mnist", scale=2, patch_size=8, small_images="upsample")
        lr, hr = next(iter(make_sr_dataset(cfg)))
        assert lr.shape == (2, 4, 4, 3) and hr.shape == (2, 8, 8, 3)
        cfg = _config("tfds:div2k/bicubic_x4", patch_size=8, small_images="upsample")
        lr, hr = next(iter(make_sr_dataset(cfg)))
        assert lr.shape == (2, 2, 2, 3) and hr.shape == (2, 8, 8, 3)
    with pytest.raises(KerasrError, match="unknown TFDS dataset 'no_such_dataset'"):
        make_sr_dataset(_config("tfds:no_such_dataset"))


def test_several_patches_per_decoded_image_are_distinct_crops(tmp_path):
    root = _folder(tmp_path, n=1, size=(64, 64))
    aug = AugmentConfig(hflip_prob=0, vflip_prob=0, transpose_prob=0, jpeg_prob=0, dropout_prob=0)
    cfg = _config(root, patches_per_image=2, batch_size=2, augment=aug)
    _, hr = _take(make_sr_dataset(cfg), 1)[0]
    assert hr.shape == (2, 32, 32, 3)
    assert np.abs(hr[0] - hr[1]).mean() > 1e-3  # two different crops of the one image
    raw = np.asarray(Image.open(root / "img0.png"), np.float32) / 255
    for patch in hr:  # each is a crop of the image at LR-grid (multiple of 4) offsets
        hits = [
            (y, x)
            for y in range(0, 33, 4)
            for x in range(0, 33, 4)
            if np.allclose(raw[y : y + 32, x : x + 32], patch, atol=1e-6)
        ]
        assert hits


def test_flip_probabilities_are_obeyed():
    from kerasr.data import flip_pair

    lr = tf.reshape(tf.range(2 * 2 * 3, dtype=tf.float32), [2, 2, 3])
    hr = tf.reshape(tf.range(4 * 4 * 3, dtype=tf.float32), [4, 4, 3])
    seed = tf.constant([0, 0], tf.int64)
    none = AugmentConfig(hflip_prob=0, vflip_prob=0, transpose_prob=0)
    l0, h0 = flip_pair(lr, hr, seed, none)
    np.testing.assert_array_equal(h0, hr)
    np.testing.assert_array_equal(l0, lr)
    cases = [
        ({"hflip_prob": 1.0}, lambda t: t[:, ::-1]),
        ({"vflip_prob": 1.0}, lambda t: t[::-1]),
        ({"transpose_prob": 1.0}, lambda t: np.transpose(t, (1, 0, 2))),
    ]
    for change, expected in cases:
        aug = dataclasses.replace(none, **change)
        l1, h1 = flip_pair(lr, hr, seed, aug)
        np.testing.assert_array_equal(h1, expected(hr.numpy()))
        np.testing.assert_array_equal(l1, expected(lr.numpy()))


def test_crop_or_pad_reflects_like_opencv_and_crops_inside_the_image():
    from kerasr.data.transforms import crop_or_pad

    small = _photo(5, 3)
    out = crop_or_pad(tf.constant(small), tf.constant([0, 1], tf.int64), 12).numpy()
    # Bottom / right padding by BORDER_REFLECT_101 (numpy's "reflect"), folded again when the
    # image is shorter than the padding.
    np.testing.assert_array_equal(out, np.pad(small, ((0, 7), (0, 9), (0, 0)), mode="reflect"))
    big = _photo(30, 20)
    seen = set()
    for s in range(6):
        crop = crop_or_pad(tf.constant(big), tf.constant([s, 2], tf.int64), 16).numpy()
        hits = [
            (y, x)
            for y in range(15)
            for x in range(5)
            if np.array_equal(big[y : y + 16, x : x + 16], crop)
        ]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 1
    centre = crop_or_pad(tf.constant(big), tf.constant([0, 0], tf.int64), 16, random=False)
    np.testing.assert_array_equal(centre.numpy(), big[7:23, 2:18])


@pytest.mark.parametrize("split", ["train", "validation"])
def test_crop_pad_size_degrades_the_whole_crop_then_cuts_the_patch(tmp_path, split):
    # Real-ESRGAN's order: degrade the crop_pad_size image, then cut LR and HR patches at one
    # LR-grid position for the batch. With the (deterministic) bicubic degradation the LR
    # patch is then the whole image's LR, cut: not the LR of the HR patch (edges differ).
    from kerasr.data.degradations import bicubic_downscale

    root = _folder(tmp_path, n=2, size=(48, 48))
    whole = {}
    for p in sorted(root.iterdir()):
        hr = load_image(str(p)).numpy()
        whole[p.name] = (hr, bicubic_downscale(tf.constant(hr[None]), 4).numpy()[0])
    flips = AugmentConfig(hflip_prob=0, vflip_prob=0, transpose_prob=0, jpeg_prob=0, dropout_prob=0)
    deg = DegradationConfig(kind="bicubic", crop_pad_size=48)
    cfg = _config(root, patch_size=16, augment=flips, degradation=deg, val_source=str(root))
    cfg = dataclasses.replace(cfg, val_batch_size=2)
    positions = set()
    for lr, hr in _take(make_sr_dataset(cfg, split), 3):
        batch_positions = set()
        for lr_i, hr_i in zip(lr, hr, strict=True):
            found = [
                (name, y, x)
                for name, (image, _) in whole.items()
                for y in range(0, 33, 4)
                for x in range(0, 33, 4)
                if np.array_equal(image[y : y + 16, x : x + 16], hr_i)
            ]
            assert len(found) == 1
            name, y, x = found[0]
            np.testing.assert_allclose(
                lr_i, whole[name][1][y // 4 : y // 4 + 4, x // 4 : x // 4 + 4]
            )
            own = bicubic_downscale(tf.constant(hr_i[None]), 4).numpy()[0]
            assert np.abs(own - lr_i).max() > 1 / 255  # cutting first gives another LR
            batch_positions.add((y, x))
        assert len(batch_positions) == 1  # one position per batch, as paired_random_crop
        positions |= batch_positions
    if split == "validation":
        assert positions == {(16, 16)}
    else:
        assert len(positions) > 1

    # 0 (the default) cuts first: the LR is the patch's own bicubic LR.
    cfg = dataclasses.replace(cfg, degradation=DegradationConfig(kind="bicubic"))
    lr, hr = _take(make_sr_dataset(cfg, split), 1)[0]
    np.testing.assert_allclose(lr, bicubic_downscale(tf.constant(hr), 4).numpy(), atol=1e-6)


def test_crop_pad_size_is_checked_against_the_patch_and_on_device():
    with pytest.raises(ConfigError, match="crop_pad_size"):
        DataConfig(patch_size=32, degradation=DegradationConfig(crop_pad_size=24))
    with pytest.raises(ConfigError, match="crop_pad_size"):
        DataConfig(patch_size=32, degradation=DegradationConfig(crop_pad_size=42))
    with pytest.raises(ConfigError, match="on_device"):
        DegradationConfig(crop_pad_size=400, on_device=True)
    for recipe in ("data_realesrgan_x4plus.toml", "realesrgan_x4plus.toml"):
        from pathlib import Path

        path = Path(__file__).resolve().parents[1] / "configs" / recipe
        from kerasr.config import load_data_config

        data = load_data_config(path)
        assert (data.degradation.crop_pad_size, data.patch_size) == (400, 256)


def test_sharpen_gt_sharpens_the_whole_crop_before_the_patch_is_cut(tmp_path):
    # Real-ESRNet's gt_usm: the 48 px crop is sharpened whole, then the patch is cut; near the
    # patch's edges this differs from sharpening the patch alone (the mask reaches 25 px).
    from kerasr.data import usm_sharpen

    root = _folder(tmp_path, n=1, size=(48, 48))
    image = load_image(str(next(root.iterdir()))).numpy()
    deg = DegradationConfig(kind="realesrgan", crop_pad_size=48, pool_size=0)
    cfg = _config(root, patch_size=16, degradation=deg, val_source=str(root))
    ((lr, hr),) = _take(make_sr_dataset(cfg, "validation"), 1)
    ((lr_s, hr_s),) = _take(make_sr_dataset(cfg, "validation", sharpen_gt=True), 1)
    np.testing.assert_array_equal(lr_s, lr)  # the same degradation of the same crop
    np.testing.assert_array_equal(hr[0], image[16:32, 16:32])
    usm = (deg.usm_weight, deg.usm_radius, deg.usm_threshold)
    whole = usm_sharpen(tf.constant(image[None]), *usm).numpy()[0, 16:32, 16:32]
    np.testing.assert_allclose(hr_s[0], whole, atol=1e-6)
    patch_only = usm_sharpen(tf.constant(hr), *usm).numpy()[0]
    assert np.abs(patch_only - hr_s[0]).max() > 1 / 255

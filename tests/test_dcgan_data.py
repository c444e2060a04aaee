"""Sprite folders: compositing, the white-background filter, the tf.data pipeline, bad input."""

import numpy as np
import pytest
from PIL import Image

from kerasr.config import ConfigError, DCGANConfig, load_config
from kerasr.data.sources import DataWarning
from kerasr.data.sprites import load_sprites, sprite_dataset, white_border_fraction
from kerasr.errors import KerasrError


def _sprite(path, size=24, border=None, palette=False):
    """A red disc on a transparent background; `border` paints an opaque frame."""
    rgba = np.zeros((size, size, 4), np.uint8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    rgba[disc] = (200, 30, 30, 255)
    if border is not None:
        rgba[[0, -1], :] = (*border, 255)
        rgba[:, [0, -1]] = (*border, 255)
    image = Image.fromarray(rgba, "RGBA")
    if palette:
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
        image.info["transparency"] = image.getpixel((1, 1))
        image.save(path, transparency=image.getpixel((1, 1)))
    else:
        image.save(path)
    return path


def test_transparent_sprites_are_composited_on_white_by_default(tmp_path):
    _sprite(tmp_path / "a.png")
    _sprite(tmp_path / "b.png", palette=True)
    images = load_sprites(tmp_path, image_size=16)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    for image in images:
        assert (image[0, 0] == 255).all()  # transparent corner -> white
        assert image[8, 8, 0] > 150 and image[8, 8, 1] < 100  # the red disc survives


def test_background_colour_is_configurable(tmp_path):
    _sprite(tmp_path / "a.png")
    images = load_sprites(tmp_path, image_size=24, background=(0, 128, 255))
    np.testing.assert_array_equal(images[0, 0, 0], [0, 128, 255])


def test_white_background_only_keeps_white_bordered_images(tmp_path):
    _sprite(tmp_path / "transparent.png")
    _sprite(tmp_path / "white_frame.png", border=(255, 255, 255))
    _sprite(tmp_path / "blue_frame.png", border=(20, 40, 200))
    assert len(load_sprites(tmp_path, 16)) == 3
    kept = load_sprites(tmp_path, 16, white_background_only=True)
    assert len(kept) == 2
    assert all(white_border_fraction(image) == 1.0 for image in kept)


def test_white_filter_that_keeps_nothing_is_a_clear_error(tmp_path):
    _sprite(tmp_path / "blue_frame.png", border=(20, 40, 200))
    with pytest.raises(KerasrError, match="white border"):
        load_sprites(tmp_path, 16, white_background_only=True)


def test_non_square_images_are_padded_not_cropped(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    image = load_sprites(tmp_path, image_size=20)[0]
    assert (image[:5] == 255).all() and (image[-5:] == 255).all()  # white bands above and below
    assert (image[5:15] == 0).all()


def test_fit_to_frame_centres_the_creature_and_fills_the_frame(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[2:12, 4:24] = (0, 0, 200, 255)  # a 10 x 20 creature in the top-left corner
    Image.fromarray(rgba, "RGBA").save(tmp_path / "small.png")
    plain = load_sprites(tmp_path, image_size=32)[0].astype(int)
    fitted = load_sprites(tmp_path, image_size=32, fit=True)[0].astype(int)
    blue = fitted[..., 2] > fitted[..., 0] + 100
    rows, cols = np.nonzero(blue.any(axis=1))[0], np.nonzero(blue.any(axis=0))[0]
    # 20 px wide at 32 / 40 before; after, the width fills the frame but for the margins.
    assert (plain[..., 2] > plain[..., 0] + 100).any(axis=0).sum() <= 17
    assert cols.min() >= 1 and cols.max() <= 30 and len(cols) >= 27
    # Centred: as much white above as below, left as right (within one source pixel, scaled).
    assert abs(rows.min() - (31 - rows.max())) <= 2 and abs(cols.min() - (31 - cols.max())) <= 2


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(KerasrError, match="no images in"):
        load_sprites(tmp_path)
    with pytest.raises(KerasrError, match="not found"):
        load_sprites(tmp_path / "missing")


def test_unreadable_sprites_are_skipped_with_a_warning_naming_them(tmp_path, png_header_only):
    Image.new("RGBA", (8, 8), (255, 0, 0, 255)).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.warns(DataWarning) as record:
        sprites = load_sprites(tmp_path, image_size=8)
    assert sprites.shape == (1, 8, 8, 3) and (sprites[0, ..., 0] == 255).all()
    skipped = sorted(str(w.message).split(":")[0].split("/")[-1] for w in record)
    assert skipped == ["bomb.png", "broken.png"]
    (tmp_path / "good.png").unlink()
    with pytest.warns(DataWarning), pytest.raises(KerasrError, match="no readable image"):
        load_sprites(tmp_path)


def test_dataset_batches_scaled_images_and_flips_deterministically():
    images = np.zeros((8, 4, 4, 3), np.uint8)
    images[:, :, :2] = 255  # left half white: a flip moves it to the right

    def first(dataset, batches=2):
        return list(dataset.take(batches).as_numpy_iterator())

    batches = first(sprite_dataset(images, batch_size=4, flip=True, seed=1))
    assert all(b.shape == (4, 4, 4, 3) and b.dtype == np.float32 for b in batches)
    stacked = np.concatenate(batches)
    assert stacked.min() == -1.0 and stacked.max() == 1.0
    flipped = stacked[:, 0, 0, 0] < 0  # left column dark: the image was mirrored
    assert 0 < flipped.sum() < 8
    again = np.concatenate(first(sprite_dataset(images, 4, seed=1)))
    np.testing.assert_array_equal(again, stacked)
    unflipped = np.concatenate(first(sprite_dataset(images, 4, flip=False)))
    assert (unflipped[:, 0, 0, 0] == 1.0).all()


def test_dataset_is_endless_and_each_pass_is_a_new_shuffle_of_every_image():
    images = (np.arange(8, dtype=np.uint8) * 30)[:, None, None, None] * np.ones(
        (1, 2, 2, 3), np.uint8
    )
    passes = list(sprite_dataset(images, 4, flip=False, seed=3).take(6).as_numpy_iterator())
    firsts = [np.sort(np.concatenate(passes[i : i + 2])[:, 0, 0, 0]) for i in (0, 2, 4)]
    expected = np.sort(images[:, 0, 0, 0].astype(np.float32) / 127.5 - 1.0)
    for values in firsts:  # every pass holds each image once
        np.testing.assert_allclose(values, expected, atol=1e-6)
    orders = [np.concatenate(passes[i : i + 2])[:, 0, 0, 0].tolist() for i in (0, 2, 4)]
    assert len({tuple(o) for o in orders}) > 1


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(KerasrError, match="batch_size 8 is larger than the 3"):
        sprite_dataset(np.zeros((3, 4, 4, 3), np.uint8), batch_size=8)


def test_config_rejects_bad_keys_and_values(tmp_path):
    cfg = load_config(DCGANConfig, "configs/pokemon_dcgan.toml")
    assert cfg.model.image_size == 64 and cfg.train.diffaugment == (
        "color",
        "translation",
        "cutout",
    )
    with pytest.raises(ConfigError, match="unknown config key 'train.epoch'"):
        load_config(DCGANConfig, overrides=["train.epoch=3"])
    with pytest.raises(ConfigError, match="power of two"):
        load_config(DCGANConfig, overrides=["model.image_size=96"])
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(DCGANConfig, overrides=['train.diffaugment=["colour"]'])
    with pytest.raises(ConfigError, match="nonsaturating"):
        load_config(DCGANConfig, overrides=["train.label_smoothing=0.1"])
    with pytest.raises(ConfigError, match="background"):
        load_config(DCGANConfig, overrides=["data.background=[0, 0, 300]"])

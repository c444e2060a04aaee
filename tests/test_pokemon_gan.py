"""The FastGAN generator, the projected discriminator, and a run of train-dcgan with both."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from kerasr.config import DCGANConfig, load_config
from kerasr.errors import KerasrError
from kerasr.generation import generate, load_generator
from kerasr.models.efficientnet_lite import EfficientNetLite0
from kerasr.models.fastgan import GLU, build_fastgan_generator
from kerasr.models.projected import ProjectedDiscriminator
from kerasr.training.dcgan import build_dcgan
from kerasr.training.train_dcgan import train_dcgan

# The projected recipe at toy size: 16 px images, Lite0 at 32 px, two scales.
TINY = [
    'model.generator="fastgan"',
    'model.discriminator="projected"',
    "model.image_size=16",
    "model.latent_dim=8",
    "model.g_filters=2",
    "model.d_filters=4",
    "model.feature_size=32",
    "model.feature_scales=2",
    "model.projection_channels=4",
    "train.batch_size=4",
    "train.grid_size=2",
    "train.kid_every=0",
    "train.jit_compile=false",
    'train.loss="hinge"',
    "train.ema_decay=0.9",
]


def _config(*overrides):
    return load_config(DCGANConfig, overrides=[*TINY, *overrides])


def test_glu_gates_the_first_half_by_the_second():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    expected = x[..., :2] / (1.0 + np.exp(-x[..., 2:]))
    np.testing.assert_allclose(GLU()(x), expected, rtol=1e-6)


def test_fastgan_generator_excites_its_last_block_from_the_4x4_map():
    g = build_fastgan_generator(image_size=64, latent_dim=16, filters=2)
    z = keras.random.normal((3, 16), seed=1)
    images = np.asarray(g(z, training=False))
    assert images.shape == (3, 64, 64, 3)
    assert np.abs(images).max() <= 1.0
    # The excitation gate reads the 4x4 map: zeroing its squeeze kernel changes the image
    # (every gate becomes sigmoid(0) = 0.5) though no other weight changes.
    squeeze = g.get_layer("excite64_squeeze")
    assert squeeze.input.shape[1:3] == (4, 4)
    squeeze.set_weights([np.zeros_like(w) for w in squeeze.get_weights()])
    assert not np.allclose(np.asarray(g(z, training=False)), images)
    # Below 64 px there is no excitation (FastGAN excites 64 px from 4 px).
    small = build_fastgan_generator(image_size=32, latent_dim=16, filters=2)
    assert not any("excite" in layer.name for layer in small.layers)


def test_fastgan_generator_refuses_sizes_it_cannot_build():
    with pytest.raises(ValueError, match="power of two"):
        build_fastgan_generator(image_size=48)
    with pytest.raises(ValueError, match="16 to 256"):
        build_fastgan_generator(image_size=8)


def _discriminator(**kwargs):
    args = dict(image_size=16, feature_size=32, scales=2, projection_channels=4, filters=4)
    d = ProjectedDiscriminator(EfficientNetLite0(include_top=False), **{**args, **kwargs})
    d.build((None, 16, 16, 3))
    return d


def test_projected_discriminator_scores_every_head_and_trains_only_the_heads():
    d = _discriminator(feature_size=64, scales=3)
    images = keras.random.uniform((2, 16, 16, 3), -1.0, 1.0, seed=0)
    logits = d(images, training=True)
    # Lite0 at 64 px: maps of 16, 8 and 4 px; heads halve down to 8 px, then a 4x4 valid
    # convolution (5x5 logits) or, on a 4 px map, one logit.
    assert tuple(logits.shape) == (2, 25 + 25 + 1)
    frozen = {id(w) for w in d.backbone.weights}
    frozen |= {id(w) for layer in (*d.channel_mix, *d.scale_mix) for w in layer.weights}
    trainable = {id(w) for w in d.trainable_weights}
    assert trainable and not trainable & frozen
    heads = {id(w) for head in d.heads for w in head.trainable_weights}
    assert trainable == heads


def test_a_projected_gan_step_moves_the_heads_and_the_generator_only():
    gan = build_dcgan(_config())
    d = gan.discriminator
    assert isinstance(d, ProjectedDiscriminator)
    fixed = [np.array(w) for w in d.backbone.weights + d.channel_mix[0].weights]
    heads = [np.array(w) for w in d.heads[0].trainable_weights]
    g_before = [np.array(w) for w in gan.generator.trainable_weights]
    real = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    logs = gan.train_on_batch(real, return_dict=True)
    assert np.isfinite([logs["d_loss"], logs["g_loss"]]).all()
    for before, after in zip(fixed, d.backbone.weights + d.channel_mix[0].weights, strict=True):
        np.testing.assert_array_equal(before, np.array(after))
    assert any(
        not np.array_equal(b, np.array(a))
        for b, a in zip(heads, d.heads[0].trainable_weights, strict=True)
    )
    # The generator learns through the frozen network.
    assert all(
        not np.array_equal(b, np.array(a))
        for b, a in zip(g_before, gan.generator.trainable_weights, strict=True)
        if b.ndim == 4
    )


def test_the_projected_discriminator_uses_the_imagenet_weights():
    from kerasr.weights.efficientnet import load_efficientnet_lite0

    gan = build_dcgan(_config())
    reference = load_efficientnet_lite0()
    for ours, theirs in zip(gan.discriminator.backbone.weights, reference.weights, strict=False):
        np.testing.assert_array_equal(np.array(ours), np.array(theirs))


def _sprites(folder, n=8):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        image = np.full((20, 20, 4), 0, np.uint8)
        image[4:16, 4:16] = [*rng.integers(0, 255, 3), 255]
        Image.fromarray(image, "RGBA").save(folder / f"{i}.png")
    return folder


def test_a_run_with_the_projected_recipe_saves_fastgan_generators_that_load_by_file(tmp_path):
    data = _sprites(tmp_path / "sprites")
    run = tmp_path / "run"
    cfg = _config(f'data.folder="{data}"', "train.epochs=2", "train.steps_per_epoch=3")
    result = train_dcgan(cfg, run, report=lambda line: None)
    assert result.step == 6 and result.epochs == 2
    preset = json.loads((run / "generators" / "epoch_0002.json").read_text())
    assert preset["kind"] == "fastgan"
    assert preset["arguments"] == {"image_size": 16, "latent_dim": 8, "filters": 2}
    loaded = load_generator(run / "generators" / "epoch_0002.weights.h5")
    assert loaded.get_layer("up16_conv") is not None
    # The file holds the EMA generator the run sampled its last grid from.
    grid = np.asarray(Image.open(run / "grids" / "epoch_0002.png"))
    first = generate(loaded, [0])[0]
    np.testing.assert_array_equal(grid[2:18, 2:18], first)  # 2 px of white around tiles


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (("stylegan", {}), "unknown network kind"),
        (("fastgan", {"image_size": 16, "upsample": "resize"}), "unknown key 'upsample'"),
        (("dcgan", {"image_size": "16", "latent_dim": 8}), "image_size must be an integer"),
        (("dcgan", {"image_size": 2**40, "latent_dim": 8}), "image_size must be an integer from 8"),
        (("dcgan", {"image_size": 24, "latent_dim": 8}), "power of two"),
        (("dcgan", {"image_size": 16, "latent_dim": True}), "latent_dim must be an integer"),
        (("fastgan", {"image_size": 8, "latent_dim": 8}), "cannot build a fastgan network"),
        ([1, 2], "must hold a JSON object"),
        ({"image_size": 16, "latent_dim": 8}, "not a preset: it needs a network kind"),
    ],
)
def test_a_bad_generator_preset_is_one_line(tmp_path, content, message):
    if isinstance(content, tuple):
        content = {"kind": content[0], "arguments": content[1]}
    (tmp_path / "g.json").write_text(json.dumps(content))
    (tmp_path / "g.weights.h5").write_bytes(b"")
    with pytest.raises(KerasrError, match=message):
        load_generator(tmp_path / "g.weights.h5")


def test_config_checks_the_projected_settings():
    with pytest.raises(KerasrError, match="feature_size must be a multiple of 32"):
        _config("model.feature_size=48")
    with pytest.raises(KerasrError, match="feature_scales must be 1 to 4"):
        _config("model.feature_scales=5")
    with pytest.raises(KerasrError, match="fastgan generator needs image_size >= 16"):
        _config("model.image_size=8")

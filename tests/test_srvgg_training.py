"""Training the compact generator: `generator.kind = "srvgg"` in the SR recipes."""

from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.config import SRRecipe, load_config
from kerasr.images import read_image
from kerasr.models import SRVGGNetCompact

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.toml"
# leakyrelu: the one activation a weights file alone cannot tell from relu.
COMPACT = [
    "generator.kind=srvgg",
    "generator.num_feat=8",
    "generator.num_conv=2",
    "generator.act_type=leakyrelu",
]


def test_general_x4v3_recipe_is_real_esrgans_compact_model():
    from kerasr.training.train_sr import generator_from_config

    recipe = load_config(SRRecipe, ROOT / "configs" / "realesr_general_x4v3.toml")
    g = recipe.generator
    assert (g.kind, g.scale, g.num_feat, g.num_conv, g.act_type) == ("srvgg", 4, 64, 32, "prelu")
    assert recipe.data.degradation.kind == "realesrgan" and recipe.discriminator.kind == "unet"
    network = generator_from_config(g)
    assert isinstance(network, SRVGGNetCompact) and network.scale == 4
    reference = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    reference.build((None, None, None, 3))
    assert network.count_params() == reference.count_params()


def test_pretrain_and_gan_train_a_compact_generator(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    for i in range(4):
        pixels = rng.random((32, 32, 3)) * 255
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "train" / f"{i}.png")
    sets = [arg for item in COMPACT for arg in ("--set", item)]
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
        assert result.exit_code == 0, result.output
        return result.output

    psnr, gan = tmp_path / "psnr", tmp_path / "gan"
    run("pretrain", tmp_path / "train", "-c", TINY, *sets, "--run-dir", psnr, "--steps", 2)
    run(
        "train-gan",
        tmp_path / "train",
        "-c",
        TINY,
        *sets,
        "--run-dir",
        gan,
        "--init",
        psnr,
        "--steps",
        2,
    )
    Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    run("upscale", tmp_path / "in.png", "-o", out, "-m", gan / "generator.weights.h5")
    assert read_image(out).shape == (48, 64, 3)
    # generator.keras beside the weights says which activation they go with.
    from kerasr.weights import load_model

    network = load_model(gan / "generator.keras")
    assert isinstance(network, SRVGGNetCompact) and network.act_type == "leakyrelu"
    assert network.dtype_policy.name == "float32"
    assert load_model(gan / "generator.weights.h5").act_type == "leakyrelu"

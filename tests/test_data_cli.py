"""`kerasr degrade`: the preview grid, its labels, and one-line errors with exit code 2."""

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.config import DataConfig, load_data_config
from kerasr.data.degradations import realesrgan_degrade
from kerasr.data.preview import describe

runner = CliRunner()


def _image(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    pixels = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


def test_degrade_writes_a_grid_of_n_labelled_variants(tmp_path):
    image, out = _image(tmp_path), tmp_path / "preview.png"
    args = ["degrade", str(image), "-n", "3", "--seed", "5", "-o", str(out)]
    result = runner.invoke(app, [*args, "--set", "patch_size=32"])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(out))
    # 4 tiles (HR + 3) on a 2 x 2 grid; tiles are at least 300 px wide for the labels.
    assert grid.shape[1] == 2 * 300 and grid.shape[0] > 2 * 32
    assert not list(tmp_path.glob(".preview.png.*"))  # no temporary file left behind
    again = tmp_path / "again.png"
    runner.invoke(app, [*args[:-1], str(again), "--set", "patch_size=32"])
    np.testing.assert_array_equal(np.asarray(Image.open(again)), grid)


def test_labels_name_the_parameters_drawn():
    import tensorflow as tf

    cfg = DataConfig().degradation
    hr = tf.random.stateless_uniform([1, 32, 32, 3], [0, 0])
    _, _, params = realesrgan_degrade(hr, tf.constant([0, 1], tf.int64), cfg, 4)
    params = tf.nest.map_structure(lambda t: t.numpy(), params)
    lines = describe(params, cfg.stage1.resize_modes)
    assert lines[0].startswith("1: ") and lines[1].startswith("2: ") and "final" in lines[2]
    assert f"jpeg {int(params['stage1']['jpeg'][0])}" in lines[0]
    assert f"x{float(params['stage1']['resize']):.2f}" in lines[0]


def test_degrade_reads_the_data_table_of_a_recipe(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        '[model]\nname = "x"\n\n[data]\nscale = 2\n\n[data.degradation]\nkind = "bicubic"\n'
    )
    cfg = load_data_config(recipe, ["data.patch_size=64"])
    assert (cfg.scale, cfg.patch_size, cfg.degradation.kind) == (2, 64, "bicubic")
    out = tmp_path / "p.png"
    result = runner.invoke(
        app, ["degrade", str(_image(tmp_path)), "--config", str(recipe), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_degrade_errors_are_one_line_with_exit_code_2(tmp_path):
    for args, message in [
        (["degrade", str(tmp_path / "missing.png")], "image not found"),
        (["degrade", str(_image(tmp_path)), "--set", "scale=5"], "'data.scale' must be"),
        (
            ["degrade", str(_image(tmp_path)), "--config", str(tmp_path / "no.toml")],
            "config file not found",
        ),
        (["degrade", str(_image(tmp_path)), "-o", str(tmp_path / "no" / "p.png")], "output folder"),
        (["degrade", str(_image(tmp_path)), "-n", "0"], "-n must be between 1 and 64"),
        (
            ["degrade", str(_image(tmp_path)), "-n", "65", "--set", "patch_size=32"],
            "-n must be between 1 and 64. Received: 65",
        ),
    ]:
        result = runner.invoke(
            app, [*args, "-o", str(tmp_path / "p.png")] if "-n" in args else args
        )
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.splitlines()) == 1


def test_write_preview_returns_what_it_wrote(tmp_path):
    from kerasr.data.preview import Preview, write_preview

    config = load_data_config(None, ["patch_size=32"])
    out = tmp_path / "p.png"
    assert write_preview(_image(tmp_path), out, config, seed=3, n=2) == Preview(out, 2, 3)
    assert out.is_file()

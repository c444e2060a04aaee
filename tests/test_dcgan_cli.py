"""`kerasr generate` / `kerasr train-dcgan`, the generator registry and the serving module."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.generation import (
    generate,
    generator_serving_module,
    list_generators,
    load_generator,
)
from kerasr.models.dcgan import build_generator

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_shipped_generators_are_listed_with_a_legend():
    infos = {info.name: info for info in list_generators()}
    # The default first: the web page's first generator and `kerasr generate`'s.
    assert next(iter(infos)) == "pokemon-fastgan-64"
    assert {"pokemon-fastgan-64", "pokemon-dcgan-64", "pokemon-dcgan-64-white"} <= set(infos)
    for info in infos.values():
        assert info.image_size == 64 and info.latent_dim == 128
        assert info.path.is_file() and info.path.name.endswith(".weights.h5")
        assert "epoch" in info.description and "\n" not in info.description
        # "A few MB": shipped inside the wheel.
        assert info.path.stat().st_size < 8 * 1024 * 1024


def test_a_seed_gives_the_same_image_whatever_the_batch():
    g = load_generator("pokemon-dcgan-64")
    batch = generate(g, [5, 6, 7, 8])
    assert batch.shape == (4, 64, 64, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(generate(g, [7])[0], batch[2])
    np.testing.assert_array_equal(generate(g, [8, 99, 5])[[2, 0]], batch[[0, 3]])
    assert not np.array_equal(batch[0], batch[1])
    with pytest.raises(KerasrError, match="seeds"):
        generate(g, [-1])


def test_generate_cli_writes_pngs_and_a_grid(tmp_path):
    result = _run("generate", "-n", 3, "--seed", 10, "-o", tmp_path / "pngs")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "pngs").glob("*.png"))
    assert [f.name for f in files] == [f"pokemon-fastgan-64-seed{s}.png" for s in (10, 11, 12)]
    expected = generate(load_generator("pokemon-fastgan-64"), [11])[0]
    np.testing.assert_array_equal(np.asarray(Image.open(files[1])), expected)

    result = _run(
        "generate", "-m", "pokemon-dcgan-64-white", "-n", 4, "--grid", "-o", tmp_path / "g.png"
    )
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "g.png").size == (2 * 66 + 2, 2 * 66 + 2)


def test_generate_cli_bad_model_is_one_line_exit_2(tmp_path):
    result = _run("generate", "-m", "pokemon-dcgan-999", "-o", tmp_path)
    assert result.exit_code == 2
    assert "unknown generator 'pokemon-dcgan-999'" in result.output
    assert "Traceback" not in result.output

    wrong = tmp_path / "wrong.weights.h5"
    wrong.write_bytes(b"this is not an HDF5 file")
    preset = {"kind": "dcgan", "arguments": {"image_size": 64, "latent_dim": 128}}
    (tmp_path / "wrong.json").write_text(json.dumps(preset))
    result = _run("generate", "-m", wrong, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "does not hold the weights of its preset" in result.output
    assert len(result.output.strip().splitlines()) == 1

    alone = tmp_path / "alone" / "g.weights.h5"
    alone.parent.mkdir()
    alone.write_bytes(b"x")
    result = _run("generate", "-m", alone, "-o", tmp_path / "out")
    assert result.exit_code == 2 and "has no preset (g.json beside it" in result.output


def test_keras_file_that_is_not_a_generator_is_rejected(tmp_path):
    import keras

    path = tmp_path / "classifier.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    with pytest.raises(KerasrError, match="not a generator"):
        load_generator(path)
    g = build_generator(16, 4, 2, 8)
    g.save(tmp_path / "g.keras")
    assert load_generator(tmp_path / "g.keras").output_shape == (None, 16, 16, 3)


def test_train_dcgan_cli_bad_input_exit_2(tmp_path):
    # The folder goes into the config as typed, quotes and backslashes included.
    empty = tmp_path / 'em"p\\ty'
    empty.mkdir()
    result = _run("train-dcgan", empty, "-o", tmp_path / "run", "-c", "configs/tiny_dcgan.toml")
    assert result.exit_code == 2 and f"no images in {empty}" in result.output
    assert "Traceback" not in result.output
    result = _run("train-dcgan", empty, "-o", tmp_path / "run", "--set", "train.lr=1")
    assert result.exit_code == 2 and "unknown config key 'train.lr'" in result.output
    result = _run("train-dcgan", empty, "--set", "model.image_size=48", "-o", tmp_path / "run")
    assert result.exit_code == 2 and "power of two" in result.output


def test_serving_module_matches_generate(tmp_path):
    g = build_generator(16, 4, 2, 8)
    module = generator_serving_module(g)
    seeds = tf.constant([3, 1, 4], tf.int64)
    served = module.serve(seeds).numpy()
    assert served.dtype == np.uint8 and served.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(served, generate(g, [3, 1, 4]))
    latents = tf.random.stateless_normal([2, 4], seed=[0, 0])
    assert module.from_latents(latents).shape == (2, 16, 16, 3)
    tf.saved_model.save(
        module,
        str(tmp_path / "sm"),
        signatures={"serving_default": module.serve, "from_latents": module.from_latents},
    )
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_array_equal(loaded.serve(seeds).numpy(), served)


def test_generate_upscale_gives_the_same_picture_at_256_pixels(tmp_path):
    # The anime upscaler's weights come from a dependency: a failure here is a real failure.
    result = _run(
        "generate", "-n", 1, "--seed", 0, "--upscale", "realesrgan-x4plus-anime", "-o", tmp_path
    )
    assert result.exit_code == 0, result.output
    (png,) = tmp_path.glob("*.png")
    big = Image.open(png)
    assert big.size == (256, 256) and big.mode == "RGB"
    # Shrunk back, it is the 64x64 picture the generator draws for seed 0, not another one.
    small = np.asarray(big.resize((64, 64), Image.BOX), np.float32)
    drawn = generate(load_generator("pokemon-fastgan-64"), [0])[0].astype(np.float32)
    other = generate(load_generator("pokemon-fastgan-64"), [1])[0].astype(np.float32)
    err = np.abs(small - drawn).mean()
    assert err < 12 and err < 0.5 * np.abs(small - other).mean()


def test_generate_never_overwrites_without_overwrite(tmp_path):
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"keep me")
    result = _run("generate", "-n", 2, "--seed", 1, "--grid", "-o", grid)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output == f"error: {grid} already exists; use --overwrite to replace it\n"
    assert grid.read_bytes() == b"keep me"

    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "pokemon-fastgan-64-seed3.png").write_bytes(b"keep me too")
    result = _run("generate", "-n", 3, "--seed", 2, "-o", folder)
    assert result.exit_code == 2 and "pokemon-fastgan-64-seed3.png already exists" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["pokemon-fastgan-64-seed3.png"]

    result = _run("generate", "-n", 2, "--seed", 1, "--grid", "-o", grid, "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (2 * 66 + 2, 66 + 2)


def test_generate_output_names_that_are_not_folders(tmp_path):
    result = _run("generate", "-n", 2, "--grid", "-o", tmp_path / "x.gif")
    assert result.exit_code == 2 and "cannot write '.gif' files" in result.output
    assert not (tmp_path / "x.gif").exists()
    result = _run("generate", "-n", 2, "-o", tmp_path / "one.png")
    assert result.exit_code == 2 and "--out must be a folder unless --grid" in result.output
    result = _run("generate", "-m", "nope", "-o", tmp_path / "new")
    assert result.exit_code == 2 and "unknown generator 'nope'" in result.output
    assert sorted(tmp_path.iterdir()) == []


def test_seed_policy_is_consecutive_and_bounded():
    from kerasr.generation import MAX_SEED, choose_seeds

    assert choose_seeds(3, 7) == [7, 8, 9]
    drawn = choose_seeds(4)
    assert drawn == list(range(drawn[0], drawn[0] + 4)) and drawn[-1] <= MAX_SEED
    assert choose_seeds(2, MAX_SEED - 1) == [MAX_SEED - 1, MAX_SEED]
    with pytest.raises(KerasrError, match="seed \\+ n - 1 must be at most 2147483647"):
        choose_seeds(2, MAX_SEED)
    with pytest.raises(KerasrError, match="seeds must be integers in 0..2147483647"):
        generate(load_generator("pokemon-dcgan-64"), [MAX_SEED + 1])

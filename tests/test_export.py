import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.images import read_image

runner = CliRunner()


def test_savedmodel_gives_the_same_pixels_as_upscale(tmp_path, photo, tiny_model_file):
    result = runner.invoke(app, ["export", str(tiny_model_file), str(tmp_path / "sm")])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(tmp_path / "sm"))

    image = photo[:30, :44]  # any height and width
    Image.fromarray(image).save(tmp_path / "in.png")
    args = ["upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", "-m", tiny_model_file]
    cli = runner.invoke(app, [*map(str, args), "--precision", "float32"])
    assert cli.exit_code == 0, cli.output
    served = loaded.serve(tf.constant(image)).numpy()
    assert served.dtype == np.uint8 and served.shape == (120, 176, 3)
    np.testing.assert_array_equal(served, read_image(tmp_path / "out.png"))
    signature = loaded.signatures["serving_default"]
    assert signature.structured_input_signature[1]["image"].shape.as_list() == [None, None, 3]


def test_keras_format(tmp_path, tiny_model_file, tiny_model):
    result = runner.invoke(
        app, ["export", str(tiny_model_file), str(tmp_path / "copy"), "--format", "keras"]
    )
    assert result.exit_code == 0, result.output
    import keras

    model = keras.saving.load_model(tmp_path / "copy.keras")
    assert model.get_config() == tiny_model.get_config()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_export_unknown_model_is_one_line(tmp_path):
    result = runner.invoke(app, ["export", "nope", str(tmp_path / "x")])
    assert (
        result.exit_code == 2
        and result.output.count("\n") == 1
        and "unknown model" in result.output
    )


def test_generator_savedmodel_serves_seeds_and_latents(tmp_path):
    from kerasr.generation import generate, latents_from_seeds
    from kerasr.models.dcgan import build_generator

    generator = build_generator(image_size=8, latent_dim=4, filters=4, max_filters=8)
    generator.save(tmp_path / "g.keras")
    result = runner.invoke(app, ["export", str(tmp_path / "g.keras"), str(tmp_path / "gsm")])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(tmp_path / "gsm"))
    seeds = [3, 11]
    served = loaded.serve(tf.constant(seeds, tf.int64)).numpy()
    assert served.dtype == np.uint8 and served.shape == (2, 8, 8, 3)
    np.testing.assert_array_equal(served, generate(generator, seeds))
    latents = latents_from_seeds(tf.constant(seeds, tf.int64), 4)
    from_latents = loaded.signatures["from_latents"](latents=tf.constant(latents))
    np.testing.assert_array_equal(next(iter(from_latents.values())).numpy(), served)


def test_export_never_deletes_what_it_did_not_write(tmp_path, tiny_model_file):
    keep = tmp_path / "work"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, ["export", str(tiny_model_file), str(keep), *extra])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
        assert "is a folder that is not a SavedModel" in result.output
        assert [p.name for p in keep.iterdir()] == ["notes.txt"]
        assert (keep / "notes.txt").read_text() == "mine"


def test_export_replaces_a_previous_export_only_with_overwrite(tmp_path, tiny_model_file):
    target = tmp_path / "sm"
    assert runner.invoke(app, ["export", str(tiny_model_file), str(target)]).exit_code == 0
    first = (target / "saved_model.pb").stat().st_mtime_ns
    again = runner.invoke(app, ["export", str(tiny_model_file), str(target)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (target / "saved_model.pb").stat().st_mtime_ns == first
    result = runner.invoke(app, ["export", str(tiny_model_file), str(target), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert tf.saved_model.load(str(target)).serve(tf.zeros([4, 4, 3], tf.uint8)).shape == (
        16,
        16,
        3,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]  # no staging folder left


def test_export_returns_what_it_wrote(tmp_path, tiny_model_file):
    from kerasr.upscaling.export import Export, export

    done = export("pokemon-dcgan-64", tmp_path / "g", "keras")
    assert done == Export(tmp_path / "g.keras", "generator", "keras")
    assert export(tiny_model_file, tmp_path / "u.keras", "keras").kind == "upscaler"


def _disk_fills_up(path, written):
    """Writes `written` bytes to `path` (a file, or a file in the folder `path`) and fails as
    a full disk does."""
    path = Path(path)
    if not path.suffix:
        path.mkdir()
        path = path / "variables.data-00000-of-00001"
    path.write_bytes(b"\0" * written)
    return path


@pytest.mark.parametrize("fmt", ["savedmodel", "keras"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, tiny_model_file, monkeypatch, fmt):
    import errno
    import os

    import keras

    def full_keras(model, path, *args, **kwargs):
        _disk_fills_up(path, 1000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_savedmodel(module, path, *args, **kwargs):
        written = _disk_fills_up(path, 1000)
        message = f"{written}.tempstate123; {os.strerror(errno.ENOSPC)}"
        raise tf.errors.ResourceExhaustedError(None, None, message)

    target = tmp_path / "out" / ("sm" if fmt == "savedmodel" else "m.keras")
    result = runner.invoke(app, ["export", str(tiny_model_file), str(target), "-f", fmt])
    assert result.exit_code == 0, result.output
    before = _contents(target.parent)
    monkeypatch.setattr(keras.Model, "save", full_keras)
    monkeypatch.setattr(tf.saved_model, "save", full_savedmodel)

    # A new export and the replacement of one: one line naming the file and what it needs;
    # no staging left; the earlier export kept as it was.
    for args in ([str(tmp_path / "out" / "new")], [str(target), "--overwrite"]):
        result = runner.invoke(app, ["export", str(tiny_model_file), *args, "-f", fmt])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        assert "no space left on the device; it needs about" in result.output
        assert re.search(r"about [0-9.]+ MB", result.output)
        assert _contents(target.parent) == before
    assert f"error: {target}: no space left on the device" in result.output


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

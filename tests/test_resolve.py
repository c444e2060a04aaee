"""`kerasr.weights.resolve`: one order of trying kinds, one-line errors, for every command."""

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.models.dcgan import build_generator
from kerasr.weights.networks import preset_of
from kerasr.weights.presets import Preset, save_weights
from kerasr.weights.resolve import GENERATOR, UPSCALER, load_keras_archive, resolve_model

runner = CliRunner()
TINY_GENERATOR = {"image_size": 8, "latent_dim": 4, "filters": 4, "max_filters": 8}


@pytest.fixture(scope="module")
def generator_files(tmp_path_factory):
    """A tiny generator as .keras and as .weights.h5 with its preset."""
    folder = tmp_path_factory.mktemp("generator")
    generator = build_generator(**TINY_GENERATOR)
    generator.save(folder / "g.keras")
    save_weights(generator, folder / "g.weights.h5", Preset("dcgan", TINY_GENERATOR))
    return folder


def test_files_resolve_to_their_kind_in_one_order(
    tmp_path, tiny_model, tiny_model_file, generator_files
):
    save_weights(tiny_model, tmp_path / "u.weights.h5", preset_of(tiny_model, "a test"))
    cases = [
        (tiny_model_file, UPSCALER, "tiny.keras"),
        (tmp_path / "u.weights.h5", UPSCALER, "u.weights.h5"),
        (generator_files / "g.keras", GENERATOR, "g.keras"),
        (generator_files / "g.weights.h5", GENERATOR, "g.weights.h5"),
    ]
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    for spec, kind, name in cases:
        found = resolve_model(spec)
        assert (found.kind, found.name) == (kind, name)
        assert resolve_model(spec, kind).kind == kind
        if kind == UPSCALER:
            np.testing.assert_allclose(
                np.asarray(found.network(x)), np.asarray(tiny_model(x)), atol=1e-6
            )
        else:
            assert found.network.output_shape == (None, 8, 8, 3)


def test_the_registry_names_both_kinds_and_refuses_the_other():
    found = resolve_model("pokemon-dcgan-64", GENERATOR)
    assert found.kind == GENERATOR and found.name == "pokemon-dcgan-64" and found.description
    with pytest.raises(KerasrError, match="^pokemon-dcgan-64 is a generator, not an upscaler$"):
        resolve_model("pokemon-dcgan-64", UPSCALER)
    with pytest.raises(KerasrError, match="^realesrgan-x4plus is an upscaler, not a generator$"):
        resolve_model("realesrgan-x4plus", GENERATOR)


def test_a_file_of_the_other_kind_is_refused_by_name(tiny_model_file, generator_files):
    with pytest.raises(KerasrError, match="tiny.keras is an upscaler, not a generator"):
        resolve_model(tiny_model_file, GENERATOR)
    with pytest.raises(KerasrError, match="g.keras is a generator, not an upscaler"):
        resolve_model(generator_files / "g.keras", UPSCALER)


def test_what_is_no_model_gets_one_line(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases = [
        (
            "pikachu",
            r"^unknown model 'pikachu': use a file or one of realesrgan-x4plus, .*pokemon-dcgan-64",
        ),
        (tmp_path / "none.keras", "^model file not found: "),
        (tmp_path / "export", "is a SavedModel export .* use the .keras or .weights.h5 file"),
        (tmp_path / "folder", "is a folder, not a model file"),
        (tmp_path / "notes.txt", "not a model file"),
    ]
    for spec, message in cases:
        with pytest.raises(KerasrError, match=message) as caught:
            resolve_model(spec)
        assert "\n" not in str(caught.value)
    with pytest.raises(
        KerasrError, match="^unknown generator 'pikachu': use a file or one of pokemon"
    ):
        resolve_model("pikachu", GENERATOR)


def test_a_truncated_keras_file_is_corrupt_not_missing(tmp_path, tiny_model_file):
    data = tiny_model_file.read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        KerasrError, match=r"cut.keras: corrupt or truncated \.keras file"
    ) as caught:
        load_keras_archive(cut)
    assert "not found" not in str(caught.value)
    for command in (
        ["upscale", str(tmp_path / "x.png"), "-m", str(cut)],
        ["generate", "-m", str(cut), "-o", str(tmp_path / "g")],
    ):
        (tmp_path / "x.png").write_bytes(b"")
        result = runner.invoke(app, command)
        assert result.exit_code == 2
        assert "cut.keras: corrupt or truncated .keras file" in result.output
        assert "not found" not in result.output


def test_the_cli_shortens_an_unknown_model_name_to_one_short_line(tmp_path):
    # Too long to be a file name (the OS says so): still an unknown name, in a short line.
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    result = runner.invoke(app, ["upscale", str(image), "-m", "m" * 10_000])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith(f"error: unknown model '{'m' * 80}...': use a file or one of ")
    assert len(errors[0]) < 400

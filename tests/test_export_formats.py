"""ONNX and LiteRT exports, each loaded in its own runtime and compared with the Keras model.

The files are run the way docs/upscaling.md shows (onnxruntime's `InferenceSession`, the
`ai-edge-litert` interpreter's signature runner), not through kerasr.
"""

import numpy as np
import onnx
import onnxruntime
import pytest
from ai_edge_litert.interpreter import Interpreter
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.images import to_uint8
from kerasr.upscaling.export import export_network

runner = CliRunner()

# float16 weights: the largest difference between the file's float output and the float32
# Keras model's, in uint8 levels (1/255), measured on each test's input (0.383 and 0.419)
# and rounded up a little. Rounded to uint8, both differ by at most one level.
ONNX_FLOAT16_LEVELS = 0.4
LITERT_FLOAT16_LEVELS = 0.45


@pytest.fixture(scope="module")
def rrdbnet_x2(tmp_path_factory):
    """A two-block RRDBNet x2: its input goes through the pixel unshuffle."""
    import keras

    from kerasr.models import RRDBNet

    keras.utils.set_random_seed(1)
    model = RRDBNet(
        scale=2, num_basic_blocks=2, rrdb_channels=8, growth_channels=4, num_dense_blocks=1
    )
    model.build((None, None, None, 3))
    path = tmp_path_factory.mktemp("models") / "rrdb_x2.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    """A compact network (SRVGGNetCompact x4, three body convolutions, PReLU)."""
    import keras

    from kerasr.models import SRVGGNetCompact

    keras.utils.set_random_seed(2)
    model = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)
    model.build((None, None, None, 3))
    path = tmp_path_factory.mktemp("models") / "compact.keras"
    model.save(path)
    return model, path


def keras_levels(model, images: np.ndarray) -> np.ndarray:
    """What the Keras model gives for NHWC float images, as uint8 levels."""
    return to_uint8(keras_floats(model, images)).astype(int)


def keras_floats(model, images: np.ndarray) -> np.ndarray:
    return np.clip(model(images, training=False).numpy(), 0, 1)


def export(*args):
    result = runner.invoke(app, ["export", *map(str, args)])
    assert result.exit_code == 0, result.output
    assert "checked in" in result.output
    return result


def test_onnx_upscaler_takes_nchw_floats_of_any_size(tmp_path, photo, rrdbnet_x2):
    model, path = rrdbnet_x2
    export(path, tmp_path / "x2", "--format", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "x2.onnx"))
    (given,) = session.get_inputs()
    assert given.name == "input" and given.type == "tensor(float)" and given.shape[1] == 3
    assert all(isinstance(d, str) for d in (given.shape[0], *given.shape[2:]))  # free sizes
    for images in (photo[None, :12, :12], np.stack([photo[:8, :20], photo[8:16, 20:40]])):
        x = images.astype(np.float32) / 255
        (out,) = session.run(["output"], {"input": x.transpose(0, 3, 1, 2)})
        assert out.shape == (len(x), 3, 2 * x.shape[1], 2 * x.shape[2])
        got = to_uint8(out.transpose(0, 2, 3, 1)).astype(int)
        assert np.abs(got - keras_levels(model, x)).max() <= 1


def test_onnx_float16_weights(tmp_path, photo, compact):
    model, _ = compact
    done = export_network(model, "upscaler", tmp_path / "c16", "onnx", precision="float16")
    graph = onnx.load(str(done.path)).graph
    kernels = {node.input[1] for node in graph.node if node.op_type == "Conv"}
    assert {t.data_type for t in graph.initializer if t.name in kernels} == {
        onnx.TensorProto.FLOAT16
    }
    session = onnxruntime.InferenceSession(str(done.path))
    assert session.get_inputs()[0].type == "tensor(float)"  # the same input as float32
    x = photo[None, :12, :12].astype(np.float32) / 255
    (out,) = session.run(None, {"input": x.transpose(0, 3, 1, 2)})
    out = out.transpose(0, 2, 3, 1)
    assert np.abs(out - keras_floats(model, x)).max() * 255 <= ONNX_FLOAT16_LEVELS
    assert np.abs(to_uint8(out).astype(int) - keras_levels(model, x)).max() <= 1
    assert done.max_error <= 1


def test_litert_upscaler_has_the_tile_size(tmp_path, photo, compact):
    model, path = compact
    export(path, tmp_path / "c", "--format", "litert", "--tile", "12")
    signature = Interpreter(model_path=str(tmp_path / "c.tflite")).get_signature_runner()
    assert signature.get_input_details()["input"]["shape_signature"].tolist() == [1, 12, 12, 3]
    x = photo[None, 100:112, 100:112].astype(np.float32) / 255
    out = signature(input=x)["output"]
    assert out.shape == (1, 48, 48, 3) and out.dtype == np.float32
    assert np.abs(to_uint8(out).astype(int) - keras_levels(model, x)).max() <= 1


def test_litert_float16_with_tile_0_takes_any_size(tmp_path, photo, rrdbnet_x2):
    model, path = rrdbnet_x2
    export(path, tmp_path / "r16.tflite", "-f", "litert", "--tile", "0", "--precision", "float16")
    signature = Interpreter(model_path=str(tmp_path / "r16.tflite")).get_signature_runner()
    assert signature.get_input_details()["input"]["shape_signature"].tolist() == [1, -1, -1, 3]
    x = photo[None, :12, :16].astype(np.float32) / 255
    out = signature(input=x)["output"]
    assert out.shape == (1, 24, 32, 3)
    assert np.abs(out - keras_floats(model, x)).max() * 255 <= LITERT_FLOAT16_LEVELS
    assert np.abs(to_uint8(out).astype(int) - keras_levels(model, x)).max() <= 1


def test_onnx_generator_draws_what_generate_draws(tmp_path):
    from kerasr.generation import generate, latents_from_seeds, load_generator

    export("pokemon-dcgan-64", tmp_path / "g", "--format", "onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    seeds = [3, 11, 12]
    latents = latents_from_seeds(seeds, 128).numpy()
    (images,) = session.run(["images"], {"latents": latents})
    assert images.dtype == np.uint8 and images.shape == (3, 64, 64, 3)
    expected = generate(load_generator("pokemon-dcgan-64"), seeds).astype(int)
    assert np.abs(images.astype(int) - expected).max() <= 1


def test_litert_fastgan_generator(tmp_path):
    from kerasr.generation import generate, latents_from_seeds
    from kerasr.models.fastgan import build_fastgan_generator

    generator = build_fastgan_generator(image_size=16, latent_dim=8, filters=2)
    generator.save(tmp_path / "fastgan.keras")
    export(tmp_path / "fastgan.keras", tmp_path / "f", "-f", "litert")
    signature = Interpreter(model_path=str(tmp_path / "f.tflite")).get_signature_runner()
    image = signature(latents=latents_from_seeds([5], 8).numpy())["images"]
    assert image.dtype == np.uint8 and image.shape == (1, 16, 16, 3)
    assert np.abs(image.astype(int) - generate(generator, [5]).astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-f", "savedmodel", "--precision", "float16"], "--precision float16 applies to"),
        (["-f", "onnx", "--tile", "64"], "--tile applies to --format litert only"),
        (["-f", "litert", "--tile", "13"], "the model does not take a 13x13x3 input"),
        (["-f", "litert", "--tile", "-4"], "--tile must be >= 0"),
    ],
)
def test_bad_options_are_one_line(tmp_path, rrdbnet_x2, args, expected):
    result = runner.invoke(app, ["export", str(rrdbnet_x2[1]), str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert expected in result.output
    assert list(tmp_path.iterdir()) == []


def test_unknown_format(tmp_path, tiny_model_file):
    result = runner.invoke(app, ["export", str(tiny_model_file), str(tmp_path / "o"), "-f", "tf"])
    assert result.exit_code == 2 and "Invalid value for '--format'" in result.output
    with pytest.raises(KerasrError, match="format must be one of savedmodel, keras, onnx, litert"):
        export_network(None, "upscaler", tmp_path / "o", "tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("fmt", "module", "names"),
    [("onnx", "tf2onnx", "tf2onnx"), ("litert", "ai_edge_litert", "ai-edge-litert")],
)
def test_a_missing_converter_names_the_extra(monkeypatch, tmp_path, fmt, module, names):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name)
    )
    # Refused before the model is even looked for.
    result = runner.invoke(app, ["export", "no-such-model", str(tmp_path / "o"), "-f", fmt])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert f"--format {fmt} needs {names}: pip install 'kerasr[export]'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_existing_destinations(tmp_path, compact):
    _, path = compact
    (tmp_path / "c.onnx").mkdir()
    result = runner.invoke(app, ["export", str(path), str(tmp_path / "c.onnx"), "-f", "onnx"])
    assert result.exit_code == 2 and "is a folder; choose a new name" in result.output
    (tmp_path / "d.onnx").write_bytes(b"old")
    result = runner.invoke(app, ["export", str(path), str(tmp_path / "d"), "-f", "onnx"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "d.onnx").read_bytes() == b"old"


@pytest.mark.parametrize(("fmt", "suffix"), [("onnx", ".onnx"), ("litert", ".tflite")])
def test_a_model_the_format_cannot_express(tmp_path, fmt, suffix):
    """A generator with an op neither format has (TensorFlow's stateless random normal)."""
    import keras
    import tensorflow as tf

    class StatelessNoise(keras.layers.Layer):
        def call(self, x):
            return x + tf.random.stateless_normal(tf.shape(x), seed=[1, 2])

    latents = keras.Input((12,))
    images = keras.layers.Reshape((2, 2, 3))(StatelessNoise()(latents))
    noisy = keras.Model(latents, keras.ops.tanh(images))
    with pytest.raises(KerasrError, match=f"^{'ONNX' if fmt == 'onnx' else 'LiteRT'} cannot "):
        export_network(noisy, "generator", tmp_path / "n", fmt)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its staging name

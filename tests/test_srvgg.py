import keras
import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.models import Rescaled, SRVGGNetCompact
from kerasr.models.rescaled import cubic_resize
from kerasr.upscaling.inference import Upscaler
from kerasr.weights import load_model
from kerasr.weights.interpolate import interpolate_models
from kerasr.weights.networks import preset_of
from kerasr.weights.presets import save_weights

TINY = {"num_feat": 8, "num_conv": 2}


def _image(seed, h=8, w=12):
    return np.random.default_rng(seed).random((1, h, w, 3)).astype("float32")


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
@pytest.mark.parametrize("act_type", ["prelu", "relu", "leakyrelu"])
def test_output_shape(upscale, act_type):
    model = SRVGGNetCompact(upscale=upscale, act_type=act_type, **TINY)
    y = model(np.zeros((2, 8, 12, 3), "float32"))
    assert tuple(y.shape) == (2, 8 * upscale, 12 * upscale, 3)
    assert y.dtype == "float32" and model.scale == upscale


def test_parameter_counts_match_real_esrgan():
    video = SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4)
    video.build((None, None, None, 3))
    assert video.count_params() == 621_424  # realesr-animevideov3
    general = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4)
    general.build((None, None, None, 3))
    # realesr-general-x4v3: 16 more body convolutions (3x3 kernel, bias, PReLU slopes).
    assert general.count_params() - video.count_params() == 16 * (9 * 64 * 64 + 64 + 64)
    # One PReLU slope per channel after every convolution but the last.
    assert len(video.activations) == 17 and video.activations[0].alpha.shape == (1, 1, 64)


def test_zero_network_is_nearest_upsampling_in_pytorch_order():
    # With the last convolution at zero the output is the nearest-upsampled input; with a
    # bias on one channel the pixel shuffle shows where PyTorch puts channel c*r*r + i*r + j.
    model = SRVGGNetCompact(upscale=2, **TINY)
    x = _image(0, 3, 5)
    model(x)
    kernel, bias = model.conv_last.get_weights()
    bias = np.zeros_like(bias)
    bias[1 * 4 + 0 * 2 + 1] = 1.0  # colour channel 1, block row 0, block column 1
    model.conv_last.set_weights([np.zeros_like(kernel), bias])
    y = np.asarray(model(x))[0]
    nearest = np.repeat(np.repeat(x[0], 2, axis=0), 2, axis=1)
    expected = nearest.copy()
    expected[0::2, 1::2, 1] += 1.0
    np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [{"upscale": 0}, {"act_type": "gelu"}, {"num_conv": -1}, {"num_out_ch": 1}, {"num_feat": 2.5}],
)
def test_bad_arguments_are_clear(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SRVGGNetCompact(**bad)


def test_get_config_is_the_constructor_arguments():
    model = SRVGGNetCompact(num_in_ch=1, num_out_ch=1, upscale=2, act_type="relu", **TINY)
    config = model.get_config()
    assert {k: config[k] for k in ("num_in_ch", "num_feat", "num_conv", "upscale")} == {
        "num_in_ch": 1,
        "num_feat": 8,
        "num_conv": 2,
        "upscale": 2,
    }
    assert config["act_type"] == "relu"
    clone = SRVGGNetCompact.from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize("act_type", ["prelu", "leakyrelu"])
def test_keras_file_round_trip(tmp_path, act_type):
    model = SRVGGNetCompact(act_type=act_type, **TINY)
    x = _image(1)
    y = model(x)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert isinstance(loaded, SRVGGNetCompact) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(y), atol=1e-6)


def test_weights_file_round_trip_rebuilds_from_its_preset(tmp_path):
    keras.utils.set_random_seed(2)
    model = SRVGGNetCompact(num_feat=8, num_conv=11, upscale=3)
    model.build((None, None, None, 3))
    for prelu in model.activations:  # non-default slopes, so loading them is visible
        prelu.set_weights([np.random.default_rng(3).random((1, 1, 8)).astype("float32")])
    save_weights(model, tmp_path / "m.weights.h5", preset_of(model, "a test"))
    loaded = load_model(tmp_path / "m.weights.h5")
    assert isinstance(loaded, SRVGGNetCompact)
    assert {k: loaded.get_config()[k] for k in ("num_feat", "num_conv", "upscale", "act_type")} == {
        "num_feat": 8,
        "num_conv": 11,
        "upscale": 3,
        "act_type": "prelu",
    }
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("act_type", ["relu", "leakyrelu"])
def test_weights_file_without_prelu_takes_the_activation_from_its_preset(tmp_path, act_type):
    # relu and leakyrelu have no weights: only the preset tells them apart.
    model = SRVGGNetCompact(act_type=act_type, **TINY)
    model.build((None, None, None, 3))
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(KerasrError, match="has no preset .m.json beside it"):
        load_model(tmp_path / "m.weights.h5")
    save_weights(model, tmp_path / "m.weights.h5", preset_of(model, "a test"))
    loaded = load_model(tmp_path / "m.weights.h5")
    assert loaded.act_type == act_type
    x = _image(4) - 0.5  # negative inputs, where relu and leakyrelu differ
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_interpolation_between_two_compact_models():
    keras.utils.set_random_seed(4)
    a, b = SRVGGNetCompact(**TINY), SRVGGNetCompact(**TINY)
    for m in (a, b):
        m.build((None, None, None, 3))
    blended = interpolate_models(a, b, 0.25)
    assert isinstance(blended, SRVGGNetCompact) and blended.scale == 4
    for wa, wb, wm in zip(a.get_weights(), b.get_weights(), blended.get_weights(), strict=True):
        np.testing.assert_allclose(wm, 0.75 * wa + 0.25 * wb, atol=1e-6)
    other = SRVGGNetCompact(num_feat=8, num_conv=3)
    other.build((None, None, None, 3))
    with pytest.raises(KerasrError, match="different architectures"):
        interpolate_models(a, other, 0.5)


def _cubic_reference(row, factor):
    # PyTorch's bicubic (a = -0.75, half-pixel centres, edges repeated) written per sample.
    n = len(row)
    out = []
    for i in range(int(n * factor)):
        src = (i + 0.5) / factor - 0.5
        base = int(np.floor(src))
        t = src - base
        total = 0.0
        for k in range(-1, 3):
            d = abs(k - t)
            a = -0.75
            w = (
                ((a + 2) * d - (a + 3)) * d * d + 1
                if d <= 1
                else ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
            )
            total += w * row[min(max(base + k, 0), n - 1)]
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("factor", [0.5, 0.75])
def test_cubic_resize_is_pytorch_bicubic(factor):
    x = np.random.default_rng(5).random((1, 8, 12, 1)).astype("float32")
    y = np.asarray(cubic_resize(x, factor))[0, ..., 0]
    rows = np.array([_cubic_reference(r, factor) for r in x[0, ..., 0]])
    expected = np.array([_cubic_reference(c, factor) for c in rows.T]).T
    assert y.shape == (int(8 * factor), int(12 * factor))
    np.testing.assert_allclose(y, expected, atol=1e-5)


def test_rescaled_saves_and_upscales(tmp_path):
    network = SRVGGNetCompact(**TINY)
    model = Rescaled(network, 0.75)
    x = _image(6)
    y = np.asarray(model(x))
    assert model.scale == 3 and y.shape == (1, 24, 36, 3)
    model.save(tmp_path / "x3.keras")
    loaded = load_model(tmp_path / "x3.keras")
    assert loaded.scale == 3
    np.testing.assert_allclose(np.asarray(loaded(x)), y, atol=1e-6)
    with pytest.raises(ValueError, match="whole number"):
        Rescaled(network, 0.3)


def test_upscaler_uses_the_release_of_an_outscale():
    network = SRVGGNetCompact(**TINY)
    network.build((None, None, None, 3))
    pixels = (np.random.default_rng(7).random((10, 14, 3)) * 255).astype(np.uint8)
    plain = Upscaler(network, precision="float32").upscale(pixels, outscale=2)
    network.outscale_variants = {2: 0.5}
    released = Upscaler(network, precision="float32").upscale(pixels, outscale=2)
    direct = np.asarray(Rescaled(network, 0.5)(pixels[None].astype(np.float32) / 255))[0]
    expected = (np.clip(direct, 0, 1) * 255).round()
    assert released.shape == plain.shape == (20, 28, 3)
    assert np.abs(released.astype(np.float32) - expected).max() <= 1
    assert not np.array_equal(released, plain)  # Lanczos of the x4 output is another image


def test_compact_model_through_upscale_interpolate_export_and_evaluate(tmp_path, photo):
    import tensorflow as tf
    from PIL import Image
    from typer.testing import CliRunner

    from kerasr.cli import app
    from kerasr.images import read_image

    runner = CliRunner()
    keras.utils.set_random_seed(8)
    paths = []
    for name in ("psnr", "gan"):
        model = SRVGGNetCompact(**TINY)
        model.build((None, None, None, 3))
        save_weights(model, tmp_path / f"{name}.weights.h5", preset_of(model, "a test"))
        paths.append(str(tmp_path / f"{name}.weights.h5"))
    image = photo[:20, :28]
    Image.fromarray(image).save(tmp_path / "in.png")

    blend = tmp_path / "blend.keras"
    result = runner.invoke(app, ["interpolate", *paths, "--alpha", "0.5", "-o", str(blend)])
    assert result.exit_code == 0, result.output
    args = ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]
    result = runner.invoke(app, [*args, "-m", str(blend), "--precision", "float32"])
    assert result.exit_code == 0, result.output
    upscaled = read_image(tmp_path / "out.png")
    assert upscaled.shape == (80, 112, 3)
    # --alpha on the command line gives the same network as the interpolate command.
    two = ["-m", paths[0], "-m", paths[1], "--alpha", "0.5", "--precision", "float32"]
    result = runner.invoke(app, [*args[:2], "-o", str(tmp_path / "alpha.png"), *two])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png"), upscaled)

    result = runner.invoke(app, ["export", str(blend), str(tmp_path / "sm")])
    assert result.exit_code == 0, result.output
    loaded = tf.saved_model.load(str(tmp_path / "sm"))  # kept alive while it serves
    served = loaded.serve(tf.constant(image)).numpy()
    np.testing.assert_array_equal(served, upscaled)

    data = tmp_path / "Tiny"
    data.mkdir()
    Image.fromarray(photo[:32, :32]).save(data / "a.png")
    result = runner.invoke(app, ["evaluate", str(data), "-m", str(blend), "--scale", "4"])
    assert result.exit_code == 0, result.output
    assert "bicubic PSNR" in result.output

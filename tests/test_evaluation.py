import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.evaluation.sr import bicubic_scores, find_pairs, matlab_imresize
from kerasr.images import read_image, to_uint8

runner = CliRunner()


def test_imresize_keeps_constants_and_sizes():
    image = np.full((13, 10, 3), 0.7)
    small = matlab_imresize(image, 1 / 4)
    assert small.shape == (4, 3, 3)  # ceil, as MATLAB
    np.testing.assert_allclose(small, 0.7)
    np.testing.assert_allclose(matlab_imresize(image, 2), 0.7)


def test_imresize_reproduces_a_linear_ramp_away_from_borders():
    # Keys' cubic kernel is exact on linear functions; MATLAB samples output pixel i
    # (1-based) at input coordinate u = i / s + (1 - 1 / s) / 2.
    ramp = np.arange(64, dtype=np.float64)[None, :].repeat(4, 0)
    for scale in (0.5, 0.25, 2.0):
        out = matlab_imresize(ramp, scale)[0]
        u = np.arange(1, out.size + 1) / scale + 0.5 * (1 - 1 / scale) - 1  # 0-based
        interior = slice(int(4 * max(1, scale)), -int(4 * max(1, scale)))
        np.testing.assert_allclose(out[interior], u[interior], atol=1e-9)


def test_imresize_antialiases_when_shrinking():
    stripes = np.tile([0.0, 1.0], 32)[None, :].repeat(8, 0)  # highest frequency
    small = matlab_imresize(stripes, 0.5)[2]
    assert np.ptp(small[2:-2]) < 0.05  # averaged to grey, not aliased to 0 or 1


def make_dataset(root, photo, paired=False):
    if paired:
        (root / "HR").mkdir(parents=True)
        (root / "LR").mkdir()
        Image.fromarray(photo[:64, :48]).save(root / "HR" / "a.png")
        Image.fromarray(photo[:16, :12]).save(root / "LR" / "ax4.png")
    else:
        root.mkdir(parents=True)
        Image.fromarray(photo[:66, :50]).save(root / "a.png")  # cropped to 64x48
        Image.fromarray(photo[100:132, 100:140, 0]).save(root / "grey.png")
    return root


def test_evaluate_cli_with_json(tmp_path, photo, tiny_model_file):
    data = make_dataset(tmp_path / "Tiny", photo)
    out = tmp_path / "scores.json"
    args = ["evaluate", str(data), "-m", str(tiny_model_file), "--scale", "4", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "bicubic PSNR" in result.output and "mean" in result.output
    scores = json.loads(out.read_text())
    dataset = scores["datasets"][0]
    assert dataset["dataset"] == "Tiny" and [i["name"] for i in dataset["images"]] == ["a", "grey"]
    hr = read_image(data / "a.png")[:64, :48]
    lr = to_uint8(matlab_imresize(hr.astype(np.float64), 1 / 4), (0.0, 255.0))
    a = dataset["images"][0]
    # The baseline is the papers' bicubic of this very image, not a copy of the model's score.
    assert (a["bicubic_psnr"], a["bicubic_ssim"]) == pytest.approx(bicubic_scores(hr, lr, 4))
    for image in dataset["images"]:
        # A random network is far worse than bicubic: the two columns are not swapped.
        assert image["psnr"] < image["bicubic_psnr"] - 3 and image["ssim"] < image["bicubic_ssim"]
    assert dataset["mean"]["psnr"] == pytest.approx(np.mean([i["psnr"] for i in dataset["images"]]))


def test_paired_folders(tmp_path, photo):
    data = make_dataset(tmp_path / "P", photo, paired=True)
    pairs = find_pairs(data)
    assert [(hr.name, lr.name) for hr, lr in pairs] == [("a.png", "ax4.png")]
    (data / "HR" / "b.png").write_bytes((data / "HR" / "a.png").read_bytes())
    with pytest.raises(KerasrError, match="b.png: no matching LR"):
        find_pairs(data)


def test_bad_dataset_and_scale(tmp_path, tiny_model_file):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "none"), "-m", str(tiny_model_file)])
    assert result.exit_code == 2 and "dataset folder not found" in result.output
    (tmp_path / "d").mkdir()
    result = runner.invoke(
        app, ["evaluate", str(tmp_path / "d"), "-m", str(tiny_model_file), "--scale", "2"]
    )
    assert result.exit_code == 2 and "upscales x4" in result.output


def test_evaluate_model_is_the_library_call_with_the_json_payload(tmp_path, photo, tiny_model_file):
    from kerasr.evaluation.sr import evaluate_model

    data = make_dataset(tmp_path / "Tiny", photo)
    seen, messages = [], []
    evaluation = evaluate_model(
        str(tiny_model_file), [data], 4, progress=messages.append, on_dataset=seen.append
    )
    assert [d.name for d in evaluation.datasets] == ["Tiny"] and seen == evaluation.datasets
    assert messages[0] == f"loading {tiny_model_file}" and "evaluated grey.png" in messages
    payload = evaluation.as_dict()
    assert {k: payload[k] for k in ("model", "scale", "y_channel", "border")} == {
        "model": str(tiny_model_file),
        "scale": 4,
        "y_channel": True,
        "border": 4,
    }
    written = evaluation.write_json(tmp_path / "s.json")
    assert json.loads(written.read_text()) == payload


def test_lr_names_pair_by_one_rule(tmp_path, photo):
    from kerasr.data.sources import hr_stem

    names = ("0001x4", "baby_x4", "babyX4", "a_x2")
    assert [hr_stem(s, 4) for s in names] == ["0001", "baby", "baby", "a_x2"]
    assert hr_stem("baby_x3") == "baby"
    data = make_dataset(tmp_path / "P", photo, paired=True)
    (data / "LR" / "ax4.png").rename(data / "LR" / "a_x4.png")
    assert [(hr.name, lr.name) for hr, lr in find_pairs(data, 4)] == [("a.png", "a_x4.png")]


def test_training_bicubic_baseline_is_the_evaluation_protocol(tmp_path, photo):
    # bicubic.json (the baseline line of training.png) and `kerasr evaluate`'s bicubic column
    # must be one protocol: on images the size of a validation patch they are the same number.
    from types import SimpleNamespace

    from kerasr.config import DataConfig, DegradationConfig
    from kerasr.data import make_sr_dataset
    from kerasr.evaluation.sr import evaluate
    from kerasr.training.train_sr import bicubic_baseline

    folder = tmp_path / "val"
    folder.mkdir()
    for i, (y, x) in enumerate(((0, 0), (37, 51), (90, 13))):
        Image.fromarray(photo[y : y + 32, x : x + 32]).save(folder / f"{i}.png")
    data = DataConfig(
        val_source=str(folder), patch_size=32, degradation=DegradationConfig(kind="bicubic")
    )
    baseline = bicubic_baseline(make_sr_dataset(data, "validation"), 4)
    nearest = SimpleNamespace(scale=4, upscale=lambda lr: lr.repeat(4, 0).repeat(4, 1))
    scores = evaluate(nearest, folder, 4)
    assert len(scores.images) == 3
    assert baseline == pytest.approx(scores.mean("bicubic_psnr"), abs=1e-6)


def test_validation_scores_are_the_evaluation_protocol(photo):
    # The per-step validation PSNR / SSIM of training score the generator's output as
    # `kerasr evaluate` does: rounded to 8 bits, Y channel, `scale` border pixels cropped.
    import keras

    from kerasr.evaluation.sr import score_pair
    from kerasr.images import to_uint8
    from kerasr.models import RRDBNet
    from kerasr.training.pretrain import SRModel

    keras.utils.set_random_seed(1)
    g = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    model = SRModel(g, "l1")
    model.compile(keras.optimizers.Adam(), jit_compile=False)
    hr = np.stack([photo[:32, :32], photo[64:96, 32:64]]).astype(np.float32) / 255
    lr = np.stack([photo[:8, :8], photo[16:24, 8:16]]).astype(np.float32) / 255
    logs = model.evaluate(lr, hr, batch_size=2, verbose=0, return_dict=True)
    sr = to_uint8(np.asarray(g(lr)))
    scores = [score_pair(to_uint8(h), s, 4) for h, s in zip(hr, sr, strict=True)]
    assert logs["psnr"] == pytest.approx(np.mean([p for p, _ in scores]), abs=1e-4)
    assert logs["ssim"] == pytest.approx(np.mean([s for _, s in scores]), abs=1e-5)

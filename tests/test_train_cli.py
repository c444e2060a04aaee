"""`kerasr pretrain`, `train-gan`, `interpolate` and `upscale --alpha` on tiny runs."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import DAMAGES, damage, fingerprints, wait_for_step
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.config import ConfigError, SRRecipe, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six 40x48 training images and two 32x32 validation images, made here."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, count, shape in (("train", 6, (40, 48)), ("val", 2, (32, 32))):
        (root / split).mkdir()
        for i in range(count):
            h, w = shape
            ramp = np.linspace(0, 1, w)[None, :, None] * np.linspace(0, 1, h)[:, None, None]
            pixels = ramp * 255 * rng.random(3) + rng.random((h, w, 3)) * 40
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return root


def run(*args):
    # Wide, so that rich does not wrap paths in the messages checked below.
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return result, result.output  # stdout and stderr, interleaved


def latest_step(run_dir: Path) -> int:
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def test_configs_hold_the_paper_defaults():
    psnr = load_config(SRRecipe, ROOT / "configs" / "esrgan_x4_psnr.toml")
    assert (psnr.data.batch_size, psnr.data.patch_size, psnr.g_optim.learning_rate) == (
        16,
        128,
        2e-4,
    )
    assert psnr.g_optim.milestones[0] == 200_000 and psnr.g_optim.gamma == 0.5
    assert psnr.generator.num_basic_blocks == 23  # the paper and BasicSR
    gan = load_config(SRRecipe, ROOT / "configs" / "esrgan_x4_gan.toml")
    assert gan.g_optim.learning_rate == 1e-4 and (gan.g_optim.beta_1, gan.g_optim.beta_2) == (
        0.9,
        0.99,
    )
    assert gan.g_optim.milestones == gan.d_optim.milestones == (50_000, 100_000, 200_000, 300_000)
    assert (gan.loss.perceptual_weight, gan.loss.gan_weight, gan.loss.pixel_weight) == (
        1.0,
        5e-3,
        1e-2,
    )
    assert gan.loss.gan_type == "relativistic" and gan.discriminator.kind == "vgg"
    # BasicSR's train_ESRGAN_x4.yml: its VGGStyleDiscriminator, detached relativistic halves,
    # no discriminator warm-up, generator EMA 0.999.
    assert gan.discriminator.vgg_blk_ch == (64, 64, 128, 128, 256, 256, 512, 512, 512, 512)
    assert gan.loss.relativistic_detach
    assert (gan.train.net_d_iters, gan.train.net_d_init_iters, gan.train.ema_decay) == (1, 0, 0.999)
    real = load_config(SRRecipe, ROOT / "configs" / "realesrgan_x4plus.toml")
    assert real.perceptual.layer_weights == {
        "conv1_2": 0.1,
        "conv2_2": 0.1,
        "conv3_4": 1.0,
        "conv4_4": 1.0,
        "conv5_4": 1.0,
    }
    assert (real.loss.gan_type, real.loss.gan_weight, real.train.ema_decay) == (
        "vanilla",
        0.1,
        0.999,
    )
    assert real.discriminator.kind == "unet" and real.discriminator.spectral_norm
    assert real.data.degradation.kind == "realesrgan" and real.train.init == "realesrgan-x4plus"
    with pytest.raises(ConfigError, match="valid keys in \\[loss\\]: pixel, pixel_weight"):
        load_config(SRRecipe, TINY, ["loss.pixle=l1"])
    with pytest.raises(ConfigError, match="'loss.gan_type' must be one of"):
        load_config(SRRecipe, TINY, ["loss.gan_type=wgan"])


def test_pretrain_then_gan_then_resume(images, tmp_path):
    psnr_dir, gan_dir = tmp_path / "psnr", tmp_path / "gan"
    common = ("--config", TINY, "--set", f'data.val_source="{images / "val"}"')
    result, out = run("pretrain", images / "train", *common, "--run-dir", psnr_dir, "--steps", 4)
    assert result.exit_code == 0, out
    assert "steps 0..4" in out and "validation PSNR" in out
    for name in ("generator.weights.h5", "training.png", "progress.gif", "config.toml"):
        assert (psnr_dir / name).is_file(), name
    assert len(list((psnr_dir / "tensorboard").iterdir())) >= 1
    assert list((psnr_dir / "samples").glob("step_*.png"))
    assert latest_step(psnr_dir) == 4
    assert re.search(r"[0-9.]+ steps/s, [0-9.]+ patches/s", out)  # the progress bar

    # evaluation.json is `kerasr evaluate --json` of the exported generator: one protocol.
    scores = tmp_path / "scores.json"
    generator = psnr_dir / "generator.weights.h5"
    result, out = run("evaluate", images / "val", "-m", generator, "--json", scores)
    assert result.exit_code == 0, out
    evaluation = json.loads((psnr_dir / "evaluation.json").read_text())
    assert evaluation == json.loads(scores.read_text())
    assert evaluation["datasets"][0]["images"] and evaluation["border"] == 4

    args = ("train-gan", images / "train", *common, "--run-dir", gan_dir)
    result, out = run(*args, "--init", psnr_dir, "--steps", 4)
    assert result.exit_code == 0, out
    assert f"generator initialised from {psnr_dir}" in out
    header = (gan_dir / "history.csv").read_text().splitlines()[0].split(",")
    for key in ("d_real", "d_fake", "perceptual_loss", "adversarial_loss", "lr_g", "lr_d"):
        assert key in header
    assert (gan_dir / "discriminator.weights.h5").is_file()

    result, out = run(*args, "--steps", 6)  # the run exists: refused without --resume
    assert result.exit_code == 2 and "--resume" in out

    result, out = run(*args, "--resume", "--steps", 6)
    assert result.exit_code == 0, out
    assert "at step 4" in out and "steps 4..6" in out
    assert latest_step(gan_dir) == 6
    steps = [int(line.split(",")[0]) for line in (gan_dir / "history.csv").read_text().split()[1:]]
    assert steps == [2, 4, 6]


def test_user_errors_are_one_line(images, tmp_path):
    # The folder goes into the config as typed, quotes and backslashes included.
    odd = tmp_path / 'mi"ss\\ing'
    cases = [
        (("pretrain", tmp_path / "missing", "-c", TINY), "training folder not found"),
        (("pretrain", odd, "-c", TINY), f"training folder not found: {odd}"),
        (("pretrain", images / "train", "-c", TINY, "--set", "train.nope=1"), "valid keys"),
        (
            ("pretrain", images / "train", "-c", TINY, "--set", "data.patch_size=10"),
            "'data.patch_size' must be a positive multiple",
        ),
        (
            ("pretrain", images / "train", "-c", TINY, "--set", "d_optim.learning_rate=0"),
            "d_optim.learning_rate must be > 0",
        ),
        (("pretrain", images / "train", "-c", TINY, "--set", "train.steps=zero"), "integer"),
        (("train-gan", images / "train", "-c", TINY, "--init", tmp_path / "x.weights.h5"), "not"),
    ]
    for args, message in cases:
        result, out = run(*args, "--run-dir", tmp_path / "run")
        assert result.exit_code == 2, out
        assert message in out and "Traceback" not in out
        assert len([line for line in out.splitlines() if line.startswith("error:")]) == 1


def test_resume_with_another_architecture_is_refused(images, nine_steps, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(nine_steps, run_dir)
    result, out = run(
        "pretrain", images / "train", "-c", TINY, "--run-dir", run_dir, "--resume", "--steps", 12,
        "--set", "generator.rrdb_channels=16",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "does not fit this configuration" in out and "Traceback" not in out


@pytest.fixture(scope="module")
def nine_steps(images, tmp_path_factory) -> Path:
    """A pretrain run of 9 steps: checkpoints at steps 3, 6 and 9, a log row every 2 steps."""
    run_dir = tmp_path_factory.mktemp("nine") / "run"
    result, out = run("pretrain", images / "train", "-c", TINY, "--run-dir", run_dir, "--steps", 9)
    assert result.exit_code == 0, out
    return run_dir


def _history(run_dir):
    return (run_dir / "history.csv").read_text().splitlines()


@pytest.mark.parametrize("how", DAMAGES)
def test_resume_skips_a_damaged_checkpoint_and_keeps_the_run(images, nine_steps, tmp_path, how):
    run_dir = tmp_path / "run"
    shutil.copytree(nine_steps, run_dir)
    checkpoints = run_dir / "checkpoints"
    damage(checkpoints, 9, how)
    kept = fingerprints(checkpoints, "ckpt-6.*")
    # The newest readable checkpoint: the damaged one's predecessor, or itself when only
    # TensorFlow's list of checkpoints was damaged.
    start = 9 if how == "list" else 6
    logged = [
        row for row in _history(run_dir) if row[0].isalpha() or int(row.split(",")[0]) <= start
    ]

    args = ("pretrain", images / "train", "-c", TINY, "--run-dir", run_dir)
    result, out = run(*args, "--resume", "--steps", 12)
    assert result.exit_code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("resumed from")]
    assert line.startswith(f"resumed from {checkpoints / f'ckpt-{start}'} at step {start}; skipped")
    if how == "list":
        assert f"corrupt checkpoint list {checkpoints / 'checkpoint'}" in line
    else:
        assert "corrupt ckpt-9 (" in line
    assert "another architecture" not in out and f"steps {start}..12" in out
    assert latest_step(run_dir) == 12
    # The checkpoint resumed from and the rows logged up to it are untouched; every step
    # after it is logged once.
    assert fingerprints(checkpoints, "ckpt-6.*") == kept
    assert _history(run_dir)[: len(logged)] == logged
    assert [int(row.split(",")[0]) for row in _history(run_dir)[1:]] == [2, 4, 6, 8, 10, 12]


def test_no_readable_checkpoint_is_one_line_and_overwrites_nothing(images, nine_steps, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(nine_steps, run_dir)
    checkpoints = run_dir / "checkpoints"
    for step in (3, 6, 9):
        damage(checkpoints, step, "index")
    before = {**fingerprints(checkpoints), **fingerprints(run_dir)}

    args = ("pretrain", images / "train", "-c", TINY, "--run-dir", run_dir, "--steps", 12)
    for flags in (["--resume"], []):
        result, out = run(*args, *flags)
        assert result.exit_code == 2 and "Traceback" not in out, out
        (error,) = [line for line in out.splitlines() if line.startswith("error:")]
        assert {**fingerprints(checkpoints), **fingerprints(run_dir)} == before
    assert error.endswith("or choose another run folder") and "--restart" in error

    result, out = run(*args, "--resume")
    assert f"no readable checkpoint in {checkpoints}: corrupt ckpt-9 (" in out
    assert "--restart" in out

    # Asked to, the run starts over: the earlier checkpoints and logs go.
    result, out = run(*args, "--restart")
    assert result.exit_code == 0, out
    assert f"deleted the checkpoints and logs of the earlier run in {run_dir}" in out
    assert "steps 0..12" in out
    assert sorted(p.name for p in checkpoints.glob("*.index")) == [
        "ckpt-12.index", "ckpt-6.index", "ckpt-9.index",
    ]  # fmt: skip
    assert [int(row.split(",")[0]) for row in _history(run_dir)[1:]] == [2, 4, 6, 8, 10, 12]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    images, nine_steps, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(nine_steps, run_dir)
    checkpoints = run_dir / "checkpoints"
    kept = fingerprints(checkpoints)
    # TensorFlow writes the data, renames it into place, then writes the index: a full disk
    # at that last write leaves the most behind.
    (checkpoints / "ckpt-12.index").symlink_to("/dev/full")

    args = ("pretrain", images / "train", "-c", TINY, "--run-dir", run_dir)
    result, out = run(*args, "--resume", "--steps", 15)
    assert result.exit_code == 2 and "Traceback" not in out, out
    (error,) = [line for line in out.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: {checkpoints / 'ckpt-12'}: no space left on the device")
    assert re.search(r"needs about [0-9.]+ MB", error)
    assert f"{checkpoints / 'ckpt-9'} is intact" in error
    # Nothing of the failed save is left; the earlier checkpoints are as they were.
    assert fingerprints(checkpoints) == kept
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted(kept)

    result, out = run(*args, "--resume", "--steps", 12)
    assert result.exit_code == 0, out
    assert f"resumed from {checkpoints / 'ckpt-9'} at step 9" in out
    assert latest_step(run_dir) == 12


def _start(images, run_dir, every, started):
    command = [
        sys.executable, "-m", "kerasr.cli", "pretrain", str(images / "train"), "-c", str(TINY),
        "--run-dir", str(run_dir), "--steps", "100000", "--resume",
        "--set", f"train.checkpoint_every={every}", "--set", "train.log_every=1",
        "--set", "train.image_every=100000", "--set", "memory.enabled=false",
    ]  # fmt: skip
    env = {**os.environ, "KERASR_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started.append(process)
    return process


def _wait_for_step(process, run_dir, step):
    # A signal sent before training starts would test nothing.
    wait_for_step(process, lambda: latest_step(run_dir), step)
    time.sleep(0.3)


def _logged(run_dir):
    return [int(row.split(",")[0]) for row in (run_dir / "history.csv").read_text().split()[1:]]


def _rows(run_dir):
    """step -> last_g_loss of every logged step."""
    lines = (run_dir / "history.csv").read_text().split()[1:]
    return {int(row.split(",")[0]): float(row.split(",")[1]) for row in lines}


@pytest.mark.slow
def test_interrupted_three_ways_then_resumed_ends_as_a_run_never_stopped(images, tmp_path, started):
    run_dir, every = tmp_path / "run", 5

    # Ctrl-C and SIGTERM: a checkpoint at the very step reached, exit code 130.
    interrupted = 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        process = _start(images, run_dir, every, started)
        _wait_for_step(process, run_dir, interrupted + every)
        process.send_signal(sig)
        assert process.wait(timeout=180) == 130, process.stderr.read().decode()
        process.stderr.close()
        interrupted = latest_step(run_dir)
        # Nothing lost: the checkpoint holds every logged step (the signal may land between
        # the step and its log line, so the log can be one step behind).
        assert 0 <= interrupted - _logged(run_dir)[-1] <= 1

    # SIGKILL: no chance to save; the last periodic checkpoint survives.
    process = _start(images, run_dir, every, started)
    _wait_for_step(process, run_dir, interrupted + 2 * every)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    saved = latest_step(run_dir)
    assert saved >= interrupted + every and saved % every == 0
    # Work lost: steps logged after the last checkpoint; at most one interval. (The kill
    # may also land between a checkpoint and its step's log line: the log one step behind.)
    assert -1 <= _logged(run_dir)[-1] - saved < every

    total = saved + 3
    common = (
        "-c", TINY, "--steps", total, "--set", f"train.checkpoint_every={every}",
        "--set", "train.log_every=1", "--set", "memory.enabled=false",
    )  # fmt: skip
    result, out = run("pretrain", images / "train", "--run-dir", run_dir, "--resume", *common)
    assert result.exit_code == 0, out
    assert f"at step {saved}" in out and f"steps {saved}..{total}" in out
    assert latest_step(run_dir) == total
    assert _logged(run_dir)[-1] == total

    # The same recipe never stopped: the same losses at every step, the same networks, EMA
    # and optimizer state (the segments ran with one thread, this process with more, hence
    # a tolerance for the order of float sums).
    never_stopped = tmp_path / "never-stopped"
    result, out = run("pretrain", images / "train", "--run-dir", never_stopped, *common)
    assert result.exit_code == 0, out
    resumed, reference = _rows(run_dir), _rows(never_stopped)
    assert list(resumed) == list(reference) == list(range(1, total + 1))
    np.testing.assert_allclose(list(resumed.values()), list(reference.values()), rtol=1e-4)
    import tensorflow as tf

    a = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{total}"))
    b = tf.train.load_checkpoint(str(never_stopped / "checkpoints" / f"ckpt-{total}"))
    names = [n for n in a.get_variable_to_shape_map() if "VARIABLE_VALUE" in n]
    assert any(n.startswith("ema_weights/") for n in names)
    for name in names:
        if not name.startswith("save_counter"):  # how many saves, not the run's state
            np.testing.assert_allclose(
                a.get_tensor(name), b.get_tensor(name), rtol=1e-4, atol=1e-6, err_msg=name
            )


def _tiny_weights(path, seed):
    import keras

    from kerasr.models import RRDBNet
    from kerasr.weights.networks import preset_of
    from kerasr.weights.presets import save_weights

    keras.utils.set_random_seed(seed)
    model = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    model.build((None, None, None, 3))
    save_weights(model, path, preset_of(model, "a test"))
    return model


def test_interpolate_and_upscale_alpha(tmp_path):
    from kerasr.weights import load_model

    a = _tiny_weights(tmp_path / "psnr.weights.h5", 1)
    b = _tiny_weights(tmp_path / "gan.weights.h5", 2)
    out = tmp_path / "blend.weights.h5"
    result, text = run(
        "interpolate", tmp_path / "psnr.weights.h5", tmp_path / "gan.weights.h5",
        "--alpha", 0.8, "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, text
    blended = load_model(out)
    for wa, wb, wc in zip(a.weights, b.weights, blended.weights, strict=True):
        np.testing.assert_allclose(wc.numpy(), 0.2 * wa.numpy() + 0.8 * wb.numpy(), rtol=1e-5)

    image = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(image)
    models = ("-m", tmp_path / "psnr.weights.h5", "-m", tmp_path / "gan.weights.h5")
    result, text = run("upscale", image, *models, "--alpha", 0.8, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, text
    assert Image.open(tmp_path / "out.png").size == (32, 32)
    single = ("-m", tmp_path / "psnr.weights.h5")
    result, text = run("upscale", image, *single, "-o", tmp_path / "single.png")
    assert result.exit_code == 0, text  # one -m without --alpha: as before
    result, text = run("upscale", image, *single, "--alpha", 0.5)
    assert result.exit_code == 2 and "--alpha needs exactly two" in text

    _other = tmp_path / "other.weights.h5"
    import keras

    from kerasr.models import RRDBNet
    from kerasr.weights.networks import preset_of
    from kerasr.weights.presets import save_weights

    keras.utils.set_random_seed(3)
    other = RRDBNet(num_basic_blocks=2, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    other.build((None, None, None, 3))
    save_weights(other, _other, preset_of(other, "a test"))
    result, text = run("interpolate", tmp_path / "psnr.weights.h5", _other, "-o", out)
    assert result.exit_code == 2 and "different architectures" in text
    assert re.search(r"^error: ", text, re.M)

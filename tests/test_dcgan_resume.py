"""`kerasr train-dcgan` stops, checkpoints and resumes as SR training does: Ctrl-C at a step
boundary, SIGKILL losing at most one epoch, no epoch logged twice, and `--resume` checks."""

import csv
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from checkpoint_helpers import DAMAGES, damage, fingerprints, wait_for_step
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_dcgan.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sprites")
    rng = np.random.default_rng(0)
    for i in range(8):
        rgba = np.zeros((20, 20, 4), np.uint8)
        rgba[5:15, 5:15] = (*rng.integers(0, 256, 3), 255)
        Image.fromarray(rgba).save(folder / f"{i:02d}.png")
    return folder


def run(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return result, result.output


def checkpoint_step(run_dir: Path) -> int:
    import tensorflow as tf

    path = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def logged_epochs(run_dir: Path) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(float(row["epoch"])) for row in csv.DictReader(f)]


def _start(sprites, run_dir, started):
    command = [
        sys.executable, "-m", "kerasr.cli", "train-dcgan", str(sprites), "-c", str(TINY),
        "-o", str(run_dir), "--epochs", "100000",
    ]  # fmt: skip
    env = {**os.environ, "KERASR_THREADS": "1", "COLUMNS": "400"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started.append(process)
    return process


@pytest.mark.slow
def test_ctrl_c_and_sigkill_then_resume_log_every_epoch_once(sprites, tmp_path, started):
    run_dir = tmp_path / "run"
    steps_per_epoch = 2  # 8 sprites, batches of 4

    # Ctrl-C: one line naming the checkpoint, exit code 130, a checkpoint at the step reached.
    process = _start(sprites, run_dir, started)
    wait_for_step(process, lambda: checkpoint_step(run_dir), 2 * steps_per_epoch)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 130, err
    lines = [line for line in out.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and str(run_dir / "checkpoints") in lines[0], out
    assert "Traceback" not in err
    interrupted = checkpoint_step(run_dir)
    epochs_done = interrupted // steps_per_epoch
    assert f"step {interrupted}" in lines[0] and f"epoch {epochs_done}" in lines[0]
    assert logged_epochs(run_dir) == list(range(1, epochs_done + 1))

    # SIGKILL: no chance to save; the checkpoint of the last finished epoch survives, and the
    # log may hold one epoch past it.
    process = _start(sprites, run_dir, started)
    wait_for_step(process, lambda: checkpoint_step(run_dir), (epochs_done + 2) * steps_per_epoch)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    saved = checkpoint_step(run_dir)
    assert saved % steps_per_epoch == 0
    assert 0 <= logged_epochs(run_dir)[-1] - saved // steps_per_epoch <= 1

    total = saved // steps_per_epoch + 2
    result, out = run("train-dcgan", sprites, "-c", TINY, "-o", run_dir, "--epochs", total)
    assert result.exit_code == 0, out
    assert f"resumed from {run_dir / 'checkpoints'}" in out
    assert logged_epochs(run_dir) == list(range(1, total + 1))  # every epoch once
    assert checkpoint_step(run_dir) == total * steps_per_epoch


@pytest.fixture(scope="module")
def three_epochs_run(sprites, tmp_path_factory) -> tuple[Path, str]:
    """A new run of 3 epochs of 2 steps (checkpoints at steps 2, 4 and 6), and its output."""
    run_dir = tmp_path_factory.mktemp("three") / "run"
    result, out = run("train-dcgan", sprites, "-c", TINY, "-o", run_dir, "--epochs", 3)
    assert result.exit_code == 0, out
    return run_dir, out


@pytest.fixture
def three_epochs(three_epochs_run) -> Path:
    return three_epochs_run[0]


def test_resume_without_a_checkpoint_says_so_and_another_recipe_is_refused(
    sprites, three_epochs_run, tmp_path
):
    new_run, out = three_epochs_run
    assert f"no checkpoint to resume in {new_run}: starting a new run" in out
    run_dir = tmp_path / "run"
    shutil.copytree(new_run, run_dir)
    assert (run_dir / "stage.txt").read_text() == "dcgan"

    images = tmp_path / "hr"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(images / f"{i}.png")
    tiny_sr = ROOT / "configs" / "tiny.toml"
    result, out = run("pretrain", images, "-c", tiny_sr, "--run-dir", run_dir, "--resume")
    assert result.exit_code == 2 and "Traceback" not in out
    assert f"{run_dir} holds a dcgan run; it cannot be resumed as pretrain" in out

    sr_dir = tmp_path / "sr"
    result, out = run(
        "pretrain", images, "-c", tiny_sr, "--run-dir", sr_dir, "--resume", "--steps", 2
    )
    assert result.exit_code == 0, out
    assert f"no checkpoint to resume in {sr_dir}: starting a new run from step 0" in out
    assert "steps 0..2" in out
    result, out = run("train-dcgan", sprites, "-c", TINY, "-o", sr_dir)
    assert result.exit_code == 2
    assert f"{sr_dir} holds a pretrain run; it cannot be resumed as dcgan" in out


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_checkpoint_resumes_from_the_one_before(sprites, three_epochs, tmp_path, how):
    run_dir = tmp_path / "run"
    shutil.copytree(three_epochs, run_dir)
    checkpoints = run_dir / "checkpoints"
    damage(checkpoints, 6, how)
    epochs = 3 if how == "list" else 2  # the newest readable checkpoint's
    kept_epochs = [f"epoch_{n:04d}.weights.h5" for n in range(1, epochs + 1)]
    kept = fingerprints(run_dir / "generators")
    rows = (run_dir / "history.csv").read_text().splitlines()[: epochs + 1]

    result, out = run("train-dcgan", sprites, "-c", TINY, "-o", run_dir, "--epochs", 4)
    assert result.exit_code == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("resumed from")]
    path = checkpoints / f"ckpt-{2 * epochs}"
    assert line.startswith(f"resumed from {path} at epoch {epochs}; skipped corrupt")
    assert f"trained epochs {epochs}..4" in out and "another architecture" not in out
    # The generators of the epochs up to the checkpoint, and their log rows, are untouched;
    # every later epoch is logged once.
    now = fingerprints(run_dir / "generators")
    assert {name: now[name] for name in kept_epochs} == {name: kept[name] for name in kept_epochs}
    assert (run_dir / "history.csv").read_text().splitlines()[: epochs + 1] == rows
    assert logged_epochs(run_dir) == [1, 2, 3, 4]
    assert checkpoint_step(run_dir) == 8


def test_no_readable_checkpoint_is_refused_unless_restarted(sprites, three_epochs, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(three_epochs, run_dir)
    for step in (2, 4, 6):
        damage(run_dir / "checkpoints", step, "data")
    before = {**fingerprints(run_dir), **fingerprints(run_dir / "generators")}

    args = ("train-dcgan", sprites, "-c", TINY, "-o", run_dir, "--epochs", 4)
    for flags in ([], ["--no-resume"]):
        result, out = run(*args, *flags)
        assert result.exit_code == 2 and "Traceback" not in out, out
        assert len([line for line in out.splitlines() if line.startswith("error:")]) == 1
        assert "--restart" in out
        assert {**fingerprints(run_dir), **fingerprints(run_dir / "generators")} == before
    result, out = run(*args)
    assert f"no readable checkpoint in {run_dir / 'checkpoints'}: corrupt ckpt-6 (" in out

    result, out = run(*args, "--restart")
    assert result.exit_code == 0, out
    assert "trained epochs 0..4" in out
    assert logged_epochs(run_dir) == [1, 2, 3, 4]

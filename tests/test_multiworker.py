"""`--strategy multiworker`: two worker processes on 127.0.0.1 train one run together.

Each round starts `kerasr pretrain` / `kerasr train-gan` twice with the same arguments and a
TF_CONFIG naming both workers, as a user would on two machines. Worker 0 is the chief.
"""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.toml"
ROUND_TIMEOUT = 240  # seconds for one two-worker command; a hang fails the test instead


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six 40x48 training images in `train/`, two 32x32 validation images in `val/`."""
    root = tmp_path_factory.mktemp("mw-data")
    rng = np.random.default_rng(0)
    for split, count, shape in (("train", 6, (40, 48, 3)), ("val", 2, (32, 32, 3))):
        (root / split).mkdir()
        for i in range(count):
            pixels = rng.random(shape) * 255 * rng.random(3)
            Image.fromarray(pixels.astype(np.uint8)).save(root / split / f"{i}.png")
    return root


def run_cluster(args: list[str], cwd: Path, worker1_args: tuple[str, ...] = ()) -> list[str]:
    """Runs `kerasr ARGS --strategy multiworker` as worker 0 and worker 1 of one cluster
    (worker 1 with `worker1_args` added).

    Returns:
        Each worker's output. Fails the test if a worker fails or the round times out.
    """
    try:
        ports = free_ports(2)
    except OSError as e:
        pytest.skip(f"cannot bind a port on 127.0.0.1: {e}")
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "COLUMNS": "250",  # the progress line with the losses, untruncated
            # The non-chief's throw-away folder goes here, so the test can see it removed.
            "TMPDIR": str(cwd / f"tmp{index}"),
        }
        (cwd / f"tmp{index}").mkdir(exist_ok=True)
        # One thread each: the two workers share the test machine's cores.
        command = [sys.executable, "-m", "kerasr.cli", *args, "--strategy", "multiworker"]
        command += ["--threads", "1", *(worker1_args if index == 1 else ())]
        processes.append(
            subprocess.Popen(
                command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=ROUND_TIMEOUT)
            outputs.append(out.decode(errors="replace"))
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.communicate()
        pytest.fail(f"the two workers did not finish `{' '.join(args)}` in {ROUND_TIMEOUT} s")
    if any(process.returncode for process in processes):
        report = "\n".join(
            f"--- worker {i} (exit {p.returncode}):\n{out[-3000:]}"
            for i, (p, out) in enumerate(zip(processes, outputs, strict=True))
        )
        pytest.fail(f"`{' '.join(args)}` failed:\n{report}")
    return outputs


def last_value(output: str, key: str) -> float:
    values = re.findall(rf"{key} ([-0-9.e]+)", output)
    assert values, f"no {key} in the output:\n{output[-2000:]}"
    return float(values[-1])


def checkpoints(run_dir: Path) -> list[int]:
    return sorted(int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index"))


@pytest.mark.slow
def test_two_workers_pretrain_then_gan_then_resume(images, tmp_path):
    common = ["-c", TINY, "--set", "data.batch_size=4", "--set", "train.log_every=1"]
    common = [str(a) for a in common]
    train = str(images / "train")

    # Stage 1: a few PSNR steps, then validation (distributed too) and the evaluation.
    val = ["--set", f"data.val_source={json.dumps(str(images / 'val'))}"]
    outputs = run_cluster(
        ["pretrain", train, "-o", "psnr", "--steps", "2", *common, *val], tmp_path
    )
    psnr = tmp_path / "psnr"
    assert checkpoints(psnr) == [2]
    assert (psnr / "generator.weights.h5").is_file()
    # The logged loss is the mean over the whole cluster's batch: both workers print the
    # same value although each trained on its own half of it.
    assert last_value(outputs[0], "pixel_loss") == last_value(outputs[1], "pixel_loss")
    # Only the chief wrote: the run folder holds one history, and the other worker's
    # temporary folder is gone.
    assert len((psnr / "history.csv").read_text().splitlines()) == 1 + 2
    assert (psnr / "validation.csv").is_file() and (psnr / "evaluation.json").is_file()
    assert last_value(outputs[0], "validation PSNR") == last_value(outputs[1], "validation PSNR")
    assert list((tmp_path / "tmp1").iterdir()) == []

    # Stage 2: GAN steps from the pretrained generator (both optimizers, D, EMA).
    gan_args = ["train-gan", train, "-o", "gan", *common]
    outputs = run_cluster([*gan_args, "--init", "psnr", "--steps", "2"], tmp_path)
    gan = tmp_path / "gan"
    assert checkpoints(gan) == [2]
    assert all("generator initialised from psnr" in out for out in outputs)
    for key in ("g_loss", "d_loss"):
        assert last_value(outputs[0], key) == last_value(outputs[1], key)

    # Both workers resume from the chief's checkpoint and continue its step count. Worker 1
    # runs out of time after its first step, worker 0 would have ten minutes: both must
    # stop there together (a worker stopping alone leaves the other failing in its next
    # step). The last --max-minutes given wins.
    outputs = run_cluster(
        [*gan_args, "--resume", "--steps", "6", "--max-minutes", "10"],
        tmp_path,
        ("--max-minutes", "0.0001"),
    )
    for out in outputs:
        assert "resumed from" in out and "at step 2" in out, out[-2000:]
        assert "steps 2..3" in out
    assert checkpoints(gan) == [2, 3]
    rows = (gan / "history.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3]
    assert list((tmp_path / "tmp1").iterdir()) == []

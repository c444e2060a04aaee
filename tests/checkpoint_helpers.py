"""Damaging a run's checkpoints the ways a disk or a user does, and reading what survives."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

# What can happen to the newest checkpoint: its index deleted, TensorFlow's `checkpoint`
# list overwritten, its data file cut short.
DAMAGES = ("index", "list", "data")


def damage(checkpoints: Path, step: int, how: str) -> None:
    """Damages checkpoint `step` in the folder `checkpoints` (`how` is one of `DAMAGES`)."""
    prefix = checkpoints / f"ckpt-{step}"
    if how == "index":
        prefix.with_name(prefix.name + ".index").unlink()
    elif how == "list":
        (checkpoints / "checkpoint").write_text("x\n")
    else:
        (data,) = checkpoints.glob(f"ckpt-{step}.data-*")
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])


def fingerprints(folder: Path, pattern: str = "*") -> dict[str, str]:
    """The files of `folder` matching `pattern`, name -> digest of the content."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob(pattern))
        if p.is_file()
    }


def wait_for_step(process, current: Callable[[], int], step: int, patience: float = 600) -> None:
    """Waits until `current()`, the step of a training subprocess's newest checkpoint,
    reaches `step`.

    Bounded by progress rather than total time: on a loaded machine TensorFlow's start-up
    alone can take minutes. It fails when the process ends first, or when no newer
    checkpoint comes for `patience` seconds (the process is then killed).
    """
    seen, deadline = current(), time.monotonic() + patience
    while (now := current()) < step:
        assert process.poll() is None, process.stderr.read()
        if now != seen:
            seen, deadline = now, time.monotonic() + patience
        elif time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no checkpoint after step {now} for {patience:.0f} s")
        time.sleep(0.2)

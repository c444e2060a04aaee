"""Damaging a run's checkpoints the ways a disk or a user does, and reading what survives."""

from __future__ import annotations

import hashlib
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

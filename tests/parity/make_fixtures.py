"""Writes tests/fixtures/parity_*.npz from the reference code (BasicSR, Real-ESRGAN).

Runs in the parity environment only (PyTorch, BasicSR, Real-ESRGAN); `bash
tests/parity/run.sh` builds that environment, runs this script, then the parity tests.
Everything is computed on the CPU in float32 with fixed seeds, so the files only change when
the reference code does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(HERE))

import ref_degradations  # noqa: E402
import ref_esrgan  # noqa: E402
import ref_evaluation  # noqa: E402
import ref_pretrain  # noqa: E402
import ref_realesrgan  # noqa: E402


def _photo() -> np.ndarray:
    """The 256x256 photograph kerasr ships, float32 RGB in [0, 1]."""
    path = ROOT / "kerasr" / "samples" / "astronaut.png"
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def _write(name: str, arrays: dict) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"parity_{name}.npz"
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    print(f"{path.relative_to(ROOT)}: {len(arrays)} arrays, {path.stat().st_size / 1e3:.0f} kB")


def main() -> None:
    torch.set_num_threads(1)  # the same float32 sums on any machine
    torch.use_deterministic_algorithms(True)
    photo = _photo()
    _write("degradations", ref_degradations.all_fixtures(photo))
    _write("evaluation", ref_evaluation.evaluation(photo))
    _write("pretrain", ref_pretrain.pretrain())
    _write("esrgan", ref_esrgan.esrgan(photo))
    _write("realesrgan", ref_realesrgan.realesrgan(photo))
    vgg = FIXTURES / "parity_esrgan_vgg19.pth"
    tmp = vgg.with_suffix(".tmp.pth")
    ref_esrgan.write_vgg_cut(tmp)
    tmp.replace(vgg)
    print(f"{vgg.relative_to(ROOT)}: {vgg.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()

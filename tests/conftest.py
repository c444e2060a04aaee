"""Shared fixtures. Every test run gets its own model cache, so no test touches ~/.cache."""

import os
import struct
import tempfile
import zlib
from pathlib import Path
from types import SimpleNamespace

# Before kerasr is imported anywhere: an isolated cache for the whole session.
os.environ["KERASR_HOME"] = tempfile.mkdtemp(prefix="kerasr-test-home-")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np
import pytest

import kerasr  # noqa: F401  (its environment defaults, before any test imports TensorFlow)

SAMPLE = Path(__file__).resolve().parents[1] / "kerasr" / "samples" / "astronaut.png"


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """The 256x256 photograph the repo ships (NASA, public domain), uint8 RGB."""
    from kerasr.images import read_image

    return read_image(SAMPLE)


@pytest.fixture(scope="session")
def x4plus_on_photo(photo):
    """Real-ESRGAN x4plus (16.7M parameters) and its raw output on a 96x96 crop of the photo:
    one costly forward pass shared by the tests that need the real network on real detail."""
    from kerasr.weights import load_model

    model = load_model("realesrgan-x4plus")
    image = photo[16:112, 80:176].astype(np.float32) / 255
    output = np.asarray(model(image[None]))[0]
    return SimpleNamespace(model=model, image=image, output=output)


@pytest.fixture(scope="session")
def tiny_model():
    """A small random RRDBNet x4 (fast enough for CLI and I/O tests)."""
    import keras

    from kerasr.models import RRDBNet

    keras.utils.set_random_seed(0)
    model = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    model.build((None, None, None, 3))
    return model


@pytest.fixture(scope="session")
def tiny_model_file(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_model.save(path)
    return path


@pytest.fixture
def png_header_only():
    """Writes a PNG whose header claims a size; decoding its data would take gigabytes."""

    def write(path, width, height, depth=8, colour_type=0):
        def chunk(kind, body):
            crc = struct.pack(">I", zlib.crc32(kind + body))
            return struct.pack(">I", len(body)) + kind + body + crc

        ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
        idat = zlib.compress(b"\0" * 1024)
        signature = b"\x89PNG\r\n\x1a\n"
        path.write_bytes(
            signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
        )
        return path

    return write


@pytest.fixture
def started():
    """Training subprocesses of a test; any still running at the end is killed."""
    processes = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()

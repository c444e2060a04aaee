"""Tiny generated clips, a small compact model and the CLI runner the video tests share."""

from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.models import SRVGGNetCompact

av = pytest.importorskip("av")
runner = CliRunner()
FRAMES, WIDTH, HEIGHT, FPS = 10, 24, 16, 12


def make_clip(path: Path, audio: bool = True, fmt: str | None = None) -> Path:
    """A clip of brightening ramps, x264 lossless, with a 440 Hz AAC tone if `audio`."""
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "0"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        sound = container.add_stream("aac", rate=8000) if audio else None
        ramp = np.linspace(0, 255, WIDTH)[None, :, None] * np.ones((HEIGHT, 1, 3))
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(
                (ramp * (i + 1) / FRAMES).astype(np.uint8), format="rgb24"
            )
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            count = 8000 * FRAMES // FPS
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(count) / 8000)).astype(np.float32)
            for start in range(0, count, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 8000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def save_compact(path: Path, seed: int = 0) -> Path:
    """A small x4 compact model whose residual is small: smooth frames, as real ones."""
    keras.utils.set_random_seed(seed)
    model = SRVGGNetCompact(num_feat=8, num_conv=1)
    model.build((None, None, None, 3))
    kernel, bias = model.conv_last.get_weights()
    model.conv_last.set_weights([kernel * 0.01, bias * 0])
    model.save(path)
    return path


def run(*args):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    return result, result.output

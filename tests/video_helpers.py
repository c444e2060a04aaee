"""Tiny generated clips, a small compact model and the CLI runner the video tests share."""

from fractions import Fraction
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.models import SRVGGNetCompact
from kerasr.upscaling.inference import Upscaler

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


def make_timed_clip(path: Path, times, audio_seconds: float = 0, fmt: str | None = None) -> Path:
    """A 32x32 clip whose frames show at `times` (seconds; a variable frame rate), with
    `audio_seconds` of a 440 Hz AAC tone."""
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=10, options={"crf": "0"})
        video.width = video.height = 32
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=8000) if audio_seconds else None
        for i, seconds in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            count = round(8000 * audio_seconds)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(count) / 8000)).astype(np.float32)
            for start in range(0, count, 1024):
                chunk = av.AudioFrame.from_ndarray(
                    tone[None, start : start + 1024], format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 8000, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path


def frame_times(path: Path) -> tuple[list[float], float]:
    """The display times (seconds) of a video's frames, and its time base in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
        return times, float(stream.time_base)


def audio_span(path: Path) -> tuple[float, float]:
    """When a video's first audio stream starts and ends, in seconds."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(audio=0) if p.pts is not None]
    first, last = packets[0], packets[-1]
    return float(first.pts * first.time_base), float((last.pts + last.duration) * last.time_base)


def stop_after(frames: int):
    """A progress callback that stops the run (as Ctrl-C) once `frames` are upscaled."""

    def progress(done, total):
        if done == frames:
            raise KeyboardInterrupt

    return progress


def parts(output: Path) -> Path:
    """The work folder of a video being written to `output`."""
    return output.with_name(f".{output.name}.parts")


class Counting:
    """An upscaler that counts the frames it upscales."""

    def __init__(self, model_file: Path):
        self.upscaler = Upscaler(keras.saving.load_model(model_file), precision="float32")
        self.model, self.scale, self.frames = self.upscaler.model, self.upscaler.scale, 0

    def upscale(self, pixels, outscale=None):
        self.frames += 1
        return self.upscaler.upscale(pixels, outscale=outscale)


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

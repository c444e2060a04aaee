"""What a video file is, without decoding it all: whether kerasr treats a path as a video,
its frame rate and display rotation; and every frame of a small clip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kerasr.images import READ_FORMATS
from kerasr.video.colour import to_rgb

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


def is_video(path: str | Path) -> bool:
    """Whether kerasr treats `path` as a video: by its suffix, and a GIF with more than one
    frame (a one-frame GIF is an image)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif" and path.is_file():
        from PIL import Image

        try:
            with Image.open(path, formats=READ_FORMATS) as image:
                return getattr(image, "n_frames", 1) > 1
        except (OSError, ValueError):
            return False  # the image reader says what is wrong with it
    return suffix in VIDEO_SUFFIXES


def rotation(source: str | Path) -> int:
    """The display rotation of a video's first frame, in degrees (0 when none)."""
    import av

    try:
        with av.open(str(source)) as probe:
            first = next(probe.decode(video=0), None)
            return round(getattr(first, "rotation", 0) or 0)
    except av.error.FFmpegError:
        return 0  # the transcoding says what is wrong with the file


def frame_rate(path: str | Path) -> float:
    """The average frame rate of a video's first video stream (NaN when unknown)."""
    import av

    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else math.nan


def read_frames(path: str | Path) -> list[np.ndarray]:
    """Every frame of a video's first video stream as RGB uint8 arrays (for tests and
    small clips: the whole video is held in memory)."""
    import av

    with av.open(str(path)) as container:
        return [to_rgb(f) for f in container.decode(video=0)]

"""Training helpers shared by the GAN recipes: atomic files, image grids, GIFs, plots, limits.

Nothing here knows about a particular network: the DCGAN and ESRGAN harnesses both use these.
Every file is written to a temporary name in the same folder and renamed, so an interrupted
run never leaves a half-written PNG, checkpoint or CSV behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it over `path` if the block succeeds.

    The temporary name keeps the suffix (`x.tmp-123.weights.h5`), as Keras and Pillow choose
    the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    stem, dot, suffix = name.partition(".")
    tmp = path.with_name(f"{stem}.tmp-{os.getpid()}{dot}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tiles uint8 `[n, h, w, 3]` images into one uint8 image, white between the tiles.

    Args:
        images: the tiles.
        columns: tiles per row (default: a square grid).
        pad: white pixels between tiles and around the grid.

    Returns:
        uint8 `[rows * (h + pad) + pad, columns * (w + pad) + pad, 3]`.
    """
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Saves a uint8 `[h, w, 3]` image as PNG, atomically."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    write_bytes_atomic(path, buffer.getvalue())


def save_gif(
    path: str | Path, frames: Sequence[str | Path], seconds_per_frame: float = 0.2
) -> None:
    """Assembles PNG frames (e.g. the per-epoch sample grids) into a looping GIF, atomically.

    The last frame is held three times as long, so the final result is easy to see.
    """
    from PIL import Image

    images = [Image.open(f).convert("RGB") for f in frames]
    if not images:
        return
    durations = [int(seconds_per_frame * 1000)] * len(images)
    durations[-1] *= 3
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=durations,
        loop=0,
    )
    write_bytes_atomic(path, buffer.getvalue())


def plot_history(
    path: str | Path, rows: Sequence[Mapping[str, float]], keys: Sequence[str], title: str = ""
) -> None:
    """Plots per-epoch values (`rows[i][key]`) against the epoch, one line per key, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    epochs = [row["epoch"] for row in rows]
    for key in keys:
        ax.plot(epochs, [row.get(key, np.nan) for row in rows], label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def append_csv(path: str | Path, row: Mapping[str, object]) -> None:
    """Appends one row to a CSV log, writing the header first when the file is new.

    The file is rewritten whole through a rename, so a crash never truncates the log.
    """
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row), lineterminator="\n")
    if not old:
        writer.writeheader()
    writer.writerow(row)
    write_bytes_atomic(path, (old + buffer.getvalue()).encode("utf-8"))


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """Reads a CSV log written by `append_csv`, numbers as floats (empty cells as NaN)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [
            {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
            for row in csv.DictReader(f)
        ]


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that finishes past `minutes` of wall time.

    Args:
        minutes: the budget; 0 or less means no limit.
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.minutes = minutes
        self.clock = clock
        self.start = None
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes > 0 and self.clock() - self.start >= self.minutes * 60:
            self.stopped_epoch = epoch
            self.model.stop_training = True

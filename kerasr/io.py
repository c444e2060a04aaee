"""Files that are never left half-written: the one atomic writer, and the GIF and CSV formats.

Every file kerasr writes (images, weights, checkpoints' side files, logs, exports) goes to a
temporary name beside its destination and is renamed over it when complete, so an interrupted
run or a full disk never leaves a truncated file at the real name. CSV logs are the exception
that proves the rule: they grow by appending one complete line at a time.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import math
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, make_parents: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside `path` and renames it over `path` if the block succeeds.

    The temporary name is hidden, unique to this call and keeps the suffix
    (`.x.tmp-1234-ab12cd.weights.h5`), as Keras and Pillow choose the format from it. If the
    block raises, whatever it wrote there (a file or a folder) is removed.

    Args:
        path: the destination, a file or a folder (a SavedModel).
        make_parents: create the destination's folder if missing; otherwise a missing folder
            is a `KerasrError`.

    Example:
        >>> with atomic_path("run/generator.weights.h5") as tmp:
        ...     model.save_weights(tmp)
    """
    path = Path(path)
    parent = path.parent
    if make_parents:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise KerasrError(f"{parent}: cannot create folder ({e.strerror or e})") from None
    elif not parent.is_dir():
        raise KerasrError(f"{parent}: output folder does not exist")
    stem, dot, suffix = path.name.partition(".")
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}-{secrets.token_hex(3)}{dot}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes, *, make_parents: bool = True) -> Path:
    """Writes `data` to `path` through a temporary file and a rename.

    Returns:
        `path`, as a `Path`.

    Raises:
        KerasrError: the folder is missing (with `make_parents=False`) or not writable.
    """
    path = Path(path)
    try:
        with atomic_path(path, make_parents=make_parents) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise KerasrError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


def write_text(path: str | os.PathLike, text: str, *, make_parents: bool = True) -> Path:
    """`write_bytes` for UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"), make_parents=make_parents)


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, busy: str) -> Iterator[Path]:
    """Holds an exclusive lock on the file `path` (created if missing) while the block runs,
    so that two runs never write the same output; the file is removed at the end.

    The lock is the kernel's (`flock`): it goes with the process however the process ends,
    so a crashed run leaves at most an unlocked file, which the next run simply takes.

    Args:
        path: the lock file; its folder is created if missing.
        busy: the message of the `KerasrError` raised when another process holds the lock.

    Raises:
        KerasrError: `busy`, or the lock file cannot be created.
    """
    import fcntl

    path = Path(path)
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise KerasrError(f"{path}: cannot create the lock file ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KerasrError(busy) from None
        # The previous holder removes the file before it lets go: a lock taken on the file
        # it removed would guard nothing, so take the one now at `path` instead.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the disk (or the user's quota) is full.

    Python's OS errors carry the errno; TensorFlow's and h5py's carry only the C library's
    message for it, which is the same text `os.strerror` gives.
    """
    codes = (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, OSError) and error.errno in codes:
        return True
    return any(os.strerror(code) in str(error) for code in codes)


def megabytes(size: float) -> str:
    """`size` bytes as MB for a message saying how much space is needed: rounded up to a
    tenth, so never "0.0 MB"."""
    return f"{math.ceil(max(size, 1) / 1e5) / 10:.1f} MB"


def disk_full_error(path: str | os.PathLike, needed: float, then: str = "") -> KerasrError:
    """The one-line error for a write to `path` that found the disk full.

    Args:
        path: what was being written.
        needed: about how many bytes it takes.
        then: the rest of the line, e.g. what is kept and how to continue.
    """
    return KerasrError(
        f"{path}: no space left on the device; it needs about {megabytes(needed)}{then}"
    )


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tiles uint8 `[n, h, w, c]` images into one uint8 image, white between the tiles.

    Args:
        images: the tiles.
        columns: tiles per row (default: a square grid).
        pad: white pixels between tiles and around the grid.

    Returns:
        uint8 `[rows * (h + pad) + pad, columns * (w + pad) + pad, c]`.
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


def save_gif(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray],
    seconds_per_frame: float = 0.2,
    hold_last: float = 3.0,
) -> Path | None:
    """Writes frames as a looping animated GIF, atomically.

    Args:
        path: the `.gif` to write.
        frames: uint8 `[h, w, 3]` arrays (e.g. per-epoch sample grids, read with
            `kerasr.images.read_image`).
        seconds_per_frame: how long each frame shows.
        hold_last: the last frame shows this many times longer, so the result is easy to see.

    Returns:
        `path`, or None when there are no frames (nothing is written).
    """
    from PIL import Image

    images = [Image.fromarray(np.asarray(f)).convert("RGB") for f in frames]
    if not images:
        return None
    durations = [round(seconds_per_frame * 1000)] * len(images)
    durations[-1] = round(durations[-1] * hold_last)
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0
    )
    return write_bytes(path, buffer.getvalue())


def append_csv(path: str | os.PathLike, row: Mapping[str, object]) -> None:
    """Appends one row to a CSV log, writing the header first when the file is new or empty.

    The row goes out in one write of one complete line, so a crash leaves at worst the rows
    before it. Columns follow the file's header; keys the header lacks are an error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = _csv_header(path)
    fields = header or list(row)
    extra = [k for k in row if k not in fields]
    if extra:
        raise KerasrError(f"{path}: columns {extra} are not in the log's header {fields}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    if not header:
        writer.writeheader()
    writer.writerow(row)
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())


def _csv_header(path: Path) -> list[str]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return next(csv.reader(f), [])


def read_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Reads a CSV log written by `append_csv`, numbers as floats (empty cells as NaN).

    A last line cut short by a crash (fewer cells than the header) is dropped.
    """
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return [
            {k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()}
            for row in reader
            if None not in row.values()
        ]


def trim_csv(path: str | os.PathLike, column: str, last: float) -> None:
    """Drops the rows of a CSV log whose `column` is above `last` (or not a number), rewriting
    the file atomically; other cells keep their text. Nothing happens if the file is missing
    or no row goes."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)

    def keep(row):
        try:
            return None not in row.values() and float(row[column]) <= last
        except (KeyError, TypeError, ValueError):
            return False

    kept = [row for row in rows if keep(row)]
    if len(kept) == len(rows):
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    write_bytes(path, buffer.getvalue().encode("utf-8"))

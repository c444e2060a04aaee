"""Upscaling many image files: input expansion, output naming, progress, per-file errors.

One bad file never stops the batch: its problem is reported as one line and counted, and
the other files are still processed. Inputs are never overwritten; existing outputs only
with `overwrite`.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable, Sequence
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.images import IMAGE_SUFFIXES, read_image, write_image

_WRITABLE = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclasses.dataclass(frozen=True)
class Job:
    source: Path
    target: Path | None  # None: decided once the image is read (ext auto may need PNG)
    folder: Path
    stem: str
    ext: str  # "auto" or a suffix without the dot
    overwrite: bool

    def destination(self, pixels) -> Path:
        if self.target is not None:
            return self.target
        ext = self.ext
        if ext == "auto":
            ext = self.source.suffix.lower().lstrip(".")
            # Alpha and 16-bit need PNG; so do formats we cannot write back.
            if pixels.shape[-1] == 4 or pixels.dtype.itemsize == 2 or f".{ext}" not in _WRITABLE:
                ext = "png"
        return self.folder / f"{self.stem}.{ext}"


def expand_inputs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their image files, sorted) and glob patterns -> files, problems."""
    files: list[Path] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not found:
                problems.append(f"{path}: no image files in this folder")
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not found:
                problems.append(f"{item}: no file matches this pattern")
            files.extend(found)
        else:
            problems.append(f"{path}: file not found")
    return files, problems


def plan_outputs(
    inputs: Sequence[str], output: Path, suffix: str, ext: str, overwrite: bool
) -> tuple[list[Job], list[str]]:
    """Expands the inputs and decides where each output goes.

    `output` is a folder (created if needed) unless there is exactly one input and it has
    an image suffix, in which case it is the output file.
    """
    files, problems = expand_inputs(inputs)
    if not files:
        return [], problems
    single_file = len(files) == 1 and output.suffix.lower() in _WRITABLE
    folder = output.parent if single_file else output
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KerasrError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    jobs = []
    for source in files:
        stem = f"{source.stem}_{suffix}" if suffix else source.stem
        target = output if single_file else None
        if target is None and ext != "auto":
            target = folder / f"{stem}.{ext}"
        if target is not None and target.resolve() == source.resolve():
            problems.append(f"{source}: output would overwrite the input; change --suffix or -o")
            continue
        if target is not None and target.exists() and not overwrite:
            problems.append(f"{target}: already exists; use --overwrite to replace it")
            continue
        jobs.append(Job(source, target, folder, stem, ext, overwrite))
    return jobs, problems


def upscale_files(
    jobs: Sequence[Job],
    model: str,
    report: Callable[[str], None],
    outscale: float | None = None,
    **upscaler_options,
) -> int:
    """Upscales every job's file with a rich progress bar; returns the number written.

    Args:
        jobs: from `plan_outputs`.
        model: registry name or model file (see `kerasr.weights.load_model`).
        report: prints one line (a file's error).
        outscale: final scale, see `Upscaler.upscale`.
        **upscaler_options: passed to `kerasr.inference.Upscaler`.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kerasr.inference import Upscaler
    from kerasr.weights import load_model

    with Console(stderr=True).status(f"loading {model} (converted and cached on first use)"):
        # `model` may also be a built network (e.g. an interpolation of two models).
        network = load_model(model) if isinstance(model, str) else model
        upscaler = Upscaler(network, **upscaler_options)
    written = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        files_task = progress.add_task("files", total=len(jobs))
        tiles_task = progress.add_task("tiles", total=1)
        for job in jobs:
            progress.update(files_task, description=f"files ({job.source.name})")
            try:
                target = _run(job, upscaler, outscale, progress, tiles_task)
                written += 1
                progress.console.print(f"{job.source} -> {target}", highlight=False)
            except KerasrError as e:
                report(f"error: {e}")
            progress.advance(files_task)
    return written


def _run(job: Job, upscaler, outscale, progress, tiles_task) -> Path:
    pixels = read_image(job.source)
    target = job.destination(pixels)
    if target.resolve() == job.source.resolve():
        raise KerasrError(f"{job.source}: output would overwrite the input; change --suffix or -o")
    if target.exists() and not job.overwrite:
        raise KerasrError(f"{target}: already exists; use --overwrite to replace it")
    progress.reset(tiles_task, total=upscaler.work_for(pixels))
    result = upscaler.upscale(
        pixels,
        outscale=outscale,
        progress=lambda done, total: progress.update(tiles_task, completed=done, total=total),
    )
    write_image(target, result)
    return target

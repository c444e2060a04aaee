"""Upscaling many image files: input expansion, output naming, progress, per-file errors.

One bad file never stops the batch: its problem is reported as one line and counted, and
the other files are still processed. Inputs are never overwritten; existing outputs only
with `overwrite`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.image_metadata import read_metadata
from kerasr.images import (
    IMAGE_SUFFIXES,
    SPRITE_SUFFIXES,
    WRITABLE,
    WRITE_SUFFIXES,
    has_transparency,
    read_image,
    write_image,
)

# An output path with one of these suffixes names a file, never a folder to create.
_FILE_SUFFIXES = set(IMAGE_SUFFIXES) | set(SPRITE_SUFFIXES)


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
            alpha = pixels.shape[-1] in (2, 4)
            if alpha or pixels.dtype.itemsize == 2 or f".{ext}" not in WRITE_SUFFIXES:
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


def check_suffix(suffix: str) -> None:
    """Refuses a `--suffix` that would put outputs outside the output folder.

    Raises:
        KerasrError: the suffix holds a path separator, `..` or a NUL character.
    """
    if any(bad in suffix for bad in ("/", "\\", "..", "\0")):
        raise KerasrError(
            f"--suffix {suffix!r}: a suffix is part of a file name; "
            "path separators and '..' are not allowed"
        )


def plan_outputs(
    inputs: Sequence[str], output: Path, suffix: str, ext: str, overwrite: bool
) -> tuple[list[Job], list[str]]:
    """Expands the inputs and decides where each output goes; creates nothing.

    `output` is a folder unless it ends in an image suffix: then it is the output file of
    exactly one input.

    Raises:
        KerasrError: `output` names a file but several images were given, or names a
            format kerasr cannot write; `suffix` is not a plain name part.
    """
    check_suffix(suffix)
    output = Path(output)
    files, problems = expand_inputs(inputs)
    out_suffix = output.suffix.lower()
    single_file = out_suffix in _FILE_SUFFIXES and not output.is_dir()
    if single_file and out_suffix not in WRITE_SUFFIXES:
        raise KerasrError(f"-o {output}: cannot write '{out_suffix}' files; use {WRITABLE}")
    if single_file and len(files) > 1:
        raise KerasrError(
            f"-o {output} names one file, but {len(files)} images were given; "
            "give a folder to write them all"
        )
    if not files:
        return [], problems
    folder = output.parent if single_file else output
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


@dataclasses.dataclass(frozen=True)
class UpscaleResult:
    """What `upscale_images` did.

    Attributes:
        written: `(input, output)` file pairs, in order.
        problems: one line per input that failed (or could not be found), in order.
    """

    written: list[tuple[Path, Path]]
    problems: list[str]

    @property
    def failures(self) -> int:
        return len(self.problems)


def upscale_images(
    inputs: Sequence[str],
    output: str | Path = "results",
    *,
    model="realesrgan-x4plus",
    suffix: str = "out",
    ext: str = "auto",
    overwrite: bool = False,
    outscale: float | None = None,
    report: Callable[[str], None] | None = None,
    **upscaler_options,
) -> UpscaleResult:
    """Upscales image files, folders and glob patterns, with a rich progress bar.

    One bad file never stops the batch. The model is loaded before any folder is created,
    so a wrong `-m` leaves nothing behind.

    Args:
        inputs: files, folders (their images) and glob patterns.
        output: output folder; or, for a single input, the output file.
        model: registry name or model file (see `kerasr.weights.resolve`), or a built
            upscaler network (e.g. an interpolation of two models).
        suffix: appended to output file stems (`''` for none).
        ext: `auto` (the input's format; PNG for alpha or 16-bit), `png`, `jpg` or `webp`.
        overwrite: replace existing outputs (never an input).
        outscale: final scale, see `Upscaler.upscale`.
        report: called with each problem (one line) as it happens.
        **upscaler_options: passed to `kerasr.upscaling.inference.Upscaler`.

    Returns:
        An `UpscaleResult`.

    Raises:
        KerasrError: for the whole batch: an unknown model, an output that cannot be
            created or that names one file for several inputs.
    """
    report = report or (lambda problem: None)
    jobs, problems = plan_outputs(inputs, Path(output), suffix, ext, overwrite)
    for problem in problems:
        report(problem)
    written: list[tuple[Path, Path]] = []
    if not jobs:
        return UpscaleResult(written, problems)
    upscaler = load_upscaler(model, upscaler_options)
    folder = jobs[0].folder
    # Made before the first image so an output that cannot be created fails at once, and
    # removed again (the folders this call made, deepest first) when no image was written.
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise KerasrError(f"cannot create output folder {folder}: {e.strerror or e}") from None
    for job, outcome in _run_all(jobs, upscaler, outscale):
        if isinstance(outcome, KerasrError):
            problems.append(str(outcome))
            report(str(outcome))
        else:
            written.append((job.source, outcome))
    if not written:
        with contextlib.suppress(OSError):  # a folder something else wrote into stays
            for path in created:
                path.rmdir()
    return UpscaleResult(written, problems)


def load_upscaler(model, upscaler_options):
    """An `Upscaler` around `model` (a registry name, a file, or a loaded network), with a
    spinner on stderr while a named model loads (its first use converts and caches it)."""
    from rich.console import Console

    from kerasr.upscaling.inference import Upscaler
    from kerasr.weights import load_model

    with Console(stderr=True).status(f"loading {model} (converted and cached on first use)"):
        network = load_model(model) if isinstance(model, str | Path) else model
        return Upscaler(network, **upscaler_options)


def _run_all(jobs, upscaler, outscale):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
                progress.console.print(f"{job.source} -> {target}", highlight=False)
                yield job, target
            except KerasrError as e:
                yield job, e
            progress.advance(files_task)


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
    if target.suffix.lower() in (".jpg", ".jpeg") and has_transparency(result):
        warnings.warn(
            f"{target}: JPEG has no transparency; transparent areas are flattened onto white "
            "(use --ext png to keep them)",
            stacklevel=2,
        )
    write_image(target, result, metadata=read_metadata(job.source))
    return target

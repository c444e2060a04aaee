"""Upscaling videos with PyAV (FFmpeg): frames through an `Upscaler`, audio copied.

`upscale_video(source, output, upscaler)` decodes the first video stream, upscales each
frame, and encodes H.264 (or H.265 / VP9) into the container of `output`'s suffix, each frame
at its input time (a variable frame rate too, so the audio stays in sync); audio streams are
copied without re-encoding where the container accepts their codec. The video is encoded in
closed segments in a work folder beside the output and joined into it at the end (see
`kerasr.video.segments` and `kerasr.video.work`): the output is written under a temporary
name and renamed, so an interrupted run leaves no half-written file at the output name, and
a run with `resume=True` continues an interrupted one. Decoding runs in its own thread a few
frames ahead of the model, and encoding in another one behind it (bounded queues both), so
memory stays bounded whatever the length. Colours: frames are converted to RGB with the
matrix and range the input is tagged with (BT.709 for untagged HD input, BT.601 below, as
players assume), and back to YUV with the same matrix and range; the output is tagged with
them and with the input's primaries and transfer curve."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import shutil
import signal
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.io import exclusive, megabytes
from kerasr.video.colour import output_colour
from kerasr.video.decode import Clock, Decoder, frames_from_duration, lost_frames, reason
from kerasr.video.probe import VIDEO_SUFFIXES, rotation
from kerasr.video.segments import EncodePlan, Schedule, SegmentWriter, join
from kerasr.video.work import Interrupted, lock_file, open_work, run_settings

CODECS = ("libx264", "libx265", "libvpx-vp9")
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}
# Output containers `--ext` chooses.
CONTAINERS = ("mp4", "mkv", "webm", "mov")
# Frame rates `fps` takes: from a slide every 100 seconds to high-speed footage.
FPS_RANGE = (0.01, 1000.0)

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What `upscale_video` wrote.

    Attributes:
        output: the video file.
        frames: frames upscaled.
        size: `(width, height)` of the output frames.
        fps: average frame rate of the output (frames per second of video).
        audio_streams: audio streams copied.
        lost: why decoding stopped early (a truncated or damaged input), else `None`.
    """

    output: Path
    frames: int
    size: tuple[int, int]
    fps: float
    audio_streams: int
    lost: str | None


def default_codec(output: str | Path) -> str:
    """H.264, or VP9 for a .webm output (the codecs a WebM file may hold)."""
    return "libvpx-vp9" if Path(output).suffix.lower() == ".webm" else "libx264"


def upscale_video(
    source: str | Path,
    output: str | Path,
    upscaler,
    *,
    outscale: float | None = None,
    crf: int = 18,
    codec: str | None = None,
    fps: float | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    segment_frames: int | None = None,
    model_label: str | None = None,
) -> VideoResult:
    """Upscales a video file.

    Every frame keeps its time in the video (a variable frame rate too), so the copied
    audio stays in sync, unless `fps` gives the output a constant rate.

    Args:
        source: any file FFmpeg reads with a video stream.
        output: the output file; its suffix chooses the container (.mp4, .mkv, .webm, .mov).
        upscaler: a `kerasr.upscaling.inference.Upscaler`.
        outscale: final scale (see `Upscaler.upscale`); odd output sizes lose one pixel row
            or column, as yuv420p needs even sizes.
        crf: constant rate factor of the encoder (lower: better and larger; 0: lossless
            for x264 / x265).
        codec: `libx264` (plays everywhere), `libx265` or `libvpx-vp9`; default
            `default_codec(output)`.
        fps: a constant output frame rate, within `FPS_RANGE` (frames are not dropped or
            repeated, so a rate other than the input's changes the duration, and the audio
            no longer matches); default: each frame at its input time.
        progress: called with `(frames_done, frames_total)` before the first frame and
            after each frame; the total is 0 when the container does not say.
        resume: continue the interrupted run whose work folder is beside `output` (see
            `kerasr.video.work`); without one, start from the first frame (a warning
            says so). Without `resume`, an old work folder is replaced.
        segment_frames: frames per segment; default `SEGMENT_SECONDS` of video.
        model_label: the model's name, which a manifest mismatch names.

    The upscaler is called with `batch_size` frames at a time when it has an
    `upscale_frames` method and a `batch_size` above 1 (`Upscaler` on a GPU).

    Returns:
        A `VideoResult`.

    Raises:
        KerasrError: not a video, no video stream, an unknown codec or container, an
            output that is a folder or cannot be written, frames too large to upscale, a
            full disk, another run writing the same output, `resume` with other settings
            than the interrupted run's or with a manifest kerasr did not write.
        Interrupted: a `KeyboardInterrupt` (Ctrl-C) stopped the run; it says how many
            frames are kept for a rerun with `resume`.
    """
    import av

    source, output = Path(source), Path(output)
    codec = codec or default_codec(output)
    if codec not in CODECS:
        raise KerasrError(f"codec must be one of {', '.join(CODECS)}. Received: {codec!r}")
    fmt = _FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise KerasrError(
            f"{output}: unknown video container; use one of {', '.join(sorted(_FORMATS))}"
        )
    if fmt == "webm" and codec != "libvpx-vp9":
        raise KerasrError(f"{output}: a .webm video needs --codec libvpx-vp9")
    if fmt == "mov" and codec == "libvpx-vp9":  # FFmpeg's QuickTime muxer refuses VP9
        raise KerasrError(f"{output}: a .mov video takes --codec libx264 or libx265, not VP9")
    if fps is not None and not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        low, high = FPS_RANGE
        raise KerasrError(f"--fps must be from {low:g} to {high:g}. Received: {fps:g}")
    _refuse_folder(output)
    if not source.is_file():
        raise KerasrError(f"video not found: {source}")
    try:
        reader = av.open(str(source))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise KerasrError(f"{source}: not a video FFmpeg can read ({reason(e)})") from None
    with contextlib.ExitStack() as stack:
        stack.enter_context(reader)
        if not reader.streams.video:
            raise KerasrError(f"{source}: no video stream")
        video = reader.streams.video[0]
        nominal = video.average_rate if video.average_rate and video.average_rate > 0 else 25
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(nominal)
        # Each frame keeps its input time, unless --fps sets a rate: one tick per frame.
        time_base = 1 / rate if fps or not video.time_base else Fraction(video.time_base)
        total = int(video.frames or 0) or frames_from_duration(reader, video)
        size = _output_size(video, upscaler, outscale)
        if hasattr(upscaler, "check_output_size"):  # before anything is written
            upscaler.check_output_size(video.height, video.width, outscale)
        colour = output_colour(video, size)
        plan = EncodePlan(codec, rate, crf, size, colour, time_base, rotation(source))
        label = model_label or type(upscaler).__name__
        options = {"outscale": outscale, "ext": fmt, "segment_frames": segment_frames}
        settings = run_settings(source, upscaler, label, plan, **options)
        busy = f"another kerasr run is writing {output}; wait for it to end or choose another -o"
        stack.enter_context(exclusive(lock_file(output), busy))
        manifest = open_work(output, settings, resume, int(video.frames or 0))
        if manifest.end is None:
            try:
                lost, until = _transcode(
                    reader, video, manifest, plan, upscaler, outscale, total, progress, bool(fps)
                )
            except KeyboardInterrupt:  # the finished segments are kept for a rerun
                raise Interrupted(manifest.frames, manifest.work) from None
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                raise KerasrError(_no_space_for_segments(manifest, total)) from None
            manifest.finish(lost, until)
        if manifest.frames == 0:
            shutil.rmtree(manifest.work, ignore_errors=True)
            lost = manifest.end["lost"]
            raise KerasrError(f"{source}: no frame could be decoded ({lost or 'empty video'})")
        try:
            copied = join(manifest, source, output, fmt, plan.rotation)
        except KeyboardInterrupt:  # all frames are in segments: a rerun only joins them
            raise Interrupted(manifest.frames, manifest.work) from None
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            raise KerasrError(_no_space_to_join(manifest, output)) from None
        shutil.rmtree(manifest.work, ignore_errors=True)
    seconds = (manifest.end["until"] - manifest.segments[0]["start"]) * time_base
    average = manifest.frames / float(seconds) if seconds > 0 else float(rate)
    return VideoResult(output, manifest.frames, size, average, copied, manifest.end["lost"])


def _refuse_folder(output: Path) -> None:
    if output.is_dir():
        raise KerasrError(f"{output} is a folder; name the output video file otherwise")


def _no_space_for_segments(manifest, total: int) -> str:
    kept, done = manifest.frames, _segments_size(manifest)
    text = f"{manifest.work}: no space left on the device for the next segment"
    if kept and total > kept:  # the rest of the segments, then the joined copy of them all
        needed = done / kept * ((total - kept) + total)
        text += f"; about {megabytes(needed)} more are needed to finish"
    return (
        f"{text}; {kept} frames are kept there: free space and run the same command with --resume"
    )


def _no_space_to_join(manifest, output: Path) -> str:
    size = _segments_size(manifest)
    return (
        f"{output}: no space left on the device to join the video, which needs about "
        f"{megabytes(size)} beside it (its segments are kept in {manifest.work}): free "
        "space and run the same command with --resume"
    )


def _segments_size(manifest) -> int:
    paths = (manifest.segment_path(i) for i in range(len(manifest.segments)))
    return sum(p.stat().st_size for p in paths if p.is_file())


def upscale_video_file(
    source: str | Path,
    output: str | Path = "results",
    *,
    model="realesr-animevideov3",
    suffix: str = "out",
    overwrite: bool = False,
    outscale: float | None = None,
    crf: int = 18,
    codec: str | None = None,
    fps: float | None = None,
    ext: str | None = None,
    resume: bool = False,
    **upscaler_options,
) -> VideoResult:
    """`upscale_video` with a model name and a rich progress bar (frames, fps, ETA);
    SIGTERM stops it as Ctrl-C does (the finished segments are kept for `resume`).

    Args:
        source: the video.
        output: a video file name, or a folder for `<stem>_<suffix>.<ext>`.
        model: registry name or model file, or a built upscaler network.
        suffix: appended to the output stem when `output` is a folder.
        overwrite: replace an existing output (never the input).
        outscale, crf, codec, fps, resume: see `upscale_video`.
        ext: the output container, one of `CONTAINERS` (default mp4, or the suffix of a
            file name given as `output`).
        **upscaler_options: passed to `kerasr.upscaling.inference.Upscaler`.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from kerasr.upscaling.files import check_suffix, load_upscaler

    check_suffix(suffix)
    source, output = Path(source), Path(output)
    if ext is not None and ext not in CONTAINERS:
        raise KerasrError(f"a video's --ext must be one of {', '.join(CONTAINERS)}: got {ext}")
    if output.suffix.lower() in (*VIDEO_SUFFIXES, ".gif"):  # a file name
        if ext is not None and output.suffix.lower() != f".{ext}":
            raise KerasrError(f"--ext {ext} disagrees with the output name {output.name}")
    else:
        output = output / f"{source.stem}{'_' + suffix if suffix else ''}.{ext or 'mp4'}"
    if output.resolve() == source.resolve():
        raise KerasrError(f"{source}: output would overwrite the input; change --suffix or -o")
    _refuse_folder(output)
    if output.exists() and not overwrite:
        raise KerasrError(f"{output} exists; use --overwrite to replace it")
    upscaler = load_upscaler(model, upscaler_options)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]} fps"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"frames ({source.name})", total=None, fps="-")
        started = []

        def step(done, total):
            if not started:  # a resumed run starts past 0: that jump is not speed
                started.append(done)
                bar.reset(task, completed=done, total=total or None, fps="-")
                return
            speed = bar.tasks[task].speed
            bar.update(task, completed=done, total=total or None, fps=f"{speed or 0:.1f}")

        with _sigterm_as_interrupt():
            return upscale_video(
                source,
                output,
                upscaler,
                outscale=outscale,
                crf=crf,
                codec=codec,
                fps=fps,
                progress=step,
                resume=resume,
                model_label=model if isinstance(model, str | Path) else type(model).__name__,
            )


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While active, SIGTERM raises KeyboardInterrupt, so that a stopped run cleans up and
    keeps its finished segments as Ctrl-C does (only the main thread can set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _transcode(reader, video, manifest, plan, upscaler, outscale, total, progress, constant):
    """Upscales the frames the manifest's segments do not hold (see `Schedule`) into
    segments, timed by their index (`constant`) or their input time; returns why decoding
    stopped early (or None) and when the last frame ends, in ticks of the plan's time base."""
    width, height = plan.size
    per_call = getattr(upscaler, "batch_size", 1) if hasattr(upscaler, "upscale_frames") else 1
    schedule = Schedule(manifest)
    done, lost, batch = manifest.frames, None, []
    clock = Clock(plan.time_base, constant, plan.rate)
    decoder = Decoder(reader, video, clock, schedule.slot)
    sink = SegmentWriter(manifest, plan)
    decoder.start()
    sink.start()
    try:
        if progress:
            progress(done, max(total, done))
        try:
            while True:
                kind, payload = decoder.items.get()
                if kind == "frame":
                    batch.append(payload)
                    if len(batch) < per_call:
                        continue
                upscaled = _upscale_frames([pixels for pixels, *_ in batch], upscaler, outscale)
                for pixels, (_, time, slot) in zip(upscaled, batch, strict=True):
                    sink.put((pixels[:height, :width], time, slot))
                    done += 1
                    if progress:
                        progress(done, max(total, done))
                batch = []
                if kind == "end":
                    break
                if kind == "lost":
                    lost = f"decoding stopped after frame {decoder.decoded}: {payload}"
                elif kind == "error":
                    raise payload
            if decoder.decoded < schedule.redo_end:
                raise KerasrError(
                    f"cannot resume: {manifest.work} lists more frames than the input has; "
                    "run without --resume to start over"
                )
        except BaseException:
            # The frames already upscaled close the segment in progress, so that a rerun
            # continues after them (a second Ctrl-C here stops at once).
            decoder.stop.set()
            if sink.error is None and sink.is_alive():
                sink.put(None)
                sink.join()
            raise
        sink.put(None)  # closes the last segment
        sink.join()
        if sink.error is not None:
            raise sink.error
    finally:
        decoder.stop.set()
        sink.stop.set()
        decoder.join()
        sink.join()
    return lost or lost_frames(reader, video, decoder.decoded, clock), clock.until


def _upscale_frames(frames, upscaler, outscale):
    if len(frames) > 1:
        return upscaler.upscale_frames(frames, outscale=outscale)
    return [upscaler.upscale(pixels, outscale=outscale) for pixels in frames]


def _output_size(video, upscaler, outscale) -> tuple[int, int]:
    scale = outscale if outscale is not None else upscaler.scale
    width, height = round(video.width * scale), round(video.height * scale)
    width, height = width - width % 2, height - height % 2  # yuv420p: even sizes
    if width == 0 or height == 0:
        raise KerasrError("the upscaled frames are too small to encode (under 2 pixels)")
    return width, height

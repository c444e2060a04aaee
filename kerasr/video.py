"""Upscaling videos with PyAV (FFmpeg): frames through an `Upscaler`, audio copied.

`upscale_video(source, output, upscaler)` decodes the first video stream, upscales each
frame, and encodes H.264 (or H.265 / VP9) at the input's frame rate into the container of
`output`'s suffix; audio streams are copied without re-encoding where the container accepts
their codec. The video is encoded in closed segments in a work folder beside the output and
joined into it at the end (see `kerasr.video_segments`): the output is written under a
temporary name and renamed, so an interrupted run leaves no half-written file at the output
name, and a run with `resume=True` continues an interrupted one. Decoding runs in its own
thread a few frames ahead of the model, and encoding in another one behind it (bounded
queues both), so memory stays bounded whatever the length. Colours: frames are converted to
RGB with the matrix and range the input is tagged with (BT.709 for untagged HD input, BT.601
below, as players assume), and back to YUV with the same matrix and range; the output is
tagged with them and with the input's primaries and transfer curve."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import shutil
import signal
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import READ_FORMATS
from kerasr.video_colour import output_colour, to_rgb
from kerasr.video_segments import (
    EncodePlan,
    Interrupted,
    SegmentWriter,
    join,
    open_work,
    run_settings,
)

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
CODECS = ("libx264", "libx265", "libvpx-vp9")
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}
# Output containers `--ext` chooses.
CONTAINERS = ("mp4", "mkv", "webm", "mov")

_AHEAD = 8  # decoded frames held ahead of the model

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What `upscale_video` wrote.

    Attributes:
        output: the video file.
        frames: frames upscaled.
        size: `(width, height)` of the output frames.
        fps: frame rate of the output.
        audio_streams: audio streams copied.
        lost: why decoding stopped early (a truncated or damaged input), else `None`.
    """

    output: Path
    frames: int
    size: tuple[int, int]
    fps: float
    audio_streams: int
    lost: str | None


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

    Args:
        source: any file FFmpeg reads with a video stream.
        output: the output file; its suffix chooses the container (.mp4, .mkv, .webm, .mov).
        upscaler: a `kerasr.inference.Upscaler`.
        outscale: final scale (see `Upscaler.upscale`); odd output sizes lose one pixel row
            or column, as yuv420p needs even sizes.
        crf: constant rate factor of the encoder (lower: better and larger; 0: lossless
            for x264 / x265).
        codec: `libx264` (plays everywhere), `libx265` or `libvpx-vp9`; default
            `default_codec(output)`.
        fps: output frame rate; default the input's (frames are not dropped or repeated,
            so a different rate changes the duration).
        progress: called with `(frames_done, frames_total)` before the first frame and
            after each frame; the total is 0 when the container does not say.
        resume: continue the interrupted run whose work folder is beside `output` (see
            `kerasr.video_segments`); without one, start from the first frame (a warning
            says so). Without `resume`, an old work folder is replaced.
        segment_frames: frames per segment; default `SEGMENT_SECONDS` of video.
        model_label: the model's name, which a manifest mismatch names.

    The upscaler is called with `batch_size` frames at a time when it has an
    `upscale_frames` method and a `batch_size` above 1 (`Upscaler` on a GPU).

    Returns:
        A `VideoResult`.

    Raises:
        KerasrError: not a video, no video stream, an unknown codec or container, an
            output that cannot be written, `resume` with other settings than the
            interrupted run's.
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
    if not source.is_file():
        raise KerasrError(f"video not found: {source}")
    try:
        reader = av.open(str(source))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise KerasrError(f"{source}: not a video FFmpeg can read ({_reason(e)})") from None
    with reader:
        if not reader.streams.video:
            raise KerasrError(f"{source}: no video stream")
        video = reader.streams.video[0]
        rate = Fraction(fps).limit_denominator(1001) if fps else video.average_rate
        if not rate or rate <= 0:
            rate = Fraction(25)
        total = int(video.frames or 0) or _frames_from_duration(reader, video)
        size = _output_size(video, upscaler, outscale)
        colour = output_colour(video, size)
        plan = EncodePlan(codec, rate, crf, size, colour, _rotation(source))
        label = model_label or type(upscaler).__name__
        options = {"outscale": outscale, "ext": fmt, "segment_frames": segment_frames}
        settings = run_settings(source, upscaler, label, plan, **options)
        manifest = open_work(output, settings, resume)
        if manifest.end is None:
            try:
                lost = _transcode(
                    reader, video, manifest, plan, upscaler, outscale, total, progress
                )
            except KeyboardInterrupt:  # the finished segments are kept for a rerun
                raise Interrupted(manifest.frames, manifest.work) from None
            manifest.finish(lost)
    if manifest.frames == 0:
        shutil.rmtree(manifest.work, ignore_errors=True)
        lost = manifest.end["lost"]
        raise KerasrError(f"{source}: no frame could be decoded ({lost or 'empty video'})")
    try:
        copied = join(manifest, source, output, fmt, plan.rotation)
    except KeyboardInterrupt:  # all frames are in segments: a rerun only joins them
        raise Interrupted(manifest.frames, manifest.work) from None
    shutil.rmtree(manifest.work, ignore_errors=True)
    return VideoResult(output, manifest.frames, size, float(rate), copied, manifest.end["lost"])


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
        **upscaler_options: passed to `kerasr.inference.Upscaler`.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from kerasr.batch import _load_upscaler, check_suffix

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
    if output.exists() and not overwrite:
        raise KerasrError(f"{output} exists; use --overwrite to replace it")
    upscaler = _load_upscaler(model, upscaler_options)
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


def _transcode(reader, video, manifest, plan, upscaler, outscale, total, progress):
    """Upscales the frames after the manifest's finished segments into new segments;
    returns why decoding stopped early, or None."""
    width, height = plan.size
    per_call = getattr(upscaler, "batch_size", 1) if hasattr(upscaler, "upscale_frames") else 1
    frames, lost, batch = manifest.frames, None, []
    decoder = _Decoder(reader, video, skip=frames)
    sink = SegmentWriter(manifest, plan)
    decoder.start()
    sink.start()
    try:
        if progress:
            progress(frames, max(total, frames))
        try:
            while True:
                kind, payload = decoder.items.get()
                if kind == "frame":
                    batch.append(payload)
                    if len(batch) < per_call:
                        continue
                for pixels in _upscale_frames(batch, upscaler, outscale):
                    sink.put(pixels[:height, :width])
                    frames += 1
                    if progress:
                        progress(frames, max(total, frames))
                batch = []
                if kind == "end":
                    break
                if kind == "lost":
                    lost = f"decoding stopped after frame {frames}: {payload}"
                elif kind == "error":
                    raise payload
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
    if total and frames < total - 1 and lost is None:  # durations round to a frame
        lost = f"only {frames} of about {total} frames could be decoded"
    return lost


def _upscale_frames(frames, upscaler, outscale):
    if len(frames) > 1:
        return upscaler.upscale_frames(frames, outscale=outscale)
    return [upscaler.upscale(pixels, outscale=outscale) for pixels in frames]


class _Decoder(threading.Thread):
    """Decodes in its own thread, so decoding overlaps the model; a bounded queue of
    `_AHEAD` frames keeps memory flat whatever the length of the video. The first `skip`
    frames (those a resumed run has already) are decoded and dropped: exact, where seeking
    lands on a key frame."""

    def __init__(self, reader, video, skip: int = 0):
        super().__init__(name="kerasr-video-decoder", daemon=True)
        self.reader, self.video, self.skip = reader, video, skip
        self.items: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self.stop = threading.Event()

    def run(self):
        import av

        try:
            for packet in self.reader.demux(self.video):
                for frame in packet.decode():
                    if self.skip:
                        self.skip -= 1
                    elif not self._put(("frame", to_rgb(frame))):
                        return
                if self.stop.is_set():
                    return
        except av.error.FFmpegError as e:
            self._put(("lost", _reason(e)))
        except Exception as e:  # handed to the main thread, which raises it
            self._put(("error", e))
        self._put(("end", None))

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def _frames_from_duration(reader, video) -> int:
    # Matroska and WebM give no frame count, but their header has the duration.
    if video.duration and video.time_base:
        seconds = float(video.duration * video.time_base)
    elif reader.duration:
        seconds = reader.duration / 1_000_000  # AV_TIME_BASE
    else:
        return 0
    return round(seconds * float(video.average_rate or 0))


def _output_size(video, upscaler, outscale) -> tuple[int, int]:
    scale = outscale if outscale is not None else upscaler.scale
    width, height = round(video.width * scale), round(video.height * scale)
    width, height = width - width % 2, height - height % 2  # yuv420p: even sizes
    if width == 0 or height == 0:
        raise KerasrError("the upscaled frames are too small to encode (under 2 pixels)")
    return width, height


def _rotation(source: Path) -> int:
    """The display rotation of a video's first frame, in degrees (0 when none)."""
    import av

    try:
        with av.open(str(source)) as probe:
            first = next(probe.decode(video=0), None)
            return round(getattr(first, "rotation", 0) or 0)
    except av.error.FFmpegError:
        return 0  # the transcoding says what is wrong with the file


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


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

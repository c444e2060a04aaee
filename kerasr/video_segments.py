"""Videos encoded in closed segments, so that an interrupted run can be continued.

While a video is upscaled, the encoded frames go into a hidden work folder beside the output,
`.<output name>.parts/`: a segment file every `SEGMENT_SECONDS` of video, each written under
a temporary name and renamed when complete (a segment there is always whole), and a JSON
manifest that names the input, the model and the encoder settings and lists the finished
segments. At the end the segments' packets are joined, without re-encoding, into the output
together with the input's audio packets (the output too is written under a temporary name
and renamed), and the work folder is removed. An interrupted run keeps the folder; run again
with `resume=True`, it checks that the manifest matches the current settings, skips the
frames of the finished segments and continues, and the output is the one an uninterrupted
run writes (each segment starts with a key frame; nothing else changes).

H.264 / H.265 segments are MP4 files, which store decoding timestamps as well as display
ones (Matroska keeps only the display ones), and VP9 ones WebM (VP9 frames are not
reordered, so the two are equal).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import queue
import shutil
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.io import atomic_path, write_text
from kerasr.video_colour import OutputColour

# A few seconds of video per segment: at most that much is encoded again after a crash,
# and one key frame more per segment costs next to nothing (x264 puts one every 250 frames).
SEGMENT_SECONDS = 10
MANIFEST = "manifest.json"
_VERSION = 1
_AHEAD = 8  # upscaled frames queued for the encoder
_MAX_REORDER = 16  # frames a decoding time may precede its display time (x265: 16 B-frames)
# Audio codecs each container takes as they are; others are left out with a warning.
_AUDIO_OK = {"webm": {"opus", "vorbis"}, "mp4": {"aac", "mp3", "opus", "alac", "ac3"}}
# Settings an interrupted run must share with the one that continues it, as the CLI names them.
_COMPARED = {"outscale": "--outscale", "codec": "--codec", "crf": "--crf", "fps": "--fps"}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a video; its finished segments are kept in `work`.

    Attributes:
        frames: frames kept (a rerun with resume continues from this frame).
        work: the work folder.
    """

    def __init__(self, frames: int, work: Path):
        super().__init__(f"interrupted after {frames} frames")
        self.frames, self.work = frames, work


def work_folder(output: str | Path) -> Path:
    """The hidden folder beside `output` where its segments are written."""
    output = Path(output)
    return output.with_name(f".{output.name}.parts")


@dataclasses.dataclass(frozen=True)
class EncodePlan:
    """How every segment's video stream is encoded.

    Attributes:
        codec: `libx264`, `libx265` or `libvpx-vp9`.
        rate: frame rate.
        crf: constant rate factor.
        size: `(width, height)` of the frames.
        colour: colour tags and the RGB -> YUV conversion.
        rotation: display rotation in degrees (0: none).
    """

    codec: str
    rate: Fraction
    crf: int
    size: tuple[int, int]
    colour: OutputColour
    rotation: int = 0

    @property
    def segment_format(self) -> str:
        return "webm" if self.codec == "libvpx-vp9" else "mp4"

    def add_stream(self, container):
        options = {"crf": str(self.crf)}
        if self.codec == "libvpx-vp9":
            options["b:v"] = "0"  # constant quality mode
        elif self.codec == "libx265":  # x265 prints its settings on stderr for each segment
            options["x265-params"] = "log-level=error"
        stream = container.add_stream(self.codec, rate=self.rate, options=options)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate  # one tick per frame
        self.colour.apply(stream.codec_context)
        if self.rotation:  # the display matrix, as the input's (frames are kept as stored)
            stream.set_display_rotation(self.rotation)
        return stream


class Manifest:
    """The work folder's manifest: the settings of the run and the segments finished.

    Attributes:
        work: the work folder.
        settings: what a continuing run must match (see `open_work`).
        segments: frames in each finished segment, in order.
        end: `None` while frames remain to be upscaled, then `{"lost": why decoding stopped
            early, or None}`.
    """

    def __init__(self, work: Path, settings: dict, segments=(), end=None):
        self.work, self.settings = work, settings
        self.segments, self.end = list(segments), end

    @property
    def frames(self) -> int:
        return sum(self.segments)

    def segment_path(self, index: int) -> Path:
        return self.work / f"{index:05d}.{self.settings['segment_format']}"

    def add_segment(self, frames: int) -> None:
        self.segments.append(frames)
        self.save()

    def finish(self, lost: str | None) -> None:
        self.end = {"lost": lost}
        self.save()

    def save(self) -> None:
        data = {"version": _VERSION, **self.settings, "segments": self.segments, "end": self.end}
        write_text(self.work / MANIFEST, json.dumps(data, indent=1) + "\n")


def run_settings(source: Path, upscaler, model_label: str, plan: EncodePlan, **options) -> dict:
    """What a manifest records: the input, the model, the encoder and the segment length.

    `options` are the `outscale`, `ext` and `segment_frames` of the run."""
    with open(source, "rb") as file:
        head = hashlib.sha256(file.read(1 << 20)).hexdigest()[:16]
    return {
        "source": {"path": str(source.resolve()), "size": source.stat().st_size, "head": head},
        "model": model_label,
        "weights": model_digest(upscaler),
        "outscale": options["outscale"],
        "codec": plan.codec,
        "crf": plan.crf,
        "fps": str(plan.rate),
        "ext": options["ext"],
        "size": list(plan.size),
        "segment_frames": options["segment_frames"]
        or max(1, math.ceil(plan.rate * SEGMENT_SECONDS)),
        "segment_format": plan.segment_format,
    }


def model_digest(upscaler) -> str:
    """A digest of the upscaler's network weights (float32, as stored)."""
    network = getattr(upscaler, "model", None)
    if not hasattr(network, "get_weights"):  # another engine (the ncnn benchmark's)
        return type(upscaler).__qualname__
    digest = hashlib.sha256()
    for weights in network.get_weights():
        digest.update(np.ascontiguousarray(weights, np.float32).tobytes())
    return digest.hexdigest()[:16]


def open_work(output: Path, settings: dict, resume: bool) -> Manifest:
    """The manifest of `output`'s work folder: the interrupted run's when `resume` (its
    settings must match `settings`), else a new one (an old folder is replaced).

    Raises:
        KerasrError: `resume` and the interrupted run had other settings, or its manifest
            cannot be read.
    """
    work = work_folder(output)
    path = work / MANIFEST
    if resume and path.is_file():
        try:
            data = json.loads(path.read_text())
            previous = Manifest(work, {k: data[k] for k in settings}, data["segments"], data["end"])
        except (OSError, ValueError, KeyError, TypeError):
            raise KerasrError(
                f"cannot resume: {path} is unreadable; run without --resume to start over"
            ) from None
        _check(previous.settings, settings, path)
        # Segments are renamed into place before the manifest lists them; one listed but
        # missing (removed by hand) ends what can be kept.
        kept = 0
        while kept < len(previous.segments) and previous.segment_path(kept).is_file():
            kept += 1
        if kept < len(previous.segments):
            previous.segments, previous.end = previous.segments[:kept], None
        previous.settings = settings  # the same, but the input may have moved
        return previous
    if resume:
        warnings.warn(
            f"--resume: no interrupted run of {output.name} to continue ({work.name} is "
            "missing); starting from the first frame",
            stacklevel=3,
        )
    elif path.is_file():
        warnings.warn(
            f"{work} held an interrupted run of {output.name}; starting over "
            "(--resume continues such a run)",
            stacklevel=3,
        )
    if work.exists():
        shutil.rmtree(work)
    try:
        work.mkdir(parents=True)
    except OSError as e:
        raise KerasrError(f"{work}: cannot create folder ({e.strerror or e})") from None
    manifest = Manifest(work, settings)
    manifest.save()
    return manifest


def _check(previous: dict, current: dict, path: Path) -> None:
    differences = []
    was, now = previous["source"], current["source"]
    if (was["size"], was["head"]) != (now["size"], now["head"]):
        differences.append(f"the input is not the file it read ({was['path']})")
    if previous["weights"] != current["weights"]:
        differences.append(f"the model differs (it used {previous['model']})")
    for key, option in _COMPARED.items():
        if previous[key] != current[key]:
            was, now = ("not given" if v is None else v for v in (previous[key], current[key]))
            differences.append(f"{option} was {was}, now {now}")
    if previous["ext"] != current["ext"]:
        differences.append(f"the container was {previous['ext']}, now {current['ext']}")
    if differences:
        raise KerasrError(
            f"cannot resume from {path.parent}: {'; '.join(differences)}; "
            "run the same command, or drop --resume to start over"
        )


class SegmentWriter(threading.Thread):
    """Converts upscaled frames to YUV and encodes them into segment files, in its own
    thread so the model never waits on the encoder.

    `put` frames, then `put(None)`: the segment in progress is closed (a short one at the
    end of the video, or when a run is stopped) and the thread ends. `stop` ends it without
    closing that segment (its temporary file is removed).
    """

    def __init__(self, manifest: Manifest, plan: EncodePlan):
        super().__init__(name="kerasr-video-encoder", daemon=True)
        self.manifest, self.plan = manifest, plan
        self.items: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            item = self._get()
            while item is not None:
                item = self._segment(item)
        except _Stopped:
            pass
        except BaseException as e:  # raised in the main thread by `put` or after `join`
            self.error = e

    def _segment(self, item):
        """Encodes frames from `item` on into the next segment; returns the item after it."""
        import av

        per_segment = self.manifest.settings["segment_frames"]
        path = self.manifest.segment_path(len(self.manifest.segments))
        count, last = 0, None
        colour = self.plan.colour
        with (
            atomic_path(path) as tmp,
            av.open(str(tmp), "w", format=self.plan.segment_format) as writer,
        ):
            stream = self.plan.add_stream(writer)
            while item is not None and count < per_segment:
                frame = av.VideoFrame.from_ndarray(item, format="rgb24").reformat(
                    format="yuv420p", dst_colorspace=colour.matrix, dst_color_range=colour.range
                )
                frame.pts, frame.time_base = count, stream.codec_context.time_base
                last = _mux_in_order(writer, stream.encode(frame), last)
                count += 1
                item = self._get() if count < per_segment else item
            _mux_in_order(writer, stream.encode(None), last)
        self.manifest.add_segment(count)
        return self._get() if count == per_segment else None

    def _get(self):
        while not self.stop.is_set():
            try:
                return self.items.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped

    def put(self, item) -> None:
        while True:
            if self.error is not None:
                raise self.error
            if not self.is_alive():
                raise KerasrError("the video encoder stopped unexpectedly")
            try:
                self.items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class _Stopped(Exception):
    pass


def _mux_in_order(writer, packets, last: int | None) -> int | None:
    """Muxes a segment's packets with decoding times that make sense, and returns the last
    one: x265 makes them up for a segment of one or two frames (its B-frame delay is not
    known yet), which the MP4 muxer refuses. The join gives the packets new ones anyway."""
    for packet in packets:
        if packet.dts is None or not packet.pts - _MAX_REORDER <= packet.dts <= packet.pts:
            packet.dts = packet.pts if last is None else last + 1
        last = packet.dts
        writer.mux(packet)
    return last


def join(manifest: Manifest, source: Path, output: Path, fmt: str, rotation: int) -> int:
    """Writes `output` (container `fmt`) from the segments' video packets, with their
    timestamps moved to their place in the video, and the input's audio packets, in time
    order; returns the number of audio streams copied."""
    import av

    rate = Fraction(manifest.settings["fps"])
    paths = [manifest.segment_path(i) for i in range(len(manifest.segments))]
    with atomic_path(output) as tmp, av.open(str(tmp), "w", format=fmt) as writer:
        with av.open(str(paths[0])) as first:
            video = writer.add_stream_from_template(first.streams.video[0])
            extradata = first.streams.video[0].codec_context.extradata
        if rotation:
            video.set_display_rotation(rotation)
        with av.open(str(source)) as reader:
            audio = _audio_streams(reader, writer)
            pictures = _video_packets(paths, manifest.segments, rate, extradata)
            sounds = _audio_packets(reader, audio)
            for packet, stream in _merge(pictures, sounds):
                packet.stream = video if stream is None else stream
                writer.mux(packet)
    return len(audio)


def _audio_streams(reader, writer) -> dict:
    # Every stream exists before the first packet is written (the header goes out then).
    audio_out = {}
    accepted = _AUDIO_OK.get(writer.format.name.split(",")[0])
    for stream in reader.streams.audio:
        name = stream.codec_context.name
        if accepted is not None and name not in accepted:
            warnings.warn(
                f"audio stream {stream.index} ({name}) cannot go into "
                f"{writer.format.name} without re-encoding; it is left out",
                stacklevel=4,
            )
            continue
        audio_out[stream.index] = writer.add_stream_from_template(stream)
    return audio_out


def _video_packets(paths, counts, rate, extradata):
    """Yields `(seconds, packet, None)`; a packet's display time counts frames from the
    start of the video (each segment's first packet is its first frame, a key frame), and
    its decoding time counts packets, behind by the largest reordering in the video: one
    frame per packet, never after a display time, whatever each segment's encoder said."""
    tick = Fraction(rate.denominator, rate.numerator)
    # Two passes over the segments (demuxing only, no decoding): the delay must be known
    # before the first packet goes out, and holding every packet would not bound memory.
    first_pass = _segment_packets(paths, counts, rate, extradata)
    delay = max([0, *(i - pts for i, (_, pts) in enumerate(first_pass))])
    for i, (packet, pts) in enumerate(_segment_packets(paths, counts, rate, extradata)):
        packet.pts, packet.dts, packet.time_base, packet.duration = pts, i - delay, tick, 1
        yield float((i - delay) * tick), packet, None


def _segment_packets(paths, counts, rate, extradata):
    """Yields `(packet, display time in frames from the start of the video)`."""
    import av

    start = 0
    for path, count in zip(paths, counts, strict=True):
        with av.open(str(path)) as segment:
            stream = segment.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise KerasrError(
                    f"{path.parent}: its segments were encoded by different encoder versions; "
                    "run without --resume to start over"
                )
            zero = None
            for packet in segment.demux(stream):
                if packet.pts is None:  # the demuxer's empty flush packet
                    continue
                zero = packet.pts if zero is None else zero
                yield packet, start + round((packet.pts - zero) * rate * packet.time_base)
        start += count


def _audio_packets(reader, audio_out: dict):
    """Yields `(seconds, packet, output stream)` of the copied audio streams, in file order,
    until the input ends or stops decoding (a truncated file)."""
    import av

    if not audio_out:
        return
    streams = [reader.streams[i] for i in audio_out]
    try:
        for packet in reader.demux(streams):
            if packet.dts is None:
                continue
            yield float(packet.dts * packet.time_base), packet, audio_out[packet.stream.index]
    except av.error.FFmpegError:
        return  # the video part says what was lost


def _merge(first, second):
    """Yields `(packet, stream)` of two time-ordered streams of `(seconds, packet, stream)`,
    in time order (the muxer then holds only a few packets to interleave)."""
    a, b = next(first, None), next(second, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] <= b[0]):
            yield a[1], a[2]
            a = next(first, None)
        else:
            yield b[1], b[2]
            b = next(second, None)

"""Videos encoded in closed segments, then joined: what lets an interrupted run continue.

The upscaled frames are encoded into segment files in the work folder (see
`kerasr.video.work`): each holds a run of frames, starts with a key frame, is written under a
temporary name and renamed when complete. Each frame keeps its time in the video (the
input's, or one tick per frame at a rate given with `--fps`); a segment stores them from its
own first frame, whose time the manifest keeps. At the end the segments' packets are joined,
without re-encoding, into the output together with the input's audio packets (the output too
is written under a temporary name and renamed).

Segments are MP4 files, whatever the codec: MP4 stores decoding timestamps as well as display
ones (Matroska keeps only the display ones), and each frame's time exactly in the encoder's
time base (Matroska and WebM round them to milliseconds).
"""

from __future__ import annotations

import bisect
import dataclasses
import queue
import threading
import warnings
from fractions import Fraction
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.io import atomic_path
from kerasr.video.colour import OutputColour
from kerasr.video.work import Manifest

_AHEAD = 8  # upscaled frames queued for the encoder
# Audio codecs each container takes as they are; others are left out with a warning.
_AUDIO_OK = {"webm": {"opus", "vorbis"}, "mp4": {"aac", "mp3", "opus", "alac", "ac3"}}


@dataclasses.dataclass(frozen=True)
class EncodePlan:
    """How every segment's video stream is encoded.

    Attributes:
        codec: `libx264`, `libx265` or `libvpx-vp9`.
        rate: the nominal frame rate (the average of a variable one).
        crf: constant rate factor.
        size: `(width, height)` of the frames.
        colour: colour tags and the RGB -> YUV conversion.
        time_base: the unit of the frames' times: the input stream's, or `1 / rate`
            (one tick per frame) when `--fps` sets the rate.
        rotation: display rotation in degrees (0: none).
    """

    codec: str
    rate: Fraction
    crf: int
    size: tuple[int, int]
    colour: OutputColour
    time_base: Fraction
    rotation: int = 0

    def add_stream(self, container):
        options = {"crf": str(self.crf)}
        if self.codec == "libvpx-vp9":
            options["b:v"] = "0"  # constant quality mode
        elif self.codec == "libx265":  # x265 prints its settings on stderr for each segment
            options["x265-params"] = "log-level=error"
        stream = container.add_stream(self.codec, rate=self.rate, options=options)
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = self.time_base
        self.colour.apply(stream.codec_context)
        if self.rotation:  # the display matrix, as the input's (frames are kept as stored)
            stream.set_display_rotation(self.rotation)
        return stream


@dataclasses.dataclass(frozen=True)
class Slot:
    """Where an upscaled frame goes.

    Attributes:
        segment: the segment's index.
        closes: the frame is the segment's last.
        fixed: the segment replaces a damaged one and must hold exactly its frames: when
            the run stops before its last frame, it is dropped rather than closed short.
    """

    segment: int
    closes: bool
    fixed: bool = False


class Schedule:
    """Which segment each decoded frame goes into. A manifest's whole segments keep their
    frames (`slot` is None: decoded and dropped, which is exact where seeking lands on a key
    frame); a damaged one gets its frames again (`Slot.fixed`); the frames after the last
    listed segment go into new segments of `segment_frames`."""

    def __init__(self, manifest: Manifest):
        self.per_segment = manifest.settings["segment_frames"]
        self.redo = []  # (first frame, frame after the last, segment index)
        first = 0
        for index, segment in enumerate(manifest.segments):
            if index in manifest.damaged:
                self.redo.append((first, first + segment["frames"], index))
            first += segment["frames"]
        self.tail, self.next = first, len(manifest.segments)
        self.redo_end = max((end for _, end, _ in self.redo), default=0)

    def slot(self, frame: int) -> Slot | None:
        if frame >= self.tail:
            n = frame - self.tail
            per = self.per_segment
            return Slot(self.next + n // per, n % per == per - 1)
        for first, end, index in self.redo:
            if first <= frame < end:
                return Slot(index, frame == end - 1, fixed=True)
        return None


class SegmentWriter(threading.Thread):
    """Converts upscaled frames to YUV and encodes them into segment files, in its own
    thread so the model never waits on the encoder.

    `put((pixels, time, slot))` for each frame (`time` in ticks of the plan's time base,
    `slot` a `Slot`), then `put(None)`: the segment in progress is closed (a short one when
    a run is stopped, unless it is `fixed`) and the thread ends. `stop` ends it without
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
        """Encodes frames from `item` on into its segment; returns the item after it."""
        import av

        slot: Slot = item[2]
        start, count, last = item[1], 0, None
        colour = self.plan.colour
        with (
            atomic_path(self.manifest.segment_path(slot.segment)) as tmp,
            av.open(str(tmp), "w", format="mp4") as writer,
        ):
            stream = self.plan.add_stream(writer)
            while item is not None:
                pixels, time, slot = item
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
                    format="yuv420p", dst_colorspace=colour.matrix, dst_color_range=colour.range
                )
                frame.pts, frame.time_base = time - start, stream.codec_context.time_base
                last = _mux_in_order(writer, stream.encode(frame), last, frame.pts)
                count += 1
                if slot.closes:
                    break
                item = self._get()
            if item is None and slot.fixed:
                raise _Stopped  # its frames are all needed: the damaged file stays listed
            _mux_in_order(writer, stream.encode(None), last, time - start)
        self.manifest.set_segment(slot.segment, count, start)
        return None if item is None else self._get()

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


def _mux_in_order(writer, packets, last: int | None, fed: int) -> int | None:
    """Muxes a segment's packets with decoding times that make sense, and returns the last
    one. x265 makes one up for a segment of one frame (its B-frame delay is not known yet:
    a huge negative number), which the MP4 muxer refuses. An encoder's decoding times start
    before the segment's first frame (time 0) by at most the time span of the frames it has
    been given (the latest of them is at `fed`), and rise, and none comes after its display
    time; the join gives the packets new ones anyway."""
    for packet in packets:
        dts = packet.dts
        if dts is None or not -fed <= dts <= packet.pts or (last is not None and dts <= last):
            packet.dts = packet.pts if last is None else min(last + 1, packet.pts)
        last = packet.dts
        writer.mux(packet)
    return last


def join(manifest: Manifest, source: Path, output: Path, fmt: str, rotation: int) -> int:
    """Writes `output` (container `fmt`) from the segments' video packets, with their
    timestamps moved to their place in the video, and the input's audio packets, in time
    order; returns the number of audio streams copied."""
    import av

    time_base = Fraction(manifest.settings["time_base"])
    paths = [manifest.segment_path(i) for i in range(len(manifest.segments))]
    with atomic_path(output) as tmp, av.open(str(tmp), "w", format=fmt) as writer:
        with av.open(str(paths[0])) as first:
            video = writer.add_stream_from_template(first.streams.video[0])
            extradata = first.streams.video[0].codec_context.extradata
        # The nominal rate, which Matroska states (else it takes the time base for it).
        video.codec_context.framerate = Fraction(manifest.settings["fps"])
        if rotation:
            video.set_display_rotation(rotation)
        with av.open(str(source)) as reader:
            audio = _audio_streams(reader, writer)
            until = manifest.end["until"]
            pictures = _video_packets(paths, manifest.segments, time_base, until, extradata)
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


def _video_packets(paths, segments, time_base, until, extradata):
    """Yields `(seconds, packet, None)`. A packet's display time is its frame's time in the
    video (its segment's start, plus its time in the segment); its decoding time is the
    display time of the frame as many packets in, behind by the largest reordering in the
    video: never after the display time and always rising, whatever each segment's encoder
    said. A frame lasts until the next one; the last one until `until`."""
    # Two passes over the segments (demuxing only, no decoding): the delay must be known
    # before the first packet goes out, and holding every packet would not bound memory
    # (the times alone are a number per frame).
    times = [t for _, t in _segment_packets(paths, segments, time_base, extradata)]
    order = sorted(times)
    delay = max([0, *(i - bisect.bisect_left(order, t) for i, t in enumerate(times))])
    # MP4 takes a frame's duration from the decoding times: those before the first frame
    # are a frame apart, as the first two frames are.
    step = order[1] - order[0] if len(order) > 1 else max(1, until - order[0])
    for i, (packet, t) in enumerate(_segment_packets(paths, segments, time_base, extradata)):
        dts = order[i - delay] if i >= delay else order[0] - (delay - i) * step
        rank = bisect.bisect_left(order, t)
        following = order[rank + 1] if rank + 1 < len(order) else max(until, t + 1)
        packet.pts, packet.dts, packet.time_base = t, dts, time_base
        packet.duration = following - t
        yield float(dts * time_base), packet, None


def _segment_packets(paths, segments, time_base, extradata):
    """Yields `(packet, display time in ticks of time_base from the start of the video)`."""
    import av

    for path, segment in zip(paths, segments, strict=True):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise KerasrError(
                    f"{path.parent}: its segments were encoded by different encoder versions; "
                    "run without --resume to start over"
                )
            zero = None
            for packet in container.demux(stream):
                if packet.pts is None:  # the demuxer's empty flush packet
                    continue
                zero = packet.pts if zero is None else zero
                offset = (packet.pts - zero) * packet.time_base / time_base
                yield packet, segment["start"] + round(offset)


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

"""Decoding a video for upscaling: its frames in a thread ahead of the model, the time of
each one, and whether frames were lost at the end of a truncated file."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from fractions import Fraction

from kerasr.errors import first_line
from kerasr.video.colour import to_rgb
from kerasr.video.segments import Slot

_AHEAD = 8  # decoded frames held ahead of the model


class Clock:
    """The output time of each decoded frame, in ticks of `time_base`: its input time (one
    not after the frame before, a damaged timestamp, goes one tick after that frame), or
    with `constant` (a rate given with --fps) its index, one tick per frame. Also keeps the
    input time span of the frames, which tells whether any were lost at the end."""

    def __init__(self, time_base: Fraction, constant: bool, rate: Fraction):
        self.time_base, self.constant = time_base, constant
        self.step = max(1, round(1 / (rate * time_base)))  # ticks of one nominal frame
        self.last: int | None = None
        self.until = 0  # when the last frame ends, in ticks
        self.first_seconds: float | None = None  # input times: first frame, end of the last
        self.end_seconds: float | None = None

    def time(self, frame, index: int) -> int:
        pts = frame.pts if frame.pts is not None else frame.dts
        base = frame.time_base
        lasts = frame.duration if getattr(frame, "duration", None) else None
        if pts is not None and base:
            start = float(pts * base)
            self.first_seconds = start if self.first_seconds is None else self.first_seconds
            self.end_seconds = start + float((lasts or 0) * base)
        if self.constant:
            time, duration = index, 1
        else:
            if pts is None or not base:
                time = 0 if self.last is None else self.last + self.step
            else:
                time = round(pts * base / self.time_base)
            if self.last is not None and time <= self.last:
                time = self.last + 1
            if lasts and base:
                duration = round(lasts * base / self.time_base)
            else:
                duration = self.step if self.last is None else time - self.last
        self.last, self.until = time, time + max(1, duration)
        return time


def lost_frames(reader, video, decoded: int, clock: Clock) -> str | None:
    """Why the frames decoded are fewer than the input holds (a truncated file whose
    decoding ends without an error), or None: by the frame count the container states,
    else by the duration it states against the decoded frames' time span."""
    if video.frames:
        if decoded < video.frames - 1:  # durations round to a frame
            return f"only {decoded} of {video.frames} frames could be decoded"
        return None
    stated = _stated_seconds(reader, video)
    if stated is None or clock.first_seconds is None or not video.average_rate:
        return None
    span = clock.end_seconds - clock.first_seconds
    if stated - span > 1.5 / float(video.average_rate):  # more than a frame is missing
        return f"decoding stopped at {span:.2f} s of {stated:.2f} s ({decoded} frames)"
    return None


def _stated_seconds(reader, video) -> float | None:
    """The video stream's duration as its container states it, in seconds, else None."""
    if video.duration and video.time_base:
        return float(video.duration * video.time_base)
    tag = video.metadata.get("DURATION")  # Matroska: per stream, as a tag
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    if reader.duration and len(reader.streams) == 1:  # the container's is the video's
        return reader.duration / 1_000_000  # AV_TIME_BASE
    return None


class Decoder(threading.Thread):
    """Decodes in its own thread, so decoding overlaps the model; a bounded queue of
    `_AHEAD` frames keeps memory flat whatever the length of the video. Each frame is
    timed by `clock`; those `slot(index)` gives no slot are dropped undecoded to RGB.
    `decoded` counts the frames decoded."""

    def __init__(self, reader, video, clock: Clock, slot: Callable[[int], Slot | None]):
        super().__init__(name="kerasr-video-decoder", daemon=True)
        self.reader, self.video, self.clock, self.slot = reader, video, clock, slot
        self.items: queue.Queue = queue.Queue(maxsize=_AHEAD)
        self.stop = threading.Event()
        self.decoded = 0

    def run(self):
        import av

        try:
            for packet in self.reader.demux(self.video):
                for frame in packet.decode():
                    time = self.clock.time(frame, self.decoded)
                    slot = self.slot(self.decoded)
                    self.decoded += 1
                    if slot is not None and not self._put(("frame", (to_rgb(frame), time, slot))):
                        return
                if self.stop.is_set():
                    return
        except av.error.FFmpegError as e:
            self._put(("lost", reason(e)))
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


def frames_from_duration(reader, video) -> int:
    # Matroska and WebM give no frame count, but their header has the duration.
    if video.duration and video.time_base:
        seconds = float(video.duration * video.time_base)
    elif reader.duration:
        seconds = reader.duration / 1_000_000  # AV_TIME_BASE
    else:
        return 0
    return round(seconds * float(video.average_rate or 0))


def reason(error: BaseException) -> str:
    """What went wrong, in FFmpeg's words: an OS error's text without its number and path."""
    return first_line(getattr(error, "strerror", None) or error)

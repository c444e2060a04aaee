"""Colour metadata of videos: which matrix and range turn YUV frames into RGB and back.

Decoded frames become RGB with the matrix and range they are tagged with; an untagged YUV
frame is taken as BT.709 when it is HD and BT.601 below, as players assume. Upscaled frames
go back to YUV with the input's matrix (BT.709 / BT.601 by the output size when the input
has none, so that a player reading the tag sees the colours the model saw), and the output
carries the input's primaries, transfer curve and range.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# FFmpeg's AVColorSpace values (libavutil/pixfmt.h) -> the swscale matrix that converts them.
MATRICES = {
    1: "ITU709",
    4: "FCC",
    5: "ITU601",
    6: "ITU601",
    7: "SMPTE240M",
    9: "BT2020",
    10: "BT2020",
}
BT709, SMPTE170M, UNSPECIFIED = 1, 6, 2  # AVColorSpace / AVColorPrimaries / AVColorTransfer
LIMITED, FULL = 1, 2  # AVColorRange


def _is_hd(width: int, height: int) -> bool:
    # What players (mpv, FFmpeg's scale filter users) assume of untagged video.
    return width >= 1280 or height > 576


def to_rgb(frame) -> np.ndarray:
    """RGB pixels of a decoded frame, with the matrix and range it is tagged with; an
    untagged YUV frame is taken as BT.709 when HD, BT.601 (swscale's default) below."""
    untagged = frame.colorspace not in MATRICES and not frame.format.is_rgb
    if untagged and _is_hd(frame.width, frame.height):
        return frame.to_ndarray(format="rgb24", src_colorspace="ITU709")
    return frame.to_ndarray(format="rgb24")


@dataclasses.dataclass(frozen=True)
class OutputColour:
    """The colour tags of an output video and the conversion of RGB frames back to YUV.

    Attributes:
        tags: codec-context attributes (colorspace, color_primaries, color_trc, color_range).
        matrix: the swscale matrix RGB frames are converted to YUV with.
        range: the AVColorRange of that conversion.
    """

    tags: dict
    matrix: str
    range: int

    def apply(self, context) -> None:
        """Tags an encoder's codec context."""
        for name, value in self.tags.items():
            setattr(context, name, value)


def output_colour(video, size) -> OutputColour:
    """The output's colour metadata, from the input stream `video` and the output size.

    The matrix is the input's, else BT.709 for an HD output and BT.601 below; primaries
    and transfer are copied when the input has them; the range is the input's (limited
    when untagged).
    """
    source = video.codec_context
    matrix = source.colorspace
    if matrix not in MATRICES:
        matrix = BT709 if _is_hd(*size) else SMPTE170M
    tags = {"colorspace": matrix}
    if source.color_primaries not in (0, UNSPECIFIED):  # 0: reserved
        tags["color_primaries"] = source.color_primaries
    if source.color_trc not in (0, UNSPECIFIED):
        tags["color_trc"] = source.color_trc
    colour_range = source.color_range or LIMITED
    if source.format is not None and source.format.name.startswith("yuvj"):
        colour_range = FULL  # the JPEG-range pixel formats, whatever the tag says
    tags["color_range"] = colour_range
    return OutputColour(tags, MATRICES[matrix], colour_range)

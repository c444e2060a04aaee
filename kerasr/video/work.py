"""The work folder of a video being upscaled: its manifest, and what `--resume` may keep.

While a video is upscaled, the encoded frames go into a hidden work folder beside the output,
`.<output name>.parts/`: segment files (see `kerasr.video.segments`), each written under a
temporary name and renamed when complete, and a JSON manifest that names the input, the
model and the encoder settings and lists the finished segments (frames, and the time of the
first one). A run with `resume=True` continues an interrupted one from there, but trusts
neither the manifest nor the segments: the manifest must be one kerasr wrote for the same
input and settings (else the run is refused in one line and the folder is left as it is),
and every segment listed is decoded and its frames counted; a missing or damaged one is
upscaled again, and only that one.

A lock file beside the output, `.<output name>.lock`, is held for the whole run, so a second
run writing the same output stops at once instead of deleting the first one's work.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.io import write_text

# A few seconds of video per segment: at most that much is encoded again after a crash,
# and one key frame more per segment costs next to nothing (x264 puts one every 250 frames).
SEGMENT_SECONDS = 10
MANIFEST = "manifest.json"
_VERSION = 2
# Settings an interrupted run must share with the one that continues it, as the CLI names them.
_COMPARED = {"outscale": "--outscale", "codec": "--codec", "crf": "--crf", "fps": "--fps"}
_OPTIONAL = {"outscale"}  # settings that may be null (not given)
_NUMBERS = {"integer", "number"}


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


def lock_file(output: str | Path) -> Path:
    """The lock file beside `output` that the run writing it holds."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


class Manifest:
    """The work folder's manifest: the settings of the run and the segments finished.

    Attributes:
        work: the work folder.
        settings: what a continuing run must match (see `open_work`).
        segments: one `{"frames": n, "start": t}` per segment, in order: its frame count
            and the output time of its first frame, in ticks of `settings["time_base"]`.
        end: `None` while frames remain to be upscaled, then `{"lost": why decoding stopped
            early or None, "until": the end time of the last frame, in ticks}`.
        damaged: indices of listed segments whose file is missing or damaged (to be
            upscaled again; not saved).
    """

    def __init__(self, work: Path, settings: dict, segments=(), end=None):
        self.work, self.settings = work, settings
        self.segments, self.end = list(segments), end
        self.damaged: set[int] = set()

    @property
    def frames(self) -> int:
        """Frames in the segments that are whole."""
        return sum(s["frames"] for i, s in enumerate(self.segments) if i not in self.damaged)

    def segment_path(self, index: int) -> Path:
        return self.work / f"{index:05d}.mp4"

    def set_segment(self, index: int, frames: int, start: int) -> None:
        """Records segment `index` (a new one, or one upscaled again) as finished."""
        entry = {"frames": frames, "start": start}
        if index < len(self.segments):
            self.segments[index] = entry
        else:
            self.segments.append(entry)
        self.damaged.discard(index)
        self.save()

    def finish(self, lost: str | None, until: int) -> None:
        self.end = {"lost": lost, "until": until}
        self.save()

    def save(self) -> None:
        data = {"version": _VERSION, **self.settings, "segments": self.segments, "end": self.end}
        write_text(self.work / MANIFEST, json.dumps(data, indent=1) + "\n")


def run_settings(source: Path, upscaler, model_label: str, plan, **options) -> dict:
    """What a manifest records: the input, the model, the encoder and the segment length.

    `plan` is the `kerasr.video.segments.EncodePlan`; `options` are the `outscale`, `ext`
    and `segment_frames` of the run."""
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
        "time_base": str(plan.time_base),
        "ext": options["ext"],
        "size": list(plan.size),
        "segment_frames": options["segment_frames"]
        or max(1, math.ceil(plan.rate * SEGMENT_SECONDS)),
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


def open_work(output: Path, settings: dict, resume: bool, source_frames: int = 0) -> Manifest:
    """The manifest of `output`'s work folder: the interrupted run's when `resume` (its
    settings must match `settings`; its segments are checked, see `Manifest.damaged`),
    else a new one (an old folder is replaced).

    Args:
        output: the video being written.
        settings: see `run_settings`.
        resume: continue the run whose work folder is there.
        source_frames: the input's frame count when its container states it, else 0.

    Raises:
        KerasrError: `resume` and the interrupted run had other settings, or its manifest
            is not one kerasr wrote (unreadable, edited, from another version).
    """
    work = work_folder(output)
    path = work / MANIFEST
    if resume and path.is_file():
        previous = _read(path, settings, source_frames)
        previous.settings = settings  # the same, but the input may have moved
        _verify(previous)
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


def _read(path: Path, settings: dict, source_frames: int) -> Manifest:
    """The manifest at `path`, once its shape and values are checked."""

    def malformed(why: str) -> KerasrError:
        return KerasrError(
            f"cannot resume: {path} is not a manifest kerasr wrote ({why}); "
            "run without --resume to start over"
        )

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise malformed("unreadable JSON") from None
    if not isinstance(data, dict):
        raise malformed("not a JSON object")
    if data.get("version") != _VERSION:
        raise KerasrError(
            f"cannot resume: {path} was written by another version of kerasr; "
            "run without --resume to start over"
        )
    for key, value in settings.items():
        optional = key in _OPTIONAL and _kind(data.get(key)) in {"null", *_NUMBERS}
        if key not in data or not (optional or _same_shape(data[key], value)):
            raise malformed(f"{key!r} is missing or not of type {_kind(value)}")
    _check(data, settings, path)
    per_segment = settings["segment_frames"]
    segments, end = data.get("segments"), data.get("end", ())
    if not isinstance(segments, list):
        raise malformed("'segments' is not a list")
    previous = None
    for i, segment in enumerate(segments):
        if not (
            isinstance(segment, dict)
            and segment.keys() == {"frames", "start"}
            and all(_kind(v) == "integer" for v in segment.values())
        ):
            raise malformed(f"segment {i} is not {{'frames': integer, 'start': integer}}")
        if not 1 <= segment["frames"] <= per_segment:
            raise malformed(f"segment {i} holds {segment['frames']} frames, not 1 to {per_segment}")
        if previous is not None and segment["start"] <= previous:
            raise malformed(f"segment {i} starts before segment {i - 1}")
        previous = segment["start"]
    listed = sum(s["frames"] for s in segments)
    if source_frames and listed > source_frames:
        raise malformed(f"its segments hold {listed} frames, the input has {source_frames}")
    if end is not None and not (
        isinstance(end, dict)
        and end.keys() == {"lost", "until"}
        and _kind(end["lost"]) in ("null", "string")
        and _kind(end["until"]) == "integer"
        and (previous is None or end["until"] > previous)
    ):
        raise malformed("'end' is not null or {'lost': null or text, 'until': integer}")
    if end is not None and not segments:
        raise malformed("it is finished but lists no segment")
    return Manifest(path.parent, {k: data[k] for k in settings}, segments, end)


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "list", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _same_shape(old, new) -> bool:
    """Whether a value read from a manifest has the JSON shape of the current setting."""
    if {_kind(old), _kind(new)} <= _NUMBERS:
        return True
    if _kind(old) != _kind(new):
        return False
    if isinstance(new, dict):
        return old.keys() == new.keys() and all(_same_shape(old[k], new[k]) for k in new)
    if isinstance(new, list):
        return len(old) == len(new) and all(map(_same_shape, old, new))
    return True


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
    for key in ("time_base", "segment_frames"):  # the same input and --fps give the same
        if previous[key] != current[key]:
            differences.append(f"its {key.replace('_', ' ')} was {previous[key]}")
    if differences:
        raise KerasrError(
            f"cannot resume from {path.parent}: {'; '.join(differences)}; "
            "run the same command, or drop --resume to start over"
        )


def _verify(manifest: Manifest) -> None:
    """Marks the listed segments that are missing, do not decode or do not hold the frames
    the manifest says as damaged; those at the end are dropped from the list (the frames
    after the last whole segment are upscaled anyway). Leftover temporary files of a
    killed run are removed."""
    for leftover in manifest.work.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)
    damaged = {
        i
        for i, segment in enumerate(manifest.segments)
        if not _holds(manifest.segment_path(i), segment["frames"])
    }
    if not damaged:
        return
    warnings.warn(
        f"{manifest.work}: segment file(s) {', '.join(str(i) for i in sorted(damaged))} "
        "missing or damaged; their frames are upscaled again",
        stacklevel=4,
    )
    while manifest.segments and len(manifest.segments) - 1 in damaged:
        damaged.discard(len(manifest.segments) - 1)
        manifest.segments.pop()
    manifest.damaged, manifest.end = damaged, None
    manifest.save()


def _holds(path: Path, frames: int) -> bool:
    """Whether the segment file at `path` opens, decodes, and holds `frames` frames."""
    import av

    if not path.is_file():
        return False
    try:
        with av.open(str(path)) as segment:
            stream = segment.streams.video[0]
            stream.thread_type = "AUTO"
            return sum(1 for _ in segment.decode(stream)) == frames
    except (av.error.FFmpegError, IndexError, UnicodeDecodeError):
        return False

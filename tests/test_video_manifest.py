"""`--resume` trusts neither the manifest nor the segments: an edited manifest is refused in
one line, and a missing or damaged segment is upscaled again, and only that one."""

import json
from pathlib import Path

import numpy as np
import pytest
from video_helpers import (
    FRAMES,
    Counting,
    frame_times,
    make_clip,
    parts,
    run,
    save_compact,
    stop_after,
)

import kerasr.upscaling.video
from kerasr.errors import KerasrError
from kerasr.upscaling.video import upscale_video
from kerasr.video.probe import read_frames


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> Path:
    return save_compact(tmp_path_factory.mktemp("video-model") / "compact.keras")


def interrupted(tmp_path, compact, after: int, segment_frames=3) -> tuple[Path, Path]:
    """A clip and the output of a run of it stopped after `after` frames (segments of
    `segment_frames`; None: the CLI's, longer than the clip)."""
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    stop = stop_after(after)
    with pytest.raises(KeyboardInterrupt):
        upscale_video(clip, out, Counting(compact), segment_frames=segment_frames, progress=stop)
    return clip, out


def edit(out: Path, **changes) -> None:
    path = parts(out) / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize(
    "segments, message",
    [
        # 4 segments listed where 3 exist, more frames than the input has
        ([{"frames": 3, "start": 1024 * 3 * i} for i in range(4)], "the input has 10"),
        ([{"frames": 10**12, "start": 0}], "segment 0 holds 1000000000000 frames, not 1 to 120"),
        ("abc", "'segments' is not a list"),
        ([3, 3, 1], "segment 0 is not {'frames': integer, 'start': integer}"),
    ],
    ids=["more-than-input", "huge", "text", "counts"],
)
def test_an_edited_manifest_is_one_line_and_nothing_is_lost(tmp_path, compact, segments, message):
    clip, out = interrupted(tmp_path, compact, after=7, segment_frames=None)
    edit(out, segments=segments)
    before = sorted(p.name for p in parts(out).iterdir())
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--resume")
    assert result.exit_code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot resume: "), text
    assert str(parts(out) / "manifest.json") in text and message in text, text
    assert sorted(p.name for p in parts(out).iterdir()) == before and not out.exists()


def test_manifest_of_other_settings_or_version_is_refused(tmp_path, compact):
    clip, out = interrupted(tmp_path, compact, after=4)
    for changes, message in (
        ({"version": 1}, "written by another version of kerasr"),
        ({"crf": "18"}, "'crf' is missing or not of type integer"),
        ({"end": {"lost": None}}, "'end' is not null or"),
        ({"segments": [{"frames": 3, "start": 5}, {"frames": 1, "start": 5}]}, "starts before"),
    ):
        good = (parts(out) / "manifest.json").read_text()
        edit(out, **changes)
        with pytest.raises(KerasrError, match=message):
            upscale_video(clip, out, Counting(compact), segment_frames=3, resume=True)
        (parts(out) / "manifest.json").write_text(good)
    upscaler = Counting(compact)
    upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == FRAMES - 4 and len(read_frames(out)) == FRAMES


def stopped(*args):
    raise KeyboardInterrupt


@pytest.mark.parametrize("finished", [False, True], ids=["interrupted", "joining"])
def test_a_damaged_segment_is_upscaled_again_and_only_it(tmp_path, compact, monkeypatch, finished):
    clip = make_clip(tmp_path / "clip.mp4")
    whole = upscale_video(clip, tmp_path / "whole.mp4", Counting(compact), segment_frames=3)
    out = tmp_path / "out.mp4"
    if finished:  # every frame is in segments; stopped while joining them
        monkeypatch.setattr(kerasr.upscaling.video, "join", stopped)
        with pytest.raises(KeyboardInterrupt):
            upscale_video(clip, out, Counting(compact), segment_frames=3)
        monkeypatch.undo()
    else:
        with pytest.raises(KeyboardInterrupt):
            upscale_video(clip, out, Counting(compact), segment_frames=3, progress=stop_after(7))
    segment = parts(out) / "00001.mp4"  # frames 3 to 5, cut in half
    segment.write_bytes(segment.read_bytes()[: segment.stat().st_size // 2])

    upscaler = Counting(compact)
    with pytest.warns(UserWarning, match="segment file.s. 1 missing or damaged"):
        result = upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == 3 + (0 if finished else FRAMES - 7)
    assert result.frames == FRAMES and result.lost is None and not parts(out).exists()
    assert frame_times(out) == frame_times(whole.output)
    for got, expected in zip(read_frames(out), read_frames(whole.output), strict=True):
        assert np.abs(got.astype(np.float32) - expected).mean() < 2.5


def test_a_segment_holding_fewer_frames_than_listed_is_redone(tmp_path, compact):
    """The last segment listed holds 1 frame where the manifest says 3 (its file replaced):
    the frames from its first on are upscaled again; the input's frame count is respected."""
    clip, out = interrupted(tmp_path, compact, after=7)
    manifest = json.loads((parts(out) / "manifest.json").read_text())
    manifest["segments"][2]["frames"] = 3
    edit(out, segments=manifest["segments"])
    upscaler = Counting(compact)
    with pytest.warns(UserWarning, match="segment file.s. 2 missing or damaged"):
        result = upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == FRAMES - 6
    assert result.frames == len(read_frames(out)) == FRAMES

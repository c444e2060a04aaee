"""What a video run refuses, in one line and before any work: a second run writing the same
output, an output name that is a folder, a video among other inputs, frames too large; and a
full disk, which keeps the finished segments for `--resume`."""

import errno
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from video_helpers import FRAMES, Counting, make_clip, parts, run, save_compact

import kerasr.upscaling.video
import kerasr.video.segments
from kerasr.errors import KerasrError
from kerasr.upscaling.video import upscale_video
from kerasr.video.probe import read_frames


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> Path:
    return save_compact(tmp_path_factory.mktemp("video-model") / "compact.keras")


def one_error_line(result, text: str) -> str:
    assert result.exit_code == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


def test_a_second_run_to_the_same_output_stops_in_one_line(tmp_path, compact):
    first_clip = make_clip(tmp_path / "a.mp4")
    second_clip = make_clip(tmp_path / "b.mp4", audio=False)
    out = tmp_path / "x.mp4"
    holding, release, results = threading.Event(), threading.Event(), []

    def hold(done, total):  # the first run waits, mid-video, until the second one is done
        if done == 3:
            holding.set()
            release.wait(120)

    def first():
        results.append(upscale_video(first_clip, out, Counting(compact), progress=hold))

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(120), "the first run did not start"
        result, text = run("upscale", second_clip, "-m", compact, "-o", out, "--overwrite")
        line = one_error_line(result, text)
        assert f"another kerasr run is writing {out}" in line
        assert parts(out).is_dir() and not out.exists()  # the first run's work is untouched
    finally:
        release.set()
        thread.join(120)
    assert results and results[0].frames == len(read_frames(out)) == FRAMES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "x.mp4"]


def test_a_killed_run_leaves_no_lock_that_blocks(tmp_path, compact, started):
    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    out = tmp_path / "x.mp4"
    lock = tmp_path / ".x.mp4.lock"
    hold = (
        "import sys, time; from kerasr.io import exclusive; "
        "lock = exclusive(sys.argv[1], 'busy'); lock.__enter__(); print('held', flush=True); "
        "time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE)
    started.append(holder)
    assert holder.stdout.readline().strip() == b"held"
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert "another kerasr run is writing" in one_error_line(result, text)
    holder.kill()
    holder.wait()
    assert lock.exists()  # left by the killed run, but no longer locked
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 0, text
    assert not lock.exists() and len(read_frames(out)) == FRAMES


def full_disk_after(calls: int, real):
    """`real` that raises the OS's "no space left on device" from call `calls + 1` on."""
    made = []

    def call(*args):
        made.append(1)
        if len(made) > calls:
            raise OSError(errno.ENOSPC, "No space left on device", "segment")
        return real(*args)

    return call


def test_full_disk_while_encoding_keeps_the_finished_segments(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    # Segments of 3 frames: 3 frames and the encoder's flush fill the first one.
    mux = full_disk_after(4, kerasr.video.segments._mux_in_order)
    monkeypatch.setattr(kerasr.video.segments, "_mux_in_order", mux)
    with pytest.raises(KerasrError) as error:
        upscale_video(clip, out, Counting(compact), segment_frames=3)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{parts(out)}: no space left")
    assert "3 frames are kept there" in message and "MB more are needed" in message
    assert "--resume" in message
    # No temporary file anywhere: the finished segment and the manifest only.
    assert sorted(p.name for p in parts(out).iterdir()) == ["00000.mp4", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.mp4.parts", "clip.mp4"]

    result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "cli.mp4")
    line = one_error_line(result, text)
    assert "no space left" in line and "0 frames are kept" in line
    monkeypatch.undo()
    upscaler = Counting(compact)
    upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == FRAMES - 3 and len(read_frames(out)) == FRAMES


def test_full_disk_while_joining_keeps_the_segments(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    real = kerasr.video.segments._merge

    def merging(*streams):  # the disk fills up after a few packets of the output
        for i, item in enumerate(real(*streams)):
            if i == 4:
                raise OSError(errno.ENOSPC, "No space left on device", "output")
            yield item

    monkeypatch.setattr(kerasr.video.segments, "_merge", merging)
    with pytest.raises(KerasrError) as error:
        upscale_video(clip, out, Counting(compact), segment_frames=3)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{out}: no space left")
    assert "MB beside it" in message and "--resume" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.mp4.parts", "clip.mp4"]
    monkeypatch.undo()
    upscaler = Counting(compact)
    upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == 0 and len(read_frames(out)) == FRAMES  # only joined


def test_an_output_name_that_is_a_folder_is_refused_before_any_work(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    (tmp_path / "x.mp4").mkdir()
    calls = []
    real = kerasr.upscaling.video._upscale_frames
    monkeypatch.setattr(
        kerasr.upscaling.video, "_upscale_frames", lambda *a: calls.append(1) or real(*a)
    )
    result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "x.mp4", "--overwrite")
    assert f"{tmp_path / 'x.mp4'} is a folder" in one_error_line(result, text)
    assert not calls and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "x.mp4"]


def test_a_video_goes_alone(tmp_path, compact, photo):
    from kerasr.images import write_image

    write_image(tmp_path / "a.png", photo[:8, :8])
    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    for inputs in ([clip, make_clip(tmp_path / "b.mkv", audio=False)], [tmp_path / "a.png", clip]):
        result, text = run("upscale", *inputs, "-m", compact, "-o", tmp_path / "out")
        line = one_error_line(result, text)
        assert line == f"error: {clip} is a video; a video is upscaled alone, one per command"
        assert not (tmp_path / "out").exists()


def test_frames_too_large_are_refused_before_anything_is_created(tmp_path, compact, monkeypatch):
    from PIL import Image

    clip = make_clip(tmp_path / "clip.mp4")
    # The limit made small, so that this clip's x4 frames (96x64) are over it, as an
    # 8192x4320 video's are over the real one.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "big.mp4")
    assert "the output would be 96x64 pixels, over the limit" in one_error_line(result, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]

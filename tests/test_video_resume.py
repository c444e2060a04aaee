"""Interrupted videos: nothing at the output name, and `--resume` continues from the
finished segments to the output an uninterrupted run writes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from video_helpers import (
    FPS,
    FRAMES,
    HEIGHT,
    WIDTH,
    Counting,
    av,
    make_clip,
    run,
    save_compact,
    stop_after,
)

import kerasr.upscaling.video
from kerasr.upscaling.video import upscale_video
from kerasr.video.probe import read_frames
from kerasr.video.work import Interrupted, work_folder


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> Path:
    return save_compact(tmp_path_factory.mktemp("video-model") / "compact.keras")


def decoded(path: Path):
    """Frame times (seconds), frames and the number of audio packets of a video."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        times = [float(f.pts * f.time_base) for f in frames]
        pixels = [f.to_ndarray(format="rgb24") for f in frames]
    with av.open(str(path)) as container:
        audio = [p for p in container.demux(audio=0) if p.size] if container.streams.audio else []
    return times, pixels, len(audio)


WEBM = pytest.param(
    "out.webm", "libvpx-vp9", marks=pytest.mark.filterwarnings("ignore:audio stream 1")
)  # WebM takes no AAC: the clip's audio is left out, with a warning


@pytest.mark.parametrize(
    "name, codec",
    [
        ("out.mp4", "libx264"),
        ("out.mkv", "libx264"),
        ("out.mov", "libx264"),
        WEBM,
    ],
)
def test_resumed_run_writes_what_an_uninterrupted_run_writes(tmp_path, compact, name, codec):
    clip = make_clip(tmp_path / "clip.mp4")
    # The default quality: x264 reorders frames (B-frames), as it does not at crf 0.
    options = {"codec": codec, "segment_frames": 3}
    whole = upscale_video(clip, tmp_path / "whole" / name, Counting(compact), **options)

    output = tmp_path / name
    with pytest.raises(Interrupted) as stopped:
        upscale_video(clip, output, Counting(compact), progress=stop_after(7), **options)
    # The frames upscaled before the interruption close the segment in progress.
    assert stopped.value.frames == 7 and stopped.value.work == work_folder(output)
    assert not output.exists()
    manifest = json.loads((work_folder(output) / "manifest.json").read_text())
    assert [s["frames"] for s in manifest["segments"]] == [3, 3, 1] and manifest["end"] is None

    upscaler = Counting(compact)
    resumed = upscale_video(clip, output, upscaler, resume=True, **options)
    assert upscaler.frames == FRAMES - 7  # the kept frames are not upscaled again
    assert not work_folder(output).exists()
    assert (resumed.frames, resumed.size, resumed.fps, resumed.audio_streams) == (
        whole.frames,
        whole.size,
        whole.fps,
        whole.audio_streams,
    )
    times, frames, audio = decoded(output)
    whole_times, whole_frames, whole_audio = decoded(whole.output)
    # Played back: every frame at its time, 1/FPS apart, as the uninterrupted output
    # (Matroska starts the video after the AAC priming samples, which start at 0).
    assert len(frames) == FRAMES and times == whole_times
    np.testing.assert_allclose(np.subtract(times, times[0]), np.arange(FRAMES) / FPS, atol=1e-3)
    assert times[0] == 0 or name == "out.mkv"
    assert audio == whole_audio and (audio > 0) == (name != "out.webm")  # webm: no AAC
    assert frames[0].shape == (HEIGHT * 4, WIDTH * 4, 3)
    for got, reference in zip(frames, whole_frames, strict=True):
        # Segments of 3, 3, 1, 3 frames against 3, 3, 3, 1, encoded apart at crf 18:
        # within its loss (measured: at most 1.75 on these 96x64 frames).
        assert np.abs(got.astype(np.float32) - reference).mean() < 2.5


def test_interrupted_while_joining_resumes_without_upscaling(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    output = tmp_path / "out.mp4"
    real = kerasr.upscaling.video.join

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(kerasr.upscaling.video, "join", interrupted)
    with pytest.raises(Interrupted) as stopped:
        upscale_video(clip, output, Counting(compact), segment_frames=4)
    assert stopped.value.frames == FRAMES and not output.exists()
    monkeypatch.setattr(kerasr.upscaling.video, "join", real)
    upscaler = Counting(compact)
    result = upscale_video(clip, output, upscaler, segment_frames=4, resume=True)
    assert upscaler.frames == 0 and result.frames == len(read_frames(output)) == FRAMES


def interrupt_cli(monkeypatch, after: int):
    """Makes the model raise KeyboardInterrupt (as Ctrl-C) on call `after + 1`; returns
    the undo."""
    calls = []
    real = kerasr.upscaling.video._upscale_frames

    def interrupted(frames, *args):
        calls.append(1)
        if len(calls) == after + 1:
            raise KeyboardInterrupt
        return real(frames, *args)

    monkeypatch.setattr(kerasr.upscaling.video, "_upscale_frames", interrupted)
    return lambda: monkeypatch.setattr(kerasr.upscaling.video, "_upscale_frames", real)


def test_cli_interrupt_says_how_to_resume_and_resume_finishes(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "big.mp4"
    undo = interrupt_cli(monkeypatch, after=4)
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 130, text
    assert "--resume continues from frame 4" in text and "Traceback" not in text
    assert not out.exists() and work_folder(out).is_dir()
    undo()
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--resume")
    assert result.exit_code == 0, text
    assert "10 frames 96x64 at 12 fps, 1 audio stream(s) copied" in text
    assert len(read_frames(out)) == FRAMES and not work_folder(out).exists()


def test_resume_with_other_settings_is_one_line_and_exit_2(tmp_path, compact, monkeypatch):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "big.mp4"
    other = save_compact(tmp_path / "other.keras", seed=1)
    undo = interrupt_cli(monkeypatch, after=2)
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 130, text
    undo()
    for args, message in (
        (["-m", compact, "--crf", 20], "--crf was 18, now 20"),
        (["-m", compact, "--outscale", 2], "--outscale was not given, now 2.0"),
        (["-m", other], "the model differs (it used"),
    ):
        result, text = run("upscale", clip, "-o", out, "--resume", *args)
        assert result.exit_code == 2, text
        lines = text.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot resume") and message in text
    make_clip(clip, audio=False)  # the input changed
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--resume")
    assert result.exit_code == 2 and "the input is not the file it read" in text, text
    assert work_folder(out).is_dir() and not out.exists()  # nothing lost by a refusal


def test_resume_without_work_folder_starts_fresh_and_a_plain_run_starts_over(
    tmp_path, compact, monkeypatch
):
    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    out = tmp_path / "big.mp4"
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--resume")
    assert result.exit_code == 0, text
    assert "warning: --resume: no interrupted run of big.mp4 to continue" in text
    assert len(read_frames(out)) == FRAMES
    out.unlink()
    undo = interrupt_cli(monkeypatch, after=3)
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 130, text
    undo()
    result, text = run("upscale", clip, "-m", compact, "-o", out)  # no --resume
    assert result.exit_code == 0 and "starting over" in text, text
    assert len(read_frames(out)) == FRAMES and not work_folder(out).exists()


def test_resume_is_for_videos(tmp_path, photo):
    from kerasr.images import write_image

    write_image(tmp_path / "a.png", photo[:8, :8])
    result, text = run("upscale", tmp_path / "a.png", "-o", tmp_path / "x", "--resume")
    assert result.exit_code == 2 and "--resume continues an interrupted video" in text


# Runs `kerasr` with a model that, at its fifth call, says so in a file and waits for the
# signal the test sends. It sets Python's Ctrl-C handler itself: started where SIGINT is
# ignored (the tests run as a script's background job), it would inherit that and never stop.
WAIT_FOR_SIGNAL = """
import signal, sys, threading
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
import kerasr.upscaling.video
from kerasr.cli import main
real, calls, ready = kerasr.upscaling.video._upscale_frames, [], Path(sys.argv.pop(1))
def upscale(*args):
    calls.append(1)
    if len(calls) == 5:
        ready.write_text("waiting")
        threading.Event().wait(600)
    return real(*args)
kerasr.upscaling.video._upscale_frames = upscale
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_run_resumes_to_the_uninterrupted_output(tmp_path, compact, signum, started):
    clip = make_clip(tmp_path / "clip.mp4")
    whole = tmp_path / "whole.mp4"
    assert run("upscale", clip, "-m", compact, "-o", whole)[0].exit_code == 0
    out, ready = tmp_path / "out.mp4", tmp_path / "ready"
    command = [sys.executable, "-c", WAIT_FOR_SIGNAL, ready, "upscale", clip, "-m", compact]
    process = subprocess.Popen(
        [str(a) for a in [*command, "-o", out]], stderr=subprocess.PIPE, text=True
    )
    started.append(process)
    deadline = time.monotonic() + 300  # TensorFlow's start-up on a loaded machine
    while not ready.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ready.exists(), process.stderr.read() if process.poll() is not None else "no start"
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume continues from frame 4" in err and "Traceback" not in err
    assert not out.exists() and work_folder(out).is_dir()

    result, text = run("upscale", clip, "-m", compact, "-o", out, "--resume")
    assert result.exit_code == 0, text
    times, frames, audio = decoded(out)
    whole_times, whole_frames, whole_audio = decoded(whole)
    assert times == whole_times and audio == whole_audio and len(frames) == FRAMES
    for got, reference in zip(frames, whole_frames, strict=True):
        assert np.abs(got.astype(np.float32) - reference).mean() < 2.5  # as above


def test_sigterm_stops_a_run_as_ctrl_c():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), kerasr.upscaling.video._sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs as the call returns
        pytest.fail("SIGTERM did not stop the run")
    assert signal.getsignal(signal.SIGTERM) == before


def test_segments_whose_encoders_reorder_differently_join_in_order(tmp_path):
    """A segment of one frame (the end of an interrupted run) has no B-frame delay: its
    decoding time is its display time, while the next segment's run two frames behind.
    Joined, the decoding times still rise and the frames play in order."""
    from fractions import Fraction

    from kerasr.video.colour import OutputColour
    from kerasr.video.segments import EncodePlan, join
    from kerasr.video.work import Manifest

    colour = OutputColour({}, "ITU601", 1)
    plan = EncodePlan("libx264", Fraction(FPS), 18, (32, 16), colour, Fraction(1, FPS))
    settings = {"time_base": str(plan.time_base), "fps": str(plan.rate)}
    manifest = Manifest(tmp_path / "parts", settings, end={"lost": None, "until": 6})
    manifest.work.mkdir()
    grey = np.arange(6) * 40
    for index, shades in enumerate([grey[:1], grey[1:]]):  # segments of 1 and 5 frames
        with av.open(str(manifest.segment_path(index)), "w") as container:
            stream = plan.add_stream(container)
            packets = []
            for pts, shade in enumerate(shades):
                frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), shade, np.uint8), "rgb24")
                frame.pts = pts
                packets += stream.encode(frame.reformat(format="yuv420p"))
            packets += stream.encode(None)
            # x264: no B-frame delay for one frame, two frames' for five.
            assert packets[0].dts == (0 if index == 0 else -2)
            container.mux(packets)
        manifest.segments.append({"frames": len(shades), "start": index})
    source = make_clip(tmp_path / "clip.mp4", audio=False)
    join(manifest, source, tmp_path / "joined.mp4", "mp4", 0)
    times, frames, _ = decoded(tmp_path / "joined.mp4")
    np.testing.assert_allclose(times, np.arange(6) / FPS, atol=1e-3)
    assert [round(f.mean()) for f in frames] == pytest.approx(grey, abs=2)


def test_made_up_decoding_times_of_a_segment_are_repaired():
    """x265 gives the packet of a one-frame segment a made-up decoding time (seen: -9.6e15,
    which the MP4 muxer refuses); real reordering, even across a long pause, is kept."""
    from types import SimpleNamespace

    from kerasr.video.segments import _mux_in_order

    muxed = []
    writer = SimpleNamespace(mux=lambda packet: muxed.append((packet.pts, packet.dts)))
    made_up = [SimpleNamespace(pts=0, dts=-9570295239278626)]
    assert _mux_in_order(writer, made_up, None, fed=0) == 0 and muxed == [(0, 0)]
    muxed.clear()
    reordered = [(0, -2100), (100, -2000), (2100, 0)]  # x264: frames at 0, 0.1 and 2.1 s
    packets = [SimpleNamespace(pts=pts, dts=dts) for pts, dts in reordered]
    assert _mux_in_order(writer, packets, None, fed=2100) == 0 and muxed == reordered

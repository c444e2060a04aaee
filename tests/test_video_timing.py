"""Each frame keeps its time: variable frame rates stay in sync with the copied audio, in one
run and across an interrupted and resumed one; `--fps` gives a constant rate in a sane range."""

from pathlib import Path

import numpy as np
import pytest
from video_helpers import (
    Counting,
    audio_span,
    frame_times,
    make_timed_clip,
    parts,
    run,
    save_compact,
    stop_after,
)

from kerasr.upscaling.video import upscale_video

# A pause of two seconds after half a second of video; then frames alternating 150 and 50 ms.
GAP = [0, 0.1, 0.2, 0.3, 0.4, 2.4, 2.5, 2.6, 2.7, 2.8]
ALTERNATING = [0, 0.15, 0.2, 0.35, 0.4, 0.55, 0.6, 0.75, 0.8, 0.95]


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> Path:
    return save_compact(tmp_path_factory.mktemp("video-model") / "compact.keras")


@pytest.mark.parametrize("times", [GAP, ALTERNATING], ids=["gap", "alternating"])
@pytest.mark.parametrize("name", ["out.mkv", "out.mp4"])
def test_variable_frame_rate_keeps_each_frame_time_and_the_audio(tmp_path, compact, times, name):
    clip = make_timed_clip(tmp_path / "vfr.mkv", times, audio_seconds=3, fmt="matroska")
    out = tmp_path / name
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 0, text  # nothing reported lost
    assert "10 frames 128x128" in text and "error" not in text
    got, tick = frame_times(out)
    assert len(got) == len(times)
    np.testing.assert_allclose(got, times, rtol=0, atol=tick)
    # The audio is copied as it was: where it starts and ends, so the picture stays in sync.
    np.testing.assert_allclose(audio_span(out), audio_span(clip), rtol=0, atol=1e-3)


def test_variable_frame_rate_survives_an_interruption_and_resume(tmp_path, compact):
    clip = make_timed_clip(tmp_path / "vfr.mkv", GAP, audio_seconds=3, fmt="matroska")
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        upscale_video(clip, out, Counting(compact), segment_frames=3, progress=stop_after(4))
    assert parts(out).is_dir() and not out.exists()
    upscaler = Counting(compact)
    result = upscale_video(clip, out, upscaler, segment_frames=3, resume=True)
    assert upscaler.frames == len(GAP) - 4 and result.lost is None
    got, tick = frame_times(out)  # segments of 3, 1, 3, 3 frames joined by remuxing
    np.testing.assert_allclose(got, GAP, rtol=0, atol=tick)
    np.testing.assert_allclose(audio_span(out), audio_span(clip), rtol=0, atol=1e-3)
    assert result.fps == pytest.approx(len(GAP) / 2.9)  # the last frame lasts 0.1 s


def test_fps_gives_a_constant_rate_within_a_sane_range(tmp_path, compact):
    clip = make_timed_clip(tmp_path / "vfr.mkv", GAP, fmt="matroska")
    out = tmp_path / "out.mp4"
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--fps", 20)
    assert result.exit_code == 0, text
    got, tick = frame_times(out)
    np.testing.assert_allclose(got, np.arange(len(GAP)) / 20, rtol=0, atol=tick)
    for fps, shown in (("1e9", "1e+09"), ("0", "0"), ("-5", "-5"), ("nan", "nan")):
        result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "x.mp4", "--fps", fps)
        assert result.exit_code == 2, text
        assert text.strip() == f"error: --fps must be from 0.01 to 1000. Received: {shown}"
        assert not (tmp_path / "x.mp4").exists() and not parts(tmp_path / "x.mp4").exists()

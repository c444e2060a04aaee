"""`kerasr upscale clip.mp4`: frames through the model, frame rate and audio kept."""

from pathlib import Path

import keras
import numpy as np
import pytest
from video_helpers import FPS, FRAMES, HEIGHT, WIDTH, av, make_clip, run, save_compact

from kerasr.upscaling.inference import Upscaler
from kerasr.video.probe import frame_rate, read_frames


@pytest.fixture(scope="module")
def compact(tmp_path_factory) -> Path:
    return save_compact(tmp_path_factory.mktemp("video-model") / "compact.keras")


def test_video_end_to_end_keeps_frames_rate_and_audio(tmp_path, compact):
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "big.mp4"
    # Two frames per model call: the batched path, checked against frames one by one.
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--crf", 0, "--batch-size", 2)
    assert result.exit_code == 0, text
    assert "10 frames 96x64 at 12 fps, 1 audio stream(s) copied" in text
    with av.open(str(out)) as container:
        kinds = sorted(s.type for s in container.streams)
        audio = container.streams.audio[0].codec_context.name
    assert kinds == ["audio", "video"] and audio == "aac"
    assert frame_rate(out) == FPS
    frames, sources = read_frames(out), read_frames(clip)
    assert len(frames) == len(sources) == FRAMES
    upscaler = Upscaler(keras.saving.load_model(compact), precision="auto")
    for got, source in zip(frames, sources, strict=True):
        expected = upscaler.upscale(source)
        assert got.shape == expected.shape == (64, 96, 3)
        # yuv420p (chroma at half resolution) is the only loss at crf 0.
        assert np.abs(got.astype(np.float32) - expected).mean() < 2.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_video_outscale_codec_and_container(tmp_path, compact):
    clip = make_clip(tmp_path / "clip.mkv", audio=False, fmt="matroska")
    out = tmp_path / "x2.mkv"
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--outscale", 2)
    assert result.exit_code == 0, text
    frames = read_frames(out)
    assert len(frames) == FRAMES and frames[0].shape == (32, 48, 3)
    result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "v.webm")
    assert result.exit_code == 0, text  # VP9 is the default codec of a .webm
    with av.open(str(tmp_path / "v.webm")) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
    result, text = run(
        "upscale", clip, "-m", compact, "-o", tmp_path / "x.webm", "--codec", "libx264"
    )
    assert result.exit_code == 2 and "needs --codec libvpx-vp9" in text
    result, text = run(
        "upscale", clip, "-m", compact, "-o", tmp_path / "x.mov", "--codec", "libvpx-vp9"
    )
    assert result.exit_code == 2 and "a .mov video takes --codec libx264 or libx265" in text
    # --ext chooses the container of an output named after the input.
    result, text = run("upscale", clip, "-m", compact, "-o", tmp_path / "folder", "--ext", "mov")
    assert result.exit_code == 0, text
    with av.open(str(tmp_path / "folder" / "clip_out.mov")) as container:
        assert "mov" in container.format.name and len(list(container.decode(video=0))) == FRAMES
    for args, message in (
        (["--ext", "png"], "image format"),
        (["-o", tmp_path / "a.mkv", "--ext", "mp4"], "disagrees"),
    ):
        result, text = run("upscale", clip, "-m", compact, *args)
        assert result.exit_code == 2 and message in text, text
    result, text = run("upscale", clip, "-m", compact, "-o", out)  # exists
    assert result.exit_code == 2 and "--overwrite" in text


def test_bad_videos_are_one_line(tmp_path, compact):
    (tmp_path / "text.mp4").write_text("not a video at all\n")
    result, text = run("upscale", tmp_path / "text.mp4", "-m", compact, "-o", tmp_path / "a.mp4")
    assert result.exit_code == 2 and "not a video" in text and "Traceback" not in text

    with av.open(str(tmp_path / "sound.mka"), "w", format="matroska") as container:
        sound = container.add_stream("aac", rate=8000)
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        chunk.sample_rate, chunk.pts = 8000, 0
        container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    (tmp_path / "sound.mkv").write_bytes((tmp_path / "sound.mka").read_bytes())
    result, text = run("upscale", tmp_path / "sound.mkv", "-m", compact, "-o", tmp_path / "b.mp4")
    assert result.exit_code == 2 and "no video stream" in text
    assert not (tmp_path / "b.mp4").exists()


def test_truncated_video_upscales_what_decodes_and_says_what_was_lost(tmp_path, compact):
    clip = make_clip(tmp_path / "clip.mkv", audio=False, fmt="matroska")
    data = clip.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "cut_out.mp4"
    result, text = run("upscale", tmp_path / "cut.mkv", "-m", compact, "-o", out)
    assert result.exit_code == 2, text
    assert "the frames before it were written" in text
    kept = read_frames(out)
    assert 0 < len(kept) < FRAMES


def test_interrupted_run_leaves_nothing_at_the_output_name(tmp_path, compact, monkeypatch):
    import kerasr.upscaling.video

    clip = make_clip(tmp_path / "clip.mp4")
    upscaler = Upscaler(keras.saving.load_model(compact), precision="float32")
    calls = []
    real = kerasr.upscaling.video._upscale_frames

    def interrupted(frames, *args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(frames, *args)

    monkeypatch.setattr(kerasr.upscaling.video, "_upscale_frames", interrupted)
    with pytest.raises(KeyboardInterrupt) as stopped:
        kerasr.upscaling.video.upscale_video(clip, tmp_path / "out.mp4", upscaler)
    # Only the work folder a rerun with resume continues from: the three frames upscaled
    # before the interruption, as a closed segment, and its manifest.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.mp4.parts", "clip.mp4"]
    assert stopped.value.frames == 3
    work = sorted(p.name for p in (tmp_path / ".out.mp4.parts").iterdir())
    assert work == ["00000.mp4", "manifest.json"]


def test_rotation_is_kept(tmp_path, compact):
    clip = tmp_path / "portrait.mp4"
    with av.open(str(clip), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.set_display_rotation(90)  # a phone held upright
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    out = tmp_path / "portrait_x4.mp4"
    result, text = run("upscale", clip, "-m", compact, "-o", out)
    assert result.exit_code == 0, text
    with av.open(str(out)) as container:
        first = next(container.decode(video=0))
    assert first.rotation == 90 and (first.width, first.height) == (WIDTH * 4, HEIGHT * 4)


def test_animated_gif_is_a_video_and_a_still_gif_an_image(tmp_path, compact):
    from PIL import Image

    frames = [Image.new("RGB", (WIDTH, HEIGHT), (40 * i, 90, 200 - 40 * i)) for i in range(4)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    result, text = run("upscale", tmp_path / "anim.gif", "-m", compact, "-o", tmp_path)
    assert result.exit_code == 0, text
    assert "4 frames 96x64 at 10 fps" in text
    got = read_frames(tmp_path / "anim_out.mp4")
    assert len(got) == 4 and np.abs(got[3][8, 8].astype(int) - (120, 90, 80)).max() < 8
    result, text = run("upscale", tmp_path / "still.gif", "-m", compact, "-o", tmp_path)
    assert result.exit_code == 0 and (tmp_path / "still_out.png").is_file(), text


@pytest.mark.parametrize("tag", ["bt709", "untagged"])
def test_colour_metadata_is_kept_and_frames_use_its_matrix(tmp_path, compact, tag):
    """An HD-sized clip: BT.709 whether tagged or not (untagged HD is taken as BT.709), a
    saturated colour survives the round trip, and the output says which matrix it used."""
    from av.video.reformatter import Colorspace

    clip = tmp_path / "hd.mkv"
    colour = np.array([200, 40, 90], np.uint8)
    with av.open(str(clip), "w", format="matroska") as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "0"})
        video.width, video.height, video.pix_fmt = 320, 592, "yuv420p"  # taller than 576: HD
        if tag == "bt709":
            context = video.codec_context
            context.colorspace = context.color_primaries = context.color_trc = 1
            context.color_range = 1
        for i in range(2):
            rgb = av.VideoFrame.from_ndarray(np.broadcast_to(colour, (592, 320, 3)).copy(), "rgb24")
            frame = rgb.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    out = tmp_path / "hd_out.mkv"  # HD too: its matrix is BT.709 when the input has none
    result, text = run("upscale", clip, "-m", compact, "-o", out, "--outscale", 1)
    assert result.exit_code == 0, text
    with av.open(str(out)) as container:
        context = container.streams.video[0].codec_context
        tags = (context.colorspace, context.color_primaries, context.color_trc)
    assert tags == ((1, 1, 1) if tag == "bt709" else (1, 2, 2))  # 2: unspecified
    pixel = read_frames(out)[0][40, 40].astype(int)
    assert np.abs(pixel - colour).max() <= 3


def test_frames_batched_for_the_model_match_one_by_one(compact):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8) for _ in range(5)]
    model = keras.saving.load_model(compact)
    batched = Upscaler(model, batch_size=2, precision="float32")
    single = Upscaler(model, batch_size=1, precision="float32")
    for got, frame in zip(batched.upscale_frames(frames, outscale=3), frames, strict=True):
        expected = single.upscale(frame, outscale=3)
        assert got.shape == expected.shape == (48, 72, 3)
        assert np.abs(got.astype(int) - expected).max() <= 1

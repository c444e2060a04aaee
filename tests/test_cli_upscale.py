"""`kerasr upscale` end to end, with a tiny model file so each call takes a moment."""

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.images import read_image

runner = CliRunner()


def upscale(*args):
    return runner.invoke(app, ["upscale", *map(str, args), "--precision", "float32"])


@pytest.fixture
def images(tmp_path, photo):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo[:24, :32]).save(folder / "rgb.png")
    Image.fromarray(photo[:24, :32]).save(folder / "photo.jpg", quality=95)
    Image.fromarray(photo[:16, :16, 0]).save(folder / "grey.png")
    rgba = np.concatenate([photo[:16, :20], np.full((16, 20, 1), 128, np.uint8)], -1)
    Image.fromarray(rgba).save(folder / "alpha.png")
    return folder


def test_folder_of_images(images, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    result = upscale(images, "-o", out, "-m", tiny_model_file)
    assert result.exit_code == 0, result.output
    assert "4 written, 0 failed" in result.output
    assert read_image(out / "rgb_out.png").shape == (96, 128, 3)
    assert read_image(out / "photo_out.jpg").shape == (96, 128, 3)  # auto keeps the format
    assert read_image(out / "grey_out.png").shape == (64, 64, 1)
    assert read_image(out / "alpha_out.png").shape == (64, 80, 4)


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path, photo, tiny_model_file):
    import tensorflow as tf

    deep = photo[:16, :16].astype(np.uint16) * 257
    (tmp_path / "deep.png").write_bytes(tf.io.encode_png(deep).numpy())
    result = upscale(tmp_path / "deep.png", "-o", tmp_path / "big.png", "-m", tiny_model_file)
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "big.png")
    assert out.dtype == np.uint16 and out.shape == (64, 64, 3)


def test_glob_suffix_ext_and_outscale(images, tmp_path, tiny_model_file):
    out = tmp_path / "o"
    result = upscale(
        f"{images}/r*.png",
        "-o",
        out,
        "-m",
        tiny_model_file,
        "--suffix",
        "",
        "--ext",
        "webp",
        "--outscale",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["rgb.webp"]
    assert read_image(out / "rgb.webp").shape == (48, 64, 3)


def test_tiles_and_progress_options(images, tmp_path, tiny_model_file):
    result = upscale(
        images / "rgb.png",
        "-o",
        tmp_path / "t.png",
        "-m",
        tiny_model_file,
        "--tile",
        "8",
        "--tile-pad",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "t.png").shape == (96, 128, 3)


def truncated_png(path, photo):
    Image.fromarray(photo[:32, :32]).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def zero_size_png(path):
    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_bad_files_fail_alone_and_leave_nothing_behind(images, tmp_path, photo, tiny_model_file):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("this is not an image")
    truncated_png(bad / "cut.png", photo)
    zero_size_png(bad / "empty.png")
    out = tmp_path / "out"
    inputs = [bad / "notes.png", bad / "cut.png", bad / "empty.png", bad / "missing.png"]
    result = upscale(*inputs, images / "rgb.png", "-o", out, "-m", tiny_model_file)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 4, result.output
    assert any("notes.png: not an image" in line for line in lines)
    assert any("cut.png" in line and "truncated" in line for line in lines)
    assert any("empty.png" in line and ("zero size" in line or "corrupt" in line) for line in lines)
    assert any("missing.png: file not found" in line for line in lines)
    assert "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "rgb_out.png"
    ]  # the good file, nothing partial
    # Only bad files: the output folders made for them go again; one that was there stays.
    fresh = tmp_path / "new" / "deeper"
    result = upscale(bad / "notes.png", bad / "cut.png", "-o", fresh, "-m", tiny_model_file)
    assert result.exit_code == 2 and not (tmp_path / "new").exists()
    existing = tmp_path / "kept"
    existing.mkdir()
    result = upscale(bad / "notes.png", "-o", existing, "-m", tiny_model_file)
    assert result.exit_code == 2 and existing.is_dir() and not any(existing.iterdir())


def test_unwritable_output_folder(images, tmp_path, tiny_model_file):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    result = upscale(images, "-o", blocker / "sub", "-m", tiny_model_file)
    assert result.exit_code == 2
    assert "cannot create output folder" in result.output and "Traceback" not in result.output


def test_unknown_model_and_misfit_weights(images, tmp_path):
    result = upscale(images / "rgb.png", "-o", tmp_path, "-m", "no-such-model")
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output
    (tmp_path / "w.weights.h5").write_bytes(b"garbage")
    result = upscale(images / "rgb.png", "-o", tmp_path, "-m", tmp_path / "w.weights.h5")
    assert (
        result.exit_code == 2
        and "w.weights.h5" in result.output
        and "Traceback" not in result.output
    )


def test_input_never_overwritten_and_outputs_only_with_overwrite(images, tmp_path, tiny_model_file):
    original = (images / "rgb.png").read_bytes()
    result = upscale(
        images / "rgb.png", "-o", images, "--suffix", "", "-m", tiny_model_file, "--overwrite"
    )
    assert result.exit_code == 2 and "overwrite the input" in result.output
    assert (images / "rgb.png").read_bytes() == original

    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    result = upscale(images / "rgb.png", "-o", out, "-m", tiny_model_file)
    assert (
        result.exit_code == 2
        and "already exists" in result.output
        and out.read_bytes() == b"keep me"
    )
    result = upscale(images / "rgb.png", "-o", out, "-m", tiny_model_file, "--overwrite")
    assert result.exit_code == 0 and read_image(out).shape == (96, 128, 3)


def test_a_suffix_with_a_path_in_it_is_refused_in_one_line(images, tmp_path, tiny_model_file):
    out = tmp_path / "out"
    (out / "rgb_..").mkdir(parents=True)  # so that the path would resolve
    (tmp_path / "clip.mp4").write_bytes(b"")  # a video input takes the same check
    for source, suffix in [
        (images / "rgb.png", "../../../escaped"),
        (images / "rgb.png", "a/b"),
        (images / "rgb.png", ".."),
        (tmp_path / "clip.mp4", "../escaped"),
    ]:
        result = upscale(source, "-o", out, "--suffix", suffix, "-m", tiny_model_file)
        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            f"error: --suffix {suffix!r}: a suffix is part of a file name; "
            "path separators and '..' are not allowed"
        ]
    assert not list(tmp_path.glob("escaped*"))
    assert [p.name for p in out.rglob("*")] == ["rgb_.."]


def test_models_lists_the_registry():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for text in ("realesrgan-x4plus", "realesrgan-x4plus-anime", "16,697,987", "x4", "cached"):
        assert text in result.output


@pytest.mark.slow
def test_readme_main_job_on_the_shipped_sample(tmp_path):
    """`kerasr upscale kerasr/samples/astronaut.png` with the default model and settings."""
    from conftest import SAMPLE

    result = runner.invoke(app, ["upscale", str(SAMPLE), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "astronaut_out.png").astype(np.float32)
    assert out.shape == (1024, 1024, 3)
    # A sharp x4 of the same picture: close to a plain resize of it, but not equal.
    plain = np.asarray(Image.open(SAMPLE).resize((1024, 1024), Image.BICUBIC), np.float32)
    mse = np.mean((out - plain) ** 2)
    assert 20 < 10 * np.log10(255**2 / mse) < 40


def test_impossible_sizes_and_devices_fail_alone(
    images, tmp_path, tiny_model_file, png_header_only
):
    out = tmp_path / "out"
    out.mkdir()
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"")
    os.truncate(huge, 2**30 + 1)  # sparse: costs no disk
    bomb16 = png_header_only(tmp_path / "bomb16.png", 15000, 15000, depth=16)
    inputs = ["/dev/zero", huge, bomb16, images / "rgb.png"]
    result = upscale(*inputs, "-o", out, "-m", tiny_model_file)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 3, result.output
    assert "/dev/zero: not a regular file" in lines[0]
    assert "huge.png: file is 1.0 GiB, over the limit" in lines[1]
    assert "bomb16.png: image is too large to decode safely (15000x15000)" in lines[2]
    assert sorted(p.name for p in out.iterdir()) == ["rgb_out.png"]
    result = upscale(
        images / "rgb.png", "-o", tmp_path / "o2", "-m", tiny_model_file, "--outscale", "1000"
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the output would be 32000x24000 pixels, over the limit" in result.output


def test_animated_gif_says_only_the_first_frame_is_used(tmp_path, tiny_model_file):
    frames = [Image.new("RGB", (8, 8), (v, 0, 0)) for v in (10, 200, 90)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    with pytest.warns(UserWarning, match="animated image with 3 frames; only the first is used"):
        pixels = read_image(tmp_path / "anim.gif")
    assert pixels.shape == (8, 8, 3) and abs(int(pixels[0, 0, 0]) - 10) <= 2


def test_a_file_name_output_never_becomes_a_folder(images, tmp_path, tiny_model_file):
    two = upscale(
        images / "rgb.png",
        images / "grey.png",
        "-o",
        tmp_path / "result.png",
        "-m",
        tiny_model_file,
    )
    assert two.exit_code == 2 and "Traceback" not in two.output
    assert two.output.splitlines() == [
        f"error: -o {tmp_path / 'result.png'} names one file, but 2 images were given; "
        "give a folder to write them all"
    ]
    gif = upscale(images / "rgb.png", "-o", tmp_path / "x.gif", "-m", tiny_model_file)
    assert gif.exit_code == 2
    assert f"error: -o {tmp_path / 'x.gif'}: cannot write '.gif' files" in gif.output
    assert not (tmp_path / "result.png").exists() and not (tmp_path / "x.gif").exists()


def test_an_unknown_model_creates_no_output_folder(images, tmp_path):
    result = upscale(images / "rgb.png", "-o", tmp_path / "new" / "out", "-m", "no-such-model")
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output
    assert not (tmp_path / "new").exists()


def test_jpg_output_says_transparency_is_flattened_onto_white(tmp_path, tiny_model_file):
    pixels = np.zeros((8, 8, 4), np.uint8)
    pixels[..., 3] = 0  # fully transparent black
    pixels[:4, :, :] = (30, 60, 90, 255)  # an opaque top half
    Image.fromarray(pixels).save(tmp_path / "t.png")
    result = upscale(
        tmp_path / "t.png", "-o", tmp_path / "o", "--ext", "jpg", "-m", tiny_model_file
    )
    assert result.exit_code == 0, result.output
    target = tmp_path / "o" / "t_out.jpg"
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: {target}: JPEG has no transparency; transparent areas are flattened onto "
        "white (use --ext png to keep them)"
    ]
    out = read_image(target)
    assert out.shape == (32, 32, 3)
    assert out[-6:].mean() > 245  # the transparent half is white, not black
    opaque = upscale(
        tmp_path / "t.png", "-o", tmp_path / "p", "--ext", "png", "-m", tiny_model_file
    )
    assert "warning" not in opaque.output


def test_grey_and_alpha_stays_grey_and_alpha(tmp_path, photo, tiny_model_file):
    grey = photo[:12, :16, 1]
    alpha = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (12, 1))
    Image.fromarray(np.stack([grey, alpha], -1), mode="LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").shape == (12, 16, 2)
    result = upscale(tmp_path / "la.png", "-o", tmp_path / "big.png", "-m", tiny_model_file)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "big.png") as im:
        assert im.mode == "LA" and im.size == (64, 48)
    out = read_image(tmp_path / "big.png")
    assert out.shape == (48, 64, 2)


def test_upscale_images_is_the_library_call(images, tmp_path, tiny_model_file):
    from kerasr.upscaling.files import upscale_images

    problems = []
    inputs = [str(images / "rgb.png"), str(images / "missing.png")]
    result = upscale_images(
        inputs,
        tmp_path / "o",
        model=str(tiny_model_file),
        report=problems.append,
        precision="float32",
    )
    assert result.written == [(images / "rgb.png", tmp_path / "o" / "rgb_out.png")]
    assert result.problems == problems == [f"{images / 'missing.png'}: file not found"]
    assert result.failures == 1

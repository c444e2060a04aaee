"""The CLI's one error path: user errors are one line and exit 2, bugs keep their traceback;
warnings are one `warning:` line each; `kerasr info` says what kerasr sees here."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

import kerasr.info
from kerasr.cli import app
from kerasr.errors import KerasrError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def raising(error):
    def broken():
        raise error

    return broken


@pytest.mark.parametrize("error", [RuntimeError("a bug"), ValueError("a bug in a library")])
def test_a_bug_keeps_its_traceback(monkeypatch, error):
    monkeypatch.setattr(kerasr.info, "system_info", raising(error))
    result = runner.invoke(app, ["info"])
    # CliRunner keeps the exception a real run prints as a traceback; no `error:` line.
    assert result.exception is error and result.exit_code == 1
    assert "error:" not in result.output


@pytest.mark.parametrize(
    "error, line",
    [
        (KerasrError("the model is\nnot there"), "error: the model is not there"),
        (FileNotFoundError(2, "No such file or directory", "x.png"), "error: x.png: No such"),
        (PermissionError(13, "Permission denied", "/root/y"), "error: /root/y: Permission denied"),
        (IsADirectoryError(21, "Is a directory", "z"), "error: z: Is a directory"),
        (NotADirectoryError(20, "Not a directory", "f/g"), "error: f/g: Not a directory"),
    ],
)
def test_a_user_error_is_one_line_with_exit_code_2(monkeypatch, error, line):
    monkeypatch.setattr(kerasr.info, "system_info", raising(error))
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [result.output.splitlines()[0]]
    assert result.output.startswith(line) and "Traceback" not in result.output


def test_info_prints_versions_devices_choices_and_cache():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    info = kerasr.info.system_info()
    lines = result.output.splitlines()
    assert (
        lines[0].startswith("versions: python ") and f"kerasr {info.versions['kerasr']}" in lines[0]
    )
    assert lines[1] == "devices: " + ", ".join(info.devices)
    precision = info.upscale_precision
    assert f"upscale precision (--precision auto): {precision.value} -- {precision.reason}" in lines
    assert any(line.startswith("training XLA: ") for line in lines)
    assert lines[-1].startswith(f"weights cache: {info.weights_cache} -- cached: ")


def test_data_warnings_are_one_line_per_file_and_counted(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    names = [f"{i}.png" for i in range(6)]
    for name in names:
        (folder / name).write_bytes(b"not a png at all")
    result = runner.invoke(
        app,
        [
            "pretrain",
            str(folder),
            "-c",
            str(ROOT / "configs" / "tiny.toml"),
            "-o",
            str(tmp_path / "run"),
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    warned = [line for line in lines if line.startswith("warning: skipping unreadable image")]
    assert sorted(Path(line.split()[4].rstrip(":")).name for line in warned) == names
    assert "warning: 6 warnings in all (above)" in lines
    assert lines[-1].startswith("error: no usable image in")
    # No source path or code line of kerasr under a warning.
    assert not any("sources.py" in line or "warnings.warn" in line for line in lines)


def test_a_single_warning_is_one_line_without_a_count(tmp_path, tiny_model_file):
    from PIL import Image

    frames = [Image.new("RGB", (8, 8), (v, 0, 0)) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(tmp_path / "still.png")
    out = tmp_path / "out"
    # Alone, an animated GIF is a video; among several images it is a still (its first frame).
    inputs = [str(tmp_path / "anim.gif"), str(tmp_path / "still.png")]
    args = ["upscale", *inputs, "-o", str(out), "-m", str(tiny_model_file)]
    result = runner.invoke(app, [*args, "--precision", "float32"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning")]
    assert warned == [
        f"warning: {tmp_path / 'anim.gif'}: animated image with 2 frames; only the first is used"
    ]

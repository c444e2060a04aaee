"""Only the formats kerasr documents are ever decoded, whatever a file is named.

Pillow left to itself tries every plugin it has; its EPS/PS plugin runs Ghostscript on the
file. Each test puts a stand-in `gs` on PATH that logs its calls, then feeds a PostScript
file to one of kerasr's readers: the CLI, the web API, a sprite folder, a training folder.
"""

from __future__ import annotations

import os
import stat
import warnings

import httpx
import numpy as np
import pytest
from PIL import EpsImagePlugin, Image
from serve_helpers import running_server, tiny_upscaler
from typer.testing import CliRunner

from kerasr.cli import app as cli_app
from kerasr.data.sources import DataWarning, scan_folder
from kerasr.data.sprites import load_sprites
from kerasr.errors import KerasrError
from kerasr.images import read_image
from kerasr.serve import create_app

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n"


@pytest.fixture
def ghostscript_log(tmp_path, monkeypatch):
    """A logging stand-in `gs` first on PATH; yields the log, empty while it is never run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "gs.log"
    script = bin_dir / "gs"
    script.write_text(
        f'#!/bin/sh\necho "gs $*" >> "{log}"\n[ "$1" = "--version" ] && exit 0\nexit 1\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # Pillow remembers whether it found Ghostscript; make it look again, on this PATH.
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return log


def ran(log) -> str:
    return log.read_text() if log.exists() else ""


def test_the_stand_in_ghostscript_is_what_pillow_would_run(tmp_path, ghostscript_log):
    # Without a format list Pillow does run it: the other tests' silence means something.
    (tmp_path / "x.eps").write_bytes(EPS)
    with pytest.raises(Exception), Image.open(tmp_path / "x.eps") as image:  # noqa: B017
        image.load()
    assert "-f" in ran(ghostscript_log)


@pytest.mark.parametrize("name", ["x.eps", "disguised.png"])
def test_upscale_refuses_postscript_in_one_line_without_ghostscript(
    tmp_path, ghostscript_log, tiny_model_file, name
):
    source = tmp_path / name
    source.write_bytes(EPS)
    result = CliRunner().invoke(
        cli_app, ["upscale", str(source), "-o", str(tmp_path / "out"), "-m", str(tiny_model_file)]
    )
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {source}: not an image in a format kerasr reads (PNG, JPEG, WEBP, BMP, TIFF, GIF)"
    ], result.output
    assert "Traceback" not in result.output
    assert ran(ghostscript_log) == ""


def test_read_image_names_the_formats_it_reads(tmp_path, ghostscript_log):
    (tmp_path / "x.eps").write_bytes(EPS)
    with pytest.raises(KerasrError, match="not an image in a format kerasr reads"):
        read_image(tmp_path / "x.eps")
    assert ran(ghostscript_log) == ""


def test_the_web_api_answers_400_to_postscript_without_ghostscript(ghostscript_log):
    app = create_app([], [tiny_upscaler()])
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for name in ("x.eps", "x.png"):
            response = client.post(
                "/api/upscale", files={"file": (name, EPS, "application/postscript")}
            )
            assert response.status_code == 400, response.text
            assert response.json()["detail"] == (
                "the upload is not an image in a format kerasr reads "
                "(PNG, JPEG, WEBP, BMP, TIFF, GIF)"
            )
    assert ran(ghostscript_log) == ""


def test_a_postscript_sprite_is_skipped_without_ghostscript(tmp_path, ghostscript_log):
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(EPS)
    with pytest.warns(DataWarning, match=r"skipping unreadable image .*b\.png"):
        images = load_sprites(tmp_path, image_size=8)
    assert images.shape == (1, 8, 8, 3)
    assert ran(ghostscript_log) == ""


def test_a_postscript_file_in_a_training_folder_is_skipped(tmp_path, ghostscript_log):
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(EPS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scan = scan_folder(tmp_path)
    assert [record.path for record in scan.records] == [str(tmp_path / "a.png")]
    assert [path for path, _ in scan.skipped] == [str(tmp_path / "b.png")]
    assert any("b.png" in str(w.message) for w in caught)
    assert ran(ghostscript_log) == ""

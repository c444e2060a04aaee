"""Input the web app and `kerasr serve` refuse, and how much of it they echo back.

Numbers that are not JSON integers, names of any length, paths that climb out of
`/static`, multipart bodies that do not parse, and `kerasr serve` options that cannot
work, refused before a single model is loaded.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from serve_helpers import (
    BASE_URL,
    TestClient,
    noise_generator,
    png_bytes,
    random_pixels,
    running_server,
)
from typer.testing import CliRunner

from kerasr.cli import app as cli_app
from kerasr.serve import ServedUpscaler, create_app

LONG_NAME = "m" * 10_000
SHORTENED = "m" * 80 + "..."


def identity_x1(pixels):
    return pixels


@pytest.fixture(scope="module")
def client():
    app = create_app([noise_generator()], [ServedUpscaler("x1", "Identity.", 1, identity_x1)])
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def upload():
    return {"file": ("a.png", png_bytes(random_pixels((8, 8, 3))), "image/png")}


# --- JSON numbers and names ---


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"n": "5"}, "n: Input should be a valid integer"),
        ({"n": True}, "n: Input should be a valid integer"),
        ({"n": 2.0}, "n: Input should be a valid integer"),
        ({"seed": "7"}, "seed: Input should be a valid integer"),
        ({"seed": False}, "seed: Input should be a valid integer"),
        ({"upscale": 1}, "upscale: must be true, false or an upscaler's name"),
        ({"model": 3}, "model: Input should be a valid string"),
    ],
)
def test_generate_takes_numbers_as_json_integers_only(client, body, expected):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == expected


def test_generate_still_takes_integers_and_booleans_where_they_belong(client):
    response = client.post("/api/generate", json={"n": 2, "seed": 7, "upscale": True})
    assert response.status_code == 200, response.text
    assert [image["seed"] for image in response.json()["images"]] == [7, 8]


def test_a_long_model_name_is_shortened_in_the_answer(client):
    name = "g" * 7_000  # under the 8 KB JSON limit
    generate = client.post("/api/generate", json={"model": name})
    assert generate.status_code == 404
    assert generate.json()["detail"] == (
        f"unknown generator {'g' * 80 + '...'!r}; available: noise"
    )
    upscale = client.post("/api/upscale", files=upload(), data={"model": LONG_NAME})
    assert upscale.status_code == 404
    assert upscale.json()["detail"] == f"unknown upscaler {SHORTENED!r}; available: x1"
    unknown_field = client.post("/api/generate", json={"x" * 7_000: 1})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["detail"].startswith("x" * 80 + "...: unknown field")


# --- paths ---


def raw_get(url: str, path: str) -> bytes:
    """Sends `path` exactly as given (an HTTP client would normalise it) and reads the answer."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "path",
    [
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fsettings.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/..\\app.py",
    ],
)
def test_static_files_do_not_climb_out_of_their_folder(path):
    app = create_app([noise_generator()], [])
    with running_server(app) as url:
        answer = raw_get(url, path)
    status = int(answer.split()[1])
    assert status in (400, 404), answer[:200]
    assert b"import" not in answer and b"root:" not in answer


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "noise/../noise"])
def test_model_names_are_names_never_paths(client, name):
    assert client.post("/api/generate", json={"model": name}).status_code == 404
    assert client.post("/api/upscale", files=upload(), data={"model": name}).status_code == 404


# --- multipart ---


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\nno boundary was declared"),
        ("multipart/form-data; boundary=x", b"not a multipart body at all"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="file'),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PN',
        ),
        ("multipart/form-data; boundary=" + "x" * 5000, b"--x\r\n"),
    ],
    ids=["no-boundary", "garbage", "cut-header", "cut-file", "huge-boundary"],
)
def test_a_malformed_multipart_body_is_a_4xx_in_one_line(client, content_type, body):
    response = client.post("/api/upscale", content=body, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail


# --- `kerasr serve` options ---


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "99999"], "error: `port` must be between 1 and 65535. Received: port=99999"),
        (["--port", "0"], "error: `port` must be between 1 and 65535. Received: port=0"),
        (["--host", "http://0.0.0.0"], "error: `host` must be an IP address or a host name"),
        (["--host", "300.1.2.3"], "error: `host` must be an IP address or a host name"),
        (["--host", ""], "error: `host` must be an IP address or a host name"),
        (["--max-upload-mb", "inf"], "error: --max-upload-mb must be a number of MB"),
        (["--body-timeout", "inf"], "error: `body_timeout` must be a positive number"),
        (["--cors-origin", "x" * 500], "error: a CORS origin is a scheme and a host"),
    ],
)
def test_serve_checks_its_options_in_one_line_before_loading_any_model(monkeypatch, args, expected):
    import uvicorn

    import kerasr.serve

    loaded = []

    def load(*_args, **_kwargs):
        loaded.append(True)
        raise RuntimeError("no model may be loaded before the options are checked")

    monkeypatch.setattr(kerasr.serve, "load_served_models", load)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not start"))
    result = CliRunner().invoke(cli_app, ["serve", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.output
    assert len(lines[0]) < 300
    assert loaded == []

"""The web app's JSON API, its limits, its worker pool and the `serve` command.

The app is built around a tiny RRDBNet (real `Upscaler`, random weights) and a fake
generator that draws noise from each seed, so every test runs in well under a second once the
module's models exist. The worker pool is tested in test_serve_pool.py, the Host, Origin
and security-header checks in test_serve_guard.py, the page in test_serve_browser.py.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from serve_helpers import (
    BASE_URL,
    GENERATOR_SIZE,
    NoiseGenerator,
    TestClient,
    decode_png,
    noise_generator,
    png_bytes,
    random_pixels,
    tiny_upscaler,
)

from kerasr.errors import KerasrError
from kerasr.serve import ServedGenerator, ServedUpscaler, ServeSettings, create_app

PREFERRED = "realesrgan-x4plus-anime"


@pytest.fixture(scope="module")
def upscalers():
    return [tiny_upscaler("tiny-x4"), tiny_upscaler("tiny-x4-b")]


@pytest.fixture(scope="module")
def client(upscalers):
    settings = ServeSettings(max_upload_bytes=200_000, max_pixels=48 * 48)
    with TestClient(
        create_app([noise_generator()], upscalers, settings), base_url=BASE_URL
    ) as test_client:
        yield test_client


# --- page, health, model list, docs ---


def test_index_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in ("/static/app.css", "/static/app.js"):
        assert asset in page.text
        assert client.get(asset).status_code == 200


def test_page_loads_nothing_from_other_hosts(client):
    # The page must work offline: no CDN, no web fonts, no absolute URLs at all.
    for path in ("/", "/static/app.css", "/static/app.js"):
        text = client.get(path).text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "generators": 1,
        "upscalers": 2,
        "workers": 1,
        "busy": 0,
        "requests": 0,
    }


def test_models_lists_both_kinds_with_descriptions_and_limits(client):
    body = client.get("/api/models").json()
    assert body["generators"] == [
        {"name": "noise", "description": "Noise from the seed.", "image_size": GENERATOR_SIZE}
    ]
    assert [u["name"] for u in body["upscalers"]] == ["tiny-x4", "tiny-x4-b"]
    assert {u["scale"] for u in body["upscalers"]} == {4}
    assert body["default_upscaler"] == "tiny-x4"
    assert body["default_generator"] == "noise"
    assert body["limits"]["max_upload_bytes"] == 200_000
    assert body["limits"]["max_pixels"] == 48 * 48
    assert body["limits"]["max_images"] == 16


def test_openapi_documents_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/models", "/api/generate", "/api/upscale", "/healthz"} <= set(paths)
    upload = paths["/api/upscale"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["properties"]["file"]["format"] == "binary"
    assert client.get("/docs").status_code == 200


# --- POST /api/generate ---


def test_generate_returns_base64_pngs_one_per_random_seed(client):
    response = client.post("/api/generate", json={"model": "noise", "n": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "noise" and body["upscaler"] is None
    images = body["images"]
    assert len(images) == 5
    seeds = [image["seed"] for image in images]
    assert len(set(seeds)) == 5 and all(0 <= s < 2**31 for s in seeds)
    for image in images:
        decoded = decode_png(base64.b64decode(image["png"]))
        assert decoded.size == (GENERATOR_SIZE, GENERATOR_SIZE) == (image["width"], image["height"])
        assert decoded.mode == "RGB"


def test_generate_with_a_seed_is_reproducible(client):
    first = client.post("/api/generate", json={"model": "noise", "n": 3, "seed": 41}).json()
    assert [image["seed"] for image in first["images"]] == [41, 42, 43]
    # Image i of a draw from seed s is the single image drawn from seed s + i.
    again = client.post("/api/generate", json={"model": "noise", "n": 1, "seed": 42}).json()
    assert again["images"][0]["png"] == first["images"][1]["png"]
    pixels = np.asarray(decode_png(base64.b64decode(first["images"][0]["png"])))
    np.testing.assert_array_equal(pixels, NoiseGenerator()([41])[0])


@pytest.mark.parametrize("upscale", [True, "tiny-x4-b"])
def test_generate_can_upscale_the_images(client, upscale):
    response = client.post("/api/generate", json={"model": "noise", "n": 2, "upscale": upscale})
    assert response.status_code == 200
    body = response.json()
    assert body["upscaler"] == ("tiny-x4" if upscale is True else upscale)
    for image in body["images"]:
        decoded = decode_png(base64.b64decode(image["png"]))
        assert decoded.size == (4 * GENERATOR_SIZE, 4 * GENERATOR_SIZE)


def test_generate_without_a_model_uses_the_default_generator(client):
    response = client.post("/api/generate", json={"n": 2, "seed": 9})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "noise"
    pixels = np.asarray(decode_png(base64.b64decode(body["images"][1]["png"])))
    np.testing.assert_array_equal(pixels, NoiseGenerator()([10])[0])


def test_the_default_generator_can_be_chosen_and_must_be_loaded():
    second = noise_generator("second")
    app = create_app([noise_generator(), second], [], ServeSettings(default_generator="second"))
    with TestClient(app, base_url=BASE_URL) as test_client:
        assert test_client.get("/api/models").json()["default_generator"] == "second"
        assert test_client.post("/api/generate", json={"n": 1}).json()["model"] == "second"
    with pytest.raises(KerasrError, match="'x' is not among the loaded ones: noise"):
        create_app([noise_generator()], [], ServeSettings(default_generator="x"))
    with TestClient(create_app([], [tiny_upscaler()]), base_url=BASE_URL) as test_client:
        response = test_client.post("/api/generate", json={})
    assert response.status_code == 404
    assert response.json()["detail"] == "no generator is loaded on this server"


def test_generate_unknown_model_is_404(client):
    response = client.post("/api/generate", json={"model": "mewtwo"})
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown generator 'mewtwo'; available: noise"


def test_generate_unknown_upscaler_is_404(client):
    response = client.post("/api/generate", json={"model": "noise", "upscale": "x8"})
    assert response.status_code == 404
    assert "unknown upscaler 'x8'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "noise", "n": 17}, "at most 16 images"),
        ({"model": "noise", "n": 0}, "n: Input should be greater than or equal to 1"),
        ({"model": "noise", "seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"model": "noise", "n": 5, "seed": 2**31 - 2}, "seed + n - 1 must be at most"),
        ({"model": "noise", "seeds": 3}, "seeds: unknown field; the fields are model, n, seed"),
        ({"model": "noise", "pad": "x", "n": 0}, "pad: unknown field"),
    ],
)
def test_generate_bad_requests_are_422_with_one_line(client, body, expected):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and expected in detail


def test_generate_malformed_json_is_422(client):
    response = client.post(
        "/api/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


# --- POST /api/upscale ---


@pytest.mark.parametrize(
    ("mode", "shape", "dtype"),
    [
        ("RGB", (20, 30, 3), np.uint8),
        ("RGBA", (20, 30, 4), np.uint8),
        ("L", (20, 30), np.uint8),
        ("I;16", (20, 30), np.uint16),
    ],
)
def test_upscale_returns_a_png_four_times_larger_in_the_same_mode(client, mode, shape, dtype):
    upload = png_bytes(random_pixels(shape, dtype))
    response = client.post(
        "/api/upscale",
        files={"file": ("photo 1.png", upload, "image/png")},
        data={"model": "tiny-x4"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-kerasr-model"] == "tiny-x4"
    assert response.headers["x-kerasr-scale"] == "4"
    assert 'filename="photo_1_x4.png"' in response.headers["content-disposition"]
    result = decode_png(response.content)
    assert result.size == (120, 80)
    assert result.mode == mode


def test_upscale_reads_jpeg_and_uses_the_default_model_when_none_is_named(client):
    buffer = io.BytesIO()
    Image.fromarray(random_pixels((16, 16, 3))).save(buffer, format="JPEG")
    response = client.post("/api/upscale", files={"file": ("a.jpg", buffer.getvalue())})
    assert response.status_code == 200
    assert response.headers["x-kerasr-model"] == "tiny-x4"
    assert decode_png(response.content).size == (64, 64)


def test_upscale_returns_the_colour_profile_of_the_upload(client):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.fromarray(random_pixels((16, 16, 3))).save(buffer, format="JPEG", icc_profile=profile)
    response = client.post("/api/upscale", files={"file": ("a.jpg", buffer.getvalue())})
    assert response.status_code == 200, response.text
    result = decode_png(response.content)
    assert result.size == (64, 64) and result.info["icc_profile"] == profile


def test_upscale_unknown_model_is_404(client):
    upload = png_bytes(random_pixels((8, 8, 3)))
    response = client.post(
        "/api/upscale", files={"file": ("a.png", upload)}, data={"model": "waifu2x"}
    )
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown upscaler 'waifu2x'; available: tiny-x4, tiny-x4-b"


@pytest.mark.parametrize(
    "payload",
    [b"certainly not an image", b"", png_bytes(random_pixels((8, 8, 3)))[:40]],
    ids=["text", "empty", "truncated-png"],
)
def test_upscale_of_something_that_is_not_an_image_is_400(client, payload):
    response = client.post("/api/upscale", files={"file": ("x.png", payload, "image/png")})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "not an image" in detail or "could not be decoded" in detail
    assert "Traceback" not in response.text


def test_upscale_without_a_file_field_is_400(client):
    response = client.post("/api/upscale", data={"model": "tiny-x4"})
    assert response.status_code == 400
    assert "`file` field" in response.json()["detail"]


def test_upscale_of_a_raw_body_is_400(client):
    response = client.post(
        "/api/upscale",
        content=png_bytes(random_pixels((8, 8, 3))),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["detail"]


def test_upscale_of_too_many_pixels_is_413(client):
    upload = png_bytes(np.zeros((49, 48, 3), np.uint8))  # 2,352 > 48 * 48 = 2,304
    response = client.post("/api/upscale", files={"file": ("big.png", upload)})
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the image is 48x49 = 2,352 pixels; this server upscales at most 2,304 pixels "
        "(e.g. 48x48). Crop or shrink it first."
    )


def test_upscale_of_a_decompression_bomb_is_413(client):
    # 400 megapixels of one-bit zeros compress to a few KB, well under the upload limit.
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 200_000
    response = client.post("/api/upscale", files={"file": ("bomb.png", buffer.getvalue())})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("the image is far too large;")


def test_upscale_of_a_file_over_the_upload_limit_is_413(client):
    # Random bytes after a real PNG: the size alone must get it refused.
    upload = png_bytes(random_pixels((8, 8, 3))) + bytes(300_000)
    response = client.post("/api/upscale", files={"file": ("big.png", upload)})
    assert response.status_code == 413
    assert (
        response.json()["detail"] == "the upload is larger than this server's limit of 195.312 KB"
    )


def test_upload_limit_holds_without_a_content_length(client):
    # A chunked upload declares no size: the server must count while it reads.
    boundary = "kerasrtestboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def chunks():
        yield head
        for _ in range(40):
            yield bytes(10_000)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/upscale",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


# --- failures inside a model ---


def test_a_failing_model_gives_a_500_without_a_traceback(upscalers):
    def broken(_seeds):
        raise RuntimeError("secret internal state")

    app = create_app([ServedGenerator("broken", "Fails.", 8, broken)], upscalers)
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as test_client:
        response = test_client.post("/api/generate", json={"model": "broken"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the server log has the details"}


def test_a_model_refusing_its_input_gives_a_400(upscalers):
    def picky(_pixels):
        raise KerasrError("images must be at least 4 pixels wide")

    app = create_app([], [ServedUpscaler("picky", "Refuses.", 4, picky)])
    with TestClient(app, base_url=BASE_URL) as test_client:
        upload = png_bytes(random_pixels((2, 2, 3)))
        response = test_client.post("/api/upscale", files={"file": ("a.png", upload)})
    assert response.status_code == 400
    assert response.json()["detail"] == "images must be at least 4 pixels wide"


def test_no_upscaler_loaded_is_404():
    with TestClient(create_app([noise_generator()], []), base_url=BASE_URL) as test_client:
        upload = png_bytes(random_pixels((8, 8, 3)))
        assert (
            test_client.post("/api/upscale", files={"file": ("a.png", upload)}).status_code == 404
        )
        response = test_client.post("/api/generate", json={"model": "noise", "upscale": True})
        assert response.status_code == 404
        assert response.json()["detail"] == "no upscaler is loaded on this server"


# --- the worker pool ---


@pytest.mark.parametrize(
    ("field", "value"), [("workers", 0), ("max_pixels", -5), ("max_queue", -1)]
)
def test_settings_refuse_impossible_limits(field, value):
    with pytest.raises(KerasrError, match=f"`{field}` must be"):
        ServeSettings(**{field: value})


def test_a_default_upscaler_that_is_not_loaded_is_refused(upscalers):
    with pytest.raises(KerasrError, match="'x2' is not among the loaded ones"):
        create_app([], upscalers, ServeSettings(default_upscaler="x2"))


# --- the `serve` command ---


def invoke_serve(args):
    """Runs `kerasr serve ARGS` as the console script would."""
    from typer.testing import CliRunner

    from kerasr.cli import app

    return CliRunner().invoke(app, ["serve", *args])


def test_serve_command_builds_settings_and_listens_on_localhost(monkeypatch, upscalers):
    import uvicorn

    import kerasr.serve

    calls = {}

    def fake_load(names, report):
        calls["names"] = list(names)
        report("loaded fake models")
        return [noise_generator()], upscalers

    def fake_run(asgi_app, **options):
        calls.update(app=asgi_app, **options)

    monkeypatch.setattr(kerasr.serve, "load_served_models", fake_load)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = invoke_serve(
        [
            "--models",
            "a,b",
            "--models",
            "c",
            "--max-upload-mb",
            "2",
            "--max-pixels",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "loaded fake models" in result.output
    assert calls["names"] == ["a", "b", "c"]
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8000
    settings = calls["app"].state.settings
    assert settings.max_upload_bytes == 2 * 1024 * 1024
    assert settings.max_pixels == 1000
    assert settings.workers == 1


def test_serve_command_passes_hosts_and_cors_origins_to_the_guard(monkeypatch, upscalers):
    import uvicorn

    import kerasr.serve

    calls = {}
    monkeypatch.setattr(
        kerasr.serve, "load_served_models", lambda names, report: ([noise_generator()], upscalers)
    )
    monkeypatch.setattr(uvicorn, "run", lambda asgi_app, **options: calls.update(app=asgi_app))
    result = invoke_serve(
        [
            "--host",
            "0.0.0.0",
            "--allowed-host",
            "kerasr.lan",
            "--allowed-host",
            ".example.org",
            "--cors-origin",
            "https://example.org",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "warning: listening on 0.0.0.0" in result.output and "--allowed-host" in result.output
    settings = calls["app"].state.settings
    assert settings.host == "0.0.0.0"
    assert settings.allowed_hosts == ("kerasr.lan", ".example.org")
    assert settings.cors_origins == ("https://example.org",)
    with TestClient(calls["app"], base_url=BASE_URL) as client:
        assert client.get("/healthz", headers={"host": "art.example.org"}).status_code == 200
        assert client.get("/healthz", headers={"host": "10.1.2.3:8000"}).status_code == 200
        assert client.get("/healthz", headers={"host": "evil.example"}).status_code == 400


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--default-upscaler", "nope"], "error: the default upscaler 'nope' is not among"),
        (["--cors-origin", "example.org"], "error: a CORS origin is a scheme and a host"),
        (["--default-generator", "nope"], "error: the default generator 'nope' is not among"),
        (["--max-queue", "-1"], "Invalid value for '--max-queue'"),
    ],
)
def test_serve_command_reports_bad_settings_in_one_line(monkeypatch, upscalers, args, expected):
    import uvicorn

    import kerasr.serve

    monkeypatch.setattr(
        kerasr.serve, "load_served_models", lambda names, report: ([noise_generator()], upscalers)
    )
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not start"))
    result = invoke_serve(args)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


# --- the real loaders ---


def test_a_generator_file_is_served_and_draws_what_generate_draws(tmp_path):
    from kerasr import generation
    from kerasr.models.dcgan import build_generator
    from kerasr.serve import load_served_models

    path = tmp_path / "tiny-generator.keras"
    build_generator(image_size=8, latent_dim=4, filters=4, max_filters=8).save(path)
    lines = []
    generators, upscalers = load_served_models([str(path)], report=lines.append)
    assert upscalers == [] and lines == [f"loaded {path}"]
    assert [(g.name, g.image_size) for g in generators] == [("tiny-generator.keras", 8)]

    with TestClient(create_app(generators, []), base_url=BASE_URL) as test_client:
        response = test_client.post(
            "/api/generate", json={"model": "tiny-generator.keras", "n": 3, "seed": 5}
        )
    assert response.status_code == 200
    served = [np.asarray(decode_png(base64.b64decode(i["png"]))) for i in response.json()["images"]]
    expected = generation.generate(generation.load_generator(str(path)), [5, 6, 7])
    np.testing.assert_array_equal(np.stack(served), expected)


def test_loading_an_unknown_model_names_the_known_ones():
    from kerasr.serve import load_served_models

    with pytest.raises(KerasrError, match=r"unknown model 'pikachu': use a file or one of .*anime"):
        load_served_models(["pikachu"])


def test_a_file_that_is_no_model_is_refused_in_one_line(tmp_path):
    from kerasr.serve import load_served_models

    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    with pytest.raises(KerasrError, match=r"notes.keras: corrupt or truncated \.keras file"):
        load_served_models([str(path)])


def test_the_registry_anime_upscaler_serves_a_plausible_x4_image():
    # The one real model that is cheap: 6 blocks, converted once and cached.
    from kerasr.serve import load_served_models

    generators, upscalers = load_served_models(["realesrgan-x4plus-anime"], report=lambda _: None)
    assert generators == [] and [u.name for u in upscalers] == ["realesrgan-x4plus-anime"]
    # Flat colour blocks on white, like a sprite: shrunk back, the x4 image must match them
    # but at the edges, which the model sharpens. (Random weights give a mean error ~200.)
    pixels = np.full((24, 24, 3), 255, np.uint8)
    pixels[4:14, 3:12] = (220, 40, 30)
    pixels[12:21, 10:21] = (30, 90, 200)
    pixels[2:8, 15:22] = (250, 200, 40)
    with TestClient(create_app([], upscalers), base_url=BASE_URL) as test_client:
        response = test_client.post(
            "/api/upscale", files={"file": ("blocks.png", png_bytes(pixels))}
        )
    assert response.status_code == 200
    result = decode_png(response.content)
    assert result.size == (96, 96)
    shrunk = np.asarray(result.resize((24, 24), Image.BOX), dtype=np.float64)
    error = np.abs(shrunk - pixels)
    assert np.median(error) <= 2 and error.mean() < 10


def test_the_compact_video_model_is_listed_and_upscales_in_the_web_app():
    """Real-ESRGAN's compact model, a registry entry like the RRDBNet ones, through the API."""
    from kerasr import weights
    from kerasr.serve import load_served_models

    # Served by default: `kerasr serve` with no --model loads every registry entry.
    assert {"realesr-animevideov3", "realsr-df2k-x4"} <= {m.name for m in weights.list_models()}
    _, upscalers = load_served_models(["realesr-animevideov3"], report=lambda _: None)
    pixels = np.full((16, 20, 3), 255, np.uint8)
    pixels[3:12, 4:15] = (30, 90, 200)
    with TestClient(create_app([], upscalers), base_url=BASE_URL) as test_client:
        listed = test_client.get("/api/models").json()
        response = test_client.post(
            "/api/upscale",
            data={"model": "realesr-animevideov3"},
            files={"file": ("block.png", png_bytes(pixels))},
        )
    assert [(u["name"], u["scale"]) for u in listed["upscalers"]] == [("realesr-animevideov3", 4)]
    assert response.status_code == 200
    result = decode_png(response.content)
    assert result.size == (80, 64)
    shrunk = np.asarray(result.resize((20, 16), Image.BOX), dtype=np.float64)
    assert np.median(np.abs(shrunk - pixels)) <= 2


def test_serving_everything_skips_what_fails_and_puts_the_fast_upscaler_first(monkeypatch):
    import types

    from kerasr import generation, weights
    from kerasr.models import RRDBNet
    from kerasr.serve import load_served_models

    def entry(name):
        return types.SimpleNamespace(name=name, description=f"{name} legend", scale=4)

    def fake_load_model(name):
        model = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4)
        model.build((None, None, None, 3))
        return model

    def broken_generator(name):
        raise KerasrError(f"{name}: weights are corrupt")

    infos = [types.SimpleNamespace(name="pokemon-dcgan-64", description="d", image_size=64)]
    monkeypatch.setattr(weights, "list_models", lambda: [entry("x4plus"), entry(PREFERRED)])
    monkeypatch.setattr(weights, "load_model", fake_load_model)
    monkeypatch.setattr(generation, "list_generators", lambda: infos)
    monkeypatch.setattr(generation, "load_generator", broken_generator)
    lines = []
    generators, upscalers = load_served_models(report=lines.append)
    assert generators == []
    assert [u.name for u in upscalers] == [PREFERRED, "x4plus"]
    assert upscalers[0].description == f"{PREFERRED} legend"
    assert lines == [
        "skipped generator pokemon-dcgan-64: pokemon-dcgan-64: weights are corrupt",
        "loaded upscaler x4plus",
        f"loaded upscaler {PREFERRED}",
    ]

    monkeypatch.setattr(weights, "load_model", lambda name: broken_generator(name))
    with pytest.raises(KerasrError, match="no model could be loaded"):
        load_served_models(report=lines.append)


def test_the_shipped_generator_draws_reproducible_sprites_through_the_api():
    from kerasr.serve import load_served_models

    generators, _ = load_served_models(["pokemon-dcgan-64"], report=lambda _: None)
    assert [(g.name, g.image_size) for g in generators] == [("pokemon-dcgan-64", 64)]
    assert generators[0].description  # the legend the page shows
    with TestClient(create_app(generators, []), base_url=BASE_URL) as test_client:
        first = test_client.post("/api/generate", json={"model": "pokemon-dcgan-64", "seed": 3})
        again = test_client.post(
            "/api/generate", json={"model": "pokemon-dcgan-64", "n": 1, "seed": 5}
        )
    assert first.status_code == again.status_code == 200
    images = first.json()["images"]
    assert [i["seed"] for i in images] == [3, 4, 5, 6, 7]
    assert again.json()["images"][0]["png"] == images[2]["png"]
    pixels = np.stack([np.asarray(decode_png(base64.b64decode(i["png"]))) for i in images])
    assert pixels.shape == (5, 64, 64, 3)
    # Five different creatures, not one image five times nor a blank canvas.
    assert len({p.tobytes() for p in pixels}) == 5 and pixels.std() > 20

"""What the web app refuses before a route runs, and the headers every answer carries.

Host checks (DNS rebinding), cross-site posts, CORS only when asked for, body and load limits
with their status codes, security headers, and the API docs served without the internet.
"""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import numpy as np
import pytest
from serve_helpers import (
    BASE_URL,
    GENERATOR_SIZE,
    TestClient,
    noise_generator,
    png_bytes,
    random_pixels,
)

from kerasr.errors import KerasrError
from kerasr.serve import ServedGenerator, ServedUpscaler, ServeSettings, create_app
from kerasr.serve.guard import HostPolicy, host_name


class CountingUpscaler:
    """Nearest-neighbour x4 that counts its calls: a refused request must not reach it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, pixels):
        self.calls += 1
        return np.repeat(np.repeat(pixels, 4, axis=0), 4, axis=1)


def make_app(**settings):
    upscaler = CountingUpscaler()
    app = create_app(
        [noise_generator()],
        [ServedUpscaler("x4", "Nearest neighbour.", 4, upscaler)],
        ServeSettings(**settings),
    )
    return app, upscaler


@pytest.fixture(scope="module")
def guarded():
    app, upscaler = make_app()
    with TestClient(app, base_url=BASE_URL) as client:
        yield client, upscaler


def upload():
    return {"file": ("a.png", png_bytes(random_pixels((8, 8, 3))), "image/png")}


# --- Host header (DNS rebinding) ---


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io:8000", "localhost.evil"]
)
def test_a_foreign_host_header_is_refused_with_400(guarded, host):
    client, upscaler = guarded
    calls = upscaler.calls
    for response in (
        client.get("/", headers={"host": host}),
        client.post("/api/upscale", files=upload(), headers={"host": host}),
    ):
        assert response.status_code == 400
        name = host_name(host)
        assert response.json()["detail"] == (
            f"this server does not answer to the host name {name!r}; its operator can allow "
            f"it with --allowed-host {name}"
        )
    assert upscaler.calls == calls


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:8000", "[::1]:8000"])
def test_loopback_host_names_are_served(guarded, host):
    client, _ = guarded
    assert client.get("/api/models", headers={"host": host}).status_code == 200


def test_allowed_hosts_are_served_and_others_still_refused():
    app, _ = make_app(allowed_hosts=["kerasr.lan", ".example.org"])
    with TestClient(app, base_url=BASE_URL) as client:
        for host in ("kerasr.lan:8000", "example.org", "art.example.org", "KERASR.LAN."):
            assert client.get("/healthz", headers={"host": host}).status_code == 200, host
        for host in ("other.lan", "example.org.evil", "badexample.org"):
            assert client.get("/healthz", headers={"host": host}).status_code == 400, host


def test_the_bound_address_and_on_a_wildcard_any_ip_address_are_served():
    policy = HostPolicy("192.168.1.5")
    assert policy.allows("192.168.1.5:8000") and policy.allows("localhost:8000")
    assert not policy.allows("10.0.0.7:8000") and not policy.allows("kerasr.lan")
    # Bound to every interface: an IP address cannot be a DNS-rebinding name, a name can.
    wildcard = HostPolicy("0.0.0.0")
    assert wildcard.allows("10.0.0.7:8000") and wildcard.allows("[fe80::1]:8000")
    assert not wildcard.allows("kerasr.lan:8000") and not wildcard.allows("")
    assert HostPolicy("0.0.0.0", ["kerasr.lan"]).allows("kerasr.lan:8000")
    assert HostPolicy("::", ["*"]).allows("anything.example")


# --- cross-site posts ---


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "http://127.0.0.1:9999"},  # another port is another origin
        {"origin": "null"},  # a sandboxed frame or a file:// page
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_cross_site_posts_to_the_api_are_refused_with_403(guarded, headers):
    client, upscaler = guarded
    calls = upscaler.calls
    response = client.post("/api/upscale", files=upload(), headers=headers)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("cross-site request refused: ")
    assert "--cors-origin" in response.json()["detail"]
    assert upscaler.calls == calls
    generate = client.post("/api/generate", json={"n": 1}, headers=headers)
    assert generate.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": BASE_URL, "sec-fetch-site": "same-origin"},  # the app's own page
        {"sec-fetch-site": "none"},  # typed into the address bar
        {},  # curl and other programs
    ],
)
def test_same_origin_and_non_browser_posts_are_served(guarded, headers):
    client, _ = guarded
    assert client.post("/api/upscale", files=upload(), headers=headers).status_code == 200


def test_no_cors_headers_unless_an_origin_is_configured(guarded):
    client, _ = guarded
    preflight = client.options(
        "/api/generate",
        headers={
            "origin": "https://example.org",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = client.get("/api/models", headers={"origin": "https://example.org"})
    assert "access-control-allow-origin" not in plain.headers


def test_a_configured_cors_origin_may_call_the_api_and_no_other():
    app, _ = make_app(cors_origins=["https://example.org"])
    with TestClient(app, base_url=BASE_URL) as client:
        preflight = client.options(
            "/api/generate",
            headers={
                "origin": "https://example.org",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://example.org"
        response = client.post(
            "/api/generate", json={"n": 1}, headers={"origin": "https://example.org"}
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        refused = client.post(
            "/api/generate", json={"n": 1}, headers={"origin": "https://evil.example"}
        )
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("cors_origins", ["https://example.org/"], "a CORS origin is a scheme and a host"),
        ("cors_origins", ["example.org"], "a CORS origin is a scheme and a host"),
        ("allowed_hosts", ["http://kerasr.lan"], "an allowed host is a name"),
        ("max_json_bytes", 0, "`max_json_bytes` must be a positive integer"),
    ],
)
def test_settings_refuse_malformed_hosts_origins_and_limits(field, value, expected):
    with pytest.raises(KerasrError, match=expected):
        ServeSettings(**{field: value})


# --- body and load limits ---


def test_a_json_body_over_the_limit_is_413_before_it_is_parsed(guarded):
    client, _ = guarded
    # Five megabytes of padding in a field the API does not know.
    body = json.dumps({"n": 1, "pad": "x" * (5 * 1024 * 1024)}).encode()
    response = client.post(
        "/api/generate", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert (
        response.json()["detail"] == "the request body is larger than this server's limit of 8 KB"
    )


def test_the_json_limit_holds_without_a_content_length(guarded):
    client, _ = guarded

    def chunks():
        yield b'{"n": 1, "pad": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    response = client.post(
        "/api/generate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_json_body_just_under_the_limit_reaches_the_route(guarded):
    client, _ = guarded
    body = json.dumps({"n": 1, "model": "noise"}).encode()
    body = body[:-1] + b" " * (8 * 1024 - len(body)) + b"}"
    assert len(body) == 8 * 1024
    response = client.post(
        "/api/generate", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200


def test_requests_over_the_in_flight_limit_get_503_and_health_still_answers():
    gate, running = threading.Event(), threading.Event()

    def gated(seeds):
        running.set()
        gate.wait(timeout=60)
        return np.zeros((len(seeds), GENERATOR_SIZE, GENERATOR_SIZE, 3), np.uint8)

    app = create_app(
        [ServedGenerator("gated", "", GENERATOR_SIZE, gated)], [], ServeSettings(max_requests=1)
    )

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            first = asyncio.create_task(http.post("/api/generate", json={"n": 1}))
            try:
                await asyncio.wait_for(asyncio.to_thread(running.wait), 20)
                refused = await http.post("/api/generate", json={"n": 1})
                health = await http.get("/healthz")
            finally:
                gate.set()
            return await first, refused, health

    first, refused, health = asyncio.run(scenario())
    assert first.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["detail"] == "the server is busy; try again in a few seconds"
    # Health carries no body and takes no slot: it answers while the server is full.
    assert health.status_code == 200 and health.json()["requests"] == 1


# --- security headers, the page's policy, offline docs ---


def test_every_answer_carries_the_security_headers(guarded):
    client, _ = guarded
    answers = {
        "page": client.get("/"),
        "script": client.get("/static/app.js"),
        "json": client.get("/api/models"),
        "docs": client.get("/docs"),
        "not found": client.get("/nothing-here"),
        "bad host": client.get("/", headers={"host": "evil.example"}),
        "cross-site": client.post("/api/generate", json={}, headers={"origin": "https://x.org"}),
        "too large": client.post("/api/generate", content=b" " * 9000),
        "invalid": client.post("/api/generate", json={"seeds": 1}),
    }
    expected_codes = [200, 200, 200, 200, 404, 400, 403, 413, 422]
    assert [a.status_code for a in answers.values()] == expected_codes
    for name, response in answers.items():
        headers = response.headers
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["x-frame-options"] == "DENY", name
        assert headers["referrer-policy"] == "no-referrer", name
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, name
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name
        assert "access-control-allow-origin" not in headers, name


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_the_pages_need_no_inline_script_or_style(guarded, path):
    # The policy forbids inline code: every script and style must be a file of this server.
    text = guarded[0].get(path).text
    assert "<script>" not in text and "<style" not in text and " style=" not in text
    assert " on" not in text.replace("\n", " ").split("<body", 1)[1].split(">", 1)[0]
    assert "http://" not in text and "https://" not in text


def test_docs_work_offline_with_the_swagger_files_served_here(guarded):
    client, _ = guarded
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
    for asset in (
        "/static/swagger/swagger-ui-bundle.js",
        "/static/swagger/swagger-ui.css",
        "/static/docs.js",
    ):
        assert asset in page.text
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert "SwaggerUIBundle" in client.get("/static/docs.js").text
    assert client.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_without_the_swagger_package_docs_says_how_to_get_it(monkeypatch):
    import kerasr.serve.apidocs

    monkeypatch.setattr(kerasr.serve.apidocs, "swagger_assets", lambda: None)
    app, _ = make_app()
    with TestClient(app, base_url=BASE_URL) as client:
        response = client.get("/docs")
        assert response.status_code == 404
        assert "pip install 'kerasr[serve]'" in response.text
        assert "/openapi.json" in response.text
        assert client.get("/openapi.json").status_code == 200

"""Clients that send a request's headers and then trickle (or stop sending) its body.

A real uvicorn server and real sockets from several loopback addresses (127.0.0.2, .3,
...: all of 127/8 is this machine), with a body deadline of 1.5 s so that each test waits
only that long for the server to give up on a slow client.
"""

from __future__ import annotations

import contextlib
import json
import socket
from urllib.parse import urlsplit

import httpx
import numpy as np
from serve_helpers import png_bytes, random_pixels, running_server, wait_until

from kerasr.serve import ServedUpscaler, ServeSettings, create_app

BODY_TIMEOUT = 1.5
SETTINGS = ServeSettings(max_requests=6, max_client_requests=3, body_timeout=BODY_TIMEOUT)


def nearest_x4(pixels):
    return np.repeat(np.repeat(pixels, 4, axis=0), 4, axis=1)


def make_app():
    return create_app([], [ServedUpscaler("x4", "Nearest neighbour.", 4, nearest_x4)], SETTINGS)


def slow_upload(url: str, source: str) -> socket.socket:
    """Starts an upload from `source` that promises 100,000 bytes and sends 10."""
    address = urlsplit(url)
    sock = socket.socket()
    sock.settimeout(20)
    sock.bind((source, 0))
    sock.connect((address.hostname, address.port))
    sock.sendall(
        b"POST /api/upscale HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: 100000\r\n\r\n" + b"--b\r\nConte"
    )
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (20 s at most)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def status_and_detail(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["detail"]


def client_from(url: str, source: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, transport=transport, timeout=20)


def upload():
    return {"file": ("a.png", png_bytes(random_pixels((8, 8, 3))), "image/png")}


def test_slow_uploads_never_lock_out_the_page_and_health_and_are_cut_at_the_deadline():
    with running_server(make_app()) as url, contextlib.ExitStack() as stack:
        http = stack.enter_context(client_from(url, "127.0.0.1"))
        # Two addresses take every upload slot there is, and send nothing more.
        slow = [
            stack.enter_context(slow_upload(url, source))
            for source in ("127.0.0.2", "127.0.0.3")
            for _ in range(3)
        ]
        wait_until(lambda: http.get("/healthz").json()["requests"] == 6, what="6 slow uploads")
        # Pages and health carry no body: they are answered while every slot is held.
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json()["requests"] == 6
        assert http.get("/").status_code == 200
        assert http.get("/api/models").status_code == 200
        busy = http.post("/api/upscale", files=upload())
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        # Each slow upload is answered 408 at its deadline and its connection closed ...
        for sock in slow:
            status, detail = status_and_detail(read_until_closed(sock))
            assert status == 408
            assert detail == (
                f"the request body did not arrive within this server's limit of {BODY_TIMEOUT} s"
            )
        # ... which frees its slot.
        wait_until(lambda: http.get("/healthz").json()["requests"] == 0, what="freed slots")
        assert http.post("/api/upscale", files=upload()).status_code == 200


def test_one_address_holds_no_more_than_its_share_of_the_slots():
    with running_server(make_app()) as url, contextlib.ExitStack() as stack:
        http = stack.enter_context(client_from(url, "127.0.0.1"))
        held = [stack.enter_context(slow_upload(url, "127.0.0.2")) for _ in range(3)]
        wait_until(lambda: http.get("/healthz").json()["requests"] == 3, what="3 slow uploads")
        # A fourth from the same address is refused at once, before its body is read ...
        extra = stack.enter_context(slow_upload(url, "127.0.0.2"))
        answer = read_until_closed(extra)
        assert status_and_detail(answer) == (
            429,
            "too many requests from your address at once (at most 3); wait for an answer "
            "before sending more",
        )
        assert b"retry-after: 5" in answer.lower()
        # ... and so is a complete one from that address, while another address is served.
        same = stack.enter_context(client_from(url, "127.0.0.2"))
        assert same.post("/api/upscale", files=upload()).status_code == 429
        other = stack.enter_context(client_from(url, "127.0.0.3"))
        assert other.post("/api/upscale", files=upload()).status_code == 200
        assert http.get("/healthz").json()["requests"] == 3
        for sock in held:
            assert status_and_detail(read_until_closed(sock))[0] == 408


def test_a_json_body_that_stops_arriving_is_cut_at_the_deadline():
    with running_server(make_app()) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
            sock.sendall(
                b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"n": 1'
            )
            status, detail = status_and_detail(read_until_closed(sock))
        assert status == 408 and "did not arrive within" in detail
        with httpx.Client(base_url=url, timeout=20) as http:
            assert http.get("/healthz").json()["requests"] == 0

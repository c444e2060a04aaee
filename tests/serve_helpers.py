"""Tiny models and request helpers shared by the web app's tests."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
import time
import warnings

import numpy as np
from PIL import Image

from kerasr.serve import ServedGenerator, ServedUpscaler

with warnings.catch_warnings():
    # Starlette 1.x nudges TestClient users towards httpx2; httpx is still fully supported.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: F401  (re-exported for the tests)

GENERATOR_SIZE = 16
# The test client's address: a loopback name, as a browser on this machine would send.
BASE_URL = "http://127.0.0.1:8000"


class NoiseGenerator:
    """Stands in for a DCGAN: the same seed always gives the same image."""

    def __init__(self, size=GENERATOR_SIZE, delay=0.0):
        self.size = size
        self.delay = delay
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def __call__(self, seeds):
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            time.sleep(self.delay)
            return np.stack(
                [
                    np.random.default_rng(seed).integers(0, 256, (self.size, self.size, 3))
                    for seed in seeds
                ]
            ).astype(np.uint8)
        finally:
            with self._lock:
                self.running -= 1


def tiny_upscaler(name="tiny-x4"):
    """A real `Upscaler` around a 1-block RRDBNet: same code path as the served models."""
    from kerasr.models import RRDBNet
    from kerasr.upscaling.inference import Upscaler

    model = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4)
    model.build((None, None, None, 3))
    upscaler = Upscaler(model)
    return ServedUpscaler(name, "A one-block test model.", upscaler.scale, upscaler.upscale)


def noise_generator(name="noise", **kwargs):
    return ServedGenerator(name, "Noise from the seed.", GENERATOR_SIZE, NoiseGenerator(**kwargs))


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def random_pixels(shape, dtype=np.uint8, seed=0):
    high = 65536 if dtype == np.uint16 else 256
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


class HangingUpClient:
    """POSTs JSON straight to an ASGI app, and hangs up when the test says so.

    Once the body is sent, the app's further `receive()` calls (it listens for a disconnect
    while the model works) set `listening` and then wait for `leave`; when the test sets
    `leave`, they report `http.disconnect`, as a server does when the socket closes.
    """

    def __init__(self):
        self.listening = asyncio.Event()
        self.leave = asyncio.Event()
        self.status = None
        self.body = b""

    async def post(self, app, path, payload):
        body = json.dumps(payload).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            self.listening.set()
            await self.leave.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        return self.status


@contextlib.contextmanager
def running_server(app):
    """Serves `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def wait_until(condition, timeout=20.0, what="the condition"):
    """Polls `condition` until it holds; fails the test, naming `what`, after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

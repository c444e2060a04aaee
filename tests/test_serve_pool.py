"""The web app's worker pool: queueing, 503 with Retry-After, clients that hang up.

Abandoned work must not be run: a queued call whose client has gone is dropped from the
queue at once, so a crowd of abandoned uploads cannot keep every later client at 503.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import socket
import threading
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from serve_helpers import (
    GENERATOR_SIZE,
    HangingUpClient,
    decode_png,
    noise_generator,
    png_bytes,
    random_pixels,
    running_server,
    wait_until,
)

from kerasr.serve import (
    InferencePool,
    ServedGenerator,
    ServedUpscaler,
    ServerBusy,
    ServeSettings,
    create_app,
)


class GatedGenerator:
    """A generator whose calls block until `gate` is set; records the seeds it drew."""

    def __init__(self):
        self.gate = threading.Event()
        self.running = threading.Event()
        self.seen = []

    def __call__(self, seeds):
        self.seen.append(list(seeds))
        self.running.set()
        if not self.gate.wait(timeout=60):
            raise RuntimeError("the test never opened the gate")
        return np.zeros((len(seeds), GENERATOR_SIZE, GENERATOR_SIZE, 3), np.uint8)


def test_concurrent_requests_queue_on_the_workers_and_overflow_gets_503():
    slow = noise_generator(delay=0.3)
    settings = ServeSettings(workers=1, max_queue=2)
    app = create_app([slow], [], settings)

    async def crowd():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            requests = [
                http.post("/api/generate", json={"model": "noise", "n": 1}) for _ in range(6)
            ]
            return await asyncio.gather(*requests)

    responses = asyncio.run(crowd())
    codes = sorted(r.status_code for r in responses)
    # One running and two waiting are admitted; the other three are told to come back.
    assert codes == [200, 200, 200, 503, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "5"
    assert busy.json()["detail"] == "the server is busy; try again in a few seconds"
    assert slow.generate.max_running == 1
    assert slow.generate.calls == 3


def test_pool_runs_at_most_workers_calls_at_once_and_frees_its_slots():
    pool = InferencePool(workers=2, max_queue=3)
    running, peak, lock = [0], [0], threading.Lock()
    both = threading.Barrier(2, timeout=10)

    def job(value):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if value < 2:
            both.wait()  # the first two run together: two workers really run at once
        with lock:
            running[0] -= 1
        return value * 2

    async def main():
        results = await asyncio.gather(*(pool.run(job, i) for i in range(5)))
        with pytest.raises(ServerBusy):
            await asyncio.gather(*(pool.run(job, i + 2) for i in range(6)))
        return results

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert peak[0] == 2
    # The five admitted calls of the refused batch still finish; shutdown waits for them.
    pool.shutdown()
    assert pool.admitted == 0


def test_a_queued_call_whose_client_hung_up_is_dropped_not_run():
    draw = GatedGenerator()
    app = create_app([ServedGenerator("gated", "", GENERATOR_SIZE, draw)], [])
    pool = app.state.pool

    def body(seed):
        return {"model": "gated", "n": 1, "seed": seed}

    async def scenario():
        first, second, third = HangingUpClient(), HangingUpClient(), HangingUpClient()
        first_call = asyncio.create_task(first.post(app, "/api/generate", body(1)))
        try:
            # The only worker is busy with the first call ...
            await asyncio.wait_for(asyncio.to_thread(draw.running.wait), 20)
            second_call = asyncio.create_task(second.post(app, "/api/generate", body(2)))
            # ... so the second waits in the queue, listening for its client to hang up.
            await asyncio.wait_for(second.listening.wait(), 20)
            assert pool.admitted == 2
            second.leave.set()
            # Answered (to nobody) without waiting for the worker, and its slot is free.
            assert await asyncio.wait_for(second_call, 20) == 499
            assert pool.admitted == 1
        finally:
            draw.gate.set()
        assert await asyncio.wait_for(first_call, 20) == 200
        # The queue is first in, first out: a dropped call still queued would run before this.
        assert await asyncio.wait_for(third.post(app, "/api/generate", body(3)), 20) == 200

    asyncio.run(scenario())
    assert draw.seen == [[1], [3]]
    assert pool.admitted == 0


def test_a_running_call_whose_client_hung_up_finishes_and_frees_its_slot():
    draw = GatedGenerator()
    app = create_app([ServedGenerator("gated", "", GENERATOR_SIZE, draw)], [])
    pool = app.state.pool

    async def scenario():
        client = HangingUpClient()
        call = asyncio.create_task(
            client.post(app, "/api/generate", {"model": "gated", "n": 1, "seed": 7})
        )
        try:
            await asyncio.wait_for(asyncio.to_thread(draw.running.wait), 20)
            await asyncio.wait_for(client.listening.wait(), 20)
            client.leave.set()
            assert await asyncio.wait_for(call, 20) == 499
            # A thread cannot be stopped: the call still holds its slot until it returns.
            assert pool.admitted == 1
        finally:
            draw.gate.set()

    asyncio.run(scenario())
    pool.shutdown()
    assert draw.seen == [[7]] and pool.admitted == 0


def multipart_request(host: str, upload: bytes) -> bytes:
    boundary = "kerasrsocketboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + upload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/upscale HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def test_an_upload_abandoned_over_a_real_socket_leaves_the_queue_at_once():
    draw = GatedGenerator()
    upscaled = []

    def upscale(pixels):
        upscaled.append(pixels.shape)
        return np.repeat(np.repeat(pixels, 4, axis=0), 4, axis=1)

    app = create_app(
        [ServedGenerator("gated", "", GENERATOR_SIZE, draw)],
        [ServedUpscaler("x4", "", 4, upscale)],
        ServeSettings(workers=1, max_queue=1),
    )
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:

        def busy():
            return http.get("/healthz").json()["busy"]

        answers = []
        first = threading.Thread(
            target=lambda: answers.append(
                http.post("/api/generate", json={"model": "gated", "n": 1}).status_code
            )
        )
        first.start()
        try:
            assert draw.running.wait(20)
            address = urlparse(url)
            with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
                sock.sendall(multipart_request(address.netloc, png_bytes(random_pixels((8, 8, 3)))))
                wait_until(lambda: busy() == 2, what="the upload to be queued")
                # The queue is full: another client is told to come back ...
                files = {"file": ("b.png", png_bytes(random_pixels((8, 8, 3))))}
                assert http.post("/api/upscale", files=files).status_code == 503
            # ... until the abandoned upload leaves it, while the worker is still busy.
            wait_until(lambda: busy() == 1, what="the abandoned upload to be dropped")
        finally:
            draw.gate.set()
            first.join(timeout=30)
        assert answers == [200]
        assert http.post("/api/upscale", files=files).status_code == 200
    assert upscaled == [(8, 8, 3)]  # the later upload only; the abandoned one never ran


def test_two_workers_give_the_pixels_of_one_worker_for_concurrent_generate_and_upscale():
    from kerasr import generation
    from kerasr.models import RRDBNet
    from kerasr.models.dcgan import build_generator
    from kerasr.upscaling.inference import Upscaler

    # Real models, so that the shared compiled-function caches are what runs concurrently:
    # generation's per-generator function and the Upscaler's tf.function.
    generator = build_generator(image_size=8, latent_dim=4, filters=4, max_filters=8)
    network = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4)
    network.build((None, None, None, 3))
    upscaler = Upscaler(network)

    barriers = []

    def together(function):
        """The first two calls of `function` start at the same moment, on two threads."""
        barrier = threading.Barrier(2, timeout=30)
        first_two = iter(range(2))
        barriers.append(barrier)

        def call(value):
            if next(first_two, None) is not None:
                barrier.wait()
            return function(value)

        return call

    served = (
        [ServedGenerator("g", "", 8, together(functools.partial(generation.generate, generator)))],
        [ServedUpscaler("x4", "", 4, together(upscaler.upscale))],
    )
    uploads = [png_bytes(random_pixels((6 + i, 9 - i, 3), seed=i)) for i in range(4)]

    def requests(http):
        def generate(seed, upscale=False):
            return http.post("/api/generate", json={"n": 2, "seed": seed, "upscale": upscale})

        def upscale(i):
            return http.post("/api/upscale", files={"file": (f"{i}.png", uploads[i])})

        # First in, first out: two generate calls start together, then two upscale calls,
        # then a mix, drawn images being upscaled on the way.
        return [
            generate(0),
            generate(10),
            upscale(0),
            upscale(1),
            generate(20, upscale=True),
            upscale(2),
            generate(30, upscale=True),
            upscale(3),
        ]

    def answers(workers):
        app = create_app(*served, ServeSettings(workers=workers))

        async def crowd():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                return await asyncio.gather(*requests(http))

        responses = asyncio.run(crowd())
        assert [r.status_code for r in responses] == [200] * len(responses)
        images = []
        for response in responses:
            if response.headers["content-type"] == "image/png":
                images.append(response.content)
            else:
                images.extend(base64.b64decode(i["png"]) for i in response.json()["images"])
        return [np.asarray(decode_png(data)) for data in images]

    # Two workers first, while every compiled function is still cold ...
    concurrent = answers(workers=2)
    assert not any(barrier.broken for barrier in barriers)
    # ... then one worker, one call at a time: the reference.
    alone = answers(workers=1)
    assert len(concurrent) == len(alone) == 4 * 2 + 4
    for index, (pixels, expected) in enumerate(zip(concurrent, alone, strict=True)):
        np.testing.assert_array_equal(pixels, expected, err_msg=f"image {index}")

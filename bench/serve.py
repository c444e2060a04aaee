"""Load test of the web app: 16 concurrent clients for a fixed time, per endpoint.

Starts `kerasr serve` on a free 127.0.0.1 port (or uses `--url`), then for each scenario runs
one client alone (the reference) and then `--clients` clients at once, each sending its next
request as soon as the last one is answered, for `--duration` seconds:

- generate: `POST /api/generate` of 5 images (as the page's Draw button) from the first
  generator;
- upscale: `POST /api/upscale` of a small (`--size`, default 32x32) PNG with the default
  upscaler.

It prints requests, failures (any status but 200, or a dropped connection), throughput,
p50 / p95 / max latency, and the crowd's throughput as a ratio of the lone client's: near 1
means requests queue on the worker pool and the server neither stalls nor thrashes.
Exits 1 if any request failed. Traffic goes to 127.0.0.1 only and stops at the deadline.

    python bench/serve.py --duration 20
    python bench/serve.py --url http://127.0.0.1:8000 --scenarios upscale
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        return float(np.percentile(self.latencies, q))

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(models: str, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """Runs `kerasr serve` in a child process and waits until /healthz answers."""
    port = free_port()
    command = [sys.executable, "-m", "kerasr.cli", "serve", "--port", str(port), *extra]
    if models:
        command += ["--models", models]
    # The access log of thousands of requests would bury the figures: it goes to a file.
    with tempfile.NamedTemporaryFile(
        "w", prefix="kerasr-serve-", suffix=".log", delete=False
    ) as log:  # the child keeps its own handle open
        print(f"server log: {log.name}", flush=True)
        process = subprocess.Popen(
            command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}; see {log.name}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise SystemExit("the server did not start within 300 s")


def stop_server(process: subprocess.Popen) -> None:
    # The server is the leader of its own session: stop it (and only it) by its id.
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_clients(send, clients: int, duration: float) -> Result:
    """`clients` threads call `send(http)` back to back until `duration` seconds have passed."""
    result = Result()
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + duration

    def client():
        # A generous timeout: a request waiting behind 15 others may take a while, and that
        # is queueing, which the latency figures show, not a failure.
        with httpx.Client(timeout=600) as http:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                try:
                    response = send(http)
                    outcome = None if response.status_code == 200 else str(response.status_code)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                took = time.perf_counter() - began
                with lock:
                    if outcome is None:
                        result.latencies.append(took)
                    else:
                        result.failures[outcome] = result.failures.get(outcome, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.elapsed = time.perf_counter() - start
    return result


def report(name: str, clients: int, result: Result, reference: Result | None) -> None:
    ratio = ""
    if reference is not None and reference.throughput:
        ratio = f"  x{result.throughput / reference.throughput:.2f} of 1 client"
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(result.failures.items())) or "none"
    print(
        f"{name:<9} {clients:>3} clients  {result.ok:>5} ok  {result.failed:>3} failed "
        f"({failures})  {result.throughput:6.2f} req/s  "
        f"p50 {result.percentile(50):6.2f} s  p95 {result.percentile(95):6.2f} s  "
        f"max {max(result.latencies, default=float('nan')):6.2f} s{ratio}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="benchmark this running server instead of starting one")
    parser.add_argument(
        "--models",
        default="pokemon-dcgan-64,realesrgan-x4plus-anime",
        help="models for the server this script starts (comma-separated)",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument("--size", type=int, default=32, help="side of the upscaled image")
    parser.add_argument("--scenarios", default="generate,upscale")
    parser.add_argument(
        "--server-args", default="", help="extra `kerasr serve` options, e.g. '--workers 2'"
    )
    args = parser.parse_args()

    process = None
    url = args.url
    if url is None:
        process, url = start_server(args.models, args.server_args.split())
    elif urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load goes to this machine only: --url must be on 127.0.0.1")
    try:
        models = httpx.get(url + "/api/models", timeout=10).json()
        workers = httpx.get(url + "/healthz", timeout=10).json()["workers"]
        print(f"server {url}: {workers} worker(s), {os.cpu_count()} CPUs", flush=True)
        buffer = io.BytesIO()
        pixels = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        upload = buffer.getvalue()

        scenarios = {}
        if models["generators"]:
            generator = models["generators"][0]["name"]
            scenarios["generate"] = (
                f"5 images from {generator}",
                lambda http: http.post(url + "/api/generate", json={"model": generator, "n": 5}),
            )
        if models["upscalers"]:
            scenarios["upscale"] = (
                f"{args.size}x{args.size} PNG with {models['default_upscaler']}",
                lambda http: http.post(url + "/api/upscale", files={"file": ("b.png", upload)}),
            )
        failed = 0
        for name in args.scenarios.split(","):
            if name not in scenarios:
                print(f"{name}: skipped, the server has no model for it", flush=True)
                continue
            what, send = scenarios[name]
            print(f"--- {name}: {what}, {args.duration:g} s per run", flush=True)
            with httpx.Client(timeout=600) as http:
                send(http)  # warm-up: the first call traces the model
            alone = run_clients(send, 1, args.duration)
            report(name, 1, alone, None)
            crowd = run_clients(send, args.clients, args.duration)
            report(name, args.clients, crowd, alone)
            failed += alone.failed + crowd.failed
        print("no request failed" if failed == 0 else f"{failed} requests FAILED", flush=True)
        return 1 if failed else 0
    finally:
        if process is not None:
            stop_server(process)


if __name__ == "__main__":
    sys.exit(main())

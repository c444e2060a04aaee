"""Soak test of the web app: a long mix of good, bad and abandoned requests from many clients.

Starts `kerasr serve` on a free 127.0.0.1 port (or uses `--url`), then `--clients` clients
(default 16) each send one request after another for `--duration` seconds (default 600),
drawn at random from this mix:

- good: `POST /api/generate` of 5 images, the same with the images upscaled x4, and
  `POST /api/upscale` of a 32x32 or 64x64 PNG (answer 200, or 503 when the queue is full);
- bad, each with the status it is designed to get: a 20 KB JSON body (413), an unknown
  field (422), `n: 0` (422), an image over the pixel limit (413), a file that is not an
  image (400), an unknown model (404), a foreign `Host` header (400), a cross-site form
  post (403);
- abandoned: an upload whose client hangs up after 0.2 s, without reading the answer.

Every 10 s it samples the server's resident memory (RSS). At the end it prints requests per
kind, the statuses seen, failures (a status other than the designed ones, or a dropped
connection), p50 / p95 latency of the answered good requests, and the RSS after warm-up
against the RSS at the end. Exits 1 if any request failed. Traffic goes to 127.0.0.1 only.

    python bench/soak.py                       # 10 minutes, 16 clients
    python bench/soak.py --duration 60 --json soak.json
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from serve import start_server, stop_server  # bench/serve.py, beside this file

SAMPLE_EVERY = 10.0


def png(side: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc, else psutil)."""
    statm = Path(f"/proc/{pid}/statm")
    if statm.exists():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import psutil  # not needed on Linux

    return psutil.Process(pid).memory_info().rss


def abandon_upload(url: str, upload: bytes, wait: float = 0.2) -> str:
    """Sends a whole upload over a raw socket, then hangs up without reading the answer."""
    address = urlparse(url)
    boundary = "kerasrsoakboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + upload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/upscale HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head + body)
        time.sleep(wait)
    return "abandoned"


def request_mix(url: str, models: dict, max_pixels: int):
    """(name, weight, designed statuses, send(http) -> status) for each kind of request."""
    generator = models["generators"][0]["name"] if models["generators"] else None
    small, medium = png(32, 1), png(64, 2)
    side = int(max_pixels**0.5) + 8
    too_big = png(side, 3)
    ok = {200, 503}  # 503: the queue was full; designed, with Retry-After

    def post_json(payload, **headers):
        return lambda http: http.post(url + "/api/generate", json=payload, headers=headers)

    def post_file(data, name="a.png", **headers):
        return lambda http: http.post(
            url + "/api/upscale", files={"file": (name, data)}, headers=headers
        )

    mix = []
    if generator:
        mix += [
            ("generate 5", 30, ok, post_json({"model": generator, "n": 5})),
            ("generate 2 + x4", 6, ok, post_json({"model": generator, "n": 2, "upscale": True})),
            ("bad: n=0", 3, {422}, post_json({"model": generator, "n": 0})),
        ]
    if models["upscalers"]:
        mix += [
            ("upscale 32x32", 22, ok, post_file(small)),
            ("upscale 64x64", 10, ok, post_file(medium)),
            ("bad: too many pixels", 3, {413}, post_file(too_big)),
            ("bad: not an image", 3, {400}, post_file(b"hello, not a PNG")),
            ("bad: unknown model", 2, {404}, post_json({"model": "missingno"})),
            (
                "bad: cross-site form",
                3,
                {403},
                post_file(small, origin="https://evil.example", **{"sec-fetch-site": "cross-site"}),
            ),
            (
                "abandoned upload",
                3,
                {"abandoned"},
                lambda http: abandon_upload(url, medium),
            ),
        ]
    mix += [
        ("bad: 20 KB JSON", 3, {413}, post_json({"n": 1, "pad": "x" * 20_000})),
        ("bad: unknown field", 3, {422}, post_json({"seeds": 3})),
        (
            "bad: foreign Host",
            3,
            {400},
            lambda http: http.get(url + "/api/models", headers={"host": "rebind.example"}),
        ),
    ]
    return mix


def percentile(values, q):
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="soak this running server instead of starting one")
    parser.add_argument(
        "--models",
        default="pokemon-dcgan-64,realesrgan-x4plus-anime",
        help="models for the server this script starts (comma-separated)",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before RSS counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--server-args", default="", help="extra `kerasr serve` options, e.g. '--workers 2'"
    )
    parser.add_argument("--pid", type=int, help="the server's process id, to sample its RSS")
    args = parser.parse_args()

    process = None
    url, pid = args.url, args.pid
    if url is None:
        process, url = start_server(args.models, args.server_args.split())
        pid = process.pid
    elif urlparse(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load goes to this machine only: --url must be on 127.0.0.1")
    try:
        models = httpx.get(url + "/api/models", timeout=10).json()
        health = httpx.get(url + "/healthz", timeout=10).json()
        mix = request_mix(url, models, models["limits"]["max_pixels"])
        print(
            f"server {url}: {health['workers']} worker(s), {os.cpu_count()} CPUs; "
            f"{args.clients} clients for {args.duration:g} s",
            flush=True,
        )
        with httpx.Client(timeout=600) as http:  # warm-up: the first calls trace the models
            for _name, _weight, designed, send in mix:
                if 200 in designed:
                    send(http)
        figures = soak(url, pid, mix, args)
    finally:
        if process is not None:
            stop_server(process)
    print_report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if figures["failures"] else 0


def soak(url: str, pid: int | None, mix, args) -> dict:
    names = [m[0] for m in mix]
    weights = [m[1] for m in mix]
    by_name = {m[0]: m for m in mix}
    records = []  # (kind, outcome, latency)
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + args.duration
    stop = threading.Event()
    samples = []  # (seconds since start, RSS bytes)

    def sampler():
        while True:
            if pid is not None:
                with contextlib.suppress(OSError, ValueError):  # the server has just exited
                    samples.append((time.perf_counter() - start, rss_bytes(pid)))
            if stop.wait(SAMPLE_EVERY):
                return

    def client(index: int):
        rng = random.Random(args.seed * 1000 + index)
        with httpx.Client(timeout=600) as http:
            while time.perf_counter() < deadline:
                kind = rng.choices(names, weights)[0]
                send = by_name[kind][3]
                began = time.perf_counter()
                try:
                    outcome = send(http)
                    if not isinstance(outcome, str):
                        outcome = outcome.status_code
                except (httpx.HTTPError, OSError) as error:
                    outcome = type(error).__name__
                with lock:
                    records.append((kind, outcome, time.perf_counter() - began))

    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    # The abandoned uploads must not linger: the queue drains to empty.
    drained = None
    with httpx.Client(timeout=10) as http:
        for _ in range(300):
            if http.get(url + "/healthz").json()["busy"] == 0:
                drained = round(time.perf_counter() - start - elapsed, 1)
                break
            time.sleep(0.1)
    if pid is not None:
        samples.append((time.perf_counter() - start, rss_bytes(pid)))
    stop.set()
    return summarise(records, samples, by_name, elapsed, drained, args)


def summarise(records, samples, by_name, elapsed, drained, args) -> dict:
    kinds = {}
    failures = collections.Counter()
    statuses = collections.Counter()
    good_latencies = []
    for kind, outcome, latency in records:
        entry = kinds.setdefault(kind, {"requests": 0, "statuses": collections.Counter()})
        entry["requests"] += 1
        entry["statuses"][str(outcome)] += 1
        statuses[str(outcome)] += 1
        if outcome not in by_name[kind][2]:
            failures[str(outcome)] += 1
        if outcome == 200:
            entry.setdefault("latencies", []).append(latency)
            good_latencies.append(latency)
    after_warmup = [(t, r) for t, r in samples if t >= args.warmup] or samples[-1:]
    mb = 1024 * 1024
    rss = {}
    if samples:
        times = np.array([t for t, _ in after_warmup])
        values = np.array([r for _, r in after_warmup]) / mb
        slope = float(np.polyfit(times, values, 1)[0] * 60) if len(times) > 2 else float("nan")
        rss = {
            "samples": len(samples),
            "start_mb": round(samples[0][1] / mb, 1),
            "after_warmup_mb": round(after_warmup[0][1] / mb, 1),
            "end_mb": round(samples[-1][1] / mb, 1),
            "max_mb": round(max(r for _, r in samples) / mb, 1),
            "growth_after_warmup_mb": round((after_warmup[-1][1] - after_warmup[0][1]) / mb, 1),
            "trend_after_warmup_mb_per_min": round(slope, 2),
        }
    return {
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "requests": len(records),
        "statuses": dict(sorted(statuses.items())),
        "failures": dict(failures),
        "good_answered": len(good_latencies),
        "p50_s": round(percentile(good_latencies, 50), 3),
        "p95_s": round(percentile(good_latencies, 95), 3),
        "queue_drained_after_s": drained,
        "rss": rss,
        "kinds": {
            kind: {
                "requests": entry["requests"],
                "statuses": dict(sorted(entry["statuses"].items())),
                "p50_s": round(percentile(entry.get("latencies", []), 50), 3),
                "p95_s": round(percentile(entry.get("latencies", []), 95), 3),
            }
            for kind, entry in sorted(kinds.items())
        },
    }


def seconds(value: float) -> str:
    return "-" if value != value else f"{value:.2f}s"  # NaN: no answered request


def print_report(figures: dict) -> None:
    print(f"\n{'kind':<22} {'requests':>8}  {'p50':>7} {'p95':>7}  statuses")
    for kind, entry in figures["kinds"].items():
        statuses = ", ".join(f"{k}: {v}" for k, v in entry["statuses"].items())
        p50, p95 = (seconds(entry[key]) for key in ("p50_s", "p95_s"))
        print(f"{kind:<22} {entry['requests']:>8}  {p50:>7} {p95:>7}  {statuses}")
    print(
        f"\n{figures['requests']} requests in {figures['duration_s']:g} s from "
        f"{figures['clients']} clients; statuses {figures['statuses']}"
    )
    print(
        f"good requests answered: {figures['good_answered']}, "
        f"p50 {figures['p50_s']:.2f} s, p95 {figures['p95_s']:.2f} s"
    )
    print(f"queue empty {figures['queue_drained_after_s']} s after the last request")
    rss = figures["rss"]
    if rss:
        print(
            f"RSS: {rss['start_mb']} MB at start, {rss['after_warmup_mb']} MB after warm-up, "
            f"{rss['end_mb']} MB at the end (max {rss['max_mb']} MB; "
            f"{rss['growth_after_warmup_mb']:+} MB after warm-up, "
            f"trend {rss['trend_after_warmup_mb_per_min']:+} MB/min; {rss['samples']} samples)"
        )
    failures = figures["failures"]
    print("no request failed" if not failures else f"FAILED: {failures}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

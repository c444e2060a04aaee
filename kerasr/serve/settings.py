"""What the web app is given: its limits and its ready-to-call models.

Kept free of FastAPI and Keras, so that `kerasr serve` can check its options before either is
imported and the tests can describe tiny models in a line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from kerasr.errors import KerasrError, shorten

# A DNS name: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def check_host(host: str) -> None:
    """Refuses, in one line, a listening address that is neither an IP address nor a name."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    # All digits and dots is an IPv4 address gone wrong (300.1.2.3), not a name.
    if not _HOST_NAME.fullmatch(host) or re.fullmatch(r"[\d.]+", host):
        raise KerasrError(
            "`host` must be an IP address or a host name, such as 127.0.0.1, 0.0.0.0 or "
            f"localhost. Received: host={shorten(host)!r}"
        )


def check_port(port: int) -> None:
    """Refuses, in one line, a TCP port outside 1-65535."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise KerasrError(f"`port` must be between 1 and 65535. Received: port={port!r}")


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """Limits of the web app; the defaults suit one CPU machine shared by a few people.

    Args:
        max_upload_bytes: largest image file `/api/upscale` accepts (413 above).
        max_pixels: largest image, in pixels, `/api/upscale` accepts (413 above). Upscaling
            costs time and memory in proportion to the pixels, so this is the real limit;
            the default 65,536 is 256x256 in, 1024x1024 out.
        max_images: most images one `/api/generate` call may ask for.
        workers: model calls that run at the same time. TensorFlow already spreads one call
            over all cores, so more workers mostly add memory, not speed.
        max_queue: requests that may wait for a worker; more get 503 and a Retry-After.
        default_upscaler: model `/api/upscale` uses when none is named; None for the first.
        default_generator: model `/api/generate` uses when none is named; None for the first.
        host: the address the server listens on. Requests must name it (or a loopback name,
            or one of `allowed_hosts`) in their `Host` header, so that a web page cannot
            reach the app through a DNS name of its own (DNS rebinding). On a wildcard
            address (0.0.0.0, ::) any IP address is accepted, but host names only from
            `allowed_hosts`.
        allowed_hosts: more names the `Host` header may carry, e.g. the machine's DNS name;
            `.example.org` also allows its subdomains, `*` allows any name.
        cors_origins: other sites (e.g. `https://example.org`) whose pages may call the API
            from the browser; none by default: only the app's own page may.
        max_json_bytes: largest JSON request body (413 above).
        max_requests: requests with a body (uploads, generate calls) handled at once,
            waiting ones included; more get 503 and a Retry-After before their body is read,
            so a flood cannot fill the memory. Pages, health and the model list are not
            counted.
        max_client_requests: the share of `max_requests` one client address may hold at
            once; more get 429. Behind a reverse proxy every request comes from the proxy's
            address: set it to `max_requests` there.
        body_timeout: seconds a request body may take to arrive in full (408 and the
            connection closed after), so that clients sending a few bytes and then nothing
            cannot hold the slots. The default lets an 8 MB upload through at about
            1 Mbit/s.
    """

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 256 * 256
    max_images: int = 16
    workers: int = 1
    max_queue: int = 32
    default_upscaler: str | None = None
    default_generator: str | None = None
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_json_bytes: int = 8 * 1024
    max_requests: int = 128
    max_client_requests: int = 32
    body_timeout: float = 60.0

    def __post_init__(self):
        check_host(self.host)
        # Lists are welcome; stored as tuples so that the settings stay hashable and frozen.
        for name in ("allowed_hosts", "cors_origins"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise KerasrError(
                    "a CORS origin is a scheme and a host, like https://example.org "
                    f"(no path, no trailing slash). Received: {shorten(origin)!r}"
                )
        for name in self.allowed_hosts:
            if not name or any(c in name for c in "/ \t@"):
                raise KerasrError(
                    "an allowed host is a name like example.org or .example.org. "
                    f"Received: {shorten(name)!r}"
                )
        names = (
            "max_upload_bytes",
            "max_pixels",
            "max_images",
            "workers",
            "max_json_bytes",
            "max_requests",
            "max_client_requests",
        )
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise KerasrError(
                    f"`{name}` must be a positive integer. Received: {name}={value!r}"
                )
        timeout = self.body_timeout
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout < math.inf
        ):
            raise KerasrError(
                f"`body_timeout` must be a positive number of seconds. Received: "
                f"body_timeout={timeout!r}"
            )
        if not isinstance(self.max_queue, int) or self.max_queue < 0:
            raise KerasrError(
                "`max_queue` must be a non-negative integer. "
                f"Received: max_queue={self.max_queue!r}"
            )


@dataclasses.dataclass(frozen=True)
class ServedUpscaler:
    """An upscaling model as the web app sees it.

    Args:
        name: the name clients use.
        description: one or two sentences for the page's legend.
        scale: how many times larger the output is.
        upscale: maps an HxWxC (C 1, 3 or 4) uint8 or uint16 array to the upscaled array of
            the same dtype and channels, e.g. `kerasr.upscaling.inference.Upscaler(model).upscale`.
    """

    name: str
    description: str
    scale: int
    upscale: Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ServedGenerator:
    """An image generator as the web app sees it.

    Args:
        name: the name clients use.
        description: one or two sentences for the page's legend.
        image_size: side of the square images it draws.
        generate: maps a sequence of seeds to a uint8 array [n, H, W, 3], the same image for
            the same seed, e.g. `functools.partial(kerasr.generation.generate, generator)`.
    """

    name: str
    description: str
    image_size: int
    generate: Callable[[Sequence[int]], np.ndarray]

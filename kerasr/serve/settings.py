"""What the web app is given: its limits and its ready-to-call models.

Kept free of FastAPI and Keras, so that `kerasr serve` can check its options before either is
imported and the tests can describe tiny models in a line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np

from kerasr.errors import KerasrError


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
        max_requests: requests handled at once, waiting ones included; more get 503 and a
            Retry-After before their body is read, so a flood cannot fill the memory.
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

    def __post_init__(self):
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
                    f"(no path, no trailing slash). Received: {origin!r}"
                )
        for name in self.allowed_hosts:
            if not name or any(c in name for c in "/ \t@"):
                raise KerasrError(
                    "an allowed host is a name like example.org or .example.org. "
                    f"Received: {name!r}"
                )
        names = (
            "max_upload_bytes",
            "max_pixels",
            "max_images",
            "workers",
            "max_json_bytes",
            "max_requests",
        )
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise KerasrError(
                    f"`{name}` must be a positive integer. Received: {name}={value!r}"
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
            the same dtype and channels, e.g. `kerasr.inference.Upscaler(model).upscale`.
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

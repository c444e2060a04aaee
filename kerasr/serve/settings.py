"""What the web app is given: its limits and its ready-to-call models.

Kept free of FastAPI and Keras, so that `kerasr serve` can check its options before either is
imported and the tests can describe tiny models in a line.
"""

from __future__ import annotations

import dataclasses
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
    """

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = 256 * 256
    max_images: int = 16
    workers: int = 1
    max_queue: int = 32
    default_upscaler: str | None = None

    def __post_init__(self):
        for name in ("max_upload_bytes", "max_pixels", "max_images", "workers"):
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

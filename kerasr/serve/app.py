"""The web app: a JSON API and one static page to draw new Pokemon and upscale images.

The app knows nothing about where its models come from: `create_app` takes ready-to-call
`ServedGenerator` and `ServedUpscaler` entries, so the `serve` command can hand it the real
registries and the tests can hand it tiny models built in a second. Every model call runs in
an `InferencePool`: a fixed number of worker threads and a bounded queue, so that a crowd of
requests waits its turn (or is told to come back) instead of loading the whole crowd's
images into memory at once.

Errors are JSON `{"detail": "<one line>"}` with the status that says what went wrong:
400 for input that is not an image, 404 for an unknown model, 413 for an upload or an image
over the configured limits, 422 for a malformed request, 503 when the queue is full.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import io
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from kerasr.errors import KerasrError
from kerasr.images import decode_image, encode_png

log = logging.getLogger("kerasr.serve")

STATIC_DIR = Path(__file__).parent / "static"

# Seeds stay within int32: JavaScript numbers hold them exactly, and every backend takes them.
MAX_SEED = 2**31 - 1

# Room for the multipart boundaries and headers around the file itself, so that a file of
# exactly `max_upload_bytes` is accepted.
_MULTIPART_OVERHEAD = 16 * 1024


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


class ServerBusy(Exception):
    """Raised by `InferencePool.run` when every worker is busy and the queue is full."""


class InferencePool:
    """Runs model calls on `workers` threads, with at most `max_queue` calls waiting.

    A call counts from submission until its thread finishes it, even if the client that
    asked for it has gone away meanwhile: the memory it holds is only freed then. A call
    that has not started when its client goes away is dropped from the queue.
    """

    def __init__(self, workers: int, max_queue: int):
        self.workers = workers
        self.max_queue = max_queue
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="kerasr-inference"
        )
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Calls running or waiting."""
        return self._admitted

    def _release(self, _future) -> None:
        with self._lock:
            self._admitted -= 1

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Runs `function(*args)` on a worker thread and returns its result.

        Raises:
            ServerBusy: when `workers + max_queue` calls are already admitted.
        """
        with self._lock:
            if self._admitted >= self.workers + self.max_queue:
                raise ServerBusy
            self._admitted += 1
        try:
            future = self._executor.submit(function, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Drops the queued calls and waits for the running ones."""
        self._executor.shutdown(wait=True, cancel_futures=True)


# --- JSON schemas (they are also the OpenAPI documentation at /docs) ---


class GeneratorOut(BaseModel):
    name: str
    description: str
    image_size: int


class UpscalerOut(BaseModel):
    name: str
    description: str
    scale: int


class LimitsOut(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_images: int
    max_seed: int


class ModelsOut(BaseModel):
    generators: list[GeneratorOut]
    upscalers: list[UpscalerOut]
    default_upscaler: str | None
    limits: LimitsOut


class GenerateIn(BaseModel):
    model: str = Field(description="Name of a generator, from GET /api/models.")
    n: int = Field(5, ge=1, description="How many images (at most the server's max_images).")
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="First seed; image i uses seed + i. Random seeds when left out.",
    )
    upscale: bool | str = Field(
        False,
        description="Also upscale the images: true for the default upscaler, or its name.",
    )


class GeneratedImage(BaseModel):
    seed: int
    width: int
    height: int
    png: str = Field(description="The image as a base64-encoded PNG.")


class GenerateOut(BaseModel):
    model: str
    upscaler: str | None
    images: list[GeneratedImage]


class HealthOut(BaseModel):
    status: str
    generators: int
    upscalers: int
    workers: int
    busy: int


# --- image helpers ---


def _open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Opens an upload without decoding its pixels yet, so the size can be checked first."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # A few KB that claim hundreds of megapixels: Pillow refuses them before we can ask.
        raise _too_many_pixels(None, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(
            400, "the upload is not an image this server can read (use PNG, JPEG, WebP, ...)"
        ) from None
    return image


def _safe_stem(filename: str | None) -> str:
    """A file-name stem fit for a Content-Disposition header."""
    stem = Path(filename or "image").stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
    return stem[:80]


def _human_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    if count >= 1024:
        return f"{count / 1024:g} KB"
    return f"{count} bytes"


# --- the app ---


def create_app(
    generators: Sequence[ServedGenerator],
    upscalers: Sequence[ServedUpscaler],
    settings: ServeSettings | None = None,
) -> FastAPI:
    """Builds the web app around ready-to-call models.

    Args:
        generators: models for the "Generate" tab and `POST /api/generate`.
        upscalers: models for the "Upscale" tab, `POST /api/upscale` and `upscale` in
            `POST /api/generate`.
        settings: limits and the worker pool size; `ServeSettings()` when None.

    Returns:
        A FastAPI app, to run with any ASGI server (`kerasr serve` uses uvicorn).

    Example:

        app = create_app([], [ServedUpscaler("x4", "A test model.", 4, upscaler.upscale)])
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    settings = settings or ServeSettings()
    generator_map = _by_name(generators, "generator")
    upscaler_map = _by_name(upscalers, "upscaler")
    default_upscaler = settings.default_upscaler or (upscalers[0].name if upscalers else None)
    if default_upscaler is not None and default_upscaler not in upscaler_map:
        raise KerasrError(
            f"the default upscaler {default_upscaler!r} is not among the loaded ones: "
            f"{', '.join(upscaler_map) or 'none'}"
        )
    pool = InferencePool(settings.workers, settings.max_queue)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown()

    app = FastAPI(
        title="kerasr",
        description="Draw new Pokemon with a DCGAN and upscale images with Real-ESRGAN.",
        lifespan=lifespan,
    )
    app.state.pool = pool
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError):
        # FastAPI's default is a list of nested objects; a person reading it wants one line.
        messages = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            messages.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    @app.exception_handler(ServerBusy)
    async def _busy(_request: Request, _error: ServerBusy):
        return JSONResponse(
            {"detail": "the server is busy; try again in a few seconds"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(KerasrError)
    async def _user_error(_request: Request, error: KerasrError):
        return JSONResponse({"detail": " ".join(str(error).split())}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _error: Exception):
        # The traceback goes to the server log (Starlette re-raises the error after this
        # answer, and uvicorn prints it); the client gets one line.
        return JSONResponse(
            {"detail": "internal error; the server log has the details"}, status_code=500
        )

    def generator_for(name: str) -> ServedGenerator:
        if name not in generator_map:
            raise HTTPException(
                404, f"unknown generator {name!r}; available: {', '.join(generator_map) or 'none'}"
            )
        return generator_map[name]

    def upscaler_for(name: str) -> ServedUpscaler:
        if name not in upscaler_map:
            raise HTTPException(
                404, f"unknown upscaler {name!r}; available: {', '.join(upscaler_map) or 'none'}"
            )
        return upscaler_map[name]

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", response_model=HealthOut, summary="Liveness and load")
    async def healthz():
        return HealthOut(
            status="ok",
            generators=len(generator_map),
            upscalers=len(upscaler_map),
            workers=pool.workers,
            busy=pool.admitted,
        )

    @app.get("/api/models", response_model=ModelsOut, summary="The models and the limits")
    async def models():
        return ModelsOut(
            generators=[
                GeneratorOut(name=g.name, description=g.description, image_size=g.image_size)
                for g in generator_map.values()
            ],
            upscalers=[
                UpscalerOut(name=u.name, description=u.description, scale=u.scale)
                for u in upscaler_map.values()
            ],
            default_upscaler=default_upscaler,
            limits=LimitsOut(
                max_upload_bytes=settings.max_upload_bytes,
                max_pixels=settings.max_pixels,
                max_images=settings.max_images,
                max_seed=MAX_SEED,
            ),
        )

    @app.post(
        "/api/generate",
        response_model=GenerateOut,
        summary="Draw new images from seeds",
        responses={404: {"description": "Unknown model"}, 503: {"description": "Busy"}},
    )
    async def generate(request: GenerateIn):
        generator = generator_for(request.model)
        if request.n > settings.max_images:
            raise HTTPException(
                422, f"n: at most {settings.max_images} images per request. Received: n={request.n}"
            )
        upscaler = None
        if request.upscale is True:
            if default_upscaler is None:
                raise HTTPException(404, "no upscaler is loaded on this server")
            upscaler = upscaler_for(default_upscaler)
        elif isinstance(request.upscale, str):
            upscaler = upscaler_for(request.upscale)
        if request.seed is None:
            seeds = [secrets.randbelow(MAX_SEED + 1) for _ in range(request.n)]
        else:
            if request.seed + request.n - 1 > MAX_SEED:
                raise HTTPException(
                    422,
                    f"seed: seed + n - 1 must be at most {MAX_SEED}. Received: seed={request.seed}",
                )
            seeds = [request.seed + i for i in range(request.n)]

        def work() -> list[GeneratedImage]:
            started = time.perf_counter()
            batch = np.asarray(generator.generate(seeds))
            images = []
            for seed, pixels in zip(seeds, batch, strict=True):
                if upscaler is not None:
                    pixels = upscaler.upscale(pixels)
                images.append(
                    GeneratedImage(
                        seed=seed,
                        width=int(pixels.shape[1]),
                        height=int(pixels.shape[0]),
                        png=base64.b64encode(encode_png(pixels, compress_level=3)).decode("ascii"),
                    )
                )
            took = time.perf_counter() - started
            log.info("generated %d with %s in %.2f s", len(seeds), generator.name, took)
            return images

        images = await pool.run(work)
        return GenerateOut(
            model=generator.name, upscaler=upscaler.name if upscaler else None, images=images
        )

    @app.post(
        "/api/upscale",
        summary="Upscale an uploaded image",
        response_class=Response,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "model": {
                                    "type": "string",
                                    "description": "An upscaler; the default when left out.",
                                },
                            },
                        }
                    }
                },
            }
        },
        responses={
            200: {"content": {"image/png": {}}, "description": "The upscaled image"},
            400: {"description": "Not an image"},
            404: {"description": "Unknown model"},
            413: {"description": "File or image too large"},
            503: {"description": "Busy"},
        },
    )
    async def upscale(request: Request):
        form = await _read_form(request, settings.max_upload_bytes)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, "send the image as the `file` field of a multipart form")
        model_name = form.get("model") or default_upscaler
        if model_name is None:
            raise HTTPException(404, "no upscaler is loaded on this server")
        if not isinstance(model_name, str):
            raise HTTPException(400, "the `model` field must be text, not a file")
        upscaler = upscaler_for(model_name)
        data = await upload.read()
        if len(data) > settings.max_upload_bytes:
            raise _too_large_upload(settings.max_upload_bytes)
        image = _open_image(data, settings.max_pixels)
        width, height = image.size
        if width * height > settings.max_pixels:
            raise _too_many_pixels(width, height, settings.max_pixels)

        def work() -> bytes:
            started = time.perf_counter()
            pixels = decode_image(data, upload.filename or "upload")
            result = encode_png(upscaler.upscale(pixels), compress_level=3)
            took = time.perf_counter() - started
            log.info("upscaled %dx%d with %s in %.2f s", width, height, upscaler.name, took)
            return result

        png = await pool.run(work)
        filename = f"{_safe_stem(upload.filename)}_x{upscaler.scale}.png"
        return Response(
            png,
            media_type="image/png",
            headers={
                "Content-Disposition": f'inline; filename="{filename}"',
                "X-Kerasr-Model": upscaler.name,
                "X-Kerasr-Scale": str(upscaler.scale),
            },
        )

    return app


def _by_name(entries, kind: str) -> dict:
    result = {}
    for entry in entries:
        if entry.name in result:
            raise KerasrError(f"two {kind}s are named {entry.name!r}")
        result[entry.name] = entry
    return result


def _too_large_upload(limit: int) -> HTTPException:
    return HTTPException(
        413, f"the upload is larger than this server's limit of {_human_bytes(limit)}"
    )


def _too_many_pixels(width: int | None, height: int | None, limit: int) -> HTTPException:
    side = int(limit**0.5)
    size = f"{width}x{height} = {width * height:,} pixels" if width else "far too large"
    return HTTPException(
        413,
        f"the image is {size}; this server upscales at most {limit:,} pixels "
        f"(e.g. {side}x{side}). Crop or shrink it first.",
    )


async def _read_form(request: Request, max_upload_bytes: int):
    """Reads a multipart body, refusing it (413) as soon as it passes the upload limit.

    The body is read here rather than through a `File()` parameter, because FastAPI would
    otherwise spool the whole upload, however large, before the endpoint could say no.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(
            400, "send the image as multipart/form-data with a `file` field (and `model`)"
        )
    limit = max_upload_bytes + _MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large_upload(max_upload_bytes)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large_upload(max_upload_bytes)
    except ClientDisconnect:
        # Nobody is left to read an answer; this only keeps a traceback out of the log.
        raise HTTPException(400, "the upload was interrupted") from None

    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=1, max_fields=4)
    except Exception:
        raise HTTPException(400, "the multipart form could not be parsed") from None

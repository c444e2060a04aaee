"""The web app: a JSON API and one static page to draw new Pokemon and upscale images.

The app knows nothing about where its models come from: `create_app` takes ready-to-call
`ServedGenerator` and `ServedUpscaler` entries, so the `serve` command can hand it the real
registries and the tests can hand it tiny models built in a second. Every model call runs in
an `InferencePool` (pool.py): a fixed number of worker threads and a bounded queue.

Errors are JSON `{"detail": "<one line>"}` with the status that says what went wrong:
400 for input that is not an image, 404 for an unknown model, 413 for an upload or an image
over the configured limits, 422 for a malformed request, 503 when the queue is full. The
`Guard` middleware (guard.py) answers first: 400 for a foreign Host, 403 for a cross-site
post, 408 for a body that arrives too slowly, 413 for a JSON body over its limit, 429 when
one address has too many requests in flight and 503 when all addresses together do; it also
adds the security headers to every answer.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from kerasr.errors import KerasrError, shorten
from kerasr.generation import MAX_SEED, choose_seeds, draw
from kerasr.image_metadata import read_metadata
from kerasr.images import decode_image, encode_png
from kerasr.serve.apidocs import add_api_docs
from kerasr.serve.guard import RETRY_AFTER_SECONDS, Guard, RequestSlots
from kerasr.serve.pool import ClientGone, InferencePool, ServerBusy
from kerasr.serve.schemas import (
    GeneratedImage,
    GenerateIn,
    GenerateOut,
    GeneratorOut,
    HealthOut,
    LimitsOut,
    ModelsOut,
    UpscalerOut,
)
from kerasr.serve.settings import ServedGenerator, ServedUpscaler, ServeSettings
from kerasr.serve.uploads import (
    open_image,
    read_form,
    safe_stem,
    too_large_upload,
    too_many_pixels,
)

log = logging.getLogger("kerasr.serve")

STATIC_DIR = Path(__file__).parent / "static"

__all__ = ["create_app"]


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
            f"the default upscaler {shorten(default_upscaler)!r} is not among the loaded ones: "
            f"{', '.join(upscaler_map) or 'none'}"
        )
    default_generator = settings.default_generator or (generators[0].name if generators else None)
    if default_generator is not None and default_generator not in generator_map:
        raise KerasrError(
            f"the default generator {shorten(default_generator)!r} is not among the loaded ones: "
            f"{', '.join(generator_map) or 'none'}"
        )
    pool = InferencePool(settings.workers, settings.max_queue)
    slots = RequestSlots(settings.max_requests, settings.max_client_requests)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        pool.shutdown()

    app = FastAPI(
        title="kerasr",
        description="Draw new Pokemon with a GAN and upscale images with Real-ESRGAN.",
        lifespan=lifespan,
        # /docs is served from local files by add_api_docs; ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
            expose_headers=["content-disposition", "x-kerasr-model", "x-kerasr-scale"],
        )
    # Added last, so it runs first: refusals never reach CORS or the routes.
    app.add_middleware(Guard, settings=settings, slots=slots, streamed_paths=["/api/upscale"])
    app.state.pool = pool
    app.state.settings = settings

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError):
        # FastAPI's default is a list of nested objects; a person reading it wants one line.
        messages = []
        for item in error.errors():
            where = shorten(".".join(str(part) for part in item.get("loc", ()) if part != "body"))
            message = item.get("msg")
            if item.get("type") == "extra_forbidden":
                # A typo such as `seeds` must not be ignored silently: name the real fields.
                message = f"unknown field; the fields are {', '.join(GenerateIn.model_fields)}"
            messages.append(f"{where}: {message}" if where else str(message))
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    @app.exception_handler(ServerBusy)
    async def _busy(_request: Request, _error: ServerBusy):
        return JSONResponse(
            {"detail": "the server is busy; try again in a few seconds"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(ClientGone)
    async def _gone(_request: Request, error: ClientGone):
        # Nobody reads this answer; 499 is what proxies log for a client that closed first.
        log.info("client went away: its call was %s", "abandoned" if error.started else "dropped")
        return Response(status_code=499)

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

    def generator_for(name: str | None) -> ServedGenerator:
        if name is None:
            if default_generator is None:
                raise HTTPException(404, "no generator is loaded on this server")
            name = default_generator
        if name not in generator_map:
            raise HTTPException(
                404,
                f"unknown generator {shorten(name)!r}; available: "
                f"{', '.join(generator_map) or 'none'}",
            )
        return generator_map[name]

    def upscaler_for(name: str) -> ServedUpscaler:
        if name not in upscaler_map:
            raise HTTPException(
                404,
                f"unknown upscaler {shorten(name)!r}; available: "
                f"{', '.join(upscaler_map) or 'none'}",
            )
        return upscaler_map[name]

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    add_api_docs(app, STATIC_DIR)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", response_model=HealthOut, summary="Liveness and load")
    async def healthz():
        return HealthOut(
            status="ok",
            generators=len(generator_map),
            upscalers=len(upscaler_map),
            workers=pool.workers,
            busy=pool.admitted,
            requests=slots.total,
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
            default_generator=default_generator,
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
    async def generate(request: GenerateIn, connection: Request):
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
        try:
            seeds = choose_seeds(request.n, request.seed)
        except KerasrError as error:
            raise HTTPException(422, f"seed: {error}") from None

        def work() -> list[GeneratedImage]:
            started = time.perf_counter()
            batch = draw(generator.generate, seeds, upscaler.upscale if upscaler else None)
            images = []
            for seed, pixels in zip(seeds, batch, strict=True):
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

        images = await pool.run(work, receive=connection.receive)
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
        form = await read_form(request, settings.max_upload_bytes)
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
            raise too_large_upload(settings.max_upload_bytes)
        image = open_image(data, settings.max_pixels)
        width, height = image.size
        if width * height > settings.max_pixels:
            raise too_many_pixels(width, height, settings.max_pixels)

        def work() -> bytes:
            started = time.perf_counter()
            name = upload.filename or "upload"
            pixels = decode_image(data, name)
            metadata = read_metadata(data, name)
            result = encode_png(upscaler.upscale(pixels), compress_level=3, metadata=metadata)
            took = time.perf_counter() - started
            log.info("upscaled %dx%d with %s in %.2f s", width, height, upscaler.name, took)
            return result

        png = await pool.run(work, receive=request.receive)
        filename = f"{safe_stem(upload.filename)}_x{upscaler.scale}.png"
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

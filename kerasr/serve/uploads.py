"""Reading an uploaded image for `/api/upscale`: size limits before any pixel is decoded."""

from __future__ import annotations

import io
import re
from pathlib import Path

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect

from kerasr.images import NOT_AN_IMAGE, READ_FORMATS

# Room for the multipart boundaries and headers around the file itself, so that a file of
# exactly `max_upload_bytes` is accepted.
MULTIPART_OVERHEAD = 16 * 1024


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Opens an upload without decoding its pixels yet, so the size can be checked first."""
    try:
        image = Image.open(io.BytesIO(data), formats=READ_FORMATS)
    except Image.DecompressionBombError:
        # A few KB that claim hundreds of megapixels: Pillow refuses them before we can ask.
        raise too_many_pixels(None, None, max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise HTTPException(400, f"the upload is {NOT_AN_IMAGE}") from None
    return image


def safe_stem(filename: str | None) -> str:
    """A file-name stem fit for a Content-Disposition header."""
    stem = Path(filename or "image").stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
    return stem[:80]


def human_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    if count >= 1024:
        return f"{count / 1024:g} KB"
    return f"{count} bytes"


def too_large_upload(limit: int) -> HTTPException:
    return HTTPException(
        413, f"the upload is larger than this server's limit of {human_bytes(limit)}"
    )


def too_many_pixels(width: int | None, height: int | None, limit: int) -> HTTPException:
    side = int(limit**0.5)
    size = f"{width}x{height} = {width * height:,} pixels" if width else "far too large"
    return HTTPException(
        413,
        f"the image is {size}; this server upscales at most {limit:,} pixels "
        f"(e.g. {side}x{side}). Crop or shrink it first.",
    )


async def read_form(request: Request, max_upload_bytes: int):
    """Reads a multipart body, refusing it (413) as soon as it passes the upload limit.

    The body is read here rather than through a `File()` parameter, because FastAPI would
    otherwise spool the whole upload, however large, before the endpoint could say no.
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(
            400, "send the image as multipart/form-data with a `file` field (and `model`)"
        )
    limit = max_upload_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large_upload(max_upload_bytes)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_large_upload(max_upload_bytes)
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

"""The interactive API documentation at /docs, served without the internet.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script;
neither works offline or under the app's Content-Security-Policy. Here the Swagger UI files
come from the `fastapi-offline` package (part of the `serve` extra) and the page that starts
them is two files of `static/`. Without that package /docs says so, and how to get it; the
schema itself is always at /openapi.json.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_URL = "/static/swagger"

MISSING_NOTE = (
    "The interactive API docs need the fastapi-offline package, part of the serve extra:\n"
    "    pip install 'kerasr[serve]'\n"
    "The API schema is at /openapi.json.\n"
)


def swagger_assets() -> Path | None:
    """The folder with swagger-ui-bundle.js and swagger-ui.css, if the package is installed."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css")
    return folder if all((folder / name).is_file() for name in needed) else None


def add_api_docs(app: FastAPI, static_dir: Path) -> None:
    """Adds GET /docs (and the Swagger UI files under /static/swagger) to `app`.

    Call it before mounting `static_dir` at /static, so that /static/swagger is matched first.
    """
    assets = swagger_assets()
    if assets is None:

        @app.get("/docs", include_in_schema=False)
        async def docs_missing():
            return PlainTextResponse(MISSING_NOTE, status_code=404)

        return

    app.mount(SWAGGER_URL, StaticFiles(directory=assets), name="swagger")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(static_dir / "docs.html", headers={"Cache-Control": "no-cache"})

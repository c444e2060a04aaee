"""Web app: `kerasr serve` draws new Pokemon and upscales images in the browser.

`create_app` builds the FastAPI app around ready-to-call models (`ServedGenerator`,
`ServedUpscaler`); `load_served_models` loads them from the registries and `serve` runs the
app with uvicorn. `app.py` holds the routes, `pool.py` the worker pool,
`uploads.py` the upload limits, `schemas.py` the JSON bodies. The page itself is `static/`
(plain HTML, CSS and JS, no CDN).
Needs the `serve` extra: `pip install 'kerasr[serve]'`.
"""

from kerasr.serve.app import create_app
from kerasr.serve.loading import load_served_models, serve
from kerasr.serve.pool import InferencePool, ServerBusy
from kerasr.serve.settings import ServedGenerator, ServedUpscaler, ServeSettings

__all__ = [
    "InferencePool",
    "ServeSettings",
    "ServedGenerator",
    "ServedUpscaler",
    "ServerBusy",
    "create_app",
    "load_served_models",
    "serve",
]

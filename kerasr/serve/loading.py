"""Builds the web app's models from the registries and runs the server.

Kept apart from `app.py` so that the app itself never imports Keras: tests build it around
tiny models, and `kerasr serve` around the real ones loaded here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence

from kerasr.errors import KerasrError
from kerasr.serve.app import create_app
from kerasr.serve.settings import ServedGenerator, ServedUpscaler, ServeSettings, check_port

# The anime model (6 blocks) is about 4x faster than x4plus (23 blocks) on a CPU, which is
# what a page waiting on an answer wants; x4plus stays one click away.
PREFERRED_UPSCALER = "realesrgan-x4plus-anime"


def load_served_models(
    names: Sequence[str] = (), report: Callable[[str], None] = print
) -> tuple[list[ServedGenerator], list[ServedUpscaler]]:
    """Loads the models the web app will serve, each once.

    Args:
        names: registry names or model files (see `kerasr.weights.resolve`); empty for
            every registered generator and upscaler.
        report: called with one line per model loaded or skipped.

    Returns:
        `(generators, upscalers)`, the preferred (fastest) upscaler first.

    Raises:
        KerasrError: a named model could not be loaded, or no model at all could.
    """
    from kerasr import generation, weights
    from kerasr.upscaling.inference import Upscaler
    from kerasr.weights.resolve import UPSCALER, resolve_model

    upscaler_entries = {entry.name: entry for entry in weights.list_models()}
    generator_entries = {info.name: info for info in generation.list_generators()}

    def served_upscaler(model, name: str, description: str) -> ServedUpscaler:
        upscaler = Upscaler(model)
        return ServedUpscaler(name, description, upscaler.scale, upscaler.upscale)

    def served_generator(model, name: str, description: str) -> ServedGenerator:
        draw = functools.partial(generation.generate, model)
        return ServedGenerator(name, description, int(model.output_shape[1]), draw)

    generators: list[ServedGenerator] = []
    upscalers: list[ServedUpscaler] = []
    if names:
        for spec in names:
            # One order of trying kinds for names and files, the same as every command's.
            found = resolve_model(spec)
            if found.kind == UPSCALER:
                upscalers.append(served_upscaler(found.network, found.name, found.description))
            else:
                generators.append(served_generator(found.network, found.name, found.description))
            report(f"loaded {spec}")
    else:
        # Serve whatever can be loaded: one broken model should not take the others down.
        for info in generator_entries.values():
            try:
                model = generation.load_generator(info.name)
                generators.append(served_generator(model, info.name, info.description))
                report(f"loaded generator {info.name}")
            except KerasrError as error:
                report(f"skipped generator {info.name}: {error}")
        for entry in upscaler_entries.values():
            try:
                model = weights.load_model(entry.name)
                upscalers.append(served_upscaler(model, entry.name, entry.description))
                report(f"loaded upscaler {entry.name}")
            except KerasrError as error:
                report(f"skipped upscaler {entry.name}: {error}")
    if not generators and not upscalers:
        raise KerasrError("no model could be loaded; see the lines above")
    upscalers.sort(key=lambda u: u.name != PREFERRED_UPSCALER)
    return generators, upscalers


def serve(
    generators: Sequence[ServedGenerator],
    upscalers: Sequence[ServedUpscaler],
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Runs the web app with uvicorn until interrupted.

    Args:
        generators: see `create_app`.
        upscalers: see `create_app`.
        settings: see `create_app`.
        host: interface to listen on; the default keeps the app private to this machine.
        port: TCP port.

    `settings.max_requests` bounds the requests handled at once (503 with Retry-After
    beyond); uvicorn's own limit is not used, as its 503 would carry no Retry-After, and
    it would count the page and `/healthz` too.

    Raises:
        KerasrError: `host` or `port` is not an address to listen on.
    """
    import uvicorn

    check_port(port)

    # The Host check must know the address really listened on.
    app = create_app(generators, upscalers, dataclasses.replace(settings, host=host))
    # One line per model call with its time, beside uvicorn's access log.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    logger = logging.getLogger("kerasr.serve")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        # Ctrl-C should not wait long for a client that keeps a connection open.
        timeout_graceful_shutdown=5,
    )

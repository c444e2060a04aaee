"""Builds the web app's models from the registries and runs the server.

Kept apart from `app.py` so that the app itself never imports Keras: tests build it around
tiny models, and `kerasr serve` around the real ones loaded here.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from kerasr.errors import KerasrError
from kerasr.serve.app import ServedGenerator, ServedUpscaler, ServeSettings, create_app

# The anime model (6 blocks) is about 4x faster than x4plus (23 blocks) on a CPU, which is
# what a page waiting on an answer wants; x4plus stays one click away.
PREFERRED_UPSCALER = "realesrgan-x4plus-anime"


def load_served_models(
    names: Sequence[str] = (), report: Callable[[str], None] = print
) -> tuple[list[ServedGenerator], list[ServedUpscaler]]:
    """Loads the models the web app will serve, each once.

    Args:
        names: registry names or model files; empty for every registered generator and
            upscaler. A file is tried as an upscaler (`kerasr.weights.load_model`), then as
            a generator (`kerasr.generation.load_generator`).
        report: called with one line per model loaded or skipped.

    Returns:
        `(generators, upscalers)`, the preferred (fastest) upscaler first.

    Raises:
        KerasrError: a named model could not be loaded, or no model at all could.
    """
    from kerasr import generation, weights
    from kerasr.inference import Upscaler

    upscaler_entries = {entry.name: entry for entry in weights.list_models()}
    generator_entries = {info.name: info for info in generation.list_generators()}

    def served_upscaler(spec: str, description: str) -> ServedUpscaler:
        model = weights.load_model(spec)
        upscaler = Upscaler(model)
        name = spec if spec in upscaler_entries else Path(spec).name
        return ServedUpscaler(name, description, upscaler.scale, upscaler.upscale)

    def served_generator(spec: str, description: str) -> ServedGenerator:
        model = generation.load_generator(spec)
        draw = functools.partial(generation.generate, model)
        if spec in generator_entries:
            return ServedGenerator(spec, description, generator_entries[spec].image_size, draw)
        # A file carries no registry entry: one image tells the size (and proves it works).
        return ServedGenerator(Path(spec).name, description, int(draw([0]).shape[1]), draw)

    generators: list[ServedGenerator] = []
    upscalers: list[ServedUpscaler] = []
    if names:
        for spec in names:
            if spec in upscaler_entries:
                upscalers.append(served_upscaler(spec, upscaler_entries[spec].description))
            elif spec in generator_entries:
                generators.append(served_generator(spec, generator_entries[spec].description))
            elif Path(spec).is_file():
                try:
                    upscalers.append(served_upscaler(spec, f"Upscaler loaded from {spec}."))
                except KerasrError as as_upscaler:
                    try:
                        generators.append(served_generator(spec, f"Generator loaded from {spec}."))
                    except KerasrError as as_generator:
                        raise KerasrError(
                            f"{spec}: neither an upscaler ({as_upscaler}) "
                            f"nor a generator ({as_generator})"
                        ) from None
            else:
                known = ", ".join([*generator_entries, *upscaler_entries])
                raise KerasrError(f"unknown model {spec!r}: use a file or one of {known}")
            report(f"loaded {spec}")
    else:
        # Serve whatever can be loaded: one broken model should not take the others down.
        for info in generator_entries.values():
            try:
                generators.append(served_generator(info.name, info.description))
                report(f"loaded generator {info.name}")
            except KerasrError as error:
                report(f"skipped generator {info.name}: {error}")
        for entry in upscaler_entries.values():
            try:
                upscalers.append(served_upscaler(entry.name, entry.description))
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
    beyond); uvicorn's own limit is not used, as its 503 would carry no Retry-After.
    """
    import uvicorn

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

"""The `serve` command: the web app."""

from __future__ import annotations

import math
from typing import Annotated

import typer

from kerasr.cli.errors import fail, user_errors
from kerasr.errors import KerasrError
from kerasr.runtime import quiet_tensorflow


# TensorFlow is imported only once the options are checked: a mistyped option fails at once.
@user_errors(tensorflow=False)
def serve_command(
    host: Annotated[
        str, typer.Option(help="Interface to listen on; 0.0.0.0 makes the app public.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            "--model",
            help="Models to serve (registry names or files; repeat or separate with commas). "
            "Default: every registered generator and upscaler.",
        ),
    ] = None,
    default_upscaler: Annotated[
        str | None,
        typer.Option(help="Upscaler used when a request names none. Default: the fastest."),
    ] = None,
    default_generator: Annotated[
        str | None,
        typer.Option(help="Generator used when a request names none. Default: the first."),
    ] = None,
    allowed_hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="Another name the app may be reached by (repeatable), e.g. the machine's DNS "
            "name; .example.org allows its subdomains. Loopback names and IP addresses of "
            "the --host need none.",
        ),
    ] = None,
    cors_origins: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="A site whose pages may call the API from the browser (repeatable), "
            "e.g. https://example.org. Default: none, only the app's own page.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Model calls run at the same time; others queue.")
    ] = 1,
    max_queue: Annotated[
        int, typer.Option(min=0, help="Requests that may wait for a worker; more get 503.")
    ] = 32,
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest image file accepted, in MB (413 above).")
    ] = 8.0,
    max_pixels: Annotated[
        int,
        typer.Option(min=1, help="Largest image accepted for upscaling, in pixels (413 above)."),
    ] = 256 * 256,
    max_requests: Annotated[
        int,
        typer.Option(
            min=1,
            help="Requests with a body (uploads, generate calls) handled at once, waiting "
            "ones included; more get 503. Pages and /healthz are not counted.",
        ),
    ] = 128,
    max_client_requests: Annotated[
        int,
        typer.Option(
            min=1,
            help="Of those, how many one client address may hold at once; more get 429. "
            "Behind a reverse proxy, set it to --max-requests.",
        ),
    ] = 32,
    body_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Seconds a request body may take to arrive in full; slower ones get 408 "
            "and their connection is closed.",
        ),
    ] = 60.0,
) -> None:
    """Run the web app: draw new Pokemon and upscale images in the browser."""
    try:
        from kerasr.serve import ServeSettings, load_served_models, serve
        from kerasr.serve.settings import check_port
    except ImportError as e:
        message = f"the web app needs the serve extra ({e}): pip install 'kerasr[serve]'"
        raise fail(message) from None

    # Every option is checked before the models load, which takes a while.
    check_port(port)
    if not math.isfinite(max_upload_mb):
        raise KerasrError(f"--max-upload-mb must be a number of MB. Received: {max_upload_mb}")
    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        workers=workers,
        max_queue=max_queue,
        default_upscaler=default_upscaler,
        default_generator=default_generator,
        host=host,
        allowed_hosts=tuple(allowed_hosts or ()),
        cors_origins=tuple(cors_origins or ()),
        max_requests=max_requests,
        max_client_requests=max_client_requests,
        body_timeout=body_timeout,
    )
    names = [name.strip() for value in models or () for name in value.split(",") if name.strip()]
    quiet_tensorflow()
    generators, upscalers = load_served_models(names, report=lambda s: typer.echo(s, err=True))
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"warning: listening on {host}: other machines can reach the app "
            "(by IP address; add --allowed-host NAME to reach it by a host name)",
            err=True,
        )
    serve(generators, upscalers, settings, host=host, port=port)

"""The `info` command: versions, devices and the choices kerasr makes on this machine."""

from __future__ import annotations

import typer

from kerasr.cli.errors import user_errors


@user_errors
def info_command() -> None:
    """Show versions, the devices TensorFlow sees, the precision and XLA choices of upscale
    and training here (and why), and where the weights cache is."""
    from kerasr.info import system_info

    info = system_info()
    typer.echo("versions: " + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    typer.echo("devices: " + (", ".join(info.devices) or "none"))
    choices = (
        ("upscale precision (--precision auto)", info.upscale_precision),
        ("upscale tiles per call (--batch-size)", info.upscale_batch),
        ("upscale XLA", info.upscale_xla),
        ("training XLA", info.training_xla),
    )
    for label, choice in choices:
        typer.echo(f"{label}: {choice.value} -- {choice.reason}")
    cached = ", ".join(info.cached_models) or "none yet, each is converted on first use"
    typer.echo(f"weights cache: {info.weights_cache} -- cached: {cached}")

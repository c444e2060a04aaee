"""The `generate` command: draw new Pokemon with a DCGAN generator."""

from __future__ import annotations

from typing import Annotated

import typer

from kerasr.cli.errors import fail, user_errors


@user_errors
def generate_command(
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="Output folder for the PNGs, or a .png file with --grid."),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m", help="Generator: a registry name or a .keras / .weights.h5 file."
        ),
    ] = "pokemon-dcgan-64",
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=1024, help="Images.")] = 5,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0, help="Seed of the first image; the others use seed+1, seed+2... Default: random."
        ),
    ] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Write one grid image instead.")] = False,
    upscale: Annotated[
        str | None,
        typer.Option(
            help="Upscale every image with this model, e.g. realesrgan-x4plus-anime (64 -> 256)."
        ),
    ] = None,
) -> None:
    """Draw new Pokemon with a trained DCGAN generator."""
    import secrets
    from pathlib import Path

    import numpy as np

    from kerasr.generation import generate, load_generator
    from kerasr.images import write_image
    from kerasr.io import image_grid

    generator = load_generator(model)
    first = secrets.randbelow(2**31) if seed is None else seed
    seeds = list(range(first, first + count))
    images = generate(generator, seeds)
    if upscale:
        from kerasr.inference import Upscaler
        from kerasr.weights import load_model

        upscaler = Upscaler(load_model(upscale))
        images = [upscaler.upscale(image) for image in images]
    target = Path(out)
    if grid:
        path = target if target.suffix.lower() == ".png" else target / "grid.png"
        columns = int(count**0.5 + 0.999)
        write_image(path, image_grid(np.stack(images), columns=columns), make_parents=True)
        typer.echo(f"wrote {path} (seeds {seeds[0]}..{seeds[-1]})")
        return
    if target.suffix.lower() == ".png":
        raise fail(f"--out must be a folder unless --grid is given. Received: {out}")
    for s, image in zip(seeds, images, strict=True):
        write_image(
            target / f"{Path(model).name.split('.')[0]}-seed{s}.png", image, make_parents=True
        )
    typer.echo(f"wrote {count} images to {target} (seeds {seeds[0]}..{seeds[-1]})")

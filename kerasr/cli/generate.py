"""The `generate` command: draw new Pokemon with a trained generator."""

from __future__ import annotations

from typing import Annotated

import typer

from kerasr.cli.errors import user_errors
from kerasr.weights.generators import DEFAULT_GENERATOR


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
    ] = DEFAULT_GENERATOR,
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=1024, help="Images.")] = 5,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seed of the first image; the others use seed+1, seed+2... Default: random.",
        ),
    ] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Write one grid image instead.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace existing image files.")] = False,
    upscale: Annotated[
        str | None,
        typer.Option(
            help="Upscale every image with this model, e.g. realesrgan-x4plus-anime (64 -> 256)."
        ),
    ] = None,
) -> None:
    """Draw new Pokemon with a trained generator (the FastGAN one unless -m names another)."""
    from kerasr.generation import (
        choose_seeds,
        draw,
        drawing_paths,
        load_generator,
        model_name,
        save_drawing,
    )

    seeds = choose_seeds(count, seed)
    name = model_name(model)
    # Checked before the (slower) drawing, so a refusal costs nothing.
    drawing_paths(out, seeds, grid=grid, name=name, overwrite=overwrite)
    generator = load_generator(model)
    upscaler = None
    if upscale:
        from kerasr.upscaling.inference import Upscaler
        from kerasr.weights import load_model

        upscaler = Upscaler(load_model(upscale)).upscale
    images = draw(generator, seeds, upscaler)
    drawing = save_drawing(images, seeds, out, grid=grid, name=name, overwrite=overwrite)
    first, last = drawing.seeds[0], drawing.seeds[-1]
    if drawing.grid:
        typer.echo(f"wrote {drawing.paths[0]} (seeds {first}..{last})")
    else:
        typer.echo(f"wrote {len(drawing.paths)} images to {out} (seeds {first}..{last})")

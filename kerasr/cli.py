"""The `kerasr` command line. Each command is a thin call into the library modules.

Heavy imports (TensorFlow, Keras) happen inside the commands, so `kerasr --help` is instant.
Problems the user can fix (`KerasrError`, a `ValueError` from a constructor, a file that
cannot be read) are printed as one line on stderr with exit code 2; set KERASR_DEBUG=1 to
see the traceback instead.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="kerasr",
    help="ESRGAN / Real-ESRGAN super-resolution and a Pokemon DCGAN, in Keras 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_USER_ERROR = 2


def fail(message: str) -> typer.Exit:
    """Prints `error: message` on stderr and returns the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USER_ERROR)


def user_errors(command=None, *, tensorflow: bool = True):
    """Turns the user's mistakes raised inside `command` into one line and exit code 2.

    Unless `tensorflow=False`, TensorFlow is imported first with its C++ start-up logs
    silenced (see `kerasr.runtime.quiet_tensorflow`).
    """
    if command is None:
        return functools.partial(user_errors, tensorflow=tensorflow)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            if tensorflow:
                from kerasr.runtime import quiet_tensorflow

                quiet_tensorflow()
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except (ValueError, OSError) as e:
            if os.environ.get("KERASR_DEBUG"):
                raise
            raise fail(_one_line(e)) from None

    return wrapper


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


# --- commands: upscaling (models, upscale, export) ---


class Ext(enum.StrEnum):
    auto = "auto"
    png = "png"
    jpg = "jpg"
    webp = "webp"


class Precision(enum.StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class AlphaMode(enum.StrEnum):
    model = "model"
    bicubic = "bicubic"


class ExportFormat(enum.StrEnum):
    savedmodel = "savedmodel"
    keras = "keras"


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Registry name (see `kerasr models`), or an ncnn .param, .keras or .weights.h5 file.",
    ),
]


@app.command()
@user_errors
def upscale(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders or glob patterns.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output folder; or, for a single input, an output file name.",
        ),
    ] = Path("results"),
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Registry name (see `kerasr models`), or an ncnn .param, .keras or .weights.h5 "
            "file. Give two (PSNR model, then GAN model) with --alpha to interpolate them.",
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Network interpolation of the two -m models: 0 = first, 1 = second (ESRGAN: 0.8).",
        ),
    ] = None,
    outscale: Annotated[
        float | None,
        typer.Option(
            help="Final scale (any float; the model output is resized). Default: model scale."
        ),
    ] = None,
    tile: Annotated[
        int | None,
        typer.Option(
            help="Tile size in input pixels; 0 = whole image. Default: whole up to 512x512."
        ),
    ] = None,
    tile_pad: Annotated[int, typer.Option(help="Context pixels around each tile.")] = 32,
    suffix: Annotated[
        str, typer.Option(help="Appended to output file names ('' for none).")
    ] = "out",
    ext: Annotated[
        Ext, typer.Option(help="Output format; auto keeps the input's (PNG for alpha or 16-bit).")
    ] = Ext.auto,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    precision: Annotated[
        Precision,
        typer.Option(
            help="auto: bfloat16 on CPUs with native bfloat16, float16 on GPU, else float32."
        ),
    ] = Precision.auto,
    batch_size: Annotated[
        int | None, typer.Option(help="Tiles per model call. Default: 1 on CPU, 4 on GPU.")
    ] = None,
    alpha_upsampler: Annotated[
        AlphaMode, typer.Option(help="How to upscale an alpha channel: with the model or bicubic.")
    ] = AlphaMode.model,
) -> None:
    """Upscale images with a super-resolution model (Real-ESRGAN x4plus by default)."""
    from kerasr.batch import plan_outputs, upscale_files

    model = _interpolated_or_named(model or ["realesrgan-x4plus"], alpha)

    jobs, problems = plan_outputs(inputs, output, suffix, ext.value, overwrite)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    written = 0
    if jobs:
        written = upscale_files(
            jobs,
            model=model,
            outscale=outscale,
            tile=tile,
            tile_pad=tile_pad,
            precision=precision.value,
            batch_size=batch_size,
            alpha=alpha_upsampler.value,
            report=lambda message: typer.echo(message, err=True),
        )
    failures = len(problems) + len(jobs) - written
    typer.echo(f"{written} written, {failures} failed", err=True)
    if failures:
        raise typer.Exit(EXIT_USER_ERROR)


def _interpolated_or_named(names: list[str], alpha: float | None):
    """One model name as is; two names and --alpha: their network interpolation."""
    if len(names) == 1 and alpha is None:
        return names[0]
    if len(names) != 2 or alpha is None:
        raise fail("--alpha needs exactly two -m models (PSNR then GAN), and two -m need --alpha")
    from kerasr.weights import load_model
    from kerasr.weights.interpolate import interpolate_models

    return interpolate_models(load_model(names[0]), load_model(names[1]), alpha)


@app.command()
@user_errors(tensorflow=False)
def models() -> None:
    """List the pretrained models: upscalers (name, scale, parameters, source, cached) and
    the DCGAN generators shipped in the package."""
    from rich.console import Console
    from rich.table import Table

    from kerasr.weights import is_cached, list_models
    from kerasr.weights.generators import registry

    console = Console(width=140)
    table = Table("name", "scale", "parameters", "source", "cached", title="upscalers")
    for entry in list_models():
        cached = "yes" if is_cached(entry.name) else "no"
        table.add_row(entry.name, f"x{entry.scale}", f"{entry.parameters:,}", entry.source, cached)
    console.print(table)
    table = Table("name", "image size", "shipped", "description", title="generators")
    for info in registry().values():
        size = f"{info.image_size}x{info.image_size}"
        table.add_row(info.name, size, "yes" if info.path.is_file() else "no", info.description)
    console.print(table)


@app.command()
@user_errors
def export(
    model: Annotated[
        str, typer.Argument(help="Upscaler or DCGAN generator: registry name or model file.")
    ],
    out: Annotated[Path, typer.Argument(help="SavedModel folder, or .keras file, to write.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Export format.")] = (
        ExportFormat.savedmodel
    ),
    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous export at OUT (never anything else).")
    ] = False,
) -> None:
    """Export a model as a TensorFlow SavedModel or .keras.

    An upscaler's SavedModel maps a uint8 image of any size to the upscaled uint8 image; a
    generator's maps int64 seeds (or, signature `from_latents`, a latent batch) to images.
    """
    from kerasr.export import export_model, load_exportable

    network, serving_module = load_exportable(model)
    target = serving_module(network) if format == ExportFormat.savedmodel else network
    written = export_model(target, out, format.value, overwrite=overwrite)
    typer.echo(f"wrote {written}")


@app.command()
@user_errors
def evaluate(
    data: Annotated[
        list[Path],
        typer.Argument(help="Dataset folders: HR images, or a folder with HR/ and LR/ subfolders."),
    ],
    model: ModelOption = "realesrgan-x4plus",
    scale: Annotated[int, typer.Option(help="SR factor; also the border cropped.")] = 4,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
    ] = None,
    precision: Annotated[
        Precision, typer.Option(help="Model precision; float32 gives the numbers papers compare.")
    ] = Precision.float32,
    tile: Annotated[int | None, typer.Option(help="Tile size (see `upscale`).")] = None,
) -> None:
    """Score a model as SR papers do: PSNR / SSIM on Y, border cropped, beside bicubic."""
    import json

    from rich.console import Console

    from kerasr.evaluation import evaluate as run_evaluation
    from kerasr.inference import Upscaler
    from kerasr.weights import load_model

    console = Console(stderr=True)
    with console.status(f"loading {model}"):
        upscaler = Upscaler(load_model(model), tile=tile, precision=precision.value)
    results = []
    for folder in data:
        with console.status(f"evaluating {folder}") as status:
            scores = run_evaluation(upscaler, folder, scale, progress=status.update)
        results.append(scores)
        Console(width=120).print(scores.table(f"{scores.name} x{scale} ({model})"))
    if json_out is not None:
        from kerasr.io import write_text

        payload = {"model": model, "scale": scale, "y_channel": True, "border": scale}
        payload["datasets"] = [r.as_dict() for r in results]
        write_text(json_out, json.dumps(payload, indent=2), make_parents=False)
        typer.echo(f"wrote {json_out}", err=True)


# --- commands: data pipeline (degrade) ---


@app.command("degrade")
@user_errors
def degrade(
    image: Annotated[Path, typer.Argument(help="An image to degrade.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="PNG file to write the grid to.")
    ] = Path("preview.png"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="TOML recipe (its data table) or data config. Default: built-in."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Base seed; the same seed draws the same grid.")] = 0,
    n: Annotated[int, typer.Option("-n", help="Number of degraded versions.")] = 8,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a data key, e.g. degradation.kind=bicubic."),
    ] = None,
) -> None:
    """Show what the model learns from: one image degraded n ways, each labelled."""
    from kerasr.config import load_data_config
    from kerasr.data.preview import write_preview

    data = load_data_config(config, set_ or ())
    written = write_preview(image, output, data, seed=seed, n=n)
    typer.echo(f"wrote {written}")


# --- commands: DCGAN (train-dcgan, generate) ---


@app.command("train-dcgan")
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
            help="Train only on images whose border is white (seed 004's second variant).",
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
        bool, typer.Option(help="Continue from the run folder's latest checkpoint, if any.")
    ] = True,
) -> None:
    """Train the Pokemon DCGAN on a folder of sprites, with a sample grid every epoch."""
    from kerasr.config import DCGANConfig, load_config

    sets = list(overrides or [])
    if data is not None:
        sets.append(f"data.folder={_toml_string(data)}")
    if white_background_only:
        sets.append("data.white_background_only=true")
    if epochs is not None:
        sets.append(f"train.epochs={epochs}")
    if max_minutes is not None:
        sets.append(f"train.max_minutes={max_minutes}")
    cfg = load_config(DCGANConfig, config, sets)

    from kerasr.training import limit_threads

    limit_threads(threads)

    import keras
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kerasr.training.dcgan import train_dcgan

    class RichProgress(keras.callbacks.Callback):
        def __init__(self, progress):
            super().__init__()
            self.progress = progress
            self.task = None

        def on_epoch_begin(self, epoch, logs=None):
            if self.task is None:
                self.task = self.progress.add_task(
                    "epochs", total=cfg.train.epochs, completed=epoch, status=""
                )

        def on_epoch_end(self, epoch, logs=None):
            shown = ("d_loss", "g_loss", "d_real", "d_fake")
            status = " ".join(f"{k} {logs[k]:.3f}" for k in shown if k in (logs or {}))
            self.progress.update(self.task, completed=epoch + 1, status=status)

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as progress:
        summary = train_dcgan(cfg, out, callbacks=[RichProgress(progress)], resume=resume)

    minutes = summary["seconds"] / 60
    typer.echo(
        f"trained epochs {summary['initial_epoch']}..{summary['epochs']} on "
        f"{summary['images']} images in {minutes:.1f} min; run folder {summary['run_dir']}"
    )
    last = summary["last"]
    if last:
        typer.echo(
            f"quality: diversity {last['diversity']:.2f}, nearest-training ratio "
            f"{last['nearest_ratio']:.2f}, near copies {last['copies']:.0%}"
        )
    if summary["kid_note"]:
        typer.echo(summary["kid_note"])


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@app.command("generate")
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


# --- commands: training (pretrain, train-gan, interpolate) ---


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
) -> None:
    from kerasr.config import SRRecipe, load_config

    sets = list(overrides or [])
    if data is not None:
        sets.append(f"data.source={_toml_string(data)}")
    if steps is not None:
        sets.append(f"train.steps={steps}")
    if max_minutes is not None:
        sets.append(f"train.max_minutes={max_minutes}")
    if init is not None:
        sets.append(f"train.init={_toml_string(init)}")
    recipe = load_config(SRRecipe, config, sets)

    from kerasr.training import limit_threads

    limit_threads(threads)

    from kerasr.training.distribute import make_strategy

    # Before any TensorFlow operation: the multi-worker and TPU strategies configure the
    # runtime, which is only possible before it starts.
    strategy = make_strategy(strategy_name)

    import keras
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kerasr.training.runner import train_sr

    shown = ("pixel_loss", "g_loss", "d_loss", "d_real", "d_fake")

    class RichProgress(keras.callbacks.Callback):
        def __init__(self, progress):
            super().__init__()
            self.progress = progress
            self.task = None

        def on_train_begin(self, logs=None):
            self.task = self.progress.add_task(
                stage, total=recipe.train.steps, completed=int(self.model.step.numpy()), status=""
            )

        def on_train_batch_end(self, batch, logs=None):
            status = " ".join(f"{k} {float(logs[k]):.4g}" for k in shown if k in (logs or {}))
            self.progress.update(self.task, completed=int(self.model.step.numpy()), status=status)

        def on_epoch_end(self, epoch, logs=None):
            val = {k: float(v) for k, v in (logs or {}).items() if k in ("val_psnr", "val_ssim")}
            if val:
                self.progress.console.print(
                    f"step {int(self.model.step.numpy())}: validation PSNR "
                    f"{val.get('val_psnr', float('nan')):.2f} dB, SSIM "
                    f"{val.get('val_ssim', float('nan')):.4f}"
                )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, transient=False) as progress:
        summary = train_sr(
            recipe,
            run_dir,
            stage="gan" if stage == "train-gan" else "pretrain",
            resume=resume,
            callbacks=[RichProgress(progress)],
            report=progress.console.print,
            strategy=strategy,
        )
    done = summary["step"] - summary["start_step"]
    typer.echo(
        f"steps {summary['start_step']}..{summary['step']} ({done} in {summary['seconds']:.0f} s, "
        f"{summary['steps_per_second']:.2f} steps/s); run folder {summary['run_dir']}"
    )
    evaluation = summary["evaluation"]
    if evaluation:
        typer.echo(
            f"validation images (full size): PSNR {evaluation['psnr']:.2f} dB / SSIM "
            f"{evaluation['ssim']:.4f}; bicubic {evaluation['bicubic_psnr']:.2f} dB / "
            f"{evaluation['bicubic_ssim']:.4f}"
        )
    if summary["interrupted"]:
        typer.echo(f"interrupted; checkpoint saved at step {summary['step']}: rerun with --resume")
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
        help="Continue from the run folder's latest checkpoint (same step, same schedule)."
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


@app.command("pretrain")
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
) -> None:
    """ESRGAN stage 1: train the generator on a pixel loss (PSNR-oriented)."""
    _sr_command(
        "pretrain", data, config, overrides, run_dir, resume, steps, max_minutes, None, threads,
        strategy,
    )  # fmt: skip


@app.command("train-gan")
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
) -> None:
    """ESRGAN stage 2: GAN training (perceptual + adversarial + pixel losses)."""
    _sr_command(
        "train-gan", data, config, overrides, run_dir, resume, steps, max_minutes, init, threads,
        strategy,
    )  # fmt: skip


@app.command("interpolate")
@user_errors
def interpolate_command(
    psnr_weights: Annotated[
        str, typer.Argument(help="PSNR-oriented model (file or registry name).")
    ],
    gan_weights: Annotated[str, typer.Argument(help="GAN model of the same architecture.")],
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="0 = the PSNR model, 1 = the GAN model.")
    ] = 0.8,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output .weights.h5 or .keras file.")
    ] = Path("interpolated.weights.h5"),
) -> None:
    """Network interpolation (ESRGAN): blend a PSNR model and a GAN model weight by weight."""
    from kerasr.weights import load_model
    from kerasr.weights.interpolate import interpolate_models, save_model_file

    blended = interpolate_models(load_model(psnr_weights), load_model(gan_weights), alpha)
    typer.echo(f"wrote {save_model_file(blended, output)} (alpha {alpha})")


# --- commands: web app (serve) ---


@app.command("serve")
@user_errors
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
) -> None:
    """Run the web app: draw new Pokemon and upscale images in the browser."""
    try:
        from kerasr.serve import ServeSettings, load_served_models, serve
    except ImportError as e:
        message = f"the web app needs the serve extra ({e}): pip install 'kerasr[serve]'"
        raise fail(message) from None

    settings = ServeSettings(
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        max_pixels=max_pixels,
        workers=workers,
        max_queue=max_queue,
        default_upscaler=default_upscaler,
    )
    names = [name.strip() for value in models or () for name in value.split(",") if name.strip()]
    generators, upscalers = load_served_models(names, report=lambda s: typer.echo(s, err=True))
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host}: other machines can reach the app", err=True)
    serve(generators, upscalers, settings, host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())

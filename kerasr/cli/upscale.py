"""Commands around upscaling models: upscale, models, export, evaluate, degrade, interpolate."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from kerasr.cli.errors import EXIT_USER_ERROR, fail, user_errors


class Ext(enum.StrEnum):
    auto = "auto"
    png = "png"
    jpg = "jpg"
    webp = "webp"
    tif = "tif"
    mp4 = "mp4"
    mkv = "mkv"
    webm = "webm"
    mov = "mov"


_VIDEO_EXTS = (Ext.mp4, Ext.mkv, Ext.webm, Ext.mov)


class Precision(enum.StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class AlphaMode(enum.StrEnum):
    model = "model"
    bicubic = "bicubic"


class Codec(enum.StrEnum):
    libx264 = "libx264"
    libx265 = "libx265"
    libvpx_vp9 = "libvpx-vp9"


class ExportFormat(enum.StrEnum):
    savedmodel = "savedmodel"
    keras = "keras"
    onnx = "onnx"
    litert = "litert"


class ExportPrecision(enum.StrEnum):
    float32 = "float32"
    float16 = "float16"


ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Registry name (see `kerasr models`), or an ncnn .param, .keras or .weights.h5 file.",
    ),
]


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
        Ext,
        typer.Option(
            help="Output format; auto keeps the input's (PNG for alpha or 16-bit). "
            "Videos: the container, mp4 (default), mkv, webm or mov."
        ),
    ] = Ext.auto,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    precision: Annotated[
        Precision,
        typer.Option(
            help="auto: bfloat16 on CPUs with native bfloat16, float16 on GPU, else float32."
        ),
    ] = Precision.auto,
    batch_size: Annotated[
        int | None,
        typer.Option(help="Tiles (video: frames) per model call. Default: 1 on CPU, 4 on GPU."),
    ] = None,
    alpha_upsampler: Annotated[
        AlphaMode, typer.Option(help="How to upscale an alpha channel: with the model or bicubic.")
    ] = AlphaMode.model,
    crf: Annotated[
        int, typer.Option(min=0, max=63, help="Video: encoder quality (lower is better).")
    ] = 18,
    codec: Annotated[
        Codec | None,
        typer.Option(help="Video: the encoder. Default: libx264 (libvpx-vp9 for webm)."),
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            help="Video: a constant output frame rate, 0.01 to 1000. Default: each frame "
            "keeps its input time (variable rates too)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Video: continue an interrupted run (Ctrl-C) of the same command from its "
            "last finished segment, kept in the hidden .NAME.parts folder beside the output, "
            "instead of starting over (any input, animated GIFs too)."
        ),
    ] = False,
) -> None:
    """Upscale images with a super-resolution model (Real-ESRGAN x4plus by default), or one
    video (.mp4 .mkv .webm .mov .avi, animated .gif; audio copied; realesr-animevideov3 by
    default)."""
    from kerasr.upscaling.files import upscale_images
    from kerasr.video.probe import VIDEO_SUFFIXES, is_video

    videos = [name for name in inputs if Path(name).suffix.lower() in VIDEO_SUFFIXES]
    if len(inputs) > 1 and videos:
        raise fail(f"{videos[0]} is a video; a video is upscaled alone, one per command")
    if len(inputs) == 1 and is_video(inputs[0]):
        if ext != Ext.auto and ext not in _VIDEO_EXTS:
            raise fail(f"--ext {ext.value} is an image format; a video's is mp4, mkv, webm or mov")
        _upscale_video(
            inputs[0],
            model,
            alpha,
            output=output,
            suffix=suffix,
            overwrite=overwrite,
            outscale=outscale,
            crf=crf,
            codec=codec.value if codec else None,
            fps=fps,
            ext=None if ext == Ext.auto else ext.value,
            resume=resume,
            tile=tile,
            tile_pad=tile_pad,
            precision=precision.value,
            batch_size=batch_size,  # frames per model call
        )
        return
    if ext in _VIDEO_EXTS:
        raise fail(f"--ext {ext.value} is for a video; the inputs are images")
    if resume:
        raise fail("--resume continues an interrupted video; the inputs are images")
    result = upscale_images(
        inputs,
        output,
        model=_interpolated_or_named(model or ["realesrgan-x4plus"], alpha),
        suffix=suffix,
        ext=ext.value,
        overwrite=overwrite,
        outscale=outscale,
        report=lambda problem: typer.echo(f"error: {problem}", err=True),
        tile=tile,
        tile_pad=tile_pad,
        precision=precision.value,
        batch_size=batch_size,
        alpha=alpha_upsampler.value,
    )
    typer.echo(f"{len(result.written)} written, {result.failures} failed", err=True)
    if result.failures:
        raise typer.Exit(EXIT_USER_ERROR)


def _upscale_video(source, model, alpha, **options):
    from kerasr.upscaling.video import upscale_video_file
    from kerasr.video.work import Interrupted

    # As Real-ESRGAN's video script: the compact network, ~25x cheaper than x4plus.
    network = _interpolated_or_named(model or ["realesr-animevideov3"], alpha)
    try:
        result = upscale_video_file(source, model=network, **options)
    except Interrupted as e:
        typer.echo(
            f"interrupted: nothing written at the output name; {e.frames} frames kept in "
            f"{e.work}; the same command with --resume continues from frame {e.frames}",
            err=True,
        )
        raise typer.Exit(130) from None
    width, height = result.size
    typer.echo(
        f"{source} -> {result.output}: {result.frames} frames {width}x{height} at "
        f"{result.fps:.5g} fps, {result.audio_streams} audio stream(s) copied",
        err=True,
    )
    if result.lost:
        raise fail(f"{source}: {result.lost}; the frames before it were written")


def _interpolated_or_named(names: list[str], alpha: float | None):
    """One model name as is; two names and --alpha: their network interpolation."""
    if len(names) == 1 and alpha is None:
        return names[0]
    if len(names) != 2 or alpha is None:
        raise fail("--alpha needs exactly two -m models (PSNR then GAN), and two -m need --alpha")
    from kerasr.weights.interpolate import load_interpolated

    return load_interpolated(names[0], names[1], alpha)


@user_errors(tensorflow=False)
def models() -> None:
    """List the pretrained models: upscalers (name, scale, parameters, source, cached) and
    the Pokemon generators shipped in the package."""
    from rich.console import Console
    from rich.table import Table

    from kerasr.weights.catalog import catalog

    models = catalog()
    console = Console(width=140)
    table = Table("name", "scale", "parameters", "source", "cached", title="upscalers")
    for u in models.upscalers:
        cached = "yes" if u.cached else "no"
        table.add_row(u.name, f"x{u.scale}", f"{u.parameters:,}", u.source, cached)
    console.print(table)
    table = Table("name", "image size", "shipped", "description", title="generators")
    for g in models.generators:
        size = f"{g.image_size}x{g.image_size}"
        table.add_row(g.name, size, "yes" if g.shipped else "no", g.description)
    console.print(table)


@user_errors
def export(
    model: Annotated[
        str, typer.Argument(help="Upscaler or generator: registry name or model file.")
    ],
    out: Annotated[
        Path,
        typer.Argument(help="SavedModel folder, or .keras / .onnx / .tflite file, to write."),
    ],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="Export format.")] = (
        ExportFormat.savedmodel
    ),
    precision: Annotated[
        ExportPrecision,
        typer.Option(help="Weights of the onnx and litert files; float16 halves their size."),
    ] = ExportPrecision.float32,
    tile: Annotated[
        int | None,
        typer.Option(
            help="litert upscalers: the input's height and width (default 128); the caller "
            "tiles larger images. 0: any size (CPU interpreter only).",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a previous export at OUT (never anything else).")
    ] = False,
) -> None:
    """Export a model for TensorFlow Serving, Keras, ONNX Runtime or LiteRT.

    savedmodel: an upscaler maps a uint8 image of any size to the upscaled uint8 image; a
    generator maps int64 seeds (or, signature `from_latents`, a latent batch) to images.
    onnx: float32 NCHW images in [0, 1] of any size (a generator: latents to uint8 NHWC
    images). litert: float32 NHWC tiles of a fixed size (a generator: one latent vector).
    onnx and litert files are run once in their runtime and compared with the Keras model
    before they are kept; they need the export extra (pip install 'kerasr[export]').
    """
    from kerasr.upscaling.export import export as export_model

    written = export_model(
        model, out, format.value, precision=precision.value, tile=tile, overwrite=overwrite
    )
    typer.echo(f"wrote {written.path}")
    if written.max_error is not None:
        from kerasr.upscaling.export_formats import RUNTIME

        typer.echo(
            f"checked in {RUNTIME[written.format]}: at most {written.max_error} uint8 "
            f"level(s) from the Keras model ({written.precision})"
        )


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
    from rich.console import Console

    from kerasr.evaluation.sr import evaluate_model

    status = Console(stderr=True).status(f"loading {model}")

    def show(scores):
        status.stop()  # the table goes to stdout, below the spinner's last line
        Console(width=120).print(scores.table(f"{scores.name} x{scale} ({model})"))
        status.start()

    with status:
        evaluation = evaluate_model(
            model,
            data,
            scale,
            precision=precision.value,
            tile=tile,
            progress=status.update,
            on_dataset=show,
        )
    if json_out is not None:
        typer.echo(f"wrote {evaluation.write_json(json_out)}", err=True)


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
    preview = write_preview(image, output, data, seed=seed, n=n)
    typer.echo(f"wrote {preview.path}")


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
    from kerasr.weights.interpolate import interpolate_to_file

    written = interpolate_to_file(psnr_weights, gan_weights, alpha, output)
    typer.echo(f"wrote {written} (alpha {alpha})")

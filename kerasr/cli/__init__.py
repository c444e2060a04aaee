"""The `kerasr` command line. Each command is a thin call into the library modules.

Heavy imports (TensorFlow, Keras) happen inside the commands, so `kerasr --help` is instant.
Problems the user can fix (a `KerasrError`, a path that is missing or not allowed) are
printed as one line on stderr with exit code 2 (KERASR_DEBUG=1 shows their traceback);
anything else is a bug and keeps its traceback. See `kerasr.cli.errors`.
"""

from __future__ import annotations

import typer

from kerasr.cli import generate, info, quality, serve, training, upscale

app = typer.Typer(
    name="kerasr",
    help="ESRGAN / Real-ESRGAN super-resolution and a Pokemon DCGAN, in Keras 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In the order `kerasr --help` lists them.
app.command()(upscale.upscale)
app.command()(upscale.models)
app.command()(upscale.export)
app.command()(upscale.evaluate)
app.command("degrade")(upscale.degrade)
app.command("train-dcgan")(training.train_dcgan_command)
app.command("generate")(generate.generate_command)
app.command("evaluate-gan")(quality.evaluate_gan_command)
app.command("pretrain")(training.pretrain_command)
app.command("train-gan")(training.train_gan_command)
app.command("interpolate")(upscale.interpolate_command)
app.command("serve")(serve.serve_command)
app.command("info")(info.info_command)


def main() -> None:
    """Console-script entry point."""
    from kerasr.runtime import filter_native_logs

    filter_native_logs()
    app()

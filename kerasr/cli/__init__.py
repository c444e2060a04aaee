"""The `kerasr` command line. Each command is a thin call into the library modules.

Heavy imports (TensorFlow, Keras) happen inside the commands, so `kerasr --help` is instant.
Problems the user can fix (a `KerasrError`, a path that is missing or not allowed) are
printed as one line on stderr with exit code 2 (KERASR_DEBUG=1 shows their traceback);
anything else is a bug and keeps its traceback. See `kerasr.cli.errors`.
"""

from __future__ import annotations

import inspect
import re
import sys

import typer

from kerasr.cli import evaluate_gan, generate, info, serve, training, upscale

app = typer.Typer(
    name="kerasr",
    help="ESRGAN / Real-ESRGAN super-resolution and Pokemon generation, in Keras 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def help_text(docstring: str) -> str:
    """A command's docstring as its help: each paragraph on one line, brackets shown.

    Typer's rich help keeps a docstring's line breaks, which end lines mid-sentence once the
    terminal is wider than the source; joined, each paragraph is wrapped by the terminal.
    A bracket before a letter is escaped, or rich would take `kerasr[quality]` for markup.
    """
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    text = "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)
    return re.sub(r"\[(?=[a-z#/@])", r"\\[", text)


# In the order `kerasr --help` lists them.
for _name, _command in [
    ("upscale", upscale.upscale),
    ("models", upscale.models),
    ("export", upscale.export),
    ("evaluate", upscale.evaluate),
    ("degrade", upscale.degrade),
    ("train-dcgan", training.train_dcgan_command),
    ("generate", generate.generate_command),
    ("evaluate-gan", evaluate_gan.evaluate_gan_command),
    ("pretrain", training.pretrain_command),
    ("train-gan", training.train_gan_command),
    ("interpolate", upscale.interpolate_command),
    ("serve", serve.serve_command),
    ("info", info.info_command),
]:
    app.command(_name, help=help_text(_command.__doc__))(_command)


def main() -> None:
    """Console-script entry point.

    A wrong option or argument (a value out of range, a missing argument, an unknown option)
    is one `error:` line and exit code 2, like every other user error, rather than click's
    usage box.
    """
    from kerasr.runtime import filter_native_logs

    filter_native_logs()
    # The click that typer runs on (its own copy in recent typer versions), found through
    # the public `typer.BadParameter`.
    click_errors = sys.modules[typer.BadParameter.__module__]
    no_args = getattr(click_errors, "NoArgsIsHelpError", ())
    try:
        code = app(prog_name="kerasr", standalone_mode=False)
    except no_args as e:  # `kerasr` alone: the help
        e.show()
        code = e.exit_code
    except click_errors.UsageError as e:
        typer.echo(f"error: {usage_error_line(e)}", err=True)
        code = 2
    except click_errors.Abort:
        typer.echo("Aborted!", err=True)
        code = 1
    raise SystemExit(code if isinstance(code, int) else 0)


def usage_error_line(error) -> str:
    """A click usage error as one line that says where to read more."""
    message = " ".join(error.format_message().split())
    command = error.ctx.command_path if error.ctx is not None else "kerasr"
    return f"{message} (see {command} --help)"

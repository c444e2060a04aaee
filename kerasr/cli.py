"""The `kerasr` command line. Each command is a thin call into the library modules.

Heavy imports (TensorFlow, Keras) happen inside the commands, so `kerasr --help` is instant.
Problems the user can fix (`KerasrError`, a `ValueError` from a constructor, a file that
cannot be read) are printed as one line on stderr with exit code 2; set KERASR_DEBUG=1 to
see the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys

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


def user_errors(command):
    """Turns the user's mistakes raised inside `command` into one line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
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


# --- commands: data pipeline (degrade) ---


# --- commands: DCGAN (train-dcgan, generate) ---


# --- commands: web app (serve) ---


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    sys.exit(main())

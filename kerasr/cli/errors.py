"""How the `kerasr` commands report the user's mistakes: one line on stderr, exit code 2."""

from __future__ import annotations

import functools
import os

import typer

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

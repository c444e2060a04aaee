"""How the `kerasr` commands report problems: one line on stderr for what the user can fix.

A `KerasrError` (bad input, a missing file, an impossible setting) and the OS errors that
name a path (missing, not allowed, a folder where a file was expected or the reverse) become
`error: ...` and exit code 2. Anything else is a bug and keeps its traceback. Warnings about
the data (a skipped unreadable image) become one `warning: ...` line each.
"""

from __future__ import annotations

import functools
import os
import warnings

import typer

from kerasr.errors import KerasrError

EXIT_USER_ERROR = 2

# OS errors that say what is wrong with a path the user gave; other OS errors (a full disk,
# a broken device) are not the user's input and keep their traceback.
USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

# From this many warnings on, their number is printed after the last one.
COUNT_FROM = 5


def fail(message: str) -> typer.Exit:
    """Prints `error: message` on stderr and returns the exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USER_ERROR)


def user_errors(command=None, *, tensorflow: bool = True):
    """Turns the user's mistakes raised inside `command` into one line and exit code 2.

    Unless `tensorflow=False`, TensorFlow is imported first with its C++ start-up logs
    silenced (see `kerasr.runtime.quiet_tensorflow`). Warnings raised by the command print
    as one `warning: ...` line each (see `WarningLines`). Set KERASR_DEBUG=1 to get the
    traceback of a user error too.
    """
    if command is None:
        return functools.partial(user_errors, tensorflow=tensorflow)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with WarningLines():
                if tensorflow:
                    from kerasr.runtime import quiet_tensorflow

                    quiet_tensorflow()
                return command(*args, **kwargs)
        except (KerasrError, *USER_OS_ERRORS) as e:
            if os.environ.get("KERASR_DEBUG"):
                raise
            raise fail(one_line(e)) from None

    return wrapper


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OS error keeps its path."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


class WarningLines:
    """While active, each warning prints as one `warning: <message>` line on stderr.

    Python's default shows the source file, the line number and a line of kerasr's code
    under each warning, which reads like a crash. A repeated message prints once; when
    there were many, their number closes the list, since the first ones have scrolled away.
    """

    def __enter__(self):
        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.showwarning = self._show
        self._seen: set[str] = set()
        return self

    def __exit__(self, *exc_info):
        self._catcher.__exit__(*exc_info)
        if len(self._seen) >= COUNT_FROM:
            typer.echo(f"warning: {len(self._seen)} warnings in all (above)", err=True)
        return False

    def _show(self, message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in self._seen:
            self._seen.add(text)
            typer.echo(f"warning: {text}", err=True)

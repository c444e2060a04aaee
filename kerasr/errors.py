"""The one exception type the CLI turns into a one-line message and exit code 2."""


class KerasrError(ValueError):
    """A problem the user can act on: bad input, a missing file, an impossible setting.

    The message is a single line that names the problem; the CLI prints it without a
    traceback. It subclasses `ValueError` so library callers can catch it the usual way.
    """


def first_line(error: BaseException | str) -> str:
    """The first line of an exception's message (its type's name if it has none), or of a
    message, to quote another library's error inside a one-line `KerasrError`."""
    text = str(error).strip().splitlines()
    if text:
        return text[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""


ECHO_LIMIT = 80


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """`text` cut to `limit` characters and "..." when longer: what an error message may quote
    of a name the user gave, so that a 10,000-character name does not fill the screen or a
    log."""
    return text if len(text) <= limit else text[:limit] + "..."

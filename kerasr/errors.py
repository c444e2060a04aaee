"""The one exception type the CLI turns into a one-line message and exit code 2."""


class KerasrError(ValueError):
    """A problem the user can act on: bad input, a missing file, an impossible setting.

    The message is a single line that names the problem; the CLI prints it without a
    traceback. It subclasses `ValueError` so library callers can catch it the usual way.
    """

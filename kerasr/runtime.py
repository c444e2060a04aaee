"""Process-level set-up for the command line: a quiet TensorFlow start, and TensorFlow's
known-harmless native log lines kept off the console."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import re
import subprocess
import sys

# Grappler (TensorFlow's graph optimiser) logs at error level when one of its optional
# rewrites does not apply to a graph, e.g.
#   E0000 ... meta_optimizer.cc:967] remapper failed: INVALID_ARGUMENT: ...
# The graph then runs unrewritten with the same results: the line is noise, not a failure.
# The LiteRT interpreter announces its default CPU delegate on every load (`kerasr export
# --format litert` loads the file to check it):
#   INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
HARMLESS_NATIVE_LOG = re.compile(
    rb"meta_optimizer\.cc:\d+\] (remapper|layout|arithmetic_optimizer) failed"
    rb"|^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.$"
)

# The filter runs in its own small process, so whatever the main process writes before it
# dies (an abort, a crash) still reaches the console in full; in a session of its own, so a
# terminal's Ctrl-C does not stop it. It ends when the main process closes its end of the pipe.
_FILTER = """
import re, sys
harmless = re.compile(sys.argv[1].encode("latin-1"))
out = sys.stdout.buffer
try:
    for line in sys.stdin.buffer:
        if not harmless.search(line):
            out.write(line)
            out.flush()
except (BrokenPipeError, KeyboardInterrupt):
    pass
"""


@contextlib.contextmanager
def _stderr_silenced():
    """Points file descriptor 2 at /dev/null, so C++ start-up logs do not reach the user."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow() -> None:
    """Imports TensorFlow and probes for GPUs with C++ logging silenced.

    TensorFlow's native start-up messages (oneDNN notices, "could not find cuda drivers",
    cuInit failures on CPU-only machines) are printed through absl before
    TF_CPP_MIN_LOG_LEVEL applies; for a command-line user they are noise. Set
    KERASR_DEBUG=1 or TF_CPP_MIN_LOG_LEVEL=0 to see them.
    """
    if "tensorflow" in sys.modules or os.environ.get("KERASR_DEBUG"):
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")


def filter_native_logs() -> None:
    """Drops TensorFlow's known-harmless native log lines (`HARMLESS_NATIVE_LOG`) from stderr.

    Only file descriptor 2, where TensorFlow's C++ code writes, goes through the filter;
    Python's `sys.stderr` (progress bars, warnings, tracebacks) keeps writing to the real
    stderr, so it stays a terminal when it was one. Every other line passes unchanged.
    Nothing is filtered with KERASR_DEBUG=1 or TF_CPP_MIN_LOG_LEVEL=0.
    """
    if os.environ.get("KERASR_DEBUG") or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    sys.stderr.flush()
    real_stderr = os.dup(2)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _FILTER, HARMLESS_NATIVE_LOG.pattern.decode("latin-1")],
            stdin=subprocess.PIPE,
            stdout=real_stderr,
            stderr=real_stderr,
            start_new_session=True,
        )
    except OSError:
        os.close(real_stderr)
        return
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()  # descriptor 2 holds the pipe now; the filter ends when we do

    def drain():
        # On a normal exit, let the filter print everything before the shell's prompt.
        with contextlib.suppress(Exception):
            sys.stderr.flush()
            os.dup2(real_stderr, 2)
            child.wait(timeout=5)

    atexit.register(drain)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(real_stderr, "w"),
        encoding=sys.stderr.encoding or "utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )

"""Process-level set-up for the command line: a quiet TensorFlow start."""

from __future__ import annotations

import contextlib
import os
import sys


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

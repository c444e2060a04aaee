"""Process-level set-up: environment defaults read when TensorFlow starts, thread pools,
whether training compiles with XLA here, a quiet TensorFlow start, and TensorFlow's
known-harmless native log lines kept off the console."""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import platform
import re
import subprocess
import sys

from kerasr.errors import KerasrError


def set_environment_defaults() -> None:
    """Sets the environment variables TensorFlow and Keras read at import, unless the user
    set them: `import kerasr` calls it, so it applies before TensorFlow is loaded."""
    # Keras 3 picks its backend at import time; kerasr is written against TensorFlow.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    # TensorFlow's C++ start-up chatter (CPU feature notices, oneDNN banners) is noise for a
    # CLI user.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow runs its oneDNN kernels by default only on x86 CPUs with AVX-512 VNNI / BF16
    # or AMX; elsewhere it falls back to Eigen, whose convolution gradients are much slower
    # (on an AVX2 CPU a training step took 1.5x as long, docs/benchmarks.md).
    # TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen.
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def limit_threads(threads: int) -> None:
    """Caps TensorFlow's intra- and inter-op thread pools (0 leaves TensorFlow's default).

    Call it before the first TensorFlow operation runs: the pools are fixed after that.
    A training run pinned to one core (`taskset -c 1`) should use `threads=1`, so that its
    threads do not fight each other for the core.

    Raises:
        KerasrError: if `threads` is negative.
    """
    if threads < 0:
        raise KerasrError(f"`threads` must be >= 0. Received: threads={threads}")
    if threads == 0:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def resolve_jit(setting: bool | str) -> bool:
    """What `train.jit_compile` means on this machine: `"auto"` is XLA with a GPU or TPU and
    none on a CPU.

    On a CPU TensorFlow's plain graph, with its oneDNN convolution kernels, ran the GAN step
    about twice as fast as XLA (`bench/train.py`, docs/benchmarks.md); on GPUs XLA's
    fusions are expected to pay.
    """
    if setting != "auto":
        return bool(setting)
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


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

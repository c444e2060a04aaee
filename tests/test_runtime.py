"""TensorFlow's harmless native log lines are kept off the console, and nothing else is."""

from __future__ import annotations

import os
import platform
import pty
import signal
import subprocess
import sys

import pytest

HARMLESS = (
    b"E0000 00:00:1796223052.553 1234 meta_optimizer.cc:967] remapper failed: "
    b"INVALID_ARGUMENT: Mutation::Apply error: fanout 'x' exist for missing node 'y'.\n"
)

SCRIPT = r"""
import os, sys
from kerasr.runtime import filter_native_logs
filter_native_logs()
os.write(2, HARMLESS)
os.write(2, b"E0000 real error from native code\n")
print("python warning line", file=sys.stderr)
os.write(2, b"last native line before the crash\n")
os.abort()
"""


def _run(script, env=None, **streams):
    quiet = {
        k: v for k, v in os.environ.items() if k not in ("KERASR_DEBUG", "TF_CPP_MIN_LOG_LEVEL")
    }
    env = {**quiet, "PYTHONPATH": os.getcwd(), **(env or {})}
    streams = streams or {"capture_output": True}
    return subprocess.run(
        [sys.executable, "-c", f"HARMLESS = {HARMLESS!r}\n" + script],
        env=env,
        timeout=60,
        **streams,
    )


def test_the_harmless_grappler_line_is_dropped_and_every_other_line_kept_even_on_a_crash():
    result = _run(SCRIPT)
    assert result.returncode != 0  # the abort
    assert b"remapper failed" not in result.stderr
    for line in (b"E0000 real error", b"python warning line", b"last native line"):
        assert line in result.stderr


def test_the_litert_delegate_notice_is_dropped():
    script = SCRIPT.replace(
        "os.write(2, HARMLESS)",
        'os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")',
    )
    result = _run(script)
    assert b"XNNPACK" not in result.stderr and b"E0000 real error" in result.stderr


def test_kerasr_debug_shows_everything():
    result = _run(SCRIPT, env={"KERASR_DEBUG": "1"})
    assert b"remapper failed" in result.stderr
    assert b"E0000 real error" in result.stderr


def test_python_stderr_stays_a_terminal():
    """Progress bars decide by `sys.stderr.isatty()`: the filter must not turn it off."""
    script = (
        "import os, sys\n"
        "from kerasr.runtime import filter_native_logs\n"
        "filter_native_logs()\n"
        "print(sys.stderr.isatty(), os.isatty(2))\n"
    )
    main, secondary = pty.openpty()
    try:
        result = _run(script, stdout=subprocess.PIPE, stderr=secondary)
    finally:
        os.close(secondary)
        os.close(main)
    # Python's stderr is still the terminal; only descriptor 2 (native code) is filtered.
    assert result.stdout.split() == [b"True", b"False"]


def test_ctrl_c_on_the_process_group_does_not_silence_what_follows():
    """A terminal's Ctrl-C reaches every process of the group, the filter included."""
    # The child waits on something that cannot end before the signal (a read of stdin ends
    # at EOF) and sets Python's Ctrl-C handler itself: started where SIGINT is ignored (the
    # tests run as a script's background job), it inherits that and would just exit 0.
    script = (
        "import os, signal, sys, time\n"
        "from kerasr.runtime import filter_native_logs\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "filter_native_logs()\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(120)\n"
        "except KeyboardInterrupt:\n"
        "    os.write(2, HARMLESS + b'native line after the interrupt\\n')\n"
        "    sys.exit(130)\n"
    )
    quiet = {
        k: v for k, v in os.environ.items() if k not in ("KERASR_DEBUG", "TF_CPP_MIN_LOG_LEVEL")
    }
    process = subprocess.Popen(
        [sys.executable, "-c", f"HARMLESS = {HARMLESS!r}\n" + script],
        env={**quiet, "PYTHONPATH": os.getcwd()},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout.readline() == b"ready\n"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr == b"native line after the interrupt\n"


def test_importing_kerasr_first_turns_on_tensorflows_onednn_kernels_unless_told_not_to():
    # TensorFlow enables oneDNN by itself only on CPUs with AVX-512 VNNI / BF16 or AMX; on
    # other x86 CPUs its Eigen convolution gradients make a training step about 1.5x slower.
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("oneDNN is turned on only on x86 CPUs")
    script = (
        "import kerasr, tensorflow\n"
        "from tensorflow.python.util import _pywrap_util_port as port\n"
        "print(port.IsMklEnabled())\n"
    )
    unset = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    # Both at once: importing TensorFlow keeps one core busy for seconds.
    default, refused = (
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in (unset, {**unset, "TF_ENABLE_ONEDNN_OPTS": "0"})
    )
    try:
        default_out, default_err = default.communicate(timeout=120)
        refused_out, refused_err = refused.communicate(timeout=120)
    finally:
        for process in (default, refused):
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert default_out.split()[-1] == "True", default_err[-2000:]
    assert refused_out.split()[-1] == "False", refused_err[-2000:]

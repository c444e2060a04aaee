"""kerasr: ESRGAN / Real-ESRGAN super-resolution and a Pokemon DCGAN in Keras 3.

The public API is imported lazily so that `import kerasr` (and `kerasr --help`) stays fast:
TensorFlow is only loaded when a model or the upscaler is first used.
"""

import importlib
import os
import platform

# Keras 3 picks its backend at import time; kerasr is written against TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ start-up chatter (CPU feature notices, oneDNN banners) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow runs its oneDNN kernels by default only on x86 CPUs with AVX-512 VNNI / BF16 or
# AMX; elsewhere it falls back to Eigen, whose convolution gradients are much slower (on an
# AVX2 CPU a training step took 1.5x as long, docs/benchmarks.md). Read when TensorFlow is
# first imported; TF_ENABLE_ONEDNN_OPTS=0 keeps Eigen.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_PUBLIC = {
    "RRDBNet": "kerasr.models.rrdbnet",
    "Upscaler": "kerasr.inference",
    "load_model": "kerasr.weights",
    "KerasrError": "kerasr.errors",
}

__all__ = [*sorted(_PUBLIC), "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kerasr' has no attribute {name!r}")

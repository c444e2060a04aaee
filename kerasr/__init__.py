"""kerasr: ESRGAN / Real-ESRGAN super-resolution and a Pokemon DCGAN in Keras 3.

The public API is imported lazily so that `import kerasr` (and `kerasr --help`) stays fast:
TensorFlow is only loaded when a model or the upscaler is first used.
"""

import importlib

from kerasr.runtime import set_environment_defaults

# Before TensorFlow is first imported, by kerasr or by the caller.
set_environment_defaults()

__version__ = "0.1.0"

_PUBLIC = {
    "RRDBNet": "kerasr.models.rrdbnet",
    "Upscaler": "kerasr.upscaling.inference",
    "load_model": "kerasr.weights",
    "KerasrError": "kerasr.errors",
}

__all__ = [*sorted(_PUBLIC), "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'kerasr' has no attribute {name!r}")

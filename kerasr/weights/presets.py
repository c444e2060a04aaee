"""Presets: what a `.weights.h5` file needs to become a network again.

Keras' `.weights.h5` holds values only. kerasr writes a preset beside every one it saves (a
training run's generator and discriminator, each epoch's generator of a GAN run, the cache of
converted weights): `NAME.json` next to `NAME.weights.h5`, one preset per weights file:

    {"kind": "rrdbnet", "arguments": {"scale": 4, "num_basic_blocks": 6, ...},
     "scale": 4, "source": "kerasr pretrain runs/psnr", "sha256": "..."}

`kind` and `arguments` are what `kerasr.weights.networks.build_network` takes; `scale` is the
upscaling factor (null for other networks); `source` says where the weights came from;
`sha256` is `weights_digest` of the values, checked on load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from kerasr.errors import KerasrError, first_line
from kerasr.io import atomic_path, write_text

SUFFIX = ".weights.h5"
# Layer settings every Keras layer's config has; they are not architecture.
_BASE_CONFIG_KEYS = ("name", "trainable", "dtype")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A network's kind and arguments, and where its weights came from.

    Attributes:
        kind: a kind of `kerasr.weights.networks.NETWORKS`.
        arguments: its constructor or builder arguments (JSON values).
        scale: the upscaling factor of an upscaler; None for other networks.
        source: where the weights came from (a run folder, a package, a file).
        sha256: `weights_digest` of the weights; empty when unknown.
    """

    kind: str
    arguments: dict[str, Any]
    scale: int | None = None
    source: str = ""
    sha256: str = ""


def preset_path(weights: str | Path) -> Path:
    """`NAME.json` for `NAME.weights.h5`."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(SUFFIX) + ".json")


def network_arguments(network) -> dict[str, Any]:
    """The constructor arguments of a subclassed kerasr network (`RRDBNet`, a
    discriminator), from its `get_config` without Keras' per-layer settings."""
    config = network.get_config()
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in config.items()
        if k not in _BASE_CONFIG_KEYS
    }


def weights_digest(model) -> str:
    """SHA-256 over the model's weights as little-endian float32, in model order.

    Hashing values rather than the .h5 file makes the digest independent of HDF5 metadata
    (timestamps), so it identifies the weights themselves.
    """
    h = hashlib.sha256()
    for w in model.weights:
        h.update(np.ascontiguousarray(np.asarray(w, dtype="<f4")).tobytes())
    return h.hexdigest()


def save_weights(network, path: str | Path, preset: Preset) -> Path:
    """Writes `network`'s weights to `path` (`NAME.weights.h5`) and its preset beside it,
    each atomically, the preset last with the checksum of the weights written.

    Returns:
        The weights path.
    """
    path = Path(path)
    if not path.name.endswith(SUFFIX):
        raise ValueError(f"`path` must end with {SUFFIX}. Received: path={path}")
    with atomic_path(path) as tmp:
        network.save_weights(tmp)
    preset = dataclasses.replace(preset, sha256=weights_digest(network))
    write_text(preset_path(path), json.dumps(dataclasses.asdict(preset), indent=2) + "\n")
    return path


def read_preset(weights: str | Path) -> Preset:
    """The preset of a `.weights.h5` file: `NAME.json` beside it.

    Raises:
        KerasrError: no preset, or one that cannot be read or is not a preset.
    """
    weights = Path(weights)
    path = preset_path(weights)
    if not path.is_file():
        raise KerasrError(
            f"{weights} has no preset ({path.name} beside it says which network it holds): "
            "load the .keras file saved with it, or save the weights with kerasr"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise KerasrError(f"cannot read {path}: {first_line(e)}") from None
    if not isinstance(data, dict):
        raise KerasrError(f"{path} must hold a JSON object (a preset)")
    if "kind" not in data or "arguments" not in data:
        raise KerasrError(f"{path} is not a preset: it needs a network kind and its arguments")
    return _preset_from(data, path)


def _preset_from(data: dict, path: Path) -> Preset:
    from kerasr.weights.kinds import DISCRIMINATORS, GENERATORS, UPSCALERS

    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(Preset)})
    if unknown:
        raise KerasrError(f"{path}: unknown preset key {unknown[0]!r:.40}")
    kind, arguments = data.get("kind"), data["arguments"]
    if kind not in (*UPSCALERS, *GENERATORS, *DISCRIMINATORS):
        raise KerasrError(f"{path}: unknown network kind {kind!r:.40}")
    if not isinstance(arguments, dict):
        raise KerasrError(f"{path}: arguments must be a JSON object")
    if kind in GENERATORS:
        arguments = check_architecture({"kind": kind, **arguments}, str(path))
        arguments.pop("kind")
    scale, sha256 = data.get("scale"), data.get("sha256", "")
    if scale is not None and type(scale) is not int:
        raise KerasrError(f"{path}: scale must be an integer or null. Received: {scale!r:.40}")
    if not isinstance(sha256, str):
        raise KerasrError(f"{path}: sha256 must be a string")
    return Preset(kind, arguments, scale, str(data.get("source", "")), sha256)


_ARCHITECTURE_KEYS = {
    "dcgan": {"image_size", "latent_dim", "filters", "max_filters", "upsample"},
    "fastgan": {"image_size", "latent_dim", "filters"},
}
_INTEGER_RANGES = {
    "image_size": (8, 256),
    "latent_dim": (1, 4096),
    "filters": (1, 1024),
    "max_filters": (1, 4096),
}


def check_architecture(kwargs, source: str) -> dict:
    """Checks a generator architecture (a preset's `kind` and `arguments` in one object): its
    kind, its keys, and that every size is an integer in a range a generator can be built
    with, so that a preset from elsewhere cannot ask for a network that fills the memory.

    Raises:
        KerasrError: one line naming `source` and the first bad key or value.
    """
    if not isinstance(kwargs, dict):
        raise KerasrError(f"{source} must hold a JSON object (the generator's architecture)")
    kind = kwargs.get("kind", "dcgan")
    if kind not in _ARCHITECTURE_KEYS:
        raise KerasrError(
            f"{source}: kind must be one of {sorted(_ARCHITECTURE_KEYS)}. Received: {kind!r:.40}"
        )
    allowed = _ARCHITECTURE_KEYS[kind]
    unknown = sorted(set(kwargs) - allowed - {"kind"})
    if unknown:
        raise KerasrError(
            f"{source}: unknown key {unknown[0]!r:.40} for a {kind} generator "
            f"(keys: {', '.join(sorted(allowed))})"
        )
    for key, (low, high) in _INTEGER_RANGES.items():
        value = kwargs.get(key)
        if key in kwargs and not (type(value) is int and low <= value <= high):
            raise KerasrError(
                f"{source}: {key} must be an integer from {low} to {high}. Received: {value!r:.40}"
            )
    size = kwargs.get("image_size", 64)
    if size & (size - 1):
        raise KerasrError(f"{source}: image_size must be a power of two. Received: {size}")
    upsample = kwargs.get("upsample", "transposed")
    if upsample not in ("transposed", "resize"):
        raise KerasrError(
            f"{source}: upsample must be 'transposed' or 'resize'. Received: {upsample!r:.40}"
        )
    return {"kind": kind, **{k: v for k, v in kwargs.items() if k != "kind"}}

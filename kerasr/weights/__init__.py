"""Pretrained networks and their weights: the registries, the on-disk cache, and loading any
model file.

`load_model("realesrgan-x4plus")` converts the official ncnn files of a pretrained upscaler
to Keras weights on first use and caches them under `$KERASR_HOME/models` (default
`~/.cache/kerasr/models`); paths work too (`kerasr.weights.resolve` says which). The modules:
`pretrained` (the upscalers `kerasr models` lists), `generators` (the shipped GAN
generators), `cache`, `resolve` (what `-m` names), and the readers of other formats: `ncnn`,
`torch_pickle` (PyTorch state dicts and TorchScript archives, without torch), `vgg`,
`efficientnet`, `inception`.
"""

from kerasr.weights.cache import cache_path, is_cached, kerasr_home
from kerasr.weights.presets import weights_digest
from kerasr.weights.pretrained import (
    DEFAULT_MODEL,
    REGISTRY,
    PretrainedModel,
    list_models,
    load_pretrained,
    ncnn_files,
)
from kerasr.weights.resolve import load_model

__all__ = [
    "DEFAULT_MODEL",
    "REGISTRY",
    "PretrainedModel",
    "cache_path",
    "is_cached",
    "kerasr_home",
    "list_models",
    "load_model",
    "load_pretrained",
    "ncnn_files",
    "weights_digest",
]

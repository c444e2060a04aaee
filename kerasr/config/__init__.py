"""Typed run configuration: frozen dataclasses, TOML files and `--set a.b=c` overrides.

`loader` reads and writes any dataclass tree; `data`, `sr` and `dcgan` hold the schemas of
the data pipeline, the super-resolution recipes and the Pokemon DCGAN recipe. Nothing here
imports Keras or TensorFlow, so the CLI can check a config before starting either.

See `kerasr.config.loader` for an example.
"""

from kerasr.config.data import (
    KERNEL_TYPES,
    AugmentConfig,
    Blur2Config,
    BlurConfig,
    DataConfig,
    DegradationConfig,
    Stage2Config,
    StageConfig,
    load_data_config,
)
from kerasr.config.dcgan import (
    DCGANConfig,
    DCGANDataConfig,
    DCGANModelConfig,
    DCGANTrainConfig,
    DiffAugmentPolicy,
)
from kerasr.config.loader import (
    ConfigError,
    check,
    from_dict,
    load_config,
    read_toml,
    to_dict,
    to_toml,
)
from kerasr.config.sr import (
    MemoryConfig,
    PerceptualConfig,
    SRDiscriminatorConfig,
    SRGeneratorConfig,
    SRLossConfig,
    SROptimConfig,
    SRRecipe,
    SRTrainConfig,
)

__all__ = [
    "KERNEL_TYPES",
    "AugmentConfig",
    "Blur2Config",
    "BlurConfig",
    "ConfigError",
    "DCGANConfig",
    "DCGANDataConfig",
    "DCGANModelConfig",
    "DCGANTrainConfig",
    "DataConfig",
    "DegradationConfig",
    "DiffAugmentPolicy",
    "MemoryConfig",
    "PerceptualConfig",
    "SRDiscriminatorConfig",
    "SRGeneratorConfig",
    "SRLossConfig",
    "SROptimConfig",
    "SRRecipe",
    "SRTrainConfig",
    "Stage2Config",
    "StageConfig",
    "check",
    "from_dict",
    "load_config",
    "load_data_config",
    "read_toml",
    "to_dict",
    "to_toml",
]

"""The architecture registry: every network kerasr builds, by kind, with one entry point.

`build_network(kind, **arguments)` is how training, the weights loaders, ncnn conversion and
presets (`kerasr.weights.presets`) make a network, so a kind and its arguments name an
architecture everywhere: the `kind` and `arguments` of a preset are exactly what this
function takes. Imports Keras; `kerasr.weights.resolve` loads it only when it builds.

Example:

    g = build_network("rrdbnet", scale=4, num_basic_blocks=6)  # built, weights random
"""

from __future__ import annotations

import warnings
from pathlib import Path

from kerasr.errors import KerasrError, first_line
from kerasr.models.dcgan import build_discriminator as dcgan_discriminator
from kerasr.models.dcgan import build_generator as dcgan_generator
from kerasr.models.discriminators import UNetDiscriminator, VGGDiscriminator
from kerasr.models.fastgan import build_fastgan_generator
from kerasr.models.projected import ProjectedDiscriminator
from kerasr.models.rrdbnet import RRDBNet
from kerasr.models.srvgg import SRVGGNetCompact
from kerasr.weights.kinds import UPSCALERS
from kerasr.weights.presets import (
    Preset,
    network_arguments,
    preset_path,
    read_preset,
    weights_digest,
)

NETWORKS = {
    "rrdbnet": RRDBNet,
    "srvgg": SRVGGNetCompact,
    "dcgan": dcgan_generator,
    "fastgan": build_fastgan_generator,
    "vgg_discriminator": VGGDiscriminator,
    "unet_discriminator": UNetDiscriminator,
    "dcgan_discriminator": dcgan_discriminator,
    "projected_discriminator": ProjectedDiscriminator,
}

# The name a network gets when the caller gives none: weights files do not depend on it,
# but summaries and SavedModel signatures show it.
_DEFAULT_NAMES = {"dcgan": "dcgan_generator", "fastgan": "fastgan_generator"}


def build_network(kind: str, /, *, input_shape=None, **arguments):
    """Builds the network of `kind` from its constructor (or builder) arguments.

    Args:
        kind: a key of `NETWORKS`.
        input_shape: the batch shape to build a subclassed network with; upscalers default
            to `(None, None, None, in_channels)`, discriminators of a fixed size need it.
            Functional networks (`dcgan`, `fastgan`, `dcgan_discriminator`) are built
            already.
        **arguments: the arguments of the class or builder, e.g. `scale=4`.

    Returns:
        The network, built when its input shape is known.

    Raises:
        KerasrError: for an unknown kind, or arguments the network does not take or refuses.
    """
    if kind not in NETWORKS:
        raise KerasrError(f"unknown network kind {kind!r:.40}: kerasr builds {', '.join(NETWORKS)}")
    if "name" not in arguments and kind in _DEFAULT_NAMES:
        arguments["name"] = _DEFAULT_NAMES[kind]
    try:
        network = NETWORKS[kind](**arguments)
    except (TypeError, ValueError) as e:
        raise KerasrError(
            f"cannot build a {kind} network from {sorted(arguments)}: {first_line(e)}"
        ) from None
    if input_shape is None and kind in UPSCALERS:
        input_shape = (None, None, None, network.in_channels)
    if input_shape is not None and not network.built:
        network.build(input_shape)
    return network


def kind_of(network) -> str | None:
    """The registry kind of a subclassed network (`RRDBNet` -> `"rrdbnet"`); None for a
    functional one, whose class says nothing of its builder."""
    for kind, builder in NETWORKS.items():
        if isinstance(builder, type) and type(network) is builder:
            return kind
    return None


def preset_of(network, source: str):
    """The preset of a subclassed kerasr network (an upscaler, an SR discriminator), read
    from its config: what `kerasr.weights.presets.save_weights` writes beside it.

    Raises:
        KerasrError: for a network the registry does not hold as a class.
    """
    kind = kind_of(network)
    if kind is None:
        raise KerasrError(f"{type(network).__name__} is not a network of the kerasr registry")
    return Preset(kind, network_arguments(network), getattr(network, "scale", None), source)


def load_weights(path: str | Path):
    """Builds the network a `.weights.h5` file's preset names and loads the file into it.

    Returns:
        `(network, preset)`.

    Raises:
        KerasrError: no or bad preset, weights that do not fit it. Weights that fit but
            fail the preset's checksum load with a warning.
    """
    path = Path(path)
    preset = read_preset(path)
    network = build_network(preset.kind, **preset.arguments)
    try:
        network.load_weights(path)
    except Exception as e:  # h5py / Keras raise many types for a wrong or corrupt file
        raise KerasrError(
            f"{path} does not hold the weights of its preset ({preset.kind}): {first_line(e)}"
        ) from None
    if preset.sha256 and weights_digest(network) != preset.sha256:
        # The weights fit the architecture, so they are usable: rewritten after the preset
        # (Keras' own save_weights, or a reader between the two renames of a save).
        warnings.warn(
            f"{path} does not match the checksum of its preset {preset_path(path).name} "
            "(weights written after the preset?); loaded anyway",
            stacklevel=2,
        )
    return network, preset

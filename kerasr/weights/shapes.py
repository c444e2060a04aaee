"""Rebuilding an RRDBNet or SRVGGNetCompact around a `.weights.h5` file from its kernel
shapes."""

from __future__ import annotations

from pathlib import Path

from kerasr.errors import KerasrError, first_line
from kerasr.weights.pretrained import build_upscaler


def load_weights_file(path: Path):
    """Loads an RRDBNet or SRVGGNetCompact `.weights.h5` file, inferring the architecture
    from the weights."""
    network, arch = _arch_from_weights_file(path)
    model = build_upscaler(network, arch)
    try:
        model.load_weights(path)
    except Exception as e:
        name = type(model).__name__
        raise KerasrError(f"weights in {path} do not fit {name}: {first_line(e)}") from None
    return model


def _arch_from_weights_file(path: Path) -> tuple[str, dict]:
    """Reads the network's shape knobs from the kernel shapes stored in a Keras weights file.

    Keras stores a subclassed model's variables by attribute path (`conv_first/vars/0`,
    `body/<block>/blocks/<rdb>/convs/<conv>/vars/0`), so counting the groups gives the
    block counts and the kernel shapes give the channel widths.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "conv_up1" not in f and "convs" in f:
                return "srvgg", _srvgg_arch(f, path)
            return "rrdbnet", _rrdbnet_arch(f, path)
    except OSError as e:
        raise KerasrError(f"cannot read weights file {path}: {first_line(e)}") from None


def _kernel(group):
    return group["vars"]["0"].shape


def _rrdbnet_arch(f, path: Path) -> dict:
    try:
        blocks = [f["body"][k] for k in f["body"]]
        rdbs = [blocks[0]["blocks"][k] for k in blocks[0]["blocks"]]
        convs = [rdbs[0]["convs"][k] for k in rdbs[0]["convs"]]
        first, last, up1 = _kernel(f["conv_first"]), _kernel(f["conv_last"]), _kernel(f["conv_up1"])
        growth = min(_kernel(c)[-1] for c in convs)
    except (KeyError, IndexError, ValueError):
        raise KerasrError(f"{path} does not hold RRDBNet weights") from None
    from kerasr.models.rrdbnet import arch_from_shapes

    arch = arch_from_shapes(
        first[2], first[-1], growth, last[-1], len(blocks), len(rdbs), len(convs), up1[-1]
    )
    if arch is None:
        raise KerasrError(f"{path} does not hold RRDBNet weights (input convolution {first})")
    return arch


def _srvgg_arch(f, path: Path) -> dict:
    # Keras names the convolutions of the list `convs` conv2d, conv2d_1, conv2d_2, ...
    def position(key: str) -> int:
        tail = key.rpartition("_")[2]
        return int(tail) if tail.isdigit() else 0

    try:
        convs = [_kernel(f["convs"][k]) for k in sorted(f["convs"], key=position)]
        last = _kernel(f["conv_last"])
        prelu = "activations" in f and len(f["activations"]) > 0
    except (KeyError, IndexError, ValueError):
        raise KerasrError(f"{path} does not hold SRVGGNetCompact weights") from None
    from kerasr.models.srvgg import arch_from_shapes

    arch = arch_from_shapes(convs[0], len(convs) - 1, last, prelu) if convs else None
    if arch is None:
        raise KerasrError(f"{path} does not hold SRVGGNetCompact weights")
    if not prelu:
        act_type = _activation_beside(path)
        if act_type is None:
            raise KerasrError(
                f"{path} holds SRVGGNetCompact weights without PReLU slopes: relu and leakyrelu "
                "cannot be told apart from the weights alone; load the .keras file saved with "
                "them (kerasr training writes generator.keras), or save the network as .keras"
            )
        arch["act_type"] = act_type
    return arch


def _activation_beside(path: Path) -> str | None:
    """The activation of the SRVGGNetCompact `.keras` model saved beside a weights file
    (`generator.keras` beside `generator.weights.h5`, as training writes them), if any."""
    import json
    import zipfile

    archive_path = path.with_name(path.name.removesuffix(".weights.h5") + ".keras")
    try:
        with zipfile.ZipFile(archive_path) as archive:
            config = json.loads(archive.read("config.json"))
        if config.get("class_name") == "SRVGGNetCompact":
            return config["config"]["act_type"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        pass
    return None

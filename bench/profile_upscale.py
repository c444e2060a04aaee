"""Where float32 upscaling spends its time: a TensorFlow profile of `Upscaler.upscale`, per op kind.

    python bench/profile_upscale.py [--models NAME ...] [--size 256] [--repeats 2]
                                    [--precision float32]

Runs `kerasr.upscaling.inference.Upscaler(model, precision=...).upscale` on a `size` x `size`
crop of the sample photograph as `kerasr upscale` does (one warm-up call, then `repeats` profiled
calls), reads the trace TensorFlow's profiler writes (its XSpace protobuf) and prints, per
call, the time of the TensorFlow ops grouped by kind (convolutions, activations, adds,
concatenations, copies) and the rest of the wall time (XLA-compiled parts, which the
trace shows without op names, and the tiling and numpy work around the model).
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile
import time
from pathlib import Path

import kerasr
from kerasr.images import read_image
from kerasr.upscaling.inference import Upscaler
from kerasr.weights import load_model

SAMPLE = Path(kerasr.__file__).parent / "samples" / "astronaut.png"
ELEMENT_WISE = "element-wise (PReLU, residual scaling, skip adds, clip)"

# Op type -> the kind reported; anything else is reported under its own type.
KINDS = {
    "Conv2D": "convolution (plain)",
    "_MklConv2D": "convolution (plain)",
    "_MklNativeConv2D": "convolution (plain)",
    "_FusedConv2D": "convolution (fused bias / activation / add)",
    "_MklFusedConv2D": "convolution (fused bias / activation / add)",
    "_MklNativeFusedConv2D": "convolution (fused bias / activation / add)",
    "BiasAdd": "bias add (separate)",
    "LeakyRelu": "activation (separate)",
    "_MklLeakyRelu": "activation (separate)",
    "Relu": "activation (separate)",
    "Minimum": ELEMENT_WISE,
    "Maximum": ELEMENT_WISE,
    "AddV2": ELEMENT_WISE,
    "_MklAddV2": ELEMENT_WISE,
    "Add": ELEMENT_WISE,
    "Mul": ELEMENT_WISE,
    "_MklMul": ELEMENT_WISE,
    "Sub": ELEMENT_WISE,
    "ConcatV2": "concatenation",
    "_MklConcatV2": "concatenation",
    "Transpose": "copies (transpose, broadcast, reshape)",
    "BroadcastTo": "copies (transpose, broadcast, reshape)",
    "Reshape": "copies (transpose, broadcast, reshape)",
    "_MklToTf": "copies (transpose, broadcast, reshape)",
    "Cast": "casts",
    "ReadVariableOp": "reading weights",
}


def op_times(logdir: str) -> collections.Counter:
    """Seconds per op type, from the executor threads of the host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            # The executor's threads; an op's event is named "node name:op type".
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if ":" in name and "::" not in name:
                    totals[name.rsplit(":", 1)[-1]] += event.duration_ps / 1e12
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["realesrgan-x4plus", "realesr-animevideov3"]
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args()
    import tensorflow as tf

    photo = read_image(SAMPLE)[..., :3]
    crop = photo[: args.size, : args.size]
    for name in args.models:
        upscaler = Upscaler(load_model(name), precision=args.precision)
        upscaler.upscale(crop)
        logdir = tempfile.mkdtemp(prefix="kerasr-profile-")
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(args.repeats):
            upscaler.upscale(crop)
        wall = (time.perf_counter() - start) / args.repeats
        tf.profiler.experimental.stop()
        totals = op_times(logdir)
        kinds = collections.Counter()
        for op_type, seconds in totals.items():
            kinds[KINDS.get(op_type, op_type)] += seconds / args.repeats
        ops_total = sum(kinds.values())
        print(f"\n{name}, {args.size}x{args.size}, {args.precision}, kerasr {kerasr.__version__}")
        print(f"{'kind':48s} {'ms/call':>9s} {'share':>6s}")
        for kind, seconds in kinds.most_common():
            print(f"{kind:48s} {seconds * 1e3:9.1f} {seconds / wall:6.1%}")
        outside = wall - ops_total
        # XLA-compiled parts (the compact network's PReLU) have no op event: they fall here.
        label = "rest (XLA PReLU, numpy, tiling, calls)"
        print(f"{label:48s} {outside * 1e3:9.1f} {outside / wall:6.1%}")
        print(f"{'wall':48s} {wall * 1e3:9.1f}")
        types = ", ".join(f"{k} {v / args.repeats * 1e3:.1f}" for k, v in totals.most_common())
        print("op types (ms/call):", types)


if __name__ == "__main__":
    main()

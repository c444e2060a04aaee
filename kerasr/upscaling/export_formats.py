"""ONNX and LiteRT files: a network in the layout its hosts expect, run once in its runtime.

Each format is written by its own converter (Keras' `model.export`, which drives tf2onnx and
the TensorFlow Lite converter), then loaded in its runtime (onnxruntime, the `ai-edge-litert`
interpreter) and run on a small image next to the Keras model; a file that does not load,
or gives other pixels, is not kept.

- onnx, upscaler: float32 NCHW `(n, c, h, w)` in [0, 1], any n, h and w, to
  `(n, c, s*h, s*w)` clipped to [0, 1];
- onnx, generator: float32 latents `(n, d)` to uint8 NHWC images `(n, H, W, 3)`;
- litert, upscaler: float32 NHWC `(1, t, t, c)` in [0, 1] to `(1, s*t, s*t, c)`, clipped,
  where `t` is the tile;
- litert, generator: float32 latents `(1, d)` to uint8 images `(1, H, W, 3)`.

ONNX takes the channels-first layout of Real-ESRGAN's own ONNX files, which chaiNNer,
VapourSynth (vs-mlrt / VSGAN) and TensorRT read. A LiteRT upscaler has a fixed input size,
as GPU and NPU delegates need; the caller cuts images into tiles of that size. Tile 0 gives
an input of any size instead, which only the CPU interpreter resizes to.

Seeds: a seed becomes a latent vector through TensorFlow's stateless Philox generator, an op
neither ONNX nor LiteRT's builtin set has; these formats take latents, and only the
SavedModel maps seeds to the images `kerasr generate` draws.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from kerasr.errors import KerasrError, first_line, shorten
from kerasr.images import to_uint8

RUNTIME = {"onnx": "onnxruntime", "litert": "the LiteRT interpreter"}
# ONNX opset 17 (2022): read by onnxruntime >= 1.11, TensorRT >= 8.5 and onnxruntime-web.
ONNX_OPSET = 17
# The LiteRT upscaler's default input: 128 x 128 pixels keep an x4 RRDBNet's largest
# feature map (64 channels at 512 x 512) at 64 MB, within reach of a phone.
LITERT_TILE = 128
# A float32 export may differ from the Keras model by one uint8 level where a value falls
# on a rounding boundary; more means the conversion changed the computation.
FLOAT32_LEVELS = 1
# Side of the image the exported file is checked on when its size is free.
CHECK_SIZE = 16

_EXTRA = "pip install 'kerasr[export]'"
# Importable module -> the distribution that installs it, per format and precision.
_NEEDS = {
    "onnx": {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime"},
    "litert": {"ai_edge_litert": "ai-edge-litert"},
}
_NEEDS_FLOAT16 = {"onnx": {"onnxconverter_common": "onnxconverter-common"}, "litert": {}}


def check_installed(fmt: str, precision: str = "float32") -> None:
    """Raises a one-line `KerasrError` naming the extra when `fmt`'s tools are missing."""
    needs = {**_NEEDS[fmt], **(_NEEDS_FLOAT16[fmt] if precision == "float16" else {})}
    missing = [dist for module, dist in needs.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise KerasrError(f"--format {fmt} needs {', '.join(missing)}: {_EXTRA}")


class PortableUpscaler(keras.Model):
    """An upscaler with the input and output of the ONNX and LiteRT files.

    float32 images in [0, 1] in, the upscaled images clipped to [0, 1] out (floats, so that
    a caller who tiles can cross-fade neighbouring tiles before rounding).

    Args:
        network: a built upscaler (`scale` attribute, NHWC in and out).
        channels_first: take and give `(n, c, h, w)` instead of `(n, h, w, c)`.
    """

    def __init__(self, network, channels_first=False, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.channels_first = channels_first
        self.built = True  # the network is built; the wrapper has no weights of its own

    def call(self, images):
        x = ops.transpose(images, (0, 2, 3, 1)) if self.channels_first else images
        y = ops.clip(self.network(x, training=False), 0.0, 1.0)
        return {"output": ops.transpose(y, (0, 3, 1, 2)) if self.channels_first else y}


class PortableGenerator(keras.Model):
    """A generator with the input and output of the ONNX and LiteRT files: float32 latents
    `(n, d)` in, uint8 images `(n, H, W, 3)` out, rounded as `kerasr generate` rounds."""

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.built = True

    def call(self, latents):
        return {"images": to_uint8(self.network(latents, training=False), (-1.0, 1.0))}


def write(network, kind: str, path: str | Path, fmt: str, precision: str, tile: int | None):
    """Writes `network` as an ONNX or LiteRT file at `path` and checks it in its runtime.

    Args:
        network: a built upscaler or generator (`kind` `"upscaler"` or `"generator"`).
        path: the file to write (`.onnx` or `.tflite`).
        fmt: `"onnx"` or `"litert"`.
        precision: `"float32"`, or `"float16"` for float16 weights.
        tile: LiteRT upscalers: the input's height and width, 0 for any size (default
            `LITERT_TILE`). None for everything else.

    Returns:
        The largest difference, in uint8 levels, between the runtime's output and the Keras
        model's on the check input (a random image, or the latents of seeds 0 and 1).

    Raises:
        KerasrError: the network does not take the tile size; the format cannot express it (an op
            it has no equivalent for); the file does not load in its runtime, or differs
            from the Keras model by more than one level in float32.
    """
    check_installed(fmt, precision)
    model, spec, probe = _portable(network, kind, fmt, tile)
    try:
        expected = _levels(model(probe), kind)
    except Exception as e:  # e.g. a reshape that does not divide: the pixel unshuffle of x2 / x1
        shape = "x".join(map(str, probe.shape[1:]))
        hint = "; x2 RRDBNet models take multiples of 2 (see --tile), x1 of 4"
        raise KerasrError(
            f"the model does not take a {shape} input ({shorten(first_line(e))})"
            + (hint if kind == "upscaler" else "")
        ) from None
    path = Path(path)
    if fmt == "onnx":
        _write_onnx(model, spec, path, precision)
    else:
        _write_litert(model, spec, path, precision)
    try:
        got = _levels(run(path, fmt, probe), kind)
    except Exception as e:  # each runtime raises its own types for a file it cannot run
        raise KerasrError(
            f"the {fmt} file does not run in {RUNTIME[fmt]}: {shorten(first_line(e))}"
        ) from None
    error = int(np.abs(got - expected).max())
    if precision == "float32" and error > FLOAT32_LEVELS:
        raise KerasrError(
            f"the {fmt} file differs from the Keras model by {error} uint8 levels on a test "
            "input; it was not kept"
        )
    return error


def run(path: str | Path, fmt: str, inputs: np.ndarray) -> np.ndarray:
    """Runs an exported file in its runtime on one input array; returns its one output."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: inputs})[0]
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    (name,) = runner.get_input_details()
    return next(iter(runner(**{name: inputs}).values()))


def _portable(network, kind: str, fmt: str, tile: int | None):
    """The wrapper model, its input spec and an input to check the export on."""
    rng = np.random.default_rng(0)
    if kind == "generator":
        from kerasr.generation import latents_from_seeds

        if tile is not None:
            raise KerasrError("--tile applies to upscalers only")
        latent_dim = int(network.input_shape[-1])
        batch = None if fmt == "onnx" else 1
        spec = keras.InputSpec(shape=(batch, latent_dim), dtype="float32", name="latents")
        probe = latents_from_seeds([0, 1] if fmt == "onnx" else [0], latent_dim).numpy()
        return PortableGenerator(network), spec, probe
    channels = int(getattr(network, "in_channels", 3))
    if fmt == "onnx":  # any size (`kerasr.upscaling.export.check_options` refuses a tile)
        spec = keras.InputSpec(shape=(None, channels, None, None), dtype="float32", name="input")
        probe = rng.random((1, channels, CHECK_SIZE, CHECK_SIZE), np.float32)
        return PortableUpscaler(network, channels_first=True), spec, probe
    tile = LITERT_TILE if tile is None else tile
    if tile < 0:
        raise KerasrError(f"--tile must be >= 0. Received: {tile}")
    size = tile or None
    spec = keras.InputSpec(shape=(1, size, size, channels), dtype="float32", name="input")
    probe = rng.random((1, tile or CHECK_SIZE, tile or CHECK_SIZE, channels), np.float32)
    return PortableUpscaler(network), spec, probe


def _levels(outputs, kind: str) -> np.ndarray:
    """Outputs as uint8 levels, as integers that can be subtracted."""
    outputs = (
        outputs["output" if kind == "upscaler" else "images"]
        if isinstance(outputs, dict)
        else outputs
    )
    outputs = np.asarray(outputs)
    if kind == "upscaler":
        outputs = to_uint8(outputs)
    return outputs.astype(np.int32)


def _write_onnx(model, spec, path: Path, precision: str) -> None:
    with _tf2onnx_log() as problems, warnings.catch_warnings():
        # Keras' tf2onnx shim for numpy 2 sets np.object, which warns (harmlessly).
        warnings.simplefilter("ignore", FutureWarning)
        model.export(
            str(path),
            format="onnx",
            input_signature=[spec],
            opset_version=ONNX_OPSET,
            verbose=False,
        )
    if problems:
        # tf2onnx writes a file even when an op has no ONNX equivalent; it would not load.
        raise KerasrError(f"ONNX cannot express this model: {shorten(problems[0], 160)}")
    if precision == "float16":
        import onnx
        from onnxconverter_common import float16

        # keep_io_types: the file takes and gives what the float32 one does; weights and
        # arithmetic are float16 inside (casts at the edges).
        proto = float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
        onnx.save(proto, str(path))


@contextlib.contextmanager
def _tf2onnx_log():
    """Keeps tf2onnx's log off the console; yields the list of its error messages."""
    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if record.levelno >= logging.ERROR and message.startswith("Unsupported ops"):
                problems.insert(0, message)
            elif record.levelno >= logging.ERROR:
                problems.append(message)

    logger = logging.getLogger("tf2onnx")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield problems
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _write_litert(model, spec, path: Path, precision: str) -> None:
    import tensorflow as tf

    # Builtin ops only: a file with TensorFlow ("Select") ops needs the Flex delegate, which
    # the LiteRT runtime on phones and in ai-edge-litert does not have.
    target = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    options = {}
    if precision == "float16":
        target["supported_types"] = [tf.float16]
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    try:
        model.export(
            str(path),
            format="litert",
            input_signature=[spec],
            verbose=False,
            target_spec=target,
            **options,
        )
    except Exception as e:  # the converter's ConverterError, or an op it cannot lower
        raise KerasrError(f"LiteRT cannot express this model: {_litert_reason(e)}") from None


def _litert_reason(error: BaseException) -> str:
    """The converter's verdict in a few words: the ops it could not map, when it says so."""
    found = re.search(r"TF Select ops: ([^\n]+)", str(error))
    if found:
        return f"no LiteRT builtin op for {shorten(found.group(1))}"
    return shorten(first_line(error), 160)

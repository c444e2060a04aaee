"""Upscaling images of any size: tiling with blended seams, alpha, greyscale, 16-bit, precision.

`Upscaler(model).upscale(pixels)` takes the array `kerasr.images.read_image` returns and
gives the upscaled array, same dtype and channels. Large images are cut into overlapping
windows that all have the same shape, so the compiled graph is traced once and windows can
be batched; each window carries `tile_pad` pixels of context, and neighbouring tiles are
cross-faded over their overlap, so no seam shows.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import decode_pixel_limit
from kerasr.upscaling.inference_graph import forward_function

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Luma weights of ITU-R BT.601, as OpenCV's RGB->grey conversion (what Real-ESRGAN applies
# to turn the colour output for a grey input back into grey).
_GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class TilePlan:
    """How one image axis is cut into windows, and which output each window gives."""

    window: int  # window length along the axis, the same for every tile
    starts: tuple[int, ...]  # window starts
    cores: tuple[tuple[int, int], ...]  # [begin, end) of each tile's own part; they partition
    blend: int  # half-width of the cross-fade around each boundary between cores


def plan_axis(length: int, tile: int, pad: int, overlap: int) -> TilePlan:
    """Lays out tiles along one axis.

    `ceil(length / tile)` cores of (nearly) equal size partition the axis. Each window adds
    `pad` pixels of context on both sides and is shifted to stay inside the image (the image
    border then plays the role it plays when the whole image is processed: the network's
    zero padding), so all windows have one shape. Neighbours are cross-faded over `overlap`
    pixels centred on their boundary, taken from the context both windows computed anyway.
    """
    if tile <= 0 or length <= tile:
        return TilePlan(length, (0,), ((0, length),), 0)
    count = math.ceil(length / tile)
    bounds = [round(i * length / count) for i in range(count + 1)]
    cores = tuple(itertools.pairwise(bounds))
    window = min(length, max(e - b for b, e in cores) + 2 * pad)
    starts = tuple(min(max(b - pad, 0), length - window) for b, _ in cores)
    blend = min(overlap // 2, pad, min(e - b for b, e in cores) // 2)
    return TilePlan(window, starts, cores, blend)


def _ramp(plan: TilePlan, index: int, scale: int) -> np.ndarray:
    """Blend weights (in output pixels) of tile `index` over its window, along one axis.

    1 inside the core, linear ramps of width `2 * blend` centred on the boundaries with the
    neighbours (the two ramps of a boundary sum to 1), 0 further out: the rest of the
    context never reaches the output.
    """
    begin, end = plan.cores[index]
    x = (np.arange(plan.window * scale) + plan.starts[index] * scale + 0.5).astype(np.float32)
    weight = ((x >= begin * scale) & (x < end * scale)).astype(np.float32)
    width = 2 * plan.blend * scale
    if width:
        ramps = [weight]
        if index > 0:
            ramps.append((x - (begin - plan.blend) * scale) / width)
        if index < len(plan.cores) - 1:
            ramps.append(((end + plan.blend) * scale - x) / width)
        if len(ramps) > 1:
            weight = np.clip(np.minimum.reduce(ramps[1:]), 0.0, 1.0)
    return weight


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), on Linux."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str) -> str:
    """`auto` becomes float16 on a GPU (as Real-ESRGAN's default half precision), bfloat16
    on a CPU with native bfloat16 (2x faster, output within ~53 dB PSNR of float32, see
    bench/upscale.py), else float32."""
    if precision not in PRECISIONS:
        raise KerasrError(
            f"precision must be one of {', '.join(PRECISIONS)}. Received: {precision!r}"
        )
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "float16"
    return "bfloat16" if native_bfloat16() else "float32"


def with_precision(model, precision: str):
    """A copy of `model` computing in `precision` (a mixed policy: float32 weights and output)."""
    if precision == "float32":
        return model
    config = {**model.get_config(), "dtype": f"mixed_{precision}"}
    clone = model.__class__.from_config(config)
    clone.build((None, None, None, getattr(model, "in_channels", 3)))
    clone.set_weights(model.get_weights())
    if hasattr(model, "scale"):
        clone.scale = model.scale
    return clone


class Upscaler:
    """Upscales images of any size with a super-resolution model.

    Args:
        model: a Keras model mapping `[0, 1]` float images `(n, h, w, 3)` to `scale`-times
            larger ones (e.g. `kerasr.weights.load_model()`); `model.scale` gives the factor.
        tile: core tile size in input pixels; 0 processes the whole image at once, `None`
            chooses (whole image up to 512x512 input pixels, else 384-pixel tiles).
        tile_pad: context pixels added around each tile (default 32). With the default
            overlap this keeps tiled output within 50 dB PSNR of whole-image output.
        overlap: pixels over which neighbouring tiles are cross-faded (default 16).
        batch_size: windows per model call (default 1 on CPU, 4 on GPU).
        precision: `auto`, `float32`, `bfloat16` or `float16` (see `resolve_precision`).
        alpha: `model` upscales an alpha channel with the network (as Real-ESRGAN), `bicubic`
            with a bicubic resize (faster).
        jit_compile: compile the forward pass with XLA. Off by default: on CPU the plain
            TensorFlow graph (oneDNN kernels) is faster.

    Example:

        up = Upscaler(kerasr.weights.load_model("realesrgan-x4plus"))
        big = up.upscale(kerasr.images.read_image("photo.png"))
    """

    def __init__(
        self,
        model,
        tile: int | None = None,
        tile_pad: int = 32,
        overlap: int = 16,
        batch_size: int | None = None,
        precision: str = "auto",
        alpha: str = "model",
        jit_compile: bool = False,
    ):
        if tile is not None and tile < 0:
            raise KerasrError(f"tile must be >= 0. Received: tile={tile}")
        if tile_pad < 0 or overlap < 0:
            raise KerasrError(f"tile_pad and overlap must be >= 0. Received: {tile_pad}, {overlap}")
        if batch_size is not None and batch_size < 1:
            raise KerasrError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        if alpha not in ("model", "bicubic"):
            raise KerasrError(f"alpha must be 'model' or 'bicubic'. Received: {alpha!r}")
        import tensorflow as tf

        self.scale = int(model.scale)
        self.tile = tile
        self.tile_pad = tile_pad
        self.overlap = overlap
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        self.batch_size = batch_size or (4 if on_gpu else 1)
        self.precision = resolve_precision(precision)
        self.alpha = alpha
        self.jit_compile = jit_compile
        self.model = with_precision(model, self.precision)
        # Outscales a model release runs as the network then a fixed resize (the x2 / x3
        # releases of realesr-animevideov3), instead of resizing the output with Lanczos.
        self.outscale_variants = dict(getattr(model, "outscale_variants", None) or {})
        self._variants: dict[float, Upscaler] = {}
        channels = getattr(model, "in_channels", 3)
        # In bfloat16 / float16 the networks kerasr knows run as a graph built for inference
        # (weights cast once, PReLU in one pass), 6-11 % faster. Float32 runs the Keras call:
        # the graph's other rounding order moves x4plus-anime up to 1.4e-5 from it, outside
        # the 1.1e-5 bound kerasr keeps against ncnn float32, for a float32 gain within noise.
        graph = forward_function(self.model) if self.precision != "float32" else None
        network = graph or (lambda x: self.model(x, training=False))
        # One trace for every input size: the batch, height and width dimensions are dynamic.
        self._forward = tf.function(
            lambda x: tf.clip_by_value(network(x), 0.0, 1.0),
            input_signature=[tf.TensorSpec([None, None, None, channels], tf.float32)],
            jit_compile=jit_compile,
            reduce_retracing=True,
        )

    def tile_for(self, height: int, width: int) -> int:
        """The tile size used for an image of this size."""
        if self.tile is not None:
            return self.tile
        return 0 if height * width <= 512 * 512 else 384

    def count_tiles(self, height: int, width: int) -> int:
        """Model windows needed for one colour plane of this size."""
        tile = self.tile_for(height, width)
        ys = plan_axis(height, tile, self.tile_pad, self.overlap)
        xs = plan_axis(width, tile, self.tile_pad, self.overlap)
        return len(ys.starts) * len(xs.starts)

    def work_for(self, pixels: np.ndarray) -> int:
        """Model windows `upscale(pixels)` will run, for progress bars."""
        h, w = pixels.shape[:2]
        passes = 2 if self._alpha_needs_model(pixels) else 1
        return passes * self.count_tiles(h, w)

    def upscale(
        self, pixels: np.ndarray, outscale: float | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        """Upscales an image array.

        Args:
            pixels: `(h, w)` or `(h, w, c)` with `c` in {1, 2, 3, 4} (grey, grey+alpha, RGB,
                RGBA), uint8 or uint16.
            outscale: final scale relative to the input (any positive float); the model
                output is resized to it with Lanczos resampling. Default: the model's scale.
            progress: called with `(windows_done, windows_total)` after each model call.

        Returns:
            The upscaled image, same dtype and number of channels.
        """
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.ndim != 3 or pixels.shape[-1] not in (1, 2, 3, 4):
            raise KerasrError(
                f"expected an (h, w, c) image with 1 to 4 channels, got {pixels.shape}"
            )
        if pixels.dtype not in (np.uint8, np.uint16):
            raise KerasrError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
        h, w, channels = pixels.shape
        if h == 0 or w == 0:
            raise KerasrError("image has zero size")
        if outscale is not None and not (outscale > 0 and math.isfinite(outscale)):
            raise KerasrError(f"outscale must be a positive number. Received: {outscale}")
        self.check_output_size(h, w, outscale)
        if outscale in self.outscale_variants:
            return self._variant(outscale).upscale(pixels, progress=progress)
        peak = float(np.iinfo(pixels.dtype).max)
        image = pixels.astype(np.float32) / peak

        total = self.work_for(pixels)
        done = 0

        def step(n=1):
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        grey = channels in (1, 2)  # grey, or grey+alpha
        rgb = np.repeat(image[..., :1], 3, axis=-1) if grey else image[..., :3]
        out = self.upscale_float(rgb, step)
        if grey:
            out = (out @ _GREY_WEIGHTS)[..., None]
        if channels in (2, 4):
            alpha = image[..., -1:]
            if self._alpha_needs_model(pixels):
                out_alpha = self.upscale_float(np.repeat(alpha, 3, axis=-1), step)[..., :1]
            else:
                out_alpha = _resize(alpha, h * self.scale, w * self.scale, "bicubic")
            out = np.concatenate([out, out_alpha], axis=-1)
        return self._finish(out, outscale, pixels.dtype)

    def _finish(self, out: np.ndarray, outscale: float | None, dtype) -> np.ndarray:
        """Resizes to `outscale` and quantises; `out` (an array the caller owns) is reused."""
        if outscale is not None and outscale != self.scale:
            h, w = out.shape[0] // self.scale, out.shape[1] // self.scale
            size = (max(1, round(h * outscale)), max(1, round(w * outscale)))
            out = _resize(out, *size, "lanczos3")
        # In place: three fresh output-sized arrays cost more (page faults) than the
        # arithmetic, 7 ms of a 512x512 output.
        np.clip(out, 0.0, 1.0, out=out)
        out *= np.iinfo(dtype).max
        np.rint(out, out=out)
        return out.astype(dtype)

    def upscale_frames(
        self, frames: list[np.ndarray], outscale: float | None = None
    ) -> list[np.ndarray]:
        """Upscales same-size RGB uint8 frames (a video's), `batch_size` per model call.

        Frames that need tiling, or of different shapes, go one by one through `upscale`.
        The results are those of `upscale` on each frame.
        """
        if outscale in self.outscale_variants:
            return self._variant(outscale).upscale_frames(frames)
        first = frames[0] if frames else None
        if (
            len(frames) < 2
            or self.batch_size == 1
            or first.ndim != 3
            or first.shape[-1] != 3
            or first.dtype != np.uint8
            or any(f.shape != first.shape or f.dtype != first.dtype for f in frames)
            or self.count_tiles(*first.shape[:2]) > 1
        ):
            return [self.upscale(f, outscale=outscale) for f in frames]
        h, w = first.shape[:2]
        if outscale is not None and not (outscale > 0 and math.isfinite(outscale)):
            raise KerasrError(f"outscale must be a positive number. Received: {outscale}")
        self.check_output_size(h, w, outscale)
        results = []
        for start in range(0, len(frames), self.batch_size):
            batch = np.stack(frames[start : start + self.batch_size]).astype(np.float32) / 255
            results += [self._finish(o, outscale, np.uint8) for o in self._forward(batch).numpy()]
        return results

    def _variant(self, outscale: float) -> Upscaler:
        if outscale not in self._variants:
            from kerasr.models.rescaled import Rescaled

            network = Rescaled(self.model, self.outscale_variants[outscale])
            self._variants[outscale] = Upscaler(
                network,
                tile=self.tile,
                tile_pad=self.tile_pad,
                overlap=self.overlap,
                batch_size=self.batch_size,
                precision="float32",  # self.model already computes in self.precision
                alpha=self.alpha,
                jit_compile=self.jit_compile,
            )
        return self._variants[outscale]

    def check_output_size(self, h: int, w: int, outscale: float | None = None) -> None:
        """Refuses, in one line, an `h` x `w` input whose output would be over the pixel
        limit of images kerasr reads: up front rather than by the kernel's out-of-memory
        killer halfway through (a video checks before its first frame).

        Raises:
            KerasrError: the model's output or the `outscale` one is too large.
        """
        limit = decode_pixel_limit()
        sizes = [(h * self.scale, w * self.scale)]
        if outscale is not None:
            sizes.append((max(1, round(h * outscale)), max(1, round(w * outscale))))
        for oh, ow in sizes:
            if oh * ow > limit:
                raise KerasrError(
                    f"the output would be {ow}x{oh} pixels, over the limit of {limit:,}; "
                    "use a smaller --outscale or a smaller input"
                )

    def _alpha_needs_model(self, pixels: np.ndarray) -> bool:
        if pixels.shape[-1] not in (2, 4) or self.alpha != "model":
            return False
        # A fully opaque alpha channel stays fully opaque: no need to spend a model pass.
        return not np.all(pixels[..., -1] == np.iinfo(pixels.dtype).max)

    def upscale_float(
        self, image: np.ndarray, step: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Upscales a float32 `(h, w, 3)` image in `[0, 1]`, tiling as configured."""
        h, w = image.shape[:2]
        tile = self.tile_for(h, w)
        ys = plan_axis(h, tile, self.tile_pad, self.overlap)
        xs = plan_axis(w, tile, self.tile_pad, self.overlap)
        if len(ys.starts) * len(xs.starts) == 1:
            out = self._forward(image[None]).numpy()[0]
            if step:
                step()
            return out

        s = self.scale
        out = np.zeros((h * s, w * s, image.shape[-1]), np.float32)
        weight = np.zeros((h * s, w * s, 1), np.float32)
        windows = [(i, j) for i in range(len(ys.starts)) for j in range(len(xs.starts))]
        for first in range(0, len(windows), self.batch_size):
            group = windows[first : first + self.batch_size]
            batch = np.stack(
                [
                    image[
                        ys.starts[i] : ys.starts[i] + ys.window,
                        xs.starts[j] : xs.starts[j] + xs.window,
                    ]
                    for i, j in group
                ]
            )
            results = self._forward(batch).numpy()
            for (i, j), result in zip(group, results, strict=True):
                wy, wx = _ramp(ys, i, s), _ramp(xs, j, s)
                blend = (wy[:, None] * wx[None, :])[..., None]
                y0, x0 = ys.starts[i] * s, xs.starts[j] * s
                region = (slice(y0, y0 + ys.window * s), slice(x0, x0 + xs.window * s))
                out[region] += result * blend
                weight[region] += blend
            if step:
                step(len(group))
        return out / np.maximum(weight, 1e-8)


def _resize(image: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(image, (height, width), method=method, antialias=True).numpy()

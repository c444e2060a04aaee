"""Upscaling speed: kerasr, onnxruntime and the ncnn engine on the same inputs, in one run.

    python bench/upscale.py [--models NAME ...] [--sizes 128 256] [--repeats 3]
                            [--video-seconds 10] [--xla] [--tiles]

Images: for each registry model, seconds per output megapixel of ncnn (its default options
and float32), kerasr (its default precision and float32) and onnxruntime (the model exported
by `kerasr export --format onnx`, float32, CPU) on crops of the photograph the repo ships,
and the ratio of each time to the faster ncnn setting (lower is faster). The onnxruntime
row needs the export extra and is left out without it.

Video: a synthetic clip (480x270, 24 fps, generated here) upscaled x4 to 1920x1080 with
realesr-animevideov3, end to end (decode, model, encode with PyAV in both engines: ncnn
drives the same `kerasr.upscaling.video.upscale_video` pipeline), frames per second and the ratio of
kerasr's time per frame to ncnn's. Every engine uses all cores; `--video-seconds 0` skips
the video. Needs the dev extra (`ncnn`; it also holds the export extra).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import kerasr
from kerasr.images import read_image
from kerasr.upscaling.inference import Upscaler
from kerasr.weights import REGISTRY, load_model, ncnn_files

SAMPLE = Path(kerasr.__file__).parent / "samples" / "astronaut.png"
VIDEO_MODEL = "realesr-animevideov3"


def best_times(runners: dict, repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    """Best wall time of each runner, measured in interleaved rounds after one warm-up each.

    Interleaving makes every engine see the same machine load, so the ratios hold even when
    something else runs on the machine.
    """
    outputs = {name: run() for name, run in runners.items()}  # warm-up: tracing, packing
    best = dict.fromkeys(runners, float("inf"))
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            outputs[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], outputs[name]) for name in runners}


class NcnnEngine:
    """One ncnn network from the registry's .param / .bin files, float images in and out.

    Also usable as the upscaler of `kerasr.upscaling.video.upscale_video` (`scale`, `upscale`,
    `upscale_frames`), so both engines run the same decode / encode pipeline.
    """

    def __init__(self, param: Path, scale: int, fp32: bool, threads: int):
        import ncnn

        self.scale = scale
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads
        if fp32:
            self.net.opt.use_fp16_storage = False
            self.net.opt.use_fp16_arithmetic = False
            self.net.opt.use_fp16_packed = False
        self.net.load_param(str(param))
        self.net.load_model(str(param.with_suffix(".bin")))

    def upscale_float(self, image: np.ndarray) -> np.ndarray:
        import ncnn

        chw = np.ascontiguousarray(image.transpose(2, 0, 1))  # alive while ncnn reads it
        extractor = self.net.create_extractor()
        extractor.input("data", ncnn.Mat(chw))
        _, out = extractor.extract("output")
        return np.array(out).transpose(1, 2, 0).copy()

    def upscale(self, pixels: np.ndarray, outscale=None) -> np.ndarray:
        out = self.upscale_float(pixels.astype(np.float32) / 255)
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)

    def upscale_frames(self, frames: list[np.ndarray], outscale=None) -> list[np.ndarray]:
        return [self.upscale(f) for f in frames]


class OnnxEngine:
    """A registry model exported to ONNX (float32, NCHW) and run by onnxruntime on the CPU."""

    def __init__(self, model, folder: Path, threads: int):
        import onnxruntime

        from kerasr.upscaling.export import export_network

        path = export_network(model, "upscaler", folder / "model.onnx", "onnx").path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )

    def upscale_float(self, image: np.ndarray) -> np.ndarray:
        nchw = np.ascontiguousarray(image.transpose(2, 0, 1)[None])
        (out,) = self.session.run(None, {"input": nchw})
        return out[0].transpose(1, 2, 0)


def onnx_engine(model, folder: Path, threads: int):
    """The onnxruntime engine, or None (with a note) when the export extra is missing."""
    from kerasr.errors import KerasrError
    from kerasr.upscaling.export import check_options

    try:
        check_options("onnx")
    except KerasrError as e:
        print(f"onnxruntime row left out: {e}")
        return None
    return OnnxEngine(model, folder, threads)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.round(a * 255) - np.round(b * 255)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def bench_images(name: str, photo, sizes, repeats: int, threads: int, xla: bool) -> None:
    entry = REGISTRY[name]
    model = load_model(name)
    param = ncnn_files(entry)  # the .param file of the package shipping it
    default = Upscaler(model, tile=0)
    modes = {f"kerasr default ({default.precision})": default}
    if default.precision != "float32":  # else the same graph twice
        modes["kerasr float32"] = Upscaler(model, tile=0, precision="float32")
    if xla:
        modes["kerasr float32 (XLA)"] = Upscaler(
            model, tile=0, precision="float32", jit_compile=True
        )
    engines = {
        "ncnn default": NcnnEngine(param, entry.scale, False, threads),
        "ncnn float32": NcnnEngine(param, entry.scale, True, threads),
    }
    with tempfile.TemporaryDirectory() as folder:
        onnx = onnx_engine(model, Path(folder), threads)
    if onnx is not None:
        engines["onnxruntime float32"] = onnx
    for size in sizes:
        top = (photo.shape[0] - size) // 2
        image = np.ascontiguousarray(photo[top : top + size, top : top + size])
        megapixels = (size * entry.scale) ** 2 / 1e6
        runners = {k: (lambda e=e, x=image: e.upscale_float(x)) for k, e in engines.items()}
        for mode, upscaler in modes.items():
            runners[mode] = lambda u=upscaler, x=image: u.upscale_float(x)
        results = best_times(runners, repeats)
        reference = min(results["ncnn default"][0], results["ncnn float32"][0])
        print(f"\n{name}: {size}x{size} input -> {megapixels:.3f} output megapixels")
        print(f"{'engine':32s} {'s':>7s} {'s/MP':>7s} {'ratio':>6s}")
        for mode, (seconds, _) in results.items():
            ratio = seconds / reference
            print(f"{mode:32s} {seconds:7.3f} {seconds / megapixels:7.3f} {ratio:6.2f}")
        f32_mode = "kerasr float32" if "kerasr float32" in modes else next(iter(modes))
        f32 = np.clip(results[f32_mode][1], 0, 1)
        ncnn32 = np.clip(results["ncnn float32"][1], 0, 1)
        low = np.clip(results[next(iter(modes))][1], 0, 1)
        print(f"max |{f32_mode} - ncnn float32| = {np.abs(f32 - ncnn32).max():.2e}")
        if onnx is not None:
            ort32 = results["onnxruntime float32"][1]
            print(f"max |onnxruntime float32 - {f32_mode}| = {np.abs(ort32 - f32).max():.2e}")
        print(
            f"default vs float32: PSNR {psnr(low, f32):.1f} dB, "
            f"max {np.abs(np.round(low * 255) - np.round(f32 * 255)).max():.0f} uint8 levels"
        )


def bench_tiles(name: str, photo, size: int) -> None:
    """Batching tile windows against one window per call."""
    model = load_model(name)
    image = np.ascontiguousarray(photo[:size, :size])
    print(f"\n{name}: tiles of {size // 2} px on a {size}x{size} input (default precision):")
    tiled = {b: Upscaler(model, tile=size // 2, batch_size=b) for b in (1, 4)}
    timings = best_times({b: (lambda u=u: u.upscale_float(image)) for b, u in tiled.items()}, 1)
    for batch, (seconds, _) in timings.items():
        windows = tiled[batch].count_tiles(size, size)
        print(f"batch_size={batch}: {seconds:.2f} s ({windows} windows)")


def synthetic_clip(path: Path, seconds: float, fps: int = 24, size=(480, 270)) -> Path:
    """A cartoon-like clip: flat discs with dark outlines drifting over a soft gradient."""
    import av

    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([x / width, y / height, 1 - x / width], -1) * 150 + 60
    rng = np.random.default_rng(0)
    discs = [
        (
            rng.uniform(0, width),
            rng.uniform(0, height),
            rng.uniform(12, 50),
            rng.uniform(-3, 3),
            rng.uniform(-2, 2),
            rng.integers(0, 256, 3),
        )
        for _ in range(12)
    ]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            frame = background.copy()
            for cx, cy, r, vx, vy, colour in discs:
                d = np.hypot(x - (cx + vx * i) % width, y - (cy + vy * i) % height)
                frame[d < r + 2] = 20  # the outline
                frame[d < r] = colour
            image = av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")
            image.pts = i
            container.mux(stream.encode(image))
        container.mux(stream.encode(None))
    return path


def bench_video(seconds: float, threads: int) -> None:
    import av

    from kerasr.upscaling.video import upscale_video

    entry = REGISTRY[VIDEO_MODEL]
    param = ncnn_files(entry)
    default = Upscaler(load_model(VIDEO_MODEL))
    engines = {f"kerasr default ({default.precision})": default}
    if default.precision != "float32":
        engines["kerasr float32"] = Upscaler(load_model(VIDEO_MODEL), precision="float32")
    engines["ncnn default"] = NcnnEngine(param, entry.scale, False, threads)
    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(Path(tmp) / "clip.mp4", seconds)
        with av.open(str(clip)) as probe:
            start = time.perf_counter()
            frames = sum(1 for _ in probe.decode(video=0))
            decode = time.perf_counter() - start
        print(
            f"\nvideo: {frames} frames 480x270 -> 1920x1080 with {VIDEO_MODEL}, end to end "
            f"(decode + model + H.264 crf 18 encode); decoding alone {frames / decode:.0f} fps"
        )
        warm = synthetic_clip(Path(tmp) / "warm.mp4", 4 / 24)
        times = {}
        for name, engine in engines.items():
            upscale_video(warm, Path(tmp) / "warm_out.mp4", engine)  # traces, packs weights
            start = time.perf_counter()
            result = upscale_video(clip, Path(tmp) / f"{name}.mp4", engine)
            times[name] = time.perf_counter() - start
            assert result.frames == frames and result.size == (1920, 1080), result
        reference = times["ncnn default"] / frames
        print(f"{'engine':32s} {'fps':>7s} {'s/frame':>8s} {'ratio':>6s}")
        for name, total in times.items():
            per_frame = total / frames
            print(f"{name:32s} {1 / per_frame:7.2f} {per_frame:8.3f} {per_frame / reference:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        nargs="*",
        default=list(REGISTRY),
        choices=sorted(REGISTRY),
        help="none: video only",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--xla", action="store_true", help="also time kerasr float32 with XLA")
    parser.add_argument("--tiles", action="store_true", help="also time batched tile windows")
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    print(
        f"{threads} threads, best of {args.repeats} after a warm-up; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )
    photo = read_image(SAMPLE).astype(np.float32) / 255
    for name in args.models:
        bench_images(name, photo, args.sizes, args.repeats, threads, args.xla)
    if args.tiles and args.models:
        bench_tiles(args.models[0], photo, max(args.sizes))
    if args.video_seconds > 0:
        bench_video(args.video_seconds, threads)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

"""Upscaling speed: kerasr against the ncnn engine on the same inputs, in one run.

    python bench/upscale.py [--sizes 128 256] [--repeats 3] [--model realesrgan-x4plus]

Prints seconds per output megapixel for each engine and mode, the ratio kerasr / ncnn
(lower is better; the reference is the faster of ncnn's default and float32 settings) and
the PSNR of the bfloat16 output against the float32 output. Both engines use all cores.
Inputs are crops of the photograph the repo ships. Needs the dev extra (`ncnn`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import kerasr
from kerasr.images import read_image
from kerasr.inference import Upscaler
from kerasr.weights import REGISTRY, load_model, ncnn_files

SAMPLE = Path(kerasr.__file__).parent / "samples" / "astronaut.png"


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


def ncnn_runner(param: Path, image: np.ndarray, fp32: bool, threads: int):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if fp32:
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_fp16_packed = False
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))

    def run():
        mat = ncnn.Mat(chw)
        extractor = net.create_extractor()
        extractor.input("data", mat)
        _, out = extractor.extract("output")
        return np.array(out).copy().transpose(1, 2, 0)

    return run


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.round(a * 255) - np.round(b * 255)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="realesrgan-x4plus", choices=sorted(REGISTRY))
    args = parser.parse_args()

    threads = os.cpu_count() or 1
    photo = read_image(SAMPLE).astype(np.float32) / 255
    model = load_model(args.model)
    param = ncnn_files(REGISTRY[args.model])  # the .param file of the package shipping it
    modes = {
        "kerasr float32 (tf.function)": Upscaler(model, tile=0, precision="float32"),
        "kerasr float32 (XLA)": Upscaler(model, tile=0, precision="float32", jit_compile=True),
        "kerasr bfloat16 (tf.function)": Upscaler(model, tile=0, precision="bfloat16"),
    }
    print(f"model {args.model}, {threads} threads, best of {args.repeats} after a warm-up")
    for size in args.sizes:
        top = (photo.shape[0] - size) // 2
        image = np.ascontiguousarray(photo[top : top + size, top : top + size])
        megapixels = (size * REGISTRY[args.model].scale) ** 2 / 1e6
        runners = {
            "ncnn default": ncnn_runner(param, image, False, threads),
            "ncnn float32": ncnn_runner(param, image, True, threads),
        }
        for name, upscaler in modes.items():
            runners[name] = lambda u=upscaler, x=image: u.upscale_float(x)
        results = best_times(runners, args.repeats)
        reference = min(results["ncnn default"][0], results["ncnn float32"][0])
        print(f"\n{size}x{size} input -> {megapixels:.3f} output megapixels")
        print(f"{'engine':32s} {'s':>7s} {'s/MP':>7s} {'ratio':>6s}")
        for name, (seconds, _) in results.items():
            print(
                f"{name:32s} {seconds:7.2f} {seconds / megapixels:7.2f} {seconds / reference:6.2f}"
            )
        f32 = np.clip(results["kerasr float32 (tf.function)"][1], 0, 1)
        ncnn32 = np.clip(results["ncnn float32"][1], 0, 1)
        bf16 = np.clip(results["kerasr bfloat16 (tf.function)"][1], 0, 1)
        print(f"max |kerasr float32 - ncnn float32| = {np.abs(f32 - ncnn32).max():.2e}")
        print(
            f"bfloat16 vs float32: PSNR {psnr(bf16, f32):.1f} dB, "
            f"max {np.abs(np.round(bf16 * 255) - np.round(f32 * 255)).max():.0f} uint8 levels"
        )

    # Tiles: batching windows against one window per call, on the largest size.
    size = max(args.sizes)
    image = np.ascontiguousarray(photo[:size, :size])
    print(f"\ntiles of {size // 2} px on a {size}x{size} input (bfloat16):")
    tiled = {
        batch: Upscaler(model, tile=size // 2, batch_size=batch, precision="bfloat16")
        for batch in (1, 4)
    }
    timings = best_times(
        {batch: (lambda u=u: u.upscale_float(image)) for batch, u in tiled.items()}, 1
    )
    for batch, (seconds, _) in timings.items():
        print(
            f"batch_size={batch}: {seconds:.2f} s ({tiled[batch].count_tiles(size, size)} windows)"
        )


if __name__ == "__main__":
    main()

"""Throughput of the super-resolution input pipeline, in GT patches per second.

Runs `make_sr_dataset` on a folder of photos with the Real-ESRGAN second-order degradation
and with the classic bicubic one (256x256 GT, batch 16 by default, all cores), plus the
degradation alone on in-memory batches, and prints patches per second for each.

    python bench/data.py                       # ../shared/data/train beside the project
    python bench/data.py --input DIR --batches 40 --cache
    python bench/data.py --consumer none       # skip the training-step measurement

It also times the train step that consumes these pairs (`--consumer`, the Real-ESRGAN x4plus
GAN recipe by default, on in-memory batches of the same patches) and prints the ratio
pipeline / consumption: above 1, the data pipeline keeps the training step fed.

Target: >= 100 second-order patches per second, enough to feed one GPU training x4plus.
Not a test: never run by pytest.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The shared data sit beside the project root: ../shared/data/train.
DEFAULT_INPUT = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "train")


def _rate(iterator, batch: int, warmup: int, batches: int) -> tuple[float, float]:
    """(wall-clock rate, rate the cores would give if this process had them all).

    The second figure divides by the process CPU time (all threads) over the cores: on a
    machine shared with other jobs it says what the pipeline does, not what it was left.
    """
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = batches * batch
    return n / wall, n / (cpu / cores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", default=DEFAULT_INPUT, help="folder of HR photos")
    parser.add_argument("--patch", type=int, default=256, help="GT patch side")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batches", type=int, default=30, help="batches timed per pipeline")
    # The pair pool (180 patches) must fill before the first batch leaves it.
    parser.add_argument("--warmup", type=int, default=15, help="batches before timing")
    parser.add_argument("--cache", action="store_true", help="keep decoded photos in memory")
    parser.add_argument("--crops", type=int, default=1, help="data.patches_per_image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--consumer",
        default="configs/realesrgan_x4plus.toml",
        help="recipe whose GAN train step is timed as the consumer ('none' to skip)",
    )
    parser.add_argument("--consumer-batch", type=int, default=2, help="batch of the timed step")
    parser.add_argument("--consumer-steps", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    from kerasr.config import AugmentConfig, DataConfig, DegradationConfig
    from kerasr.data import degrade_batch, make_sr_dataset

    print(
        f"input {args.input}, GT {args.patch}x{args.patch}, batch {args.batch}, x{args.scale}, "
        f"{os.cpu_count()} cores, TF {tf.__version__}, cache={args.cache}, "
        f"patches_per_image={args.crops}"
    )
    base = DataConfig(
        source=args.input,
        scale=args.scale,
        patch_size=args.patch,
        batch_size=args.batch,
        seed=args.seed,
        cache=args.cache,
        patches_per_image=args.crops,
        augment=AugmentConfig(),
    )
    results = {}
    for kind in ("realesrgan", "bicubic"):
        config = DataConfig(
            **{**base.__dict__, "degradation": DegradationConfig(kind=kind)},
        )
        rate = _rate(iter(make_sr_dataset(config)), args.batch, args.warmup, args.batches)
        results[f"pipeline, {kind}"] = rate

    # The degradation alone, on a fixed in-memory batch: the part a train step would run
    # on the accelerator with `degradation.on_device = true`.
    hr = tf.random.stateless_uniform([args.batch, args.patch, args.patch, 3], [args.seed, 0])
    deg = DegradationConfig()
    ds = (
        tf.data.Dataset.from_tensors(hr)
        .repeat()
        .enumerate()
        .map(
            lambda i, x: degrade_batch(x, tf.stack([tf.constant(0, tf.int64), i]), deg, args.scale),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    results["degrade_batch only, realesrgan"] = _rate(iter(ds), args.batch, 3, args.batches)

    consumed = None
    if args.consumer != "none":
        consumed = _consumption_rate(args)
        results["train step (consumer)"] = (consumed, float("nan"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average during the run: {load:.1f}")
    print(f"{'stage':<36} {'GT patches/s (wall)':>20} {'per CPU time x cores':>22}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<36} {wall:>20.1f} {cpu:>22.1f}")
    if consumed:
        ratio = results["pipeline, realesrgan"][0] / consumed
        print(f"ratio second-order pipeline / train-step consumption: {ratio:.1f}")


def _consumption_rate(args) -> float:
    """HR patches per second the GAN train step of `args.consumer` takes in, on this machine.

    The step runs on in-memory (LR, HR) batches of the benchmark's patch size, without XLA
    (slower on CPU) and with random perceptual-network weights (no download).
    """
    import numpy as np
    import tensorflow as tf

    from kerasr.config import SRRecipe, load_config
    from kerasr.training.train_sr import build_harness

    values = {
        "data.patch_size": args.patch,
        "data.batch_size": args.consumer_batch,
        "data.scale": args.scale,
        "train.jit_compile": False,
        "perceptual.weights": "none",
    }
    recipe = load_config(SRRecipe, args.consumer, values=values)
    harness = build_harness(recipe, "gan")
    rng = np.random.default_rng(args.seed)
    hr = rng.random((args.consumer_batch, args.patch, args.patch, 3), dtype=np.float32)
    lr = tf.image.resize(hr, [args.patch // args.scale] * 2, method="area").numpy()
    batches = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    harness.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)  # trace and build
    start = time.perf_counter()
    harness.fit(batches, steps_per_epoch=args.consumer_steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    print(
        f"consumer: {args.consumer} GAN step, batch {args.consumer_batch}: "
        f"{args.consumer_steps / seconds:.3f} steps/s"
    )
    return args.consumer_batch * args.consumer_steps / seconds


if __name__ == "__main__":
    main()

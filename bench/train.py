"""Training speed: steps per second of `kerasr pretrain` / `train-gan` steps on this machine.

Feeds in-memory random batches (no data pipeline cost), so the figures are the train step
itself, with and without XLA. Prints one line per setting.

    python bench/train.py                      # docs/training.md CPU demo model (6 blocks)
    python bench/train.py --config configs/esrgan_x4_psnr.toml --steps 5
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEMO = [
    "generator.num_basic_blocks=6",
    "generator.rrdb_channels=32",
    "generator.growth_channels=16",
    "data.patch_size=64",
    "data.batch_size=8",
    'perceptual.weights="none"',
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/esrgan_x4_gan.toml")
    parser.add_argument("--set", action="append", default=None, help="config override")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--stages", default="pretrain,gan")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from kerasr.config import SRRecipe, load_config
    from kerasr.training.train_sr import build_harness

    recipe = load_config(SRRecipe, args.config, DEMO if args.set is None else args.set)
    data = recipe.data
    rng = np.random.default_rng(0)
    hr = rng.random((data.batch_size, data.patch_size, data.patch_size, 3), dtype=np.float32)
    lr = tf.image.resize(hr, [data.patch_size // data.scale] * 2, method="area").numpy()
    batch = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    print(
        f"{os.cpu_count()} CPUs; generator {recipe.generator.num_basic_blocks} blocks x "
        f"{recipe.generator.rrdb_channels} features; batch {data.batch_size} x "
        f"{data.patch_size}px HR"
    )
    for stage in args.stages.split(","):
        for jit in (True, False):
            import dataclasses

            train = dataclasses.replace(recipe.train, jit_compile=jit)
            harness = build_harness(dataclasses.replace(recipe, train=train), stage)
            harness.fit(batch, steps_per_epoch=2, epochs=1, verbose=0)  # compile
            start = time.perf_counter()
            harness.fit(batch, steps_per_epoch=args.steps, epochs=1, verbose=0)
            seconds = time.perf_counter() - start
            print(
                f"{stage:8s} jit_compile={jit!s:5s}: {args.steps / seconds:6.2f} steps/s "
                f"({data.batch_size * args.steps / seconds:6.1f} HR patches/s)"
            )


if __name__ == "__main__":
    main()

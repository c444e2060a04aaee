"""One training step on one device and on two logical CPUs under MirroredStrategy.

Run by `tests/test_distribute.py` in a subprocess: logical devices can only be configured
before TensorFlow initialises its devices, once per process, and the pytest process has
done that long before.

    python tests/mirrored_step.py OUT.npz

For each stage (pretrain, gan) and each variant it builds the harness from
`configs/tiny.toml` (GAN: Real-ESRGAN's U-Net discriminator with spectral normalisation and
the vanilla GAN loss, generator EMA on), trains one step with `fit` on the same global batch
of 4 and stores every weight of the harness (generator, EMA, discriminator with its
spectral-norm vectors, step counter) and the logged metrics in OUT.npz:

    single     the default strategy (one device)
    mirrored   MirroredStrategy over /cpu:0 and /cpu:1
    unscaled   the same, with the per-replica loss left at the replica's own mean (the bug
               `replica_mean` prevents): the test checks its tolerance catches this
    single_recipe, mirrored_recipe
               the recipe's own optimizers (Adam with the step-decay schedule) instead of
               SGD, and on two replicas the recipe's `jit_compile = true`

plus the LR images two replicas make from the same HR images with on-device degradation.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf

# Before anything else touches the devices.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import kerasr.training.esrgan as esrgan_module  # noqa: E402
import kerasr.training.pretrain as sr_module  # noqa: E402
from kerasr.config import SRRecipe, load_config  # noqa: E402
from kerasr.training.train_sr import build_harness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GLOBAL_BATCH = 4
# Plain SGD: Adam divides by the gradient's own scale, so a wrong loss scale would not show
# in its first update; SGD's update is proportional to the gradient.
SGD_RATE = 0.05


def recipe(extra=()) -> SRRecipe:
    return load_config(
        SRRecipe,
        ROOT / "configs" / "tiny.toml",
        [
            f"data.batch_size={GLOBAL_BATCH}",
            'discriminator.kind="unet"',
            "discriminator.unet_features=4",
            'loss.gan_type="vanilla"',
            *extra,
        ],
    )


def batch():
    rng = np.random.default_rng(1)
    hr = rng.random((GLOBAL_BATCH, 24, 24, 3), dtype=np.float32)
    # Different content per sample, so a replica's own mean differs from the global one.
    hr *= np.linspace(0.2, 1.0, GLOBAL_BATCH, dtype=np.float32)[:, None, None, None]
    lr = tf.image.resize(hr, (6, 6), method="area").numpy()
    return lr, hr


def one_step(strategy, stage: str, sgd: bool = True, jit: bool = False):
    """Builds the harness in `strategy`'s scope, takes one `fit` step; returns the weights,
    the logs and what the replicas saw. `sgd=False` keeps the recipe's optimizers (Adam,
    step-decay schedule); `jit` sets the recipe's `train.jit_compile`."""
    with strategy.scope():
        harness = build_harness(recipe([f"train.jit_compile={str(jit).lower()}"]), stage)
        if sgd and stage == "pretrain":
            harness.compile(keras.optimizers.SGD(SGD_RATE))
        elif sgd:
            harness.compile(keras.optimizers.SGD(SGD_RATE), keras.optimizers.SGD(SGD_RATE))
        # Summed over replicas: the global batch when it was split, twice it when each
        # replica got the whole batch.
        seen = keras.Variable(0, dtype="int32", trainable=False, aggregation="sum", name="seen")
        first = keras.Variable(
            0, dtype="int32", trainable=False, aggregation="only_first_replica", name="first"
        )
    pair = harness.pair

    def counting_pair(data):
        lr, hr = pair(data)
        seen.assign_add(tf.shape(lr)[0])
        first.assign(tf.shape(lr)[0])
        return lr, hr

    harness.pair = counting_pair
    lr, hr = batch()
    data = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    before = [np.array(w.numpy()) for w in harness.weights]
    history = harness.fit(data, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    logs = {k: float(v[-1]) for k, v in history.history.items()}
    weights = [np.array(w.numpy()) for w in harness.weights]
    # Every replica's copy of every variable must hold the same value after the step.
    spread = 0.0
    for w in harness.weights:
        copies = strategy.experimental_local_results(w.value)
        for c in copies[1:]:
            spread = max(spread, float(np.max(np.abs(np.asarray(c) - np.asarray(copies[0])))))
    info = {
        "seen": int(seen.numpy()),
        "first_replica_batch": int(first.numpy()),
        "replicas": strategy.num_replicas_in_sync,
        "replica_spread": spread,
        "jit_compile": bool(harness.jit_compile),
        "names": [w.path for w in harness.weights],
        "changed": [
            w.path
            for w, old in zip(harness.weights, before, strict=True)
            if not np.array_equal(old, w.numpy())
        ],
    }
    return weights, logs, info


def degraded_shares(strategy) -> list:
    """The LR images each replica makes from its share of an HR-only global batch
    `[a, b, a, b]` (on-device degradation): replicas 0 and 1 get the same HR images."""
    config = load_config(
        SRRecipe,
        ROOT / "configs" / "tiny.toml",
        [
            f"data.batch_size={GLOBAL_BATCH}",
            'data.degradation.kind="realesrgan"',
            "data.degradation.on_device=true",
        ],
    )
    with strategy.scope():
        harness = build_harness(config, "pretrain")
    hr = np.random.default_rng(2).random((2, 24, 24, 3), dtype=np.float32)
    batch = np.concatenate([hr, hr])
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))
    pair = tf.function(lambda x: strategy.run(harness.pair, args=(x,)))
    lr, _ = pair(next(iter(data)))
    return [np.asarray(v) for v in strategy.experimental_local_results(lr)]


def main(out: str) -> None:
    arrays, report = {}, {}
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    plain_mean = sr_module.replica_mean
    for stage in ("pretrain", "gan"):
        for variant, strategy in (
            ("single", tf.distribute.get_strategy()),
            ("mirrored", mirrored),
            ("unscaled", mirrored),
            ("single_recipe", tf.distribute.get_strategy()),
            ("mirrored_recipe", mirrored),
        ):
            if variant == "unscaled":
                sr_module.replica_mean = esrgan_module.replica_mean = ops.mean
            try:
                # The recipe's XLA setting on two replicas (the runner turns it off there).
                weights, logs, info = one_step(
                    strategy, stage, sgd="recipe" not in variant, jit=variant == "mirrored_recipe"
                )
            finally:
                sr_module.replica_mean = esrgan_module.replica_mean = plain_mean
            for i, w in enumerate(weights):
                arrays[f"{stage}/{variant}/{i:03d}"] = w
            report[f"{stage}/{variant}"] = {"logs": logs, **info}
    shares = degraded_shares(mirrored)
    report["degradation"] = {
        "shapes": [list(v.shape) for v in shares],
        "max_difference": float(np.max(np.abs(shares[0] - shares[1]))),
    }
    np.savez(out, report=json.dumps(report), **arrays)


if __name__ == "__main__":
    main(sys.argv[1])

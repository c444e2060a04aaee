"""Training speed: steps per second of kerasr's train steps, side by side with BasicSR's.

Feeds one in-memory random batch (no data pipeline cost), so the figures are the train
step itself, run through `fit` with the per-step callbacks of a training run (step limit,
memory support). Rows: PSNR pretraining and the GAN stage at the demo shapes of
docs/training.md (RRDBNet 6 blocks x 32 features, growth 16, batch 8 x 64 px; both
discriminator kinds) and at Real-ESRGAN x4plus shapes (23 blocks x 64, growth 32, batch
2 x 128 px).

    python bench/train.py                  # kerasr alone: float32 with and without XLA, bf16
    python bench/train.py --peer           # the same beside BasicSR 1.4.2 (PyTorch)
    python bench/train.py --rows pretrain-demo,gan-unet-demo --rounds 5

`--peer` runs BasicSR's own model classes (`bench/peer_basicsr.py`) in the reference
environment named by `KERASR_PARITY_VENV` (tests/parity/README.md builds it), in one
subprocess that stays up: each round times every row in kerasr and in BasicSR one after
the other, and each figure is the best round, so load from other jobs hits both alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DEMO = [
    "generator.num_basic_blocks=6",
    "generator.rrdb_channels=32",
    "generator.growth_channels=16",
    "data.patch_size=64",
    "data.batch_size=8",
    'perceptual.weights="none"',
    'train.init=""',
]
X4PLUS = [
    "generator.num_basic_blocks=23",
    "generator.rrdb_channels=64",
    "generator.growth_channels=32",
    "data.patch_size=128",
    "data.batch_size=2",
    'perceptual.weights="none"',
    'train.init=""',
]


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    label: str
    config: str
    stage: str
    overrides: tuple[str, ...]
    steps: int  # per timed round


ROWS = {
    r.name: r
    for r in (
        Row("pretrain-demo", "pretrain, demo", "configs/esrgan_x4_psnr.toml", "pretrain",
            tuple(DEMO[:5]), 20),
        Row("gan-vgg-demo", "GAN, VGG-style D, demo", "configs/esrgan_x4_gan.toml", "gan",
            tuple(DEMO), 4),
        Row("gan-unet-demo", "GAN, U-Net SN D, demo", "configs/realesrgan_x4plus.toml", "gan",
            tuple(DEMO), 3),
        Row("pretrain-x4plus", "pretrain, x4plus", "configs/esrgan_x4_psnr.toml", "pretrain",
            tuple(X4PLUS[:5]), 4),
        Row("gan-x4plus", "GAN, U-Net SN D, x4plus", "configs/realesrgan_x4plus.toml", "gan",
            tuple(X4PLUS), 2),
    )
}  # fmt: skip


def peer_spec(recipe, row: Row) -> dict:
    """The row as BasicSR options need it, from the kerasr recipe: identical shapes."""
    g, d, loss = recipe.generator, recipe.discriminator, recipe.loss

    def optim(o):
        return {"lr": o.learning_rate, "betas": [o.beta_1, o.beta_2]}

    spec = {
        "stage": row.stage,
        "generator": {
            "scale": g.scale,
            "num_feat": g.rrdb_channels,
            "num_block": g.num_basic_blocks,
            "num_grow_ch": g.growth_channels,
        },
        "batch": recipe.data.batch_size,
        "patch": recipe.data.patch_size,
        "pixel": loss.pixel,
        "pixel_weight": 1.0 if row.stage == "pretrain" else loss.pixel_weight,
        "ema_decay": recipe.train.ema_decay,
        "optim_g": optim(recipe.g_optim),
        "optim_d": optim(recipe.d_optim) if row.stage == "gan" else None,
        "milestones": list(recipe.g_optim.milestones),
    }
    if row.stage == "gan":
        p = recipe.perceptual
        spec.update(
            gan_type=loss.gan_type,
            gan_weight=loss.gan_weight,
            discriminator={"kind": "unet", "features": d.unet_features}
            if d.kind == "unet"
            else {"kind": "vgg", "channels": list(d.vgg_blk_ch), "fc": list(d.fc_features)},
            perceptual=None
            if loss.perceptual_weight <= 0
            else {
                "layer_weights": dict(p.layer_weights),
                "vgg_type": p.vgg_type,
                "normalize_input": p.normalize_input,
                "criterion": p.criterion,
                "weight": loss.perceptual_weight,
            },
        )
    return spec


class Peer:
    """BasicSR in the reference environment, one subprocess for the whole run."""

    def __init__(self, python: Path):
        self.process = subprocess.Popen(
            [str(python), str(ROOT / "bench" / "peer_basicsr.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the BasicSR process ended")
        return json.loads(line)

    def close(self):
        if self.process.poll() is None:
            self.ask_quit()

    def ask_quit(self):
        self.process.stdin.write('{"cmd": "quit"}\n')
        self.process.stdin.flush()
        self.process.wait(timeout=60)


def find_peer() -> tuple[Path | None, str]:
    """The reference interpreter, or None and why not."""
    venv = os.environ.get("KERASR_PARITY_VENV")
    if not venv:
        return None, "KERASR_PARITY_VENV is not set (the BasicSR environment: tests/parity)"
    python = Path(venv) / "bin" / "python"
    if not python.is_file():
        return None, f"{python} does not exist"
    check = subprocess.run(
        [str(python), "-c", "import torch, torchvision, basicsr, realesrgan"],
        capture_output=True,
        text=True,
    )
    if check.returncode:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"{python} cannot import torch / basicsr / realesrgan ({last})"
    return python, ""


class KerasrRow:
    """One kerasr harness on one row: float32 or mixed_bfloat16, XLA on or off."""

    def __init__(self, recipe, stage: str, precision: str, jit):
        import keras
        import numpy as np
        import tensorflow as tf

        from kerasr.training.callbacks import StepLimit
        from kerasr.training.rollback import MemorySupport
        from kerasr.training.train_sr import build_harness

        train = dataclasses.replace(recipe.train, precision=precision, jit_compile=jit)
        recipe = dataclasses.replace(recipe, train=train)
        keras.mixed_precision.set_global_policy(precision)
        try:
            self.harness = build_harness(recipe, stage)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.jit = bool(self.harness.jit_compile)
        data = recipe.data
        rng = np.random.default_rng(0)
        hr = rng.random((data.batch_size, data.patch_size, data.patch_size, 3), dtype=np.float32)
        lr = tf.nn.avg_pool2d(hr, data.scale, data.scale, "VALID").numpy()
        self.batch = tf.data.Dataset.from_tensors((lr, hr)).repeat()
        # The callbacks of a training run that act at every step.
        self.callbacks = [StepLimit(1 << 40)]
        if recipe.memory.enabled:
            self.callbacks.insert(0, MemorySupport.from_config(recipe.memory))
        self.run(2)  # trace and compile

    def run(self, steps: int) -> float:
        """Seconds per step from the end of the first step to the end of the last: the steady
        rate, without `fit`'s per-call setup."""
        import keras

        ends = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                ends.append(time.perf_counter())

        self.harness.fit(
            self.batch,
            steps_per_epoch=steps + 1,
            epochs=1,
            verbose=0,
            callbacks=[*self.callbacks, Clock()],
        )
        return (ends[-1] - ends[0]) / steps


def describe_machine(peer_threads) -> str:
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
    if peer_threads:
        text += f", PyTorch {peer_threads[1]} ({peer_threads[0]} threads)"
    return text


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", action="store_true", help="time BasicSR beside kerasr")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"of {', '.join(ROWS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--xla", default="both", choices=("both", "default"),
        help="float32 with and without XLA, or the recipe's setting only",
    )  # fmt: skip
    parser.add_argument("--no-bf16", action="store_true", help="skip mixed_bfloat16")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="steps per round x this")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    from kerasr.config import SRRecipe, load_config

    rows = [ROWS[name] for name in args.rows.split(",")]
    peer, why = None, ""
    if args.peer:
        python, why = find_peer()
        if python is not None:
            peer = Peer(python)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = load()

    # Variants per row: (label, precision, jit); None is the recipe's own setting ("auto":
    # XLA on a GPU or TPU only).
    variants = [("float32", "float32", None)]
    if args.xla == "both":
        variants = [("float32", "float32", False), ("float32", "float32", True)]
    if not args.no_bf16:
        variants.append(("mixed_bfloat16", "mixed_bfloat16", None))
    print(f"{started}; load average {load_before} (before); best of {args.rounds} "
          "interleaved rounds", flush=True)  # fmt: skip
    if args.peer and peer is None:
        print(f"kerasr alone: {why}")
    print()
    print("| step | kerasr setting | kerasr steps/s | BasicSR steps/s | kerasr / BasicSR |")
    print("|---|---|---|---|---|", flush=True)
    failed = []
    peer_threads = None
    # Row by row: build every setting of the row, then the rounds, then its lines (a
    # stopped run keeps the rows it finished).
    for row in rows:
        recipe = load_config(SRRecipe, ROOT / row.config, list(row.overrides))
        runs = {}
        for label, precision, jit in variants:
            jit = recipe.train.jit_compile if jit is None else jit
            try:
                runs[label, jit] = KerasrRow(recipe, row.stage, precision, jit)
            except Exception as e:  # e.g. a setting XLA refuses on this device: say so, go on
                first = (str(e).strip().splitlines() or [""])[-1][:160]
                failed.append(f"{row.label}, {label}{', XLA' if jit else ''}: {first}")
        if peer is not None:
            reply = peer.ask(cmd="build", row=row.name, spec=peer_spec(recipe, row))
            if "error" in reply:
                failed.append(f"{row.label}, BasicSR: {reply['error']}")
            else:
                peer_threads = (reply["threads"], reply["torch"])
                peer.ask(cmd="time", row=row.name, steps=1)  # warm-up
                runs["BasicSR", None] = None
        best: dict = {}
        steps = max(1, round(row.steps * args.steps_scale))
        for _ in range(args.rounds):
            for key, run in runs.items():
                if run is None:
                    seconds = peer.ask(cmd="time", row=row.name, steps=steps)["seconds"] / steps
                else:
                    seconds = run.run(steps)
                best[key] = min(best.get(key, float("inf")), seconds)
        reference = best.get(("BasicSR", None))
        for key, run in runs.items():
            if run is None:
                continue
            rate = 1 / best[key]
            cells = [row.label, key[0] + (", XLA" if run.jit else ""), f"{rate:.2f}"]
            if reference is not None:
                cells += [f"{1 / reference:.2f}", f"**{rate * reference:.2f}**"]
            else:
                cells += ["", ""]
            print("| " + " | ".join(cells) + " |", flush=True)
        del runs
    if peer is not None:
        peer.close()
    print()
    for line in failed:
        print(f"failed: {line}")
    print(f"{describe_machine(peer_threads)}; load average {load()} (after)")


if __name__ == "__main__":
    main()

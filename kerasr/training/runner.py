"""`kerasr pretrain` and `kerasr train-gan` as library calls: `train_sr(recipe, run_dir, stage)`.

The run folder:

    config.toml                     the resolved recipe
    checkpoints/                    CheckpointManager: G, D, EMA, both optimizers, step
    generator.weights.h5            the exported generator (the EMA when enabled); works
                                    with `kerasr upscale -m` and as `train.init` of a GAN run
    discriminator.weights.h5        (GAN stage)
    tensorboard/                    scalars, LR | SR | HR grids, the config as text
    history.csv, validation.csv     the logged scalars
    samples/step_0001000.png ...    LR | SR | HR grids
    memory.csv                      memory-support rollbacks, if any
    training.png, progress.gif      loss curves and the samples over training ("video")
    evaluation.json                 full-image PSNR / SSIM on the validation folder vs bicubic
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import keras
import numpy as np
import tensorflow as tf

from kerasr.config import SRRecipe, to_toml
from kerasr.errors import KerasrError
from kerasr.images import to_uint8, write_image
from kerasr.io import append_csv, atomic_path, read_csv, save_gif, write_bytes, write_text
from kerasr.training.checkpoints import (
    PeriodicCheckpoint,
    StopOnSignal,
    make_manager,
    restore_generator,
    restore_latest,
)
from kerasr.training.distribute import (
    any_worker,
    for_replicas,
    release_worker_dir,
    worker_dir,
)
from kerasr.training.memory import MemorySupport
from kerasr.training.sr import SRModel, current_learning_rate, make_optimizer

Stage = Literal["pretrain", "gan"]


def build_generator(config):
    """A built `RRDBNet` from an `SRGeneratorConfig`."""
    from kerasr.models import RRDBNet

    g = RRDBNet(
        scale=config.scale,
        rrdb_channels=config.rrdb_channels,
        growth_channels=config.growth_channels,
        num_basic_blocks=config.num_basic_blocks,
        num_dense_blocks=config.num_dense_blocks,
        num_residual_blocks=config.num_residual_blocks,
        residual_scaling=config.residual_scaling,
        upsampler=config.upsampler,
        name="generator",
    )
    g.build((None, None, None, 3))
    return g


def load_init(generator, init: str) -> str:
    """Copies starting weights into `generator`: from a pretrain run folder (its exported
    weights, else its latest checkpoint), a model file or a registry name.

    Returns:
        A description of where the weights came from.

    Raises:
        KerasrError: when the source is missing or does not fit the generator config.
    """
    path = Path(init)
    if path.is_dir():
        exported = path / "generator.weights.h5"
        if exported.is_file():
            init, path = str(exported), exported
        elif restore_generator(generator, path / "checkpoints"):
            return f"latest checkpoint of {path}"
        else:
            raise KerasrError(f"{path} holds no generator.weights.h5 and no checkpoint")
    from kerasr.weights import load_model

    source = load_model(init)
    ours = [tuple(w.shape) for w in generator.weights]
    theirs = [tuple(w.shape) for w in source.weights]
    if ours != theirs or getattr(source, "scale", None) != generator.scale:
        raise KerasrError(
            f"train.init {init} does not fit the [generator] config (scale "
            f"{getattr(source, 'scale', '?')}, {len(theirs)} weights vs scale "
            f"{generator.scale}, {len(ours)}): set the generator table to its architecture"
        )
    generator.set_weights(source.get_weights())
    return init


def _set_precision(precision: str):
    keras.mixed_precision.set_global_policy(precision)


class StepLimit(keras.callbacks.Callback):
    """Stops `fit` after the step counter reaches `total` or after `minutes` of wall time."""

    def __init__(self, total: int, minutes: float = 0.0):
        super().__init__()
        self.total = total
        self.minutes = minutes
        self.start = time.monotonic()
        self.timed_out = False

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) >= self.total:
            self.model.stop_training = True
        elif self.minutes > 0 and any_worker(
            # Across machines all workers must stop at the same step, when any one's time is up.
            self.model.distribute_strategy,
            time.monotonic() - self.start >= self.minutes * 60,
        ):
            self.timed_out = True
            self.model.stop_training = True


def sample_grid(network, lr, hr) -> np.ndarray:
    """Rows of LR (nearest-upscaled) | SR | HR, as one uint8 image."""
    sr = network(lr, training=False)
    scale = hr.shape[1] // lr.shape[1]
    lr_big = np.repeat(np.repeat(np.asarray(lr), scale, axis=1), scale, axis=2)
    rows = [
        np.concatenate([to_uint8(a), _white(a, 4), to_uint8(b), _white(a, 4), to_uint8(c)], 1)
        for a, b, c in zip(lr_big, np.asarray(sr), np.asarray(hr), strict=True)
    ]
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (row, gap)][:-1], 0)


def _white(a, width):
    return np.full((a.shape[0], width, 3), 255, np.uint8)


class SRMonitor(keras.callbacks.Callback):
    """TensorBoard scalars, learning rates, sample grids and CSV logs, by step.

    Args:
        run_dir: the run folder.
        samples: a fixed `(lr, hr)` batch for the LR | SR | HR grids.
        log_every, image_every: cadences in steps.
        config_text: the recipe as TOML, shown in TensorBoard's text tab.
    """

    def __init__(self, run_dir, samples, log_every, image_every, config_text=""):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.samples = samples
        self.log_every = log_every
        self.image_every = image_every
        self.config_text = config_text
        self.writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self.last_logs: dict = {}
        self.val_logs: dict = {}

    def _step(self) -> int:
        return int(self.model.step.numpy())

    def on_train_begin(self, logs=None):
        with self.writer.as_default(step=self._step()):
            tf.summary.text("config", "```\n" + self.config_text + "\n```")
        if self._step() == 0:
            self.write_samples(0)

    def learning_rates(self) -> dict:
        rates = {"lr_g": current_learning_rate(self.model.g_optimizer)}
        if hasattr(self.model, "d_optimizer"):
            rates["lr_d"] = current_learning_rate(self.model.d_optimizer)
        return rates

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        self.last_logs = dict(logs or {})
        if step % self.log_every == 0:
            row = {k: float(v) for k, v in self.last_logs.items() if not k.startswith("val_")}
            row.update(self.learning_rates())
            with self.writer.as_default(step=step):
                for key, value in row.items():
                    tf.summary.scalar(f"train/{key}", value)
            append_csv(self.run_dir / "history.csv", {"step": step, **row})
        if step % self.image_every == 0:
            self.write_samples(step)

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        val = {k: float(v) for k, v in (logs or {}).items() if k.startswith("val_")}
        if val:
            self.val_logs = val
            with self.writer.as_default(step=step):
                for key, value in val.items():
                    tf.summary.scalar(f"validation/{key[4:]}", value)
            append_csv(self.run_dir / "validation.csv", {"step": step, **val})
        self.writer.flush()

    def write_samples(self, step: int):
        if self.samples is None:
            return
        grid = sample_grid(self.model.sr_network, *self.samples)
        write_image(self.run_dir / "samples" / f"step_{step:07d}.png", grid, make_parents=True)
        with self.writer.as_default(step=step):
            tf.summary.image("samples/lr_sr_hr", grid[None], max_outputs=1)


def _fixed_samples(dataset, count=3):
    if dataset is None:
        return None
    pairs = list(dataset.unbatch().take(count))
    if not pairs:
        return None
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _bicubic_psnr(dataset, scale: int) -> float:
    from kerasr.metrics import psnr

    scores = []
    for lr, hr in dataset:
        up = tf.image.resize(lr, tf.shape(hr)[1:3], method="bicubic")
        scores.extend(np.asarray(psnr(hr, tf.clip_by_value(up, 0, 1), border=scale)).tolist())
    return float(np.mean(scores)) if scores else math.nan


def evaluate_folder(network, folder, scale: int) -> dict:
    """Full-image PSNR / SSIM (Y, border `scale`) of `network` and of bicubic upscaling.

    Each image is cropped to a multiple of `scale` and downscaled with antialiased bicubic
    (the classic ESRGAN degradation), as benchmark tables are computed.
    """
    from kerasr.data import bicubic_downscale
    from kerasr.data.sources import scan_folder
    from kerasr.images import read_image
    from kerasr.metrics import psnr, ssim

    result = {"images": 0, "psnr": [], "ssim": [], "bicubic_psnr": [], "bicubic_ssim": []}
    for record in scan_folder(folder).records:
        image = read_image(record.path)
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        hr = image[..., :3].astype(np.float32) / (65535.0 if image.dtype == np.uint16 else 255.0)
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[None, :h, :w]
        lr = bicubic_downscale(tf.constant(hr), scale)
        sr = tf.clip_by_value(network(lr, training=False), 0, 1)
        bic = tf.clip_by_value(tf.image.resize(lr, (h, w), method="bicubic"), 0, 1)
        result["psnr"].append(float(psnr(hr, sr, scale)[0]))
        result["ssim"].append(float(ssim(hr, sr, scale)[0]))
        result["bicubic_psnr"].append(float(psnr(hr, bic, scale)[0]))
        result["bicubic_ssim"].append(float(ssim(hr, bic, scale)[0]))
        result["images"] += 1
    for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim"):
        result[key] = float(np.mean(result[key])) if result[key] else math.nan
    return result


def write_figures(run_dir: str | Path, title: str) -> None:
    """`training.png` (loss curves, validation PSNR) and `progress.gif`: each frame shows
    the LR | SR | HR grid at a step next to the loss curves up to that step."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    run_dir = Path(run_dir)
    rows = read_csv(run_dir / "history.csv")
    val = read_csv(run_dir / "validation.csv")
    keys = [
        k
        for k in ("pixel_loss", "g_loss", "perceptual_loss", "adversarial_loss", "d_loss")
        if rows and k in rows[0]
    ]
    balance = [k for k in ("d_real", "d_fake") if rows and k in rows[0]]
    bicubic = None
    if (run_dir / "bicubic.json").is_file():
        bicubic = json.loads((run_dir / "bicubic.json").read_text())["psnr"]

    def draw(ax_loss, ax_val, upto):
        steps = [r["step"] for r in rows if r["step"] <= upto]
        for k in keys:
            ax_loss.plot(steps, [r[k] for r in rows if r["step"] <= upto], label=k)
        for k in balance:
            ax_val.plot(steps, [r[k] for r in rows if r["step"] <= upto], label=k, ls="--")
        vsteps = [r["step"] for r in val if r["step"] <= upto]
        if val and "val_psnr" in val[0]:
            ax2 = ax_val.twinx() if balance else ax_val
            ax2.plot(
                vsteps, [r["val_psnr"] for r in val if r["step"] <= upto], "k.-", label="val PSNR"
            )
            ax2.set_ylabel("PSNR (dB)")
            if bicubic is not None:
                ax2.axhline(bicubic, color="k", ls=":", lw=1, label="bicubic")
                ax2.legend(fontsize=7, loc="lower right")
        ax_loss.set_yscale("log")
        ax_loss.set_xlabel("step")
        ax_val.set_xlabel("step")
        ax_loss.legend(fontsize=7)
        if balance:
            ax_val.axhline(0.5, color="grey", lw=0.5)
            ax_val.legend(fontsize=7, loc="upper left")
        ax_loss.set_title("losses")
        ax_val.set_title("D(real), D(fake) and validation" if balance else "validation")

    last = max([r["step"] for r in rows[-1:] + val[-1:]], default=0)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    draw(*axes, last)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(run_dir / "training.png", buffer.getvalue())

    frames_src = sorted((run_dir / "samples").glob("step_*.png"))
    if len(frames_src) > 40:
        keep = np.unique(np.linspace(0, len(frames_src) - 1, 40).round().astype(int))
        frames_src = [frames_src[i] for i in keep]
    frames = []
    for path in frames_src:
        step = int(path.stem.split("_")[1])
        fig = plt.figure(figsize=(12, 4), dpi=80)
        ax_img = fig.add_subplot(1, 3, 1)
        ax_img.imshow(np.asarray(Image.open(path)))
        ax_img.set_title(f"LR | SR | HR, step {step}")
        ax_img.axis("off")
        draw(fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3), step)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        frames.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    save_gif(run_dir / "progress.gif", frames, seconds_per_frame=0.3, hold_last=5)


def build_harness(recipe: SRRecipe, stage: Stage):
    """The compiled training harness (`SRModel` or `ESRGAN`) for a recipe, in the current
    distribution strategy's scope."""
    train = recipe.train
    keras.utils.set_random_seed(train.seed)
    degradation = recipe.data.degradation if recipe.data.degradation.on_device else None
    generator = build_generator(recipe.generator)
    loss_scaling = train.precision == "mixed_float16"
    # JPEG in the on-device degradation has no XLA kernel. Under a tf.distribute strategy
    # Keras 3 compiles the step of all replicas as one XLA function, which cannot reach
    # variables on several devices (or all-reduce through a merge call): no XLA there.
    jit = train.jit_compile and degradation is None and not tf.distribute.has_strategy()
    if stage == "pretrain":
        harness = SRModel(
            generator, recipe.loss.pixel, train.ema_decay, degradation, train.seed, name="sr"
        )
        harness.compile(
            make_optimizer(recipe.g_optim, harness.lr_scale, loss_scaling), jit_compile=jit
        )
        return harness
    from kerasr.losses import PerceptualLoss
    from kerasr.models.discriminators import build_discriminator
    from kerasr.training.esrgan import ESRGAN

    discriminator = build_discriminator(recipe.discriminator, recipe.data.patch_size)
    p = recipe.perceptual
    perceptual = None
    if recipe.loss.perceptual_weight > 0:
        perceptual = PerceptualLoss(
            p.vgg_type, p.layer_weights, p.criterion, p.normalize_input, p.normalize_loss, p.weights
        )
    harness = ESRGAN(
        generator,
        discriminator,
        perceptual,
        gan_type=recipe.loss.gan_type,
        pixel=recipe.loss.pixel,
        pixel_weight=recipe.loss.pixel_weight,
        perceptual_weight=recipe.loss.perceptual_weight,
        gan_weight=recipe.loss.gan_weight,
        ema_decay=train.ema_decay,
        degradation=degradation,
        seed=train.seed,
        name="esrgan",
    )
    harness.compile(
        make_optimizer(recipe.g_optim, harness.lr_scale, loss_scaling),
        make_optimizer(recipe.d_optim, harness.lr_scale, loss_scaling),
        jit_compile=jit,
    )
    return harness


def train_sr(
    recipe: SRRecipe,
    run_dir: str | Path,
    stage: Stage = "pretrain",
    resume: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    report: Callable[[str], None] = print,
    strategy=None,
) -> dict:
    """Runs one stage of the ESRGAN recipe, filling `run_dir` (layout in the module doc).

    Args:
        recipe: the configuration (`data.source` must be set).
        run_dir: the run folder.
        stage: `"pretrain"` (pixel loss only) or `"gan"`.
        resume: continue from the newest checkpoint in `run_dir` (same step, same schedule).
        callbacks: extra Keras callbacks (e.g. a progress bar).
        report: prints one line for the user.
        strategy: a `tf.distribute.Strategy` (default: the current one); see
            `kerasr.training.distribute`. Only its chief writes `run_dir`.

    Returns:
        A summary dict: `step`, `start_step`, `steps_per_second`, `interrupted`,
        `timed_out`, `validation` (last val logs), `evaluation`, `memory_events`, `run_dir`.

    Raises:
        KerasrError: for unusable data, an existing run without `resume`, a checkpoint or
            `train.init` that does not fit the configuration.
    """
    from kerasr.data import make_sr_dataset

    run_dir = Path(run_dir)
    train = recipe.train
    checkpoint_dir = run_dir / "checkpoints"
    if not resume and tf.train.latest_checkpoint(str(checkpoint_dir)):
        raise KerasrError(
            f"{run_dir} already holds a training run; pass --resume to continue it or "
            "choose another --run-dir"
        )
    if not recipe.data.source:
        raise KerasrError("no training images: set data.source (or pass DATA)")
    source = Path(recipe.data.source)
    if not recipe.data.source.startswith("tfds:") and not source.is_dir():
        raise KerasrError(f"training folder not found: {source}")

    stage_file = run_dir / "stage.txt"
    if resume and stage_file.is_file() and stage_file.read_text().strip() != stage:
        raise KerasrError(
            f"{run_dir} is a {stage_file.read_text().strip()} run; it cannot be resumed as {stage}"
        )
    train_ds = make_sr_dataset(recipe.data, "train")
    val_ds = None
    if recipe.data.val_source:
        val_ds = make_sr_dataset(recipe.data, "validation")
        if train.val_images:
            batches = math.ceil(train.val_images / recipe.data.val_batch_size)
            val_ds = val_ds.take(batches)
        val_ds = val_ds.cache()
        # A known length: Keras then treats the end of the set as the end of validation,
        # not as data running out.
        count = sum(1 for _ in val_ds)
        if not count:
            raise KerasrError(f"no usable validation image in {recipe.data.val_source}")
        val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(count))

    strategy = strategy or tf.distribute.get_strategy()
    train_ds, val_ds = for_replicas(train_ds, val_ds, recipe.data, strategy)
    _set_precision(train.precision)
    # Only the chief writes the run folder. The other workers of a multi-worker run write into
    # a temporary folder deleted at the end: they must still save every checkpoint with the
    # chief, as a save gathers values from all workers. Resuming reads the chief's folder.
    chief_dir, run_dir = run_dir, worker_dir(run_dir, strategy)
    try:
        with strategy.scope():
            harness = build_harness(recipe, stage)
            manager = make_manager(harness, checkpoint_dir, train.keep_checkpoints)
        start_step = restore_latest(manager) if resume else None
        if start_step is None:
            start_step = 0
            if train.init:
                report(f"generator initialised from {load_init(harness.generator, train.init)}")
                if harness.ema_generator is not None:
                    harness.ema_generator.set_weights(harness.generator.get_weights())
        else:
            report(f"resumed from {manager.latest_checkpoint} at step {start_step}")

        run_dir.mkdir(parents=True, exist_ok=True)
        config_text = to_toml(recipe)
        write_text(run_dir / "config.toml", config_text)
        write_text(run_dir / "stage.txt", stage)
        # Grids need (LR, HR) pairs: with on-device degradation only validation has them.
        hr_only = recipe.data.degradation.on_device and not recipe.data.lr_source
        samples = _fixed_samples(val_ds if val_ds is not None or hr_only else train_ds)
        if val_ds is not None and not (run_dir / "bicubic.json").exists():
            bicubic = _bicubic_psnr(val_ds, recipe.data.scale)
            write_text(run_dir / "bicubic.json", json.dumps({"psnr": bicubic}))

        if run_dir != chief_dir:
            manager = make_manager(harness, run_dir / "checkpoints", train.keep_checkpoints)
        checkpointer = PeriodicCheckpoint(manager, train.checkpoint_every)
        limit = StepLimit(train.steps, train.max_minutes)
        monitor = SRMonitor(run_dir, samples, train.log_every, train.image_every, config_text)
        memory = None
        events_log = run_dir / "memory.csv"

        def memory_report(line, event):
            report(line)
            append_csv(events_log, event)
            with monitor.writer.as_default(step=event["step"]):
                tf.summary.text("memory_support", line)

        all_callbacks = [limit, checkpointer, monitor]
        if recipe.memory.enabled:
            m = recipe.memory
            memory = MemorySupport(
                m.check_every, m.factor, m.patience, m.momentum, m.remember_every,
                m.lr_factor, m.warmup_checks, report=memory_report,
            )  # fmt: skip
            all_callbacks.insert(0, memory)
        all_callbacks.extend(callbacks)

        remaining = max(train.steps - start_step, 0)
        steps_per_epoch = min(train.val_every, max(remaining, 1))
        interrupted = False
        t0 = time.monotonic()
        if remaining:
            with StopOnSignal() as stop:
                try:
                    harness.fit(
                        train_ds,
                        epochs=math.ceil(remaining / steps_per_epoch),
                        steps_per_epoch=steps_per_epoch,
                        validation_data=val_ds,
                        callbacks=[*all_callbacks, stop],
                        shuffle=False,  # the dataset shuffles itself, with a seed
                        verbose=0,
                    )
                except KeyboardInterrupt:
                    interrupted = True
                finally:
                    # Also on Ctrl-C / SIGTERM: nothing done since the last checkpoint is lost.
                    checkpointer.set_model(harness)
                    checkpointer.save()
            interrupted = interrupted or stop.received is not None
        seconds = time.monotonic() - t0
        step = int(harness.step.numpy())
        network = harness.sr_network
        with atomic_path(run_dir / "generator.weights.h5") as tmp:
            network.save_weights(tmp)
        if stage == "gan":
            with atomic_path(run_dir / "discriminator.weights.h5") as tmp:
                harness.discriminator.save_weights(tmp)
        evaluation = None
        source_val = recipe.data.val_source
        if (
            source_val
            and not source_val.startswith("tfds:")
            and not recipe.data.val_lr_source
            and run_dir == chief_dir
        ):
            evaluation = evaluate_folder(network, source_val, recipe.data.scale)
            write_text(run_dir / "evaluation.json", json.dumps(evaluation, indent=1))
        if remaining and run_dir == chief_dir:
            write_figures(run_dir, f"{stage}: {run_dir.name}")
    finally:
        _set_precision("float32")
        release_worker_dir(run_dir, chief_dir)
    return {
        "step": step,
        "start_step": start_step,
        "steps_per_second": (step - start_step) / seconds
        if seconds > 0 and step > start_step
        else 0.0,
        "seconds": seconds,
        "interrupted": interrupted,
        "timed_out": limit.timed_out,
        "validation": monitor.val_logs,
        "evaluation": evaluation,
        "memory_events": memory.events if memory is not None else [],
        "run_dir": chief_dir,
    }

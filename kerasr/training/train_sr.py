"""`kerasr pretrain` and `kerasr train-gan` as library calls: `train_sr(recipe, run_dir, stage)`.

The run folder:

    config.toml                     the resolved recipe
    checkpoints/                    CheckpointManager: G, D, EMA, both optimizers, step
    generator.weights.h5            the exported generator (the EMA when enabled); works
                                    with `kerasr upscale -m` and as `train.init` of a GAN run
    generator.json                  its preset: network kind and arguments, checksum
    generator.keras                 the same network as a .keras model (architecture included)
    discriminator.weights.h5, .json (GAN stage)
    tensorboard/                    scalars, LR | SR | HR grids, the config as text
    history.csv, validation.csv     the logged scalars
    samples/step_0001000.png ...    LR | SR | HR grids
    memory.csv                      memory-support rollbacks, if any
    bicubic.json                    bicubic PSNR of the validation patches (`kerasr evaluate`'s
                                    protocol), the baseline line of training.png
    training.png, progress.gif      loss curves and the samples over training ("video")
    evaluation.json                 full-image PSNR / SSIM on the validation folder vs bicubic,
                                    as `kerasr evaluate --json` (one protocol)
"""

from __future__ import annotations

import dataclasses
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
from kerasr.evaluation.sr import DatasetScores
from kerasr.io import append_csv, atomic_path, write_text
from kerasr.runtime import resolve_jit
from kerasr.training.callbacks import SRMonitor, StepLimit
from kerasr.training.checkpoints import (
    PeriodicCheckpoint,
    check_run_dir,
    drop_logs_past,
    fit_until_stopped,
    make_manager,
    mark_run,
    restore,
    restore_generator,
    start_over,
)
from kerasr.training.distribute import for_replicas, release_worker_dir, worker_dir
from kerasr.training.optimizers import make_optimizer
from kerasr.training.pretrain import SRModel
from kerasr.training.reporting import write_sr_figures
from kerasr.training.rollback import MemorySupport
from kerasr.weights.networks import build_network, preset_of
from kerasr.weights.presets import save_weights

Stage = Literal["pretrain", "gan"]
# The CSV logs of a run folder, by step.
LOGS = ("history.csv", "validation.csv", "memory.csv")


@dataclasses.dataclass(frozen=True)
class SRRunResult:
    """What one `train_sr` call did.

    Attributes:
        run_dir: the run folder.
        step, start_step: the step reached and the step this call started from.
        seconds, steps_per_second: wall time of the training loop and its speed.
        interrupted: Ctrl-C or SIGTERM stopped training (a checkpoint holds `step`).
        timed_out: `train.max_minutes` stopped training.
        validation: the last validation logs (`val_psnr`, `val_ssim`, `val_l1`).
        evaluation: full-image scores of the exported generator (`evaluation.json`), when the
            validation folder allows them.
        memory_events: memory-support rollbacks.
        checkpoint: the latest checkpoint's path.
    """

    run_dir: Path
    step: int
    start_step: int
    seconds: float
    steps_per_second: float
    interrupted: bool
    timed_out: bool
    validation: dict[str, float]
    evaluation: DatasetScores | None
    memory_events: list[dict]
    checkpoint: str | None


def generator_from_config(config):
    """A built generator from an `SRGeneratorConfig`."""
    kind, arguments = config.network()
    return build_network(kind, name="generator", **arguments)


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
        elif checkpoint := restore_generator(generator, path / "checkpoints"):
            return checkpoint
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


def _fixed_samples(dataset, count=3):
    if dataset is None:
        return None
    pairs = list(dataset.unbatch().take(count))
    if not pairs:
        return None
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def bicubic_baseline(dataset, scale: int) -> float:
    """Mean bicubic PSNR over the validation patches (the `bicubic.json` line of the curves).

    `kerasr evaluate`'s protocol (`kerasr.evaluation.sr.bicubic_scores`: MATLAB bicubic x`scale`
    of the 8-bit LR, rounded, Y channel, `scale` border pixels cropped) on the patches the
    validation PSNR is measured on.
    """
    from kerasr.evaluation.sr import bicubic_scores
    from kerasr.images import to_uint8

    scores = []
    for lr, hr in dataset:
        for lr_i, hr_i in zip(to_uint8(np.asarray(lr)), to_uint8(np.asarray(hr)), strict=True):
            scores.append(bicubic_scores(hr_i, lr_i, scale)[0])
    return float(np.mean(scores)) if scores else math.nan


def _float32_copy(network):
    # generator.keras carries the architecture with the weights (a compact network's
    # relu / leakyrelu is not in its weights file); float32, whatever precision trained it.
    copy = network.__class__.from_config({**network.get_config(), "dtype": "float32"})
    copy.build((None, None, None, network.in_channels))
    copy.set_weights(network.get_weights())
    return copy


def evaluate_run(run_dir: Path, folder: str | Path, scale: int) -> DatasetScores:
    """Scores the run's exported generator on `folder` and writes `evaluation.json`.

    The one protocol of `kerasr evaluate` (`kerasr.evaluation.sr`): MATLAB bicubic LR rounded to
    uint8, PSNR / SSIM on Y with `scale` border pixels cropped, beside bicubic. The generator
    is read back from `generator.weights.h5` in float32, as `kerasr evaluate -m` reads it, so
    `evaluation.json` holds the numbers of `kerasr evaluate --json` for that file.
    """
    from kerasr.evaluation.sr import evaluate, scores_report
    from kerasr.upscaling.inference import Upscaler
    from kerasr.weights import load_model

    weights = run_dir / "generator.weights.h5"
    scores = evaluate(Upscaler(load_model(weights), precision="float32"), folder, scale)
    report = scores_report(str(weights), scale, [scores])
    write_text(run_dir / "evaluation.json", json.dumps(report, indent=2))
    return scores


def check_recipe(recipe: SRRecipe) -> None:
    """Checks what the config cannot check alone, because it depends on a network's own
    table: the perceptual loss's layer names (`kerasr.models.vgg.VGG_LAYERS`).

    Raises:
        KerasrError: one line naming the key, the valid names and the wrong ones.
    """
    from kerasr.models.vgg import layer_names, unknown_layers

    p = recipe.perceptual
    bad = unknown_layers(p.vgg_type, p.layer_weights)
    if bad:
        raise KerasrError(
            f"perceptual.layer_weights keys must be layers of {p.vgg_type}: "
            f"{', '.join(layer_names(p.vgg_type))}. Received: {bad}"
        )


def data_sharpens_gt(recipe: SRRecipe, stage: Stage) -> bool:
    """Whether pretraining's sharpened GT comes from the data pipeline: Real-ESRNet sharpens
    the whole crop before the patch is cut (`gt_usm`), so the pipeline that degrades the crop
    sharpens it too. The GAN stage sharpens the final patch in its step, as Real-ESRGAN does."""
    data, deg = recipe.data, recipe.data.degradation
    return (
        stage == "pretrain"
        and recipe.loss.l1_gt_usm
        and deg.kind == "realesrgan"
        and not deg.on_device
        and not data.lr_source
    )


def build_harness(recipe: SRRecipe, stage: Stage):
    """The compiled training harness (`SRModel` or `ESRGAN`) for a recipe, in the current
    distribution strategy's scope."""
    train = recipe.train
    keras.utils.set_random_seed(train.seed)
    degradation = recipe.data.degradation if recipe.data.degradation.on_device else None
    generator = generator_from_config(recipe.generator)
    loss_scaling = train.precision == "mixed_float16"
    # JPEG in the on-device degradation has no XLA kernel. Under a tf.distribute strategy
    # Keras 3 compiles the step of all replicas as one XLA function, which cannot reach
    # variables on several devices (or all-reduce through a merge call): no XLA there.
    jit = (
        resolve_jit(train.jit_compile) and degradation is None and not tf.distribute.has_strategy()
    )
    deg, loss = recipe.data.degradation, recipe.loss
    # Real-ESRGAN's recipe sharpens the GT the losses see (per switch); ESRGAN's never does.
    usm = (deg.usm_weight, deg.usm_radius, deg.usm_threshold) if deg.kind == "realesrgan" else None
    if stage == "pretrain":
        # Real-ESRNet sharpens synthesised pairs only; paired folders train on the GT as is.
        usm = None if recipe.data.lr_source or data_sharpens_gt(recipe, stage) else usm
        harness = SRModel(
            generator, loss.pixel, train.ema_decay, degradation, train.seed, usm,
            loss.l1_gt_usm, name="sr",
        )  # fmt: skip
        harness.compile(
            make_optimizer(recipe.g_optim, harness.lr_scale, loss_scaling), jit_compile=jit
        )
        return harness
    from kerasr.losses import PerceptualLoss
    from kerasr.training.esrgan import ESRGAN

    kind, arguments = recipe.discriminator.network()
    size = recipe.data.patch_size
    discriminator = build_network(
        kind, name="discriminator", input_shape=(None, size, size, 3), **arguments
    )
    p = recipe.perceptual
    perceptual = None
    if recipe.loss.perceptual_weight > 0:
        perceptual = PerceptualLoss(
            p.vgg_type,
            p.layer_weights,
            p.criterion,
            p.normalize_input,
            p.normalize_loss,
            p.weights,
            p.input_norm,
        )
    harness = ESRGAN(
        generator,
        discriminator,
        perceptual,
        loss=recipe.loss,
        ema_decay=train.ema_decay,
        degradation=degradation,
        seed=train.seed,
        net_d_iters=train.net_d_iters,
        net_d_init_iters=train.net_d_init_iters,
        usm=usm,
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
    restart: bool = False,
) -> SRRunResult:
    """Runs one stage of the ESRGAN recipe, filling `run_dir` (layout in the module doc).

    Args:
        recipe: the configuration (`data.source` must be set).
        run_dir: the run folder.
        stage: `"pretrain"` (pixel loss only) or `"gan"`.
        resume: continue from the newest readable checkpoint in `run_dir` (same step, same
            schedule); log rows past that checkpoint are dropped, and one line says where
            the run resumed and which newer checkpoints were unreadable. Without a
            checkpoint there, one line says so and the run starts from step 0.
        callbacks: extra Keras callbacks (e.g. a progress bar).
        report: prints one line for the user.
        strategy: a `tf.distribute.Strategy` (default: the current one); see
            `kerasr.training.distribute`. Only its chief writes `run_dir`.
        restart: start from step 0 in a folder holding a run, deleting its checkpoints and
            logs (see `kerasr.training.checkpoints.start_over`).

    Returns:
        An `SRRunResult`.

    Raises:
        KerasrError: for unusable data, an existing run without `resume` or `restart`, a
            folder holding a run of another recipe, checkpoints none of which is readable, a
            checkpoint or `train.init` that does not fit the configuration, a disk full
            while saving a checkpoint.
    """
    from kerasr.data import make_sr_dataset

    check_recipe(recipe)
    run_dir = Path(run_dir)
    train = recipe.train
    checkpoint_dir = run_dir / "checkpoints"
    point = check_run_dir(run_dir, stage, resume, restart, report)
    if not recipe.data.source:
        raise KerasrError("no training images: set data.source (or pass DATA)")
    source = Path(recipe.data.source)
    if not recipe.data.source.startswith("tfds:") and not source.is_dir():
        raise KerasrError(f"training folder not found: {source}")

    # TensorFlow combines the shuffles' seeds with the global one: set it first, so that the
    # same recipe gives the same data order in any process.
    keras.utils.set_random_seed(train.seed)
    # A resumed run continues the data stream at its step, as if it had never stopped.
    first_batch = point.step if point is not None else 0
    train_ds = make_sr_dataset(recipe.data, "train", data_sharpens_gt(recipe, stage), first_batch)
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
        if restart and run_dir == chief_dir:
            start_over(run_dir, LOGS, report)
        with strategy.scope():
            harness = build_harness(recipe, stage)
            manager = make_manager(harness, checkpoint_dir, train.keep_checkpoints)
        start_step = restore(manager, point) if point is not None else None
        if start_step is None:
            start_step = 0
            if train.init:
                report(f"generator initialised from {load_init(harness.generator, train.init)}")
                if harness.ema_generator is not None:
                    harness.ema_generator.set_weights(harness.generator.get_weights())
        else:
            report(point.resumed(f"step {start_step}"))
            if run_dir == chief_dir:
                drop_logs_past(run_dir, LOGS, "step", start_step)

        run_dir.mkdir(parents=True, exist_ok=True)
        config_text = to_toml(recipe)
        write_text(run_dir / "config.toml", config_text)
        mark_run(run_dir, stage)
        # Grids need (LR, HR) pairs: with on-device degradation only validation has them.
        hr_only = recipe.data.degradation.on_device and not recipe.data.lr_source
        samples = _fixed_samples(val_ds if val_ds is not None or hr_only else train_ds)
        if val_ds is not None and not (run_dir / "bicubic.json").exists():
            bicubic = bicubic_baseline(val_ds, recipe.data.scale)
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
            memory = MemorySupport.from_config(recipe.memory, report=memory_report)
            all_callbacks.insert(0, memory)
        all_callbacks.extend(callbacks)

        remaining = max(train.steps - start_step, 0)
        steps_per_epoch = min(train.val_every, max(remaining, 1))
        interrupted = False
        t0 = time.monotonic()
        if remaining:

            def fit(stop):
                harness.fit(
                    train_ds,
                    epochs=math.ceil(remaining / steps_per_epoch),
                    steps_per_epoch=steps_per_epoch,
                    validation_data=val_ds,
                    callbacks=[*all_callbacks, stop],
                    shuffle=False,  # the dataset shuffles itself, with a seed
                    verbose=0,
                )

            interrupted = fit_until_stopped(harness, checkpointer, fit)
        seconds = time.monotonic() - t0
        step = int(harness.step.numpy())
        network = harness.inference_network
        source = f"kerasr {stage} {chief_dir}, step {step}"
        save_weights(network, run_dir / "generator.weights.h5", preset_of(network, source))
        with atomic_path(run_dir / "generator.keras") as tmp:
            _float32_copy(network).save(tmp)
        if stage == "gan":
            d = harness.discriminator
            save_weights(d, run_dir / "discriminator.weights.h5", preset_of(d, source))
        evaluation = None
        source_val = recipe.data.val_source
        if (
            source_val
            and not source_val.startswith("tfds:")
            and not recipe.data.val_lr_source
            and run_dir == chief_dir
        ):
            _set_precision("float32")
            evaluation = evaluate_run(run_dir, source_val, recipe.data.scale)
        if remaining and run_dir == chief_dir:
            write_sr_figures(run_dir, f"{stage}: {run_dir.name}")
    finally:
        _set_precision("float32")
        release_worker_dir(run_dir, chief_dir)
    return SRRunResult(
        run_dir=chief_dir,
        step=step,
        start_step=start_step,
        seconds=seconds,
        steps_per_second=(step - start_step) / seconds
        if seconds > 0 and step > start_step
        else 0.0,
        interrupted=interrupted,
        timed_out=limit.timed_out,
        validation=dict(monitor.val_logs),
        evaluation=evaluation,
        memory_events=list(memory.events) if memory is not None else [],
        checkpoint=manager.latest_checkpoint if run_dir == chief_dir else None,
    )

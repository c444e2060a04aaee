"""Training callbacks: progress bar, step and time limits, Ctrl-C / SIGTERM at a step
boundary, and the per-step (SR) and per-epoch (DCGAN) logging. The periodic checkpoint is
`kerasr.training.checkpoints.PeriodicCheckpoint`.

Nothing here knows about a particular network: the callbacks read the harness's `step`
counter (and `epoch`, for the DCGAN) and its metrics' logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from kerasr.errors import KerasrError
from kerasr.images import write_image
from kerasr.io import append_csv, image_grid, write_text


class ProgressBar(keras.callbacks.Callback):
    """A rich progress bar over a run's steps or epochs, with steps/s and patches/s.

    Use it as a context manager around the training call and pass it as a callback; lines
    printed with `bar.print` (e.g. as the recipes' `report`) appear above the bar.

    Args:
        total: steps (`unit="step"`) or epochs (`unit="epoch"`) of the whole run.
        description: the label before the bar.
        unit: `"step"` (updated every step, from the harness's `step`) or `"epoch"` (updated
            every epoch, from the harness's `epoch`).
        shown: log keys shown beside the bar.
        batch_size: images (patches) per step, for patches/s; 0 leaves them out.
        validation: print validation PSNR / SSIM after each epoch that has them.
        console: a `rich.console.Console` (default: rich's).

    Example:

        with ProgressBar(recipe.train.steps, "pretrain", batch_size=16) as bar:
            train_sr(recipe, run_dir, callbacks=[bar], report=bar.print)
    """

    def __init__(
        self,
        total: int,
        description: str = "training",
        unit: str = "step",
        shown: Sequence[str] = ("pixel_loss", "g_loss", "d_loss", "d_real", "d_fake"),
        batch_size: int = 0,
        validation: bool = True,
        console=None,
    ):
        super().__init__()
        if unit not in ("step", "epoch"):
            raise KerasrError(f"`unit` must be 'step' or 'epoch'. Received: unit={unit!r}")
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self.description = description
        self.unit = unit
        self.shown = tuple(shown)
        self.batch_size = batch_size
        self.validation = validation
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[speed]}"),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self.task = None
        self._first = None  # (step, time) at the first step end: excludes tracing time

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        return False

    def print(self, text: str) -> None:
        """Prints a line above the bar."""
        self.progress.console.print(text)

    def _position(self) -> int:
        counter = self.model.epoch if self.unit == "epoch" else self.model.step
        return int(counter.numpy())

    def speed(self) -> str:
        """Steps per second (and patches per second) since the first step of this call."""
        step, now = int(self.model.step.numpy()), time.monotonic()
        if self._first is None:
            self._first = (step, now)
            return ""
        steps, seconds = step - self._first[0], now - self._first[1]
        if steps <= 0 or seconds <= 0:
            return ""
        rate = steps / seconds
        text = f"{rate:.2f} steps/s"
        if self.batch_size:
            text += f", {rate * self.batch_size:.1f} patches/s"
        return text

    def on_train_begin(self, logs=None):
        if self.task is None:
            self.task = self.progress.add_task(
                self.description,
                total=self.total,
                completed=self._position(),
                speed="",
                status="",
            )

    def _update(self, logs):
        status = " ".join(f"{k} {float(logs[k]):.4g}" for k in self.shown if k in (logs or {}))
        self.progress.update(
            self.task, completed=self._position(), speed=self.speed(), status=status
        )

    def on_train_batch_end(self, batch, logs=None):
        if self.unit == "step":
            self._update(logs)
        elif self._first is None:
            self.speed()

    def on_epoch_end(self, epoch, logs=None):
        if self.unit == "epoch":
            self._update(logs)
        val = {k: float(v) for k, v in (logs or {}).items() if k in ("val_psnr", "val_ssim")}
        if self.validation and val:
            self.print(
                f"step {int(self.model.step.numpy())}: validation PSNR "
                f"{val.get('val_psnr', float('nan')):.2f} dB, SSIM "
                f"{val.get('val_ssim', float('nan')):.4f}"
            )


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that finishes past `minutes` of wall time.

    Args:
        minutes: the budget; 0 or less means no limit.
        clock: a monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.minutes = minutes
        self.clock = clock
        self.start = None
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        # One budget for the whole run, also when it takes several `fit` calls.
        if self.start is None:
            self.start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes > 0 and self.clock() - self.start >= self.minutes * 60:
            self.stopped_epoch = epoch
            self.model.stop_training = True


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
        from kerasr.training.distribute import any_worker

        if int(self.model.step.numpy()) >= self.total:
            self.model.stop_training = True
        elif self.minutes > 0 and any_worker(
            # Across machines all workers must stop at the same step, when any one's time is up.
            self.model.distribute_strategy,
            time.monotonic() - self.start >= self.minutes * 60,
        ):
            self.timed_out = True
            self.model.stop_training = True


class StopOnSignal(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) and SIGTERM stop training at the end of the current step.

    Used as a context manager around `fit` and passed to it as a callback. Python's default,
    raising KeyboardInterrupt from the handler, can land anywhere, including between a
    lock's acquire and its `try` (a progress bar's, tf.data's), leaving a run hung instead
    of stopped; a flag checked between steps cannot. A second signal still raises
    KeyboardInterrupt at once, for a step that never ends.
    """

    def __init__(self):
        super().__init__()
        self.received = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Outside the main thread signal handlers cannot be set: leave the defaults.
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False

    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.model.stop_training = True


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
        from kerasr.training.optimizers import current_learning_rate

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
        from kerasr.training.reporting import sample_grid

        grid = sample_grid(self.model.inference_network, *self.samples)
        write_image(self.run_dir / "samples" / f"step_{step:07d}.png", grid, make_parents=True)
        with self.writer.as_default(step=step):
            tf.summary.image("samples/lr_sr_hr", grid[None], max_outputs=1)


# Samples whose KID is taken during training: enough for a trend at a few seconds each time.
KID_SAMPLES = 128


class DCGANMonitor(keras.callbacks.Callback):
    """After every epoch: sample grid, TensorBoard, quality signals, generator, checkpoint.

    Args:
        run_dir: the run folder (see the module docstring for its layout).
        reference: real-image side of the quality signals.
        checkpointer: the run's `kerasr.training.checkpoints.PeriodicCheckpoint`; a
            checkpoint is saved after each epoch's outputs, with the harness's `epoch`
            counter set to the epoch done.
        grid_size: the grid shows seeds `0 .. grid_size**2 - 1`.
        kid_every: KID every this many epochs (0: never); needs `feature_model`.
        feature_model: EfficientNet-Lite0 with ImageNet weights
            (`kerasr.weights.efficientnet.load_efficientnet_lite0`), or None (KID skipped).
        real_kid_features: its pooled features of real images, when `feature_model` is set.
        preset: the generator's `kerasr.weights.presets.Preset`, written beside every
            generator file the run saves.
        kid_note: why KID is skipped, written to `quality.txt` (empty when it runs).
        best_nearest_ratio, best_copies: an epoch can be the best only when its samples are
            this far from the training images (nearest ratio at least this) and this rarely
            near copies (fraction at most this): KID alone would reward memorisation.

    The epoch with the lowest KID so far, among those that pass the memorisation bounds, is
    the run's best: its generator is copied to `generators/best.weights.h5` and
    `quality.txt` names it (a resumed run recovers it from `history.csv`).
    """

    def __init__(
        self,
        run_dir,
        reference,
        checkpointer,
        preset,
        grid_size=8,
        kid_every=0,
        feature_model=None,
        real_kid_features=None,
        kid_note="",
        best_nearest_ratio=0.0,
        best_copies=1.0,
    ):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.preset = preset
        self.reference = reference
        self.checkpointer = checkpointer
        self.grid_seeds = list(range(grid_size * grid_size))
        # The signals compare `reference.count` samples with as many real images; their seeds
        # are kept away from the grid's so both are independent draws.
        self.signal_seeds = list(range(10_000, 10_000 + reference.count))
        self.kid_every = kid_every
        self.feature_model = feature_model
        self.real_kid_features = real_kid_features
        self.kid_note = kid_note
        self.writer = tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self.last_row = None
        self.last_signals = None
        self.last_kid = None
        self.bounds = (best_nearest_ratio, best_copies)
        self.best_epoch, self.best_kid = _best_kid(self.run_dir / "history.csv", self.bounds)

    def _save(self, generator, path: Path, when: str) -> None:
        """Writes a generator's weights and its preset (`kerasr.weights.presets`)."""
        from kerasr.weights.presets import save_weights

        preset = dataclasses.replace(self.preset, source=f"{self.run_dir}, {when}")
        save_weights(generator, path, preset)

    def on_epoch_end(self, epoch, logs=None):
        # From the step counter, not `epoch`: a run resumed inside an epoch finishes that
        # epoch in a `fit` call of its own.
        from kerasr.evaluation.collapse import quality_signals
        from kerasr.generation import generate

        done, partial = divmod(int(self.model.step.numpy()), self.model.steps_per_epoch)
        if partial:
            # Keras ends the epoch early when a signal stops training inside it: that epoch
            # is not done; its steps are saved by the final checkpoint alone.
            return
        number = done
        generator = self.model.inference_network
        grid = image_grid(
            generate(generator, self.grid_seeds), columns=int(len(self.grid_seeds) ** 0.5)
        )
        write_image(self.run_dir / "grids" / f"epoch_{number:04d}.png", grid, make_parents=True)
        signals = quality_signals(generate(generator, self.signal_seeds), self.reference)
        row = {"epoch": number, **{k: float(v) for k, v in (logs or {}).items()}}
        row.update(
            diversity=signals.diversity,
            nearest_ratio=signals.nearest_ratio,
            copies=signals.copies,
        )
        row["kid"] = self._kid(generator) if self.kid_every and number % self.kid_every == 0 else ""
        append_csv(self.run_dir / "history.csv", row)
        generators = self.run_dir / "generators"
        self._save(generator, generators / f"epoch_{number:04d}.weights.h5", f"epoch {number}")
        if (
            row["kid"] != ""
            and _within(row, self.bounds)
            and (self.best_kid is None or row["kid"] < self.best_kid)
        ):
            self.best_epoch, self.best_kid = number, row["kid"]
            self._save(generator, generators / "best.weights.h5", f"epoch {number}, best KID")
        best = ""
        if self.best_epoch is not None:
            best = (
                f"best epoch by KID: {self.best_epoch} (KID x 1e3 {self.best_kid * 1e3:.2f}), "
                "generators/best.weights.h5\n"
            )
        write_text(
            self.run_dir / "quality.txt",
            f"epoch {number}\n{signals.describe()}{best}{self.kid_note}\n",
        )
        with self.writer.as_default(step=number):
            for key, value in row.items():
                if key != "epoch" and value != "":
                    tf.summary.scalar(key, value)
            tf.summary.image("samples", grid[None], max_outputs=1)
        self.writer.flush()
        # The log row goes out before the checkpoint: a run killed in between logs the epoch
        # twice unless resuming drops rows past the checkpoint, which it does.
        self.model.epoch.assign(number)
        self.checkpointer.save()
        self.last_row = row
        self.last_signals = signals
        self.last_kid = row["kid"] if row["kid"] != "" else None

    def _kid(self, generator):
        from kerasr.evaluation.gan import image_features, kernel_distance
        from kerasr.generation import generate

        if self.feature_model is None:
            return ""
        seeds = range(20_000, 20_000 + KID_SAMPLES)  # apart from the grid's and the signals'
        fake = image_features(self.feature_model, generate(generator, seeds))
        return kernel_distance(self.real_kid_features, fake)[0]


def _within(row, bounds) -> bool:
    """Whether an epoch's memorisation signals pass `(min nearest ratio, max copies)`."""
    return row["nearest_ratio"] >= bounds[0] and row["copies"] <= bounds[1]


def _best_kid(history, bounds) -> tuple[int | None, float | None]:
    """The epoch with the lowest KID in a run's `history.csv` among those within the
    memorisation bounds, and that KID (None, None)."""
    from kerasr.io import read_csv

    rows = [
        r
        for r in read_csv(history)
        if r.get("kid", float("nan")) == r.get("kid") and _within(r, bounds)
    ]
    if not rows:
        return None, None
    best = min(rows, key=lambda r: r["kid"])
    return int(best["epoch"]), best["kid"]

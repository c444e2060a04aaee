"""Checkpoints of a training run (SR or DCGAN): everything needed to continue where it stopped.

A `tf.train.CheckpointManager` over the harness (generator, discriminator, EMA, step
counter, learning-rate scale) and both optimizers; `fit_until_stopped` runs `fit` so that
Ctrl-C or SIGTERM stop it at a step boundary with a checkpoint at the step reached; the
run folder records which recipe it holds, so one recipe never resumes another's run.

TensorFlow writes each checkpoint to temporary files and renames them, and updates its
`checkpoint` list last, so a run killed at any moment leaves the previous checkpoint usable.
Files damaged afterwards (deleted, truncated, overwritten) are found when resuming: the
checkpoint files present are tried newest first, whatever the `checkpoint` list says, and a
run folder whose checkpoints are all unreadable is never started over unless asked to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasr.errors import KerasrError, first_line
from kerasr.io import disk_full_error, is_disk_full, trim_csv
from kerasr.training.callbacks import StopOnSignal

# The file of a run folder naming the recipe that fills it: "pretrain", "gan" or "dcgan".
RUN_KIND_FILE = "stage.txt"
# `ckpt-<step>.index` and `ckpt-<step>.data-*` in a run's `checkpoints/` folder.
CHECKPOINT_NAME = "ckpt"
# TensorFlow's list of a folder's checkpoints (`tf.train.get_checkpoint_state`).
STATE_FILE = "checkpoint"
_FILE = re.compile(rf"{CHECKPOINT_NAME}-(\d+)\.(index|data-\d+-of-\d+)")
# The folders and logs `--restart` deletes besides the checkpoints; other outputs (samples,
# grids, weights) are named by step or epoch and are overwritten as the new run reaches them.
RESTART_FOLDERS = ("checkpoints", "tensorboard")
RESTART_ADVICE = "pass --restart to start the run over (it deletes the run's checkpoints and logs)"


class NetworkWeights(tf.Module):
    """Every variable of a network, by position, as one checkpoint dependency.

    Keras keeps sublayers held in Python lists (RRDBNet's blocks, the discriminators'
    convolutions) out of TensorFlow's object graph, so a checkpoint of the network object
    alone would miss them; trainable ones are reached through the optimizer, but not the
    EMA copy, batch-norm statistics or spectral-norm vectors. Listing the variables makes
    the checkpoint complete; positions are stable for a given architecture.
    """

    def __init__(self, network):
        super().__init__(name=None)
        self.weights_list = list(network.weights)


@contextlib.contextmanager
def _tensorflow_warnings_off():
    # TensorFlow logs a warning of its own for an unreadable `checkpoint` list; the run
    # reports it in its resume line instead.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def make_manager(
    harness, directory: str | Path, max_to_keep: int = 3, extra: Mapping[str, object] = ()
):
    """A `CheckpointManager` over the harness (which has a `step` counter), every network's
    variables, the optimizers and the `extra` trackable objects (e.g. an epoch counter)."""
    objects = {"model": harness, "g_optimizer": harness.g_optimizer, **dict(extra)}
    if hasattr(harness, "d_optimizer"):
        objects["d_optimizer"] = harness.d_optimizer
    objects["generator_weights"] = NetworkWeights(harness.generator)
    if getattr(harness, "ema_generator", None) is not None:
        objects["ema_weights"] = NetworkWeights(harness.ema_generator)
    if getattr(harness, "discriminator", None) is not None:
        objects["discriminator_weights"] = NetworkWeights(harness.discriminator)
    checkpoint = tf.train.Checkpoint(**objects)
    with _tensorflow_warnings_off():
        return tf.train.CheckpointManager(
            checkpoint, str(directory), max_to_keep=max_to_keep, checkpoint_name=CHECKPOINT_NAME
        )


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """The newest readable checkpoint of a run folder, where a resumed run starts.

    Attributes:
        path: its prefix (`run/checkpoints/ckpt-12`), as `tf.train.Checkpoint.restore` takes.
        step: the step it was saved at.
        skipped: what was found unreadable on the way, one description each (newer
            checkpoints, the `checkpoint` list).
    """

    path: str
    step: int
    skipped: tuple[str, ...] = ()

    def resumed(self, at: str) -> str:
        """The line saying where the run resumed (`at`: "step 12", "epoch 3") and what it
        skipped."""
        line = f"resumed from {self.path} at {at}"
        return f"{line}; skipped {'; '.join(self.skipped)}" if self.skipped else line


def has_checkpoints(directory: str | Path) -> bool:
    """Whether `directory` holds any checkpoint file, readable or not."""
    directory = Path(directory)
    return (directory / STATE_FILE).exists() or any(
        _FILE.fullmatch(p.name) for p in _listing(directory)
    )


def _listing(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []


def unreadable(prefix: str | Path) -> str | None:
    """Why the checkpoint `prefix` cannot be read (None when every tensor in it reads back).

    Reading every tensor checks the index, the data files' lengths and their checksums, so
    a damaged checkpoint is told apart from one that does not fit the networks.
    """
    prefix = str(prefix)
    if not Path(prefix + ".index").is_file():
        return "its .index file is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (ValueError, IndexError, OSError, tf.errors.OpError) as e:
        return " ".join(first_line(e).split())[:150]
    return None


def find_resume_point(directory: str | Path, advice: str = RESTART_ADVICE) -> ResumePoint | None:
    """The newest readable checkpoint in `directory`, trying the files present newest first.

    Returns:
        A `ResumePoint`, or None when the folder holds no checkpoint file at all.

    Raises:
        KerasrError: checkpoint files are there but none is readable (`advice` ends the
            message).
    """
    directory = Path(directory)
    if not has_checkpoints(directory):
        return None
    skipped = []
    state = directory / STATE_FILE
    with _tensorflow_warnings_off():
        if state.exists() and tf.train.get_checkpoint_state(str(directory)) is None:
            skipped.append(f"corrupt checkpoint list {state} (the next save rewrites it)")
    steps = {int(m[1]) for p in _listing(directory) if (m := _FILE.fullmatch(p.name))}
    for step in sorted(steps, reverse=True):
        prefix = directory / f"{CHECKPOINT_NAME}-{step}"
        reason = unreadable(prefix)
        if reason is None:
            return ResumePoint(str(prefix), step, tuple(skipped))
        skipped.append(f"corrupt {prefix.name} ({reason})")
    found = "; ".join(skipped) or "no checkpoint files besides the checkpoint list"
    raise KerasrError(f"no readable checkpoint in {directory}: {found}; {advice}")


def restore(manager, point: ResumePoint) -> int:
    """Restores the checkpoint at `point` into the manager's objects; returns the step.

    Raises:
        KerasrError: when the checkpoint was written for other networks (another
            architecture, another discriminator, another stage).
    """
    try:
        status = manager.checkpoint.restore(point.path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise KerasrError(
            f"checkpoint {point.path} does not fit this configuration (another architecture "
            f"or stage?): {first_line(e)[:200]}"
        ) from None
    return int(manager.checkpoint.model.step.numpy())


def restore_latest(manager) -> int | None:
    """Restores the newest readable checkpoint of the manager's folder (see
    `find_resume_point`); returns its step, or None when there is none."""
    point = find_resume_point(manager.directory)
    return None if point is None else restore(manager, point)


def restore_generator(generator, directory: str | Path) -> str | None:
    """Loads only the generator from the newest readable checkpoint in `directory` (e.g. a
    pretrain run killed before it exported its weights).

    Returns:
        The checkpoint's path, or None when there is none.
    """
    point = find_resume_point(directory, advice="export the generator another way")
    if point is None:
        return None
    holder = tf.train.Checkpoint(generator_weights=NetworkWeights(generator))
    try:
        holder.restore(point.path).expect_partial().assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise KerasrError(
            f"the generator in {point.path} does not fit the config: {first_line(e)[:200]}"
        ) from None
    return point.path


def run_kind(run_dir: str | Path) -> str | None:
    """The recipe whose run `run_dir` holds ("pretrain", "gan", "dcgan"), or None."""
    marker = Path(run_dir) / RUN_KIND_FILE
    return marker.read_text().strip() if marker.is_file() else None


def check_run_dir(
    run_dir: str | Path,
    kind: str,
    resume: bool,
    restart: bool,
    report: Callable[[str], None],
) -> ResumePoint | None:
    """Checks that the recipe `kind` may train in `run_dir`, and finds where it resumes.

    Args:
        run_dir: the run folder.
        kind: the recipe ("pretrain", "gan", "dcgan").
        resume: continue the run in the folder.
        restart: start the run over (the caller deletes the earlier one with `start_over`).
        report: prints one line for the user.

    Returns:
        The checkpoint to resume from; None for a run that starts at step 0 (after
        reporting one line when `resume` found no checkpoint).

    Raises:
        KerasrError: the folder holds a run of another recipe; it holds checkpoints and
            neither `resume` nor `restart` is set; `resume` found checkpoint files but none
            readable.
    """
    run_dir = Path(run_dir)
    if resume and restart:
        raise KerasrError("--resume and --restart exclude each other: choose one")
    found = run_kind(run_dir)
    if found is not None and found != kind:
        raise KerasrError(
            f"{run_dir} holds a {found} run; it cannot be resumed as {kind}: "
            "choose another run folder"
        )
    checkpoints = run_dir / "checkpoints"
    if restart:
        return None
    if not resume:
        if has_checkpoints(checkpoints):
            raise KerasrError(
                f"{run_dir} already holds a training run; pass --resume to continue it, "
                "--restart to start it over, or choose another run folder"
            )
        return None
    point = find_resume_point(checkpoints)
    if point is None:
        report(f"no checkpoint to resume in {run_dir}: starting a new run from step 0")
    return point


def start_over(run_dir: str | Path, logs: Sequence[str], report: Callable[[str], None]) -> None:
    """Deletes the checkpoints, TensorBoard logs and the CSV `logs` of the run in `run_dir`
    (`--restart`), saying so when there was one."""
    run_dir = Path(run_dir)
    doomed = [run_dir / name for name in (*RESTART_FOLDERS, *logs)]
    doomed = [p for p in doomed if p.exists()]
    for path in doomed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if doomed:
        report(f"deleted the checkpoints and logs of the earlier run in {run_dir}")


def mark_run(run_dir: str | Path, kind: str) -> None:
    """Records the recipe of the run in `run_dir` (see `run_kind`)."""
    from kerasr.io import write_text

    write_text(Path(run_dir) / RUN_KIND_FILE, kind)


def drop_logs_past(run_dir: str | Path, names: tuple[str, ...], column: str, last: float) -> None:
    """Drops the rows of the run's CSV logs whose `column` is past the resumed checkpoint,
    so that a resumed run does not log the same step or epoch twice."""
    for name in names:
        trim_csv(Path(run_dir) / name, column, last)


def _state_bytes(checkpoint) -> int:
    """About the size of one checkpoint: the harness's weights and its optimizers' state."""
    variables = {id(v): v for v in checkpoint.model.weights}
    for name in ("g_optimizer", "d_optimizer"):
        optimizer = getattr(checkpoint, name, None)
        variables.update({id(v): v for v in getattr(optimizer, "variables", ())})
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables.values())


def save_checkpoint(manager, step: int) -> str:
    """Saves checkpoint `step` (`ckpt-<step>`); returns its path.

    Raises:
        KerasrError: the disk is full. What the failed save left (TensorFlow's temporary
            folder, a partial `ckpt-<step>`) is removed; the earlier checkpoints and the
            `checkpoint` list are untouched, so the run resumes from the previous one.
    """
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as e:
        if not is_disk_full(e):
            raise
        directory = Path(manager.directory)
        prefix = f"{CHECKPOINT_NAME}-{step}"
        for path in _listing(directory):
            # Checkpoint files of this step, TensorFlow's `ckpt-<step>_temp` folder, and the
            # temporary `checkpoint.tmp<hex>` of its list.
            if path.name.startswith((f"{prefix}.", f"{prefix}_temp", f"{STATE_FILE}.tmp")):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        try:
            previous = find_resume_point(directory)
        except KerasrError:
            previous = None
        kept = f"; {previous.path} is intact" if previous else ""
        then = f"{kept}: free some space, then resume the run"
        raise disk_full_error(directory / prefix, _state_bytes(manager.checkpoint), then) from None


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint every `every` steps (0: only when `save` is called), and once
    more when training ends (see `fit_until_stopped`)."""

    def __init__(self, manager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.last_saved = None
        self.failed = None

    def save(self) -> None:
        step = int(self.model.step.numpy())
        # A save that found the disk full is not tried again at the same step (by the
        # final save after the error): the error already says what to do.
        if step in (self.last_saved, self.failed):
            return
        try:
            save_checkpoint(self.manager, step)
        except KerasrError:
            self.failed = step
            raise
        self.last_saved = step

    def on_train_begin(self, logs=None):
        self.last_saved = int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self.every and int(self.model.step.numpy()) % self.every == 0:
            self.save()


def fit_until_stopped(harness, checkpointer: PeriodicCheckpoint, fit: Callable) -> bool:
    """Runs `fit(stop)` (which passes `stop`, a `StopOnSignal`, to `harness.fit` as a
    callback), then saves a checkpoint at the step reached, also after Ctrl-C or SIGTERM.

    Returns:
        True when a signal interrupted training.
    """
    interrupted = False
    with StopOnSignal() as stop:
        try:
            fit(stop)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # Also on Ctrl-C / SIGTERM: nothing done since the last checkpoint is lost.
            checkpointer.set_model(harness)
            checkpointer.save()
    return interrupted or stop.received is not None

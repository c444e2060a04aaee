"""Checkpoints of a training run (SR or DCGAN): everything needed to continue where it stopped.

A `tf.train.CheckpointManager` over the harness (generator, discriminator, EMA, step
counter, learning-rate scale) and both optimizers; `fit_until_stopped` runs `fit` so that
Ctrl-C or SIGTERM stop it at a step boundary with a checkpoint at the step reached; the
run folder records which recipe it holds, so one recipe never resumes another's run.

TensorFlow writes each checkpoint to temporary files and renames them, and updates its
`checkpoint` index last, so a run killed at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import tensorflow as tf

from kerasr.errors import KerasrError
from kerasr.io import trim_csv
from kerasr.training.callbacks import PeriodicCheckpoint, StopOnSignal

# The file of a run folder naming the recipe that fills it: "pretrain", "gan" or "dcgan".
RUN_KIND_FILE = "stage.txt"


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
    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=max_to_keep)


def restore_latest(manager) -> int | None:
    """Restores the newest checkpoint; returns its step, or None when there is none.

    Raises:
        KerasrError: when the checkpoint was written for other networks (another
            architecture, another discriminator, another stage).
    """
    path = manager.latest_checkpoint
    if not path:
        return None
    try:
        status = manager.checkpoint.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KerasrError(
            f"checkpoint {path} does not fit this configuration (another architecture or "
            f"stage?): {first[:200]}"
        ) from None
    return int(manager.checkpoint.model.step.numpy())


def restore_generator(generator, directory: str | Path) -> bool:
    """Loads only the generator from the newest checkpoint in `directory` (e.g. a pretrain
    run killed before it exported its weights). Returns False when there is none."""
    path = tf.train.latest_checkpoint(str(directory))
    if not path:
        return False
    holder = tf.train.Checkpoint(generator_weights=NetworkWeights(generator))
    try:
        holder.restore(path).expect_partial().assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise KerasrError(
            f"the generator in {path} does not fit the config: {first[:200]}"
        ) from None
    return True


def run_kind(run_dir: str | Path) -> str | None:
    """The recipe whose run `run_dir` holds ("pretrain", "gan", "dcgan"), or None."""
    marker = Path(run_dir) / RUN_KIND_FILE
    return marker.read_text().strip() if marker.is_file() else None


def check_resume(run_dir: str | Path, kind: str, report: Callable[[str], None]) -> bool:
    """Checks that `--resume` can continue `run_dir` with the recipe `kind`.

    Returns:
        True when there is a checkpoint to resume; False (after reporting one line) when
        there is none, and the run starts from step 0 in that folder.

    Raises:
        KerasrError: when the folder holds a run of another recipe.
    """
    run_dir = Path(run_dir)
    found = run_kind(run_dir)
    if found is not None and found != kind:
        raise KerasrError(
            f"{run_dir} holds a {found} run; it cannot be resumed as {kind}: "
            "choose another run folder"
        )
    if tf.train.latest_checkpoint(str(run_dir / "checkpoints")):
        return True
    report(f"no checkpoint to resume in {run_dir}: starting a new run from step 0")
    return False


def mark_run(run_dir: str | Path, kind: str) -> None:
    """Records the recipe of the run in `run_dir` (see `run_kind`)."""
    from kerasr.io import write_text

    write_text(Path(run_dir) / RUN_KIND_FILE, kind)


def drop_logs_past(run_dir: str | Path, names: tuple[str, ...], column: str, last: float) -> None:
    """Drops the rows of the run's CSV logs whose `column` is past the resumed checkpoint,
    so that a resumed run does not log the same step or epoch twice."""
    for name in names:
        trim_csv(Path(run_dir) / name, column, last)


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

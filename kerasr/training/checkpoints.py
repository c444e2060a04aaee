"""Checkpoints of an SR training run: everything needed to continue where it stopped.

A `tf.train.CheckpointManager` over the harness (generator, discriminator, EMA, step
counter, learning-rate scale) and both optimizers. TensorFlow writes each checkpoint to
temporary files and renames them, and updates its `checkpoint` index last, so a run killed
at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import keras
import tensorflow as tf

from kerasr.errors import KerasrError


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


def make_manager(harness, directory: str | Path, max_to_keep: int = 3):
    """A `CheckpointManager` over the harness, every network's variables and the optimizers."""
    objects = {"model": harness, "g_optimizer": harness.g_optimizer}
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


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves a checkpoint every `every` steps, and once more when training ends."""

    def __init__(self, manager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.last_saved = None

    def save(self) -> None:
        step = int(self.model.step.numpy())
        if step != self.last_saved:
            self.manager.save(checkpoint_number=step)
            self.last_saved = step

    def on_train_begin(self, logs=None):
        self.last_saved = int(self.model.step.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) % self.every == 0:
            self.save()


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

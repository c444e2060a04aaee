"""Rollback after a blow-up ("memory support"): remember the generator's last good state,
return to it when training blows up.

A GAN step can wreck the generator: the loss jumps far above its recent level, or turns NaN
and every weight after it is NaN too. Instead of stopping, the callback rolls the
generator (weights, EMA and optimizer moments) back to the last state it remembered as
healthy, lowers the learning rates and carries on. The discriminator of a GAN run is left
alone after a loss spike (it is "more of a check"), but returned to its remembered state too
when it holds non-finite values: a NaN generator feeds NaN images to the next discriminator
step, and a NaN discriminator would blow the restored generator up again at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np


class MemorySupport(keras.callbacks.Callback):
    """Rolls the generator back to its last good state after a loss spike or a NaN / Inf.

    Every `check_every` steps the last generator loss (the `last_g_loss` log) is compared
    with its running mean (exponential, `momentum`). A non-finite loss, or `patience`
    checks in a row above `factor` times the mean, trigger a rollback: the remembered
    generator weights, EMA weights and generator optimizer moments are restored (not the
    step counters, so the schedule and the run length are unchanged), the learning-rate
    scale becomes the remembered one times `lr_factor`, the metrics are reset and the event
    is reported. A healthy check remembers the current state every `remember_every` checks.

    Args:
        check_every, factor, patience, momentum, remember_every, lr_factor, warmup_checks:
            see `kerasr.config.MemoryConfig`.
        report: called with a one-line description and a dict for each rollback.

    Example:

        model.fit(data, callbacks=[MemorySupport(report=print)])
    """

    def __init__(
        self,
        check_every=10,
        factor=3.0,
        patience=3,
        momentum=0.9,
        remember_every=5,
        lr_factor=0.5,
        warmup_checks=5,
        report: Callable[[str, dict], None] | None = None,
    ):
        super().__init__()
        self.check_every = check_every
        self.factor = factor
        self.patience = patience
        self.momentum = momentum
        self.remember_every = remember_every
        self.lr_factor = lr_factor
        self.warmup_checks = warmup_checks
        self.report = report
        self.events: list[dict] = []
        self.running = None
        self.checks = 0
        self.bad = 0
        self.memory = None
        self.candidate = None
        self.lr_used = 1.0

    @classmethod
    def from_config(cls, config, report=None) -> MemorySupport:
        """The callback of a `kerasr.config.MemoryConfig` (its `enabled` is the caller's)."""
        c = config
        return cls(
            c.check_every, c.factor, c.patience, c.momentum, c.remember_every,
            c.lr_factor, c.warmup_checks, report=report,
        )  # fmt: skip

    @staticmethod
    def _moments(optimizer):
        # Moments only: the iteration counters drive the learning-rate schedule and the
        # loss scale; rolling them back would replay the schedule.
        moments = [v for v in optimizer.variables if "iteration" not in v.path]
        return [v for v in moments if "scale" not in v.name and "step_counter" not in v.name]

    def _variables(self):
        model = self.model
        networks = [model.generator.weights]
        if getattr(model, "ema_generator", None) is not None:
            networks.append(model.ema_generator.weights)
        return [v for group in networks for v in group] + self._moments(model.g_optimizer)

    def _d_variables(self):
        model = self.model
        if getattr(model, "discriminator", None) is None:
            return []
        return list(model.discriminator.weights) + self._moments(model.d_optimizer)

    def _snapshot(self):
        values = [np.array(v.numpy(), copy=True) for v in self._variables()]
        d_values = [np.array(v.numpy(), copy=True) for v in self._d_variables()]
        if not all(np.isfinite(v).all() for v in values + d_values):
            return None
        return {
            "values": values,
            "d_values": d_values,
            # The rate that led to this state, not the current one: a rate raised just now
            # has not been seen to work yet.
            "lr_scale": self.lr_used,
            "step": int(self.model.step.numpy()),
        }

    def remember(self):
        """Takes the current generator state as a candidate good state.

        A state is only trusted once the loss of the step that *starts* from it has been
        checked: the candidate becomes the memory at the next healthy check. Non-finite
        states are never remembered.
        """
        if self.candidate is not None:
            self.memory = self.candidate
        self.candidate = self._snapshot()

    def on_train_begin(self, logs=None):
        self.candidate = None
        self.lr_used = float(self.model.lr_scale.numpy())
        self.memory = self._snapshot()

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.step.numpy())
        if step % self.check_every:
            return
        loss = float((logs or {}).get("last_g_loss", math.nan))
        self._check(step, loss)
        # The rate the steps up to the next check will use.
        self.lr_used = float(self.model.lr_scale.numpy())

    def _check(self, step: int, loss: float):
        finite = math.isfinite(loss)
        if finite and self.running is None:
            self.running = loss
        spike = finite and self.checks >= self.warmup_checks and loss > self.factor * self.running
        self.bad = self.bad + 1 if spike else 0
        if not finite or self.bad >= self.patience:
            self.rollback(step, loss, "non-finite loss" if not finite else "loss spike")
            return
        self.checks += 1
        if not spike:
            self.running = self.momentum * self.running + (1 - self.momentum) * loss
            if self.checks % self.remember_every == 0:
                self.remember()

    def rollback(self, step: int, loss: float, reason: str):
        """Restores the remembered state and lowers the learning rate."""
        self.candidate = None
        if self.memory is None:
            raise FloatingPointError(f"{reason} at step {step} and no good state to return to")
        for variable, value in zip(self._variables(), self.memory["values"], strict=True):
            variable.assign(value)
        d_variables = self._d_variables()
        if not all(np.isfinite(v.numpy()).all() for v in d_variables):
            for variable, value in zip(d_variables, self.memory["d_values"], strict=True):
                variable.assign(value)
        new_scale = self.memory["lr_scale"] * self.lr_factor
        self.model.lr_scale.assign(new_scale)
        self.memory["lr_scale"] = new_scale
        for metric in self.model.metrics:
            metric.reset_state()
        self.bad = 0
        event = {
            "step": step,
            "reason": reason,
            "loss": loss,
            "running_mean": self.running if self.running is not None else math.nan,
            "restored_from": self.memory["step"],
            "lr_scale": new_scale,
        }
        self.events.append(event)
        if self.report is not None:
            self.report(
                f"memory support: {reason} at step {step} (loss {loss:.4g}, running mean "
                f"{event['running_mean']:.4g}); generator restored from step "
                f"{event['restored_from']}, learning rates x{new_scale:.3g}",
                event,
            )

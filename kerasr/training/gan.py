"""The base of the two-optimizer GAN harnesses (ESRGAN / Real-ESRGAN and the DCGAN).

What every GAN harness does alike lives here: `compile` with a generator and a
discriminator optimizer (built at once, so a checkpoint restores their slots before the
first step and the compiled step creates no variables) and the adversarial losses passed
in, the loss trackers, one optimizer update from a tape, and the step tail that updates the
trackers and returns their values. The subclasses write only their `train_step`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from kerasr.losses import gan_losses
from kerasr.training.harness import Harness


class GANHarness(Harness):
    """A training harness around `self.generator` and `self.discriminator`, with two optimizers.

    Subclasses call `setup_harness` and `setup_gan` in their `__init__` (after
    `keras.Model.__init__`) and end their `train_step` with `return self.track({...})`. Only
    the networks are meant to be saved; the harness is not (save `.generator`,
    `.discriminator`).

    Example:

        class MyGAN(GANHarness):
            def __init__(self, generator, discriminator, **kwargs):
                super().__init__(**kwargs)
                self.setup_harness(generator)
                self.setup_gan(discriminator, "hinge", ("d_loss", "g_loss"))

        gan = MyGAN(g, d)
        gan.compile(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4))

    Reference:
        Keras guide "Customizing what happens in fit() with TensorFlow" (the GAN example).
    """

    def setup_gan(
        self,
        discriminator,
        gan_loss: str,
        tracked: Sequence[str],
        label_smoothing: float = 0.0,
    ) -> None:
        """Sets the discriminator, the default adversarial losses and one `Mean` tracker per
        name in `tracked` (the values `train_step` reports)."""
        self.discriminator = discriminator
        self.gan_loss = gan_loss
        self.d_loss_fn, self.g_loss_fn = gan_losses(gan_loss, label_smoothing)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in tracked}

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        losses: tuple[Callable, Callable] | None = None,
        **kwargs,
    ):
        """Sets the two optimizers and, optionally, the `(d_loss, g_loss)` functions (default:
        the harness's `gan_loss`, see `kerasr.losses.gan_losses`); `**kwargs` (e.g.
        `jit_compile`) go to `Model.compile`."""
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        if losses is not None:
            self.d_loss_fn, self.g_loss_fn = losses
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    @staticmethod
    def update(optimizer, tape, scaled_loss, variables) -> None:
        """One optimizer step from a tape's gradient of `scaled_loss` (the output of
        `optimizer.scale_loss`, inside the tape) with respect to `variables`."""
        variables = list(variables)
        optimizer.apply(tape.gradient(scaled_loss, variables), variables)

    def track(self, values: dict) -> dict:
        """The step tail: updates the trackers named in `values` and returns every tracker's
        current result."""
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

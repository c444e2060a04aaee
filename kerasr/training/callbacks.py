"""Training helpers shared by the GAN recipes: history plots and a wall-time limit.

Nothing here knows about a particular network: the DCGAN and ESRGAN harnesses both use these.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from kerasr.io import write_bytes


def plot_history(
    path: str | Path, rows: Sequence[Mapping[str, float]], keys: Sequence[str], title: str = ""
) -> None:
    """Plots per-epoch values (`rows[i][key]`) against the epoch, one line per key, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    epochs = [row["epoch"] for row in rows]
    for key in keys:
        ax.plot(epochs, [row.get(key, np.nan) for row in rows], label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


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
        self.start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes > 0 and self.clock() - self.start >= self.minutes * 60:
            self.stopped_epoch = epoch
            self.model.stop_training = True

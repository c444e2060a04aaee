"""The figures and GIFs of a run folder, for both GAN recipes (SR and DCGAN).

All are written atomically through `kerasr.io`; matplotlib runs on its file-only backend.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kerasr.images import read_image, to_uint8
from kerasr.io import read_csv, save_gif, write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(
    path: str | Path, rows: Sequence[Mapping[str, float]], keys: Sequence[str], title: str = ""
) -> None:
    """Plots per-epoch values (`rows[i][key]`) against the epoch, one line per key, as a PNG."""
    plt = _pyplot()
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


def write_sr_figures(run_dir: str | Path, title: str) -> None:
    """`training.png` (loss curves, validation PSNR) and `progress.gif`: each frame shows
    the LR | SR | HR grid at a step next to the loss curves up to that step."""
    plt = _pyplot()

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
        ax_img.imshow(read_image(path))
        ax_img.set_title(f"LR | SR | HR, step {step}")
        ax_img.axis("off")
        draw(fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3), step)
        fig.tight_layout()
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    save_gif(run_dir / "progress.gif", frames, seconds_per_frame=0.3, hold_last=5)


def write_dcgan_figures(run_dir: str | Path) -> None:
    """Writes the end-of-run summaries: `progress.gif` of the grids and `losses.png`."""
    run_dir = Path(run_dir)
    frames = sorted((run_dir / "grids").glob("epoch_*.png"))
    # A GIF of hundreds of frames is tens of MB; about 60 evenly spaced frames tell the story.
    if len(frames) > 60:
        keep = np.unique(np.linspace(0, len(frames) - 1, 60).round().astype(int))
        frames = [frames[i] for i in keep]
    save_gif(run_dir / "progress.gif", [read_image(path) for path in frames])
    rows = read_csv(run_dir / "history.csv")
    if rows:
        plot_history(
            run_dir / "losses.png", rows, ("d_loss", "g_loss", "d_real", "d_fake"), "DCGAN losses"
        )
        plot_history(
            run_dir / "quality.png", rows, ("diversity", "nearest_ratio"), "quality signals"
        )

"""Scoring upscalers the way SR papers do: MATLAB bicubic LR, Y-channel PSNR/SSIM, border crop.

`evaluate(upscaler, folder, scale)` makes the LR input of every HR image with MATLAB's
antialiased bicubic `imresize` (or takes it from an `LR` folder beside an `HR` folder),
upscales it, and scores the result against the HR image beside the bicubic baseline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError
from kerasr.images import IMAGE_SUFFIXES, read_image, to_uint8
from kerasr.resize import MATLAB_A, cubic_kernel


def _cubic(x: np.ndarray) -> np.ndarray:
    return cubic_kernel(x, MATLAB_A, np)


def _contributions(in_length: int, out_length: int, scale: float):
    """Weights and source indices of MATLAB imresize along one axis (bicubic, antialiased)."""
    width = 4.0
    if scale < 1:  # antialiasing: stretch the kernel so it low-passes before decimation

        def kernel(x):
            return scale * _cubic(scale * x)

        width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # output pixel centres in input coordinates (1-based)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    # MATLAB mirrors the image at its borders ("symmetric" padding).
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[(indices.astype(np.int64) - 1) % (2 * in_length)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resizes a float `(h, w, c)` image like MATLAB's `imresize(image, scale)` (bicubic).

    The reference used to make the LR images of Set5, Set14, DIV2K's bicubic track and the
    papers' bicubic baselines; TensorFlow's and PIL's bicubic differ in the border handling
    and the antialiasing, enough to move PSNR by a few tenths of a dB.

    Args:
        image: float array `(h, w, c)` (or `(h, w)`), any range.
        scale: factor; the output is `ceil(h * scale) x ceil(w * scale)`.

    Returns:
        The resized float64 array.
    """
    squeeze = image.ndim == 2
    out = image[..., None].astype(np.float64) if squeeze else image.astype(np.float64)
    h, w = out.shape[:2]
    for axis, length in ((0, h), (1, w)):
        weights, indices = _contributions(length, math.ceil(length * scale), scale)
        gathered = np.take(out, indices, axis=axis)  # (..., out, taps, ...)
        if axis == 0:
            out = np.einsum("ot,otwc->owc", weights, gathered)
        else:
            out = np.einsum("ot,hotc->hoc", weights, gathered)
    return out[..., 0] if squeeze else out


@dataclasses.dataclass
class Score:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float


@dataclasses.dataclass
class DatasetScores:
    name: str
    images: list[Score]

    def mean(self, field: str) -> float:
        return float(np.mean([getattr(s, field) for s in self.images]))

    def table(self, title: str):
        """A rich table: one row per image and the mean, beside the bicubic baseline."""
        from rich.table import Table

        table = Table("image", "PSNR", "SSIM", "bicubic PSNR", "bicubic SSIM", title=title)
        rows = [(s.name, s.psnr, s.ssim, s.bicubic_psnr, s.bicubic_ssim) for s in self.images]
        means = [self.mean(f) for f in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")]
        for name, *values in [*rows, ("mean", *means)]:
            cells = [f"{v:.2f}" if i % 2 == 0 else f"{v:.4f}" for i, v in enumerate(values)]
            table.add_row(name, *cells, style="bold" if name == "mean" else None)
        return table

    def as_dict(self) -> dict:
        fields = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
        return {
            "dataset": self.name,
            "mean": {f: self.mean(f) for f in fields},
            "images": [dataclasses.asdict(s) for s in self.images],
        }


def scores_report(model: str, scale: int, results: Sequence[DatasetScores]) -> dict:
    """The JSON document of `kerasr evaluate --json` and of a run folder's `evaluation.json`."""
    return {
        "model": model,
        "scale": scale,
        "y_channel": True,
        "border": scale,
        "datasets": [r.as_dict() for r in results],
    }


def find_pairs(folder: Path, scale: int | None = None) -> list[tuple[Path, Path | None]]:
    """(HR, LR or None) files of a dataset folder.

    A folder with `HR` and `LR` subfolders gives pairs matched by file stem (an LR name may
    end in `x{scale}`, see `kerasr.data.sources.hr_stem`); any other folder is a folder of
    HR images.
    """
    from kerasr.data.sources import hr_stem

    folder = Path(folder)
    if not folder.is_dir():
        raise KerasrError(f"{folder}: dataset folder not found")
    subdirs = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}

    def images(path):
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    if "hr" in subdirs and "lr" in subdirs:
        lrs = {}
        for p in images(subdirs["lr"]):
            lrs.setdefault(p.stem, p)
            lrs.setdefault(hr_stem(p.stem, scale), p)
        pairs = []
        for hr in images(subdirs["hr"]):
            lr = lrs.get(hr.stem)
            if lr is None:
                raise KerasrError(f"{hr.name}: no matching LR image in {subdirs['lr']}")
            pairs.append((hr, lr))
    else:
        pairs = [(hr, None) for hr in images(folder)]
    if not pairs:
        raise KerasrError(f"{folder}: no images to evaluate")
    return pairs


def score_pair(hr: np.ndarray, sr: np.ndarray, scale: int) -> tuple[float, float]:
    """PSNR and SSIM of one uint8 `(h, w, 3)` image against its HR, as SR papers report them:
    Y channel, `scale` border pixels cropped."""
    from kerasr.metrics import psnr, ssim

    ref, sr = (x.astype(np.float32)[None] / 255.0 for x in (hr, sr))
    return float(psnr(ref, sr, border=scale)[0]), float(ssim(ref, sr, border=scale)[0])


def bicubic_scores(hr: np.ndarray, lr: np.ndarray, scale: int) -> tuple[float, float]:
    """The papers' bicubic baseline of one uint8 pair: MATLAB `imresize(lr, scale)` rounded to
    uint8, scored by `score_pair`. Training's validation baseline (`bicubic.json`) uses it too."""
    bicubic = to_uint8(matlab_imresize(lr.astype(np.float64), scale), (0.0, 255.0))
    return score_pair(hr, bicubic, scale)


def evaluate(upscaler, folder: str | Path, scale: int, progress=None) -> DatasetScores:
    """Scores an upscaler on a dataset folder, beside the bicubic baseline.

    HR images are cropped to a multiple of `scale`; LR inputs come from MATLAB bicubic
    (rounded to uint8, as the published LR sets are) unless the folder has paired LR
    images. Scores are on the Y channel with `scale` border pixels cropped.

    Args:
        upscaler: a `kerasr.upscaling.inference.Upscaler` whose model has this `scale`.
        folder: HR images, or a folder with `HR` and `LR` subfolders.
        scale: the super-resolution factor.
        progress: called with a short message after each image.
    """
    if upscaler.scale != scale:
        raise KerasrError(f"the model upscales x{upscaler.scale}, but --scale is {scale}")
    folder = Path(folder)
    scores = []
    for hr_path, lr_path in find_pairs(folder, scale):
        hr = _as_rgb8(read_image(hr_path), hr_path)
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:h, :w]
        if lr_path is None:
            lr = to_uint8(matlab_imresize(hr.astype(np.float64), 1 / scale), (0.0, 255.0))
        else:
            lr = _as_rgb8(read_image(lr_path), lr_path)
            if lr.shape[:2] != (h // scale, w // scale):
                size = f"{lr.shape[0]}x{lr.shape[1]}"
                raise KerasrError(
                    f"{lr_path.name}: LR size {size} does not fit {hr_path.name} / {scale}"
                )
        sr_psnr, sr_ssim = score_pair(hr, upscaler.upscale(lr), scale)
        scores.append(Score(hr_path.stem, sr_psnr, sr_ssim, *bicubic_scores(hr, lr, scale)))
        if progress:
            progress(f"evaluated {hr_path.name}")
    return DatasetScores(folder.name, scores)


@dataclasses.dataclass
class Evaluation:
    """The scores of one model on several datasets, and the protocol they follow."""

    model: str
    scale: int
    datasets: list[DatasetScores]

    def as_dict(self) -> dict:
        """The JSON payload of `kerasr evaluate --json`."""
        return scores_report(self.model, self.scale, self.datasets)

    def write_json(self, path: str | Path) -> Path:
        """Writes `as_dict()` as JSON, atomically; the folder must exist."""
        import json

        from kerasr.io import write_text

        write_text(path, json.dumps(self.as_dict(), indent=2), make_parents=False)
        return Path(path)


def evaluate_model(
    model: str,
    folders: Sequence[str | Path],
    scale: int = 4,
    *,
    precision: str = "float32",
    tile: int | None = None,
    progress: Callable[[str], None] | None = None,
    on_dataset: Callable[[DatasetScores], None] | None = None,
) -> Evaluation:
    """Scores a model (registry name or file) on dataset folders, as `evaluate` does.

    Args:
        model: see `kerasr.weights.load_model`.
        folders: see `evaluate`.
        scale: the super-resolution factor, also the border cropped.
        precision: float32 gives the numbers papers compare.
        tile: see `kerasr.upscaling.inference.Upscaler`.
        progress: called with a short message as loading and scoring go.
        on_dataset: called with each dataset's scores as soon as they are known.
    """
    from kerasr.upscaling.inference import Upscaler
    from kerasr.weights import load_model

    if progress:
        progress(f"loading {model}")
    upscaler = Upscaler(load_model(model), tile=tile, precision=precision)
    datasets = []
    for folder in folders:
        if progress:
            progress(f"evaluating {folder}")
        scores = evaluate(upscaler, folder, scale, progress=progress)
        datasets.append(scores)
        if on_dataset:
            on_dataset(scores)
    return Evaluation(str(model), scale, datasets)


def _as_rgb8(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.dtype != np.uint8:
        pixels = np.round(pixels.astype(np.float64) / 257).astype(np.uint8)
    if pixels.shape[-1] in (1, 2):  # grey, or grey+alpha
        pixels = np.repeat(pixels[..., :1], 3, axis=-1)
    return pixels[..., :3]

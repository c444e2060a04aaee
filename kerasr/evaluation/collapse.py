"""Is a GAN collapsing or copying: mode-collapse and memorisation signals in pixel space.

Used by DCGAN training every epoch (`kerasr.training.callbacks.DCGANMonitor`); nothing here
trains or draws: the caller passes uint8 images (e.g. from `kerasr.generation.generate`).
Whether the samples look like the real images is measured on ImageNet features by
`kerasr.evaluation.gan` (KID, Frechet distance, two-sample test).
"""

from __future__ import annotations

import dataclasses

import numpy as np


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-mean-square pixel distances (0..1) between rows of `a` and `b` (flattened)."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0) / a.shape[1])


class QualityReference:
    """The real-image side of the quality signals, computed once per run.

    Args:
        images: uint8 `[n, h, w, 3]` training images (before augmentation).
        count: how many samples / real images the diversity signal compares (64).
        seed: picks the fixed real subset.
    """

    def __init__(self, images: np.ndarray, count: int = 64, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.count = min(count, len(images))
        subset = rng.choice(len(images), self.count, replace=False)
        self.real_subset = images[subset]
        # Nearest neighbours are searched among the training images and their mirror images,
        # since the generator learns from flipped copies too.
        self.train = _flat(np.concatenate([images, images[:, :, ::-1]]))
        real = _flat(self.real_subset)
        self.real_pairwise = _mean_offdiagonal(_pairwise(real, real))
        d = _pairwise(real, self.train)
        n = len(images)
        # Exclude each image and its own mirror image from its neighbour search.
        rows = np.arange(self.count)
        d[rows, subset] = np.inf
        d[rows, subset + n] = np.inf
        self.real_nearest = float(np.median(d.min(1)))


def _mean_offdiagonal(d: np.ndarray) -> float:
    n = len(d)
    return float((d.sum() - np.trace(d)) / max(n * (n - 1), 1))


@dataclasses.dataclass(frozen=True)
class QualitySignals:
    """Mode-collapse and memorisation signals of generated samples (see `quality_signals`)."""

    diversity: float
    sample_pairwise: float
    real_pairwise: float
    nearest_ratio: float
    sample_nearest: float
    real_nearest: float
    copies: float

    def describe(self) -> str:
        """The signals as two sentences for people."""
        collapse = "no sign of mode collapse" if self.diversity >= 0.6 else "POSSIBLE MODE COLLAPSE"
        memory = "no sign of memorisation" if self.copies <= 0.05 else "POSSIBLE MEMORISATION"
        return (
            f"diversity {self.diversity:.2f} (sample pairwise distance "
            f"{self.sample_pairwise:.3f} vs real {self.real_pairwise:.3f}): {collapse}.\n"
            f"nearest-training ratio {self.nearest_ratio:.2f} "
            f"(median sample-to-train {self.sample_nearest:.3f} "
            f"vs real-to-real {self.real_nearest:.3f}), near copies {self.copies:.0%}: "
            f"{memory}.\n"
        )


def quality_signals(samples: np.ndarray, reference: QualityReference) -> QualitySignals:
    """Mode-collapse and memorisation signals of generated samples.

    - `diversity`: mean pairwise distance among the samples divided by the same among as many
      real images; near 1 is healthy, well below 1 (e.g. < 0.5) means mode collapse.
    - `nearest_ratio`: median distance of each sample to its nearest training image (or its
      mirror image) divided by the median real-to-other-real nearest distance; near or above 1
      means new images, well below 1 means the generator copies training images.
    - `copies`: fraction of samples closer to a training image than half the typical
      real-to-real nearest distance.

    Distances are root-mean-square pixel differences in [0, 1].

    Args:
        samples: uint8 `[n, h, w, 3]` generated images.
        reference: the real side, from `QualityReference`.

    Returns:
        The three signals and the raw distances they compare.
    """
    fake = _flat(samples)
    sample_pairwise = _mean_offdiagonal(_pairwise(fake, fake))
    nearest = _pairwise(fake, reference.train).min(1)
    return QualitySignals(
        diversity=sample_pairwise / reference.real_pairwise,
        sample_pairwise=sample_pairwise,
        real_pairwise=reference.real_pairwise,
        nearest_ratio=float(np.median(nearest)) / reference.real_nearest,
        sample_nearest=float(np.median(nearest)),
        real_nearest=reference.real_nearest,
        copies=float((nearest < 0.5 * reference.real_nearest).mean()),
    )

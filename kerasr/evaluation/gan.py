"""How close generated images are to real ones, measured on the features of a fixed network.

Both sides go through one protocol: every image is composited on the training background,
padded to a square and resized to the generator's side exactly as `train-dcgan` prepares its
sprites (`kerasr.data.sprites.load_sprites`), then resized bilinearly to the network's input
and described by its pooled features. Two networks, each scored on its own:

- `inception`: InceptionV3 as FID defines it (299 px, 2048 features; `kerasr.models.inception`).
- `lite0`: EfficientNet-Lite0 with its ImageNet weights (224 px, 1280 features), the network
  that KID during `train-dcgan` uses.

A generator chosen or trained on one network's features (a discriminator built on them, a
checkpoint picked by KID on them) can fit that network's blind spots, so judge it on the
other. On each network's features:

- KID, the kernel distance of Binkowski et al.: the unbiased squared MMD with the cubic
  polynomial kernel `(x.y / d + 1) ** 3`, averaged over random subsets, with its standard
  deviation over the subsets. About 0 for two samples of one distribution.
- FD, the Frechet distance between Gaussians fitted to the two feature sets (FID's formula;
  on `inception` features this is FID, on `lite0` features it is not comparable to published
  FIDs).
- The classifier two-sample test of Lopez-Paz and Oquab: a logistic regression learns to tell
  real from generated features on one half and is scored on the other half (and the halves
  swapped). 0.5 means indistinguishable, 1.0 means every image is told apart.

Every random choice has a fixed seed, so numbers compare across generators and runs.

References:
    [Demystifying MMD GANs](https://arxiv.org/abs/1801.01401) (KID);
    [GANs Trained by a Two Time-Scale Update Rule](https://arxiv.org/abs/1706.08500) (FID);
    [Revisiting Classifier Two-Sample Tests](https://arxiv.org/abs/1610.06545).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError

# The fixed protocol.
KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
TWO_SAMPLE_STEPS = 200
TWO_SAMPLE_L2 = 1e-3
SEED = 0
DEFAULT_COUNT = 1000
FEATURE_BATCH = 32
# What `features=` accepts: one network, or "all" of them in this order.
NETWORKS = ("inception", "lite0")
FEATURE_CHOICES = ("all", *NETWORKS)


@dataclasses.dataclass
class FeatureScores:
    """The three measures on one network's features.

    Attributes:
        kid: KID, mean over subsets (lower is better; about 0 for one distribution).
        kid_std: its standard deviation over the subsets.
        fd: Frechet distance of the pooled features (lower is better).
        two_sample_accuracy: held-out accuracy of the real-vs-generated classifier (0.5 best).
    """

    kid: float
    kid_std: float
    fd: float
    two_sample_accuracy: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return (
            f"KID x 1e3: {self.kid * 1e3:.2f} +- {self.kid_std * 1e3:.2f}\n"
            f"Frechet distance: {self.fd:.2f}\n"
            f"two-sample accuracy: {self.two_sample_accuracy:.3f} (0.5 = indistinguishable)"
        )


@dataclasses.dataclass
class GanScores:
    """What `evaluate_gan` measured.

    Attributes:
        networks: network name (`"inception"`, `"lite0"`) -> its scores, in `NETWORKS` order.
        n_generated: generated images scored.
        n_real: real images scored.
    """

    networks: dict[str, FeatureScores]
    n_generated: int
    n_real: int

    def __getitem__(self, network: str) -> FeatureScores:
        return self.networks[network]

    def as_dict(self) -> dict:
        """`{"n_generated": .., "n_real": .., "inception": {"kid": .., ...}, "lite0": {..}}`."""
        return {
            "n_generated": self.n_generated,
            "n_real": self.n_real,
            **{name: scores.as_dict() for name, scores in self.networks.items()},
        }

    def describe(self) -> str:
        blocks = [
            f"{_network(name).label} features:\n"
            + "\n".join(f"  {line}" for line in scores.describe().splitlines())
            for name, scores in self.networks.items()
        ]
        return "\n".join([*blocks, f"images: {self.n_generated} generated, {self.n_real} real"])


def _polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd_from_kernels(k_aa: np.ndarray, k_bb: np.ndarray, k_ab: np.ndarray) -> float:
    m, n = len(k_aa), len(k_bb)
    return float(
        (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        - 2.0 * k_ab.mean()
    )


def polynomial_mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD with the kernel `(x.y / d + 1) ** 3` between rows of `a` and `b`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return _mmd_from_kernels(
        _polynomial_kernel(a, a), _polynomial_kernel(b, b), _polynomial_kernel(a, b)
    )


def kernel_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int | None = None,
    seed: int = SEED,
) -> tuple[float, float]:
    """KID: the polynomial MMD averaged over random subsets, and its standard deviation.

    Args:
        real: features `[m, d]`.
        fake: features `[n, d]`.
        subsets: how many subset pairs to average.
        subset_size: images per subset; default half the smaller set, at most 1000, so that
            subsets differ and the deviation says something.
        seed: draws the subsets.

    Returns:
        `(mean, std)`.
    """
    size = subset_size or min(KID_MAX_SUBSET, min(len(real), len(fake)) // 2)
    if size < 2 or size > min(len(real), len(fake)):
        raise KerasrError(
            f"KID needs subsets of 2 to {min(len(real), len(fake))} images. Received: {size}"
        )
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    # The kernel between every pair once; each subset then only sums a block of it.
    k_rr, k_ff = _polynomial_kernel(real, real), _polynomial_kernel(fake, fake)
    k_rf = _polynomial_kernel(real, fake)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        r = rng.choice(len(real), size, replace=False)
        f = rng.choice(len(fake), size, replace=False)
        values.append(_mmd_from_kernels(k_rr[np.ix_(r, r)], k_ff[np.ix_(f, f)], k_rf[np.ix_(r, f)]))
    return float(np.mean(values)), float(np.std(values))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """`|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))` between two feature sets.

    With factors `S = F^T F` of the two covariances (the centred features over
    `sqrt(n - 1)`, or their QR factor when there are more rows than columns), the
    eigenvalues of `S_a S_b` are the squared singular values of `F_a F_b^T`, so the trace of
    the square root is the sum of those singular values: exact, real and non-negative, where
    a general matrix square root picks up imaginary rounding noise.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise KerasrError("the Frechet distance needs at least 2 feature rows on each side")
    f_a, f_b = _covariance_factor(a), _covariance_factor(b)
    trace_root = np.linalg.svd(f_a @ f_b.T, compute_uv=False).sum()
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return float(mean_term + (f_a**2).sum() + (f_b**2).sum() - 2.0 * trace_root)


def _covariance_factor(x: np.ndarray) -> np.ndarray:
    factor = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    return np.linalg.qr(factor, mode="r") if len(x) > x.shape[1] else factor


def two_sample_accuracy(real: np.ndarray, fake: np.ndarray, seed: int = SEED) -> float:
    """Held-out accuracy of a logistic regression telling real from generated features.

    The protocol: as many images of each kind (the smaller count), each kind shuffled with
    `seed` and cut in two halves; the classifier (features standardised on its training half,
    L2 penalty 1e-3, 200 full-batch gradient steps of size 1/L from zero, L the loss's
    smoothness bound) trains on one half of both kinds and is scored on the other, then the
    halves swap; the two accuracies are averaged.

    Returns:
        Accuracy in [0, 1]; 0.5 means the features do not tell the two apart.
    """
    k = min(len(real), len(fake))
    if k < 4:
        raise KerasrError(f"the two-sample test needs at least 4 images per side. Received: {k}")
    rng = np.random.default_rng(seed)
    real = np.asarray(real, np.float64)[rng.permutation(len(real))[:k]]
    fake = np.asarray(fake, np.float64)[rng.permutation(len(fake))[:k]]
    half = k // 2
    accuracies = []
    for train, test in ((slice(0, half), slice(half, k)), (slice(half, k), slice(0, half))):
        x_train = np.concatenate([real[train], fake[train]])
        y_train = np.r_[np.ones(len(real[train])), np.zeros(len(fake[train]))]
        x_test = np.concatenate([real[test], fake[test]])
        y_test = np.r_[np.ones(len(real[test])), np.zeros(len(fake[test]))]
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        w = _fit_logistic((x_train - mean) / std, y_train)
        scores = _with_bias((x_test - mean) / std) @ w
        accuracies.append(float(((scores > 0) == (y_test > 0.5)).mean()))
    return float(np.mean(accuracies))


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


def _fit_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Gradient descent on the mean log loss plus (l2 / 2)|w|^2, with the step 1/L of the
    # loss's smoothness bound, so no learning rate depends on the feature scale.
    x = _with_bias(x)
    gram = x @ x.T if len(x) <= x.shape[1] else x.T @ x  # same top eigenvalue, smaller matrix
    smoothness = np.linalg.eigvalsh(gram)[-1] / (4 * len(x)) + TWO_SAMPLE_L2
    w = np.zeros(x.shape[1])
    for _ in range(TWO_SAMPLE_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        w -= (x.T @ (p - y) / len(x) + TWO_SAMPLE_L2 * w) / smoothness
    return w


# --- images and features ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Network:
    label: str
    size: int
    dims: int
    load: Callable
    preprocess: Callable
    pooled: Callable  # (model, preprocessed images) -> features
    weights_file: Callable  # raises KerasrError with the install command when missing


def _network(name: str) -> _Network:
    if name == "inception":
        from kerasr.models.inception import FEATURES, IMAGE_SIZE
        from kerasr.weights import inception

        return _Network(
            "InceptionV3 (FID)",
            IMAGE_SIZE,
            FEATURES,
            inception.load_inception,
            inception.preprocess,
            lambda model, x: model(x),
            inception.archive_path,
        )
    if name == "lite0":
        from kerasr.models.efficientnet_lite import HEAD_CHANNELS, IMAGE_SIZE
        from kerasr.weights import efficientnet

        return _Network(
            "EfficientNet-Lite0 (ImageNet)",
            IMAGE_SIZE,
            HEAD_CHANNELS,
            efficientnet.load_efficientnet_lite0,
            efficientnet.preprocess,
            lambda model, x: model.pooled_features(x),
            efficientnet.pth_path,
        )
    raise KerasrError(f"features must be one of {', '.join(FEATURE_CHOICES)}. Received: {name!r}")


def requested_networks(features: str) -> tuple[str, ...]:
    """`"all"` -> every network in `NETWORKS`; a network's name -> that one.

    Raises:
        KerasrError: for another name, or when a requested network's weights are not
            installed (the message gives the install command).
    """
    networks = NETWORKS if features == "all" else (features,)
    for name in networks:
        _network(name).weights_file()
    return networks


def image_features(
    model, images: np.ndarray, batch_size: int = FEATURE_BATCH, network: str = "lite0"
) -> np.ndarray:
    """Pooled features `[n, d]` of uint8 RGB images of any one size.

    Args:
        model: from `kerasr.weights.efficientnet.load_efficientnet_lite0` for `"lite0"`
            (1280 features), `kerasr.weights.inception.load_inception` for `"inception"`
            (2048).
        images: uint8 `[n, h, w, 3]`; resized bilinearly to the network's input side.
        network: which of the two `model` is.
    """
    import tensorflow as tf

    net = _network(network)

    @tf.function
    def describe(batch):
        x = tf.image.resize(tf.cast(batch, tf.float32), (net.size, net.size))
        return net.pooled(model, net.preprocess(x))

    out = [
        np.asarray(describe(images[i : i + batch_size])) for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, net.dims), np.float32)


def feature_scores(real: np.ndarray, fake: np.ndarray) -> FeatureScores:
    """KID, FD and two-sample accuracy between two feature sets (`[m, d]`, `[n, d]`)."""
    kid, kid_std = kernel_distance(real, fake)
    return FeatureScores(
        kid=kid,
        kid_std=kid_std,
        fd=frechet_distance(real, fake),
        two_sample_accuracy=two_sample_accuracy(real, fake),
    )


def folder_images(
    folder: str | Path,
    image_size: int,
    count: int | None = None,
    background: Sequence[int] = (255, 255, 255),
    seed: int = SEED,
    fit: bool = False,
) -> np.ndarray:
    """The images of a folder as `train-dcgan` sees them, at most `count` of them (a fixed draw);
    `fit` fits each creature to the frame as `data.fit_to_frame` does.

    Returns:
        uint8 `[n, image_size, image_size, 3]`.
    """
    from kerasr.data.sprites import load_sprites

    images = load_sprites(folder, image_size=image_size, background=background, fit=fit)
    if count is not None and len(images) > count:
        keep = np.sort(np.random.default_rng(seed).choice(len(images), count, replace=False))
        images = images[keep]
    return images


def generated_images(spec: str | Path, count: int) -> np.ndarray:
    """`count` samples (seeds 0 .. count - 1) of a generator: a registry name or a file."""
    from kerasr.generation import generate, load_generator

    generator = load_generator(spec)
    return generate(generator, list(range(count)))


def evaluate_gan(
    generated: str | Path,
    real: str | Path,
    count: int = DEFAULT_COUNT,
    background: Sequence[int] = (255, 255, 255),
    image_size: int | None = None,
    fit_to_frame: bool = False,
    progress=None,
    features: str = "all",
    real_count: int = DEFAULT_COUNT,
    side_by_side: str | Path | None = None,
) -> GanScores:
    """Scores generated images against real ones (KID, FD, two-sample accuracy) per network.

    Args:
        generated: a generator (a registry name such as `pokemon-dcgan-64`, or a `.keras` /
            `.weights.h5` file) or a folder of images.
        real: a folder of images (sprites with transparency are composited on `background`).
        count: generated images: a generator draws seeds 0 .. count - 1, a larger folder
            gives a fixed random subset.
        background: RGB colour behind transparent pixels, as in training.
        image_size: side both kinds are brought to before the network's resize; default the
            generator's side, or 64 (the Pokemon DCGAN's) for a folder.
        fit_to_frame: fit each real creature to the frame, as training with
            `data.fit_to_frame` saw them (the generated side is left as it is).
        progress: called with a short message between stages.
        features: `"inception"`, `"lite0"` or `"all"` (both, each scored on its own).
        real_count: real images at most (a larger folder gives a fixed random subset); the
            two sides need not be equal.
        side_by_side: also write this image: the first 36 generated images (seeds 0..35)
            beside 36 real ones (a fixed random choice), both as compared, for judging by eye.

    Returns:
        The scores per network and the image counts.

    Raises:
        KerasrError: on a missing or empty folder, an unknown generator or network, weights
            that are not installed, or fewer than 4 images on a side.
    """
    if count < 4 or real_count < 4:
        raise KerasrError(
            f"count and real_count must be at least 4. Received: {count}, {real_count}"
        )
    networks = requested_networks(features)
    note = progress or (lambda message: None)
    generated_path = Path(generated)
    if generated_path.is_dir():
        size = image_size or 64
        fake = folder_images(generated_path, size, count, background)
    else:
        fake = generated_images(generated, count)
        size = image_size or fake.shape[1]
        if fake.shape[1] != size:
            fake = np.stack([_resize(image, size) for image in fake])
    real_images = folder_images(real, size, real_count, background, fit=fit_to_frame)
    if min(len(fake), len(real_images)) < 4:
        raise KerasrError(
            f"need at least 4 images on each side; got {len(fake)} generated and "
            f"{len(real_images)} real"
        )
    if side_by_side is not None:
        from kerasr.images import write_image

        write_image(side_by_side, side_by_side_grid(fake, real_images))
    scores = {}
    for name in networks:
        net = _network(name)
        note(
            f"describing {len(fake)} generated and {len(real_images)} real images with {net.label}"
        )
        model = net.load()
        scores[name] = feature_scores(
            image_features(model, real_images, network=name),
            image_features(model, fake, network=name),
        )
    return GanScores(scores, n_generated=len(fake), n_real=len(real_images))


def side_by_side_grid(fake: np.ndarray, real: np.ndarray, count: int = 36) -> np.ndarray:
    """The first `count` generated images in a square grid, a white gap, then as many real
    images chosen at random with a fixed seed, in a grid of the same layout."""
    from kerasr.io import image_grid

    count = min(count, len(fake), len(real))
    chosen = np.random.default_rng(SEED).choice(len(real), count, replace=False)
    columns = int(np.ceil(np.sqrt(count)))
    left, right = image_grid(fake[:count], columns), image_grid(real[chosen], columns)
    gap = np.full((left.shape[0], fake.shape[2] // 4, left.shape[2]), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))

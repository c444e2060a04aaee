"""Losses of ESRGAN, Real-ESRGAN and the DCGAN: pixel, perceptual and adversarial.

Every function returns one value per sample (shape `[n]`), not a batch mean: the train step
reduces them so that, under `tf.distribute`, each replica's loss is its share of the global
batch mean (see `kerasr.training.harness.replica_mean`).
"""

from __future__ import annotations

import functools

import keras
from keras import ops

from kerasr.errors import KerasrError
from kerasr.models.vgg import VGGFeatures
from kerasr.weights.vgg import load_vgg_weights

PIXEL_LOSSES = ("l1", "l2", "charbonnier")
# Charbonnier's epsilon: a smooth L1 that has a gradient at 0 (BasicSR uses 1e-12 under
# the square root; 1e-6 keeps float16 / bfloat16 from rounding it away).
CHARBONNIER_EPS = 1e-6


def _per_sample(x):
    return ops.mean(ops.reshape(x, (ops.shape(x)[0], -1)), axis=-1)


def pixel_loss(y_true, y_pred, kind: str = "l1"):
    """Pixel distance per sample.

    Args:
        y_true, y_pred: `[n, h, w, c]` images.
        kind: `"l1"` (mean absolute error, ESRGAN's default), `"l2"` (mean squared error) or
            `"charbonnier"` (`sqrt(d^2 + eps^2)`, a differentiable L1).

    Returns:
        float32 `[n]`.
    """
    if kind not in PIXEL_LOSSES:
        raise KerasrError(f"`kind` must be one of {PIXEL_LOSSES}. Received: kind={kind!r}")
    d = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
    if kind == "l1":
        e = ops.abs(d)
    elif kind == "l2":
        e = ops.square(d)
    else:
        e = ops.sqrt(ops.square(d) + CHARBONNIER_EPS**2)
    return _per_sample(e)


@keras.saving.register_keras_serializable(package="kerasr")
class PerceptualLoss(keras.layers.Layer):
    """Weighted distances between VGG features (before ReLU) of SR and HR images.

    Args:
        vgg_type: `"vgg11"`, `"vgg13"`, `"vgg16"` or `"vgg19"`.
        layer_weights: `{"conv5_4": 1.0}` (ESRGAN) or Real-ESRGAN's
            `{"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}`.
        criterion: `"l1"` or `"l2"` distance between features.
        normalize_input: ImageNet preprocessing of the `[0, 1]` inputs.
        input_norm: which: `"caffe"` (Keras' VGG weights) or `"torchvision"` (torchvision's,
            as BasicSR); see `kerasr.models.vgg.VGGFeatures`.
        normalize_loss: divide by the sum of the layer weights.
        weights: `"imagenet"`, `"none"` or a local weights file (see
            `kerasr.weights.vgg.load_vgg_weights`).

    Call: `loss(y_true, y_pred)` -> float32 `[n]`.

    Example:

        loss = PerceptualLoss("vgg19", {"conv5_4": 1.0})
        per_sample = loss(hr, sr)

    Reference:
        [Perceptual losses](https://arxiv.org/abs/1603.08155);
        [ESRGAN](https://arxiv.org/abs/1809.00219) section 3.3.
    """

    def __init__(
        self,
        vgg_type="vgg19",
        layer_weights=None,
        criterion="l1",
        normalize_input=True,
        normalize_loss=False,
        weights="imagenet",
        input_norm="caffe",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if criterion not in ("l1", "l2"):
            raise KerasrError(
                f"`criterion` must be 'l1' or 'l2'. Received: criterion={criterion!r}"
            )
        self.vgg_type = vgg_type
        self.layer_weights = dict(layer_weights or {"conv5_4": 1.0})
        self.criterion = criterion
        self.normalize_input = normalize_input
        self.normalize_loss = normalize_loss
        self.weights_source = weights
        self.input_norm = input_norm
        self.vgg = VGGFeatures(
            vgg_type,
            tuple(self.layer_weights),
            normalize_input,
            input_norm,
            name="vgg",
            dtype=self.dtype_policy,
        )
        load_vgg_weights(self.vgg, weights)
        self.trainable = False

    def build(self, input_shape):
        pass

    def call(self, y_true, y_pred):
        # One VGG pass over both batches (twice the batch, half the kernel launches).
        n = ops.shape(y_true)[0]
        both = ops.concatenate([ops.cast(y_true, y_pred.dtype), y_pred], axis=0)
        feats = self.vgg(both)
        total = 0.0
        for name, weight in self.layer_weights.items():
            f = ops.cast(feats[name], "float32")
            real, fake = ops.stop_gradient(f[:n]), f[n:]
            d = ops.abs(fake - real) if self.criterion == "l1" else ops.square(fake - real)
            total = total + weight * _per_sample(d)
        if self.normalize_loss:
            total = total / sum(self.layer_weights.values())
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "vgg_type": self.vgg_type,
            "layer_weights": self.layer_weights,
            "criterion": self.criterion,
            "normalize_input": self.normalize_input,
            "normalize_loss": self.normalize_loss,
            "weights": self.weights_source,
            "input_norm": self.input_norm,
        }


def _bce_logits(logits, target: float):
    # Binary cross-entropy from logits, numerically stable: softplus(x) - target * x.
    return ops.softplus(logits) - target * logits


def _per_sample_logits(x):
    return _per_sample(ops.cast(x, "float32"))


def relative_logits(real_logits, fake_logits, detach: bool = False):
    """`C(x_r) - E[C(x_f)]` and `C(x_f) - E[C(x_r)]`: the logits of ESRGAN's relativistic
    average discriminator `D_Ra`. The batch means are over the (per-replica) batch, as in
    BasicSR; with `detach`, no gradient flows through them."""
    real, fake = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    real_mean = ops.mean(real, axis=0, keepdims=True)
    fake_mean = ops.mean(fake, axis=0, keepdims=True)
    if detach:
        real_mean, fake_mean = ops.stop_gradient(real_mean), ops.stop_gradient(fake_mean)
    return real - fake_mean, fake - real_mean


def _relativistic(real_logits, fake_logits, real_target: float, detach: bool = False):
    real_rel, fake_rel = relative_logits(real_logits, fake_logits, detach)
    return 0.5 * (
        _per_sample_logits(_bce_logits(real_rel, real_target))
        + _per_sample_logits(_bce_logits(fake_rel, 1.0 - real_target))
    )


def relativistic_d_loss(real_logits, fake_logits, detach: bool = False):
    """ESRGAN's relativistic average discriminator loss, per sample.

    `D_Ra(x_r, x_f) = sigmoid(C(x_r) - E[C(x_f)])`; the discriminator learns that a real
    image is *more* realistic than the average fake (and the reverse), instead of judging
    each image alone.

    Args:
        real_logits, fake_logits: the discriminator's outputs.
        detach: hold each side's mean constant, as BasicSR's `ESRGANModel` (which computes
            the real and the fake half separately); without it the gradient also flows
            through the means, as the original 2018 ESRGAN code.

    Returns:
        float32 `[n]`: `-log D_Ra(x_r, x_f) - log(1 - D_Ra(x_f, x_r))`, halved as in BasicSR.

    Reference:
        [Relativistic GAN](https://arxiv.org/abs/1807.00734);
        [ESRGAN](https://arxiv.org/abs/1809.00219) eq. 1-2.
    """
    return _relativistic(real_logits, fake_logits, 1.0, detach)


def relativistic_g_loss(real_logits, fake_logits):
    """The generator side, symmetric: it benefits from gradients of both real and fake data,
    which is why ESRGAN's textures are sharper than with a standard GAN.

    Returns:
        float32 `[n]`: `-log(1 - D_Ra(x_r, x_f)) - log D_Ra(x_f, x_r)`, halved.
    """
    return _relativistic(real_logits, fake_logits, 0.0)


def vanilla_d_loss(real_logits, fake_logits, real_target: float = 1.0):
    """Standard GAN discriminator loss (Real-ESRGAN, DCGAN): BCE(real, target) + BCE(fake, 0),
    per sample (a U-Net's per-pixel logits are averaged). `real_target` below 1 is one-sided
    label smoothing."""
    return _per_sample_logits(_bce_logits(real_logits, real_target)) + _per_sample_logits(
        _bce_logits(fake_logits, 0.0)
    )


def vanilla_g_loss(real_logits, fake_logits):
    """Non-saturating generator loss BCE(fake, 1), per sample; `real_logits` is unused.

    The generator maximises log D(fake) instead of minimising log(1 - D(fake)), which has no
    gradient when the discriminator confidently rejects fakes.
    """
    del real_logits
    return _per_sample_logits(_bce_logits(fake_logits, 1.0))


def hinge_d_loss(real_logits, fake_logits):
    """Hinge discriminator loss, per sample: `relu(1 - real) + relu(1 + fake)`.

    Reference:
        [Geometric GAN](https://arxiv.org/abs/1705.02894); as in SAGAN and BigGAN.
    """
    return _per_sample_logits(ops.relu(1.0 - ops.cast(real_logits, "float32"))) + (
        _per_sample_logits(ops.relu(1.0 + ops.cast(fake_logits, "float32")))
    )


def hinge_g_loss(real_logits, fake_logits):
    """Hinge generator loss, per sample: `-fake`; `real_logits` is unused."""
    del real_logits
    return -_per_sample_logits(fake_logits)


# "nonsaturating" is the DCGAN configs' name of the vanilla (standard) GAN loss.
GAN_LOSS_NAMES = ("relativistic", "vanilla", "nonsaturating", "hinge")


def gan_losses(name: str, label_smoothing: float = 0.0):
    """The discriminator and generator losses of a GAN loss kind.

    Args:
        name: `"relativistic"` (ESRGAN), `"vanilla"` / `"nonsaturating"` (Real-ESRGAN,
            DCGAN) or `"hinge"`.
        label_smoothing: one-sided smoothing of the real target (vanilla losses only).

    Returns:
        `(d_loss, g_loss)`: functions `(real_logits, fake_logits) -> float32 [n]`.

    Raises:
        KerasrError: for an unknown name, or smoothing with another loss.
    """
    if name not in GAN_LOSS_NAMES:
        raise KerasrError(f"GAN loss must be one of {GAN_LOSS_NAMES}. Received: {name!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise KerasrError(f"label_smoothing must be in [0, 1). Received: {label_smoothing}")
    if name == "relativistic":
        pair = relativistic_d_loss, relativistic_g_loss
    elif name == "hinge":
        pair = hinge_d_loss, hinge_g_loss
    else:
        pair = vanilla_d_loss, vanilla_g_loss
    if label_smoothing:
        if pair[0] is not vanilla_d_loss:
            raise KerasrError(f"label smoothing needs the vanilla GAN loss, not {name!r}")
        return functools.partial(vanilla_d_loss, real_target=1.0 - label_smoothing), pair[1]
    return pair


def d_loss_terms(real_logits, fake_logits, gan_type: str):
    """The real and the fake half of the discriminator loss, per sample (BasicSR's `l_d_real`
    and `l_d_fake`, whose sum is the loss of `gan_losses(gan_type)[0]`)."""
    real, fake = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    if gan_type == "relativistic":
        real_rel, fake_rel = relative_logits(real, fake)
        return 0.5 * _per_sample_logits(_bce_logits(real_rel, 1.0)), 0.5 * _per_sample_logits(
            _bce_logits(fake_rel, 0.0)
        )
    if gan_type == "hinge":
        return _per_sample_logits(ops.relu(1.0 - real)), _per_sample_logits(ops.relu(1.0 + fake))
    return _per_sample_logits(_bce_logits(real, 1.0)), _per_sample_logits(_bce_logits(fake, 0.0))


def realness(real_logits, fake_logits, gan_type: str):
    """Mean probabilities D(real), D(fake) as the discriminator sees them.

    For the relativistic loss these are `D_Ra(x_r, x_f)` and `D_Ra(x_f, x_r)`. Both near 0.5
    means the two networks are balanced; D(real) near 1 and D(fake) near 0 means the
    discriminator is winning.
    """
    real, fake = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    if gan_type == "relativistic":
        real, fake = relative_logits(real, fake)
    return ops.mean(ops.sigmoid(real)), ops.mean(ops.sigmoid(fake))

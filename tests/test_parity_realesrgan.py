"""Real-ESRGAN's GAN stage against Real-ESRGAN 0.3.0's RealESRGANModel, step for step.

tests/fixtures/parity_realesrgan.npz holds what three steps of `RealESRGANModel.
optimize_parameters` did (x4plus switches: L1 and perceptual against the unsharp-masked GT,
the discriminator against the GT itself) to a tiny RRDBNet and a `UNetDiscriminatorSN` with
two base features: initial weights (with spectral norm's `u` / `v`), the batches, and after
each step the loss terms, both networks' weights, Adam's moments, the generator EMA (0.999)
and the power-iteration vectors. The perceptual loss is BasicSR's on a VGG19 cut at conv1_2
(conv1_1 weighted 0.1, conv1_2 1, before ReLU, torchvision's input normalisation) with the
fixture's random weights. kerasr loads the same weights, takes the same three steps and
must agree within 1e-5 (losses relative; tensors relative to their largest value).
"""

from pathlib import Path

import numpy as np
import pytest
from parity.convert import (
    hwio_to_oihw,
    keras_to_rrdbnet,
    rrdbnet_conv_names,
    rrdbnet_from_state,
    unet_param_name,
    unet_to_keras,
    vgg_to_keras,
)

from kerasr.config.sr import SROptimConfig
from kerasr.losses import PerceptualLoss
from kerasr.models.discriminators import UNetDiscriminator
from kerasr.training.esrgan import ESRGAN
from kerasr.training.optimizers import make_optimizer
from kerasr.weights.ncnn import conv_layers

FIXTURE = Path(__file__).parent / "fixtures" / "parity_realesrgan.npz"
STEPS = 3
RTOL = 1e-5
# The discriminator's output bias: its gradient is a mean over every logit of both batches,
# and the reference's own float32 Adam moments of it differ from the same run in float64 by
# up to 2.5e-5 (measured); kerasr's lie as close.
BIAS_MOMENT_RTOL = 4e-5
LAYER_WEIGHTS = {"conv1_1": 0.1, "conv1_2": 1.0}
GAN_WEIGHT = 0.1
# Real-ESRGAN's USMSharp defaults (weight 0.5, radius 50, threshold 10).
USM = (0.5, 50, 10.0)


def _nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def _prefixed(ref, prefix):
    return {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}


def _optimizer():
    optim = SROptimConfig(learning_rate=1e-4, beta_1=0.9, beta_2=0.99, milestones=(400000,))
    return make_optimizer(optim, None)


def _moments(optimizer, variables, var):
    i = next(j for j, v in enumerate(variables) if v is var)
    return optimizer._momentums[i].numpy(), optimizer._velocities[i].numpy()


def _generator_state(generator):
    return keras_to_rrdbnet([c.get_weights() for c in conv_layers(generator)], 1)


def _discriminator_state(d):
    out = {}
    for conv in (getattr(d, f"conv{i}") for i in range(10)):
        for name in ("kernel", "bias", "u", "v"):
            var = getattr(conv, name, None)
            if var is None:
                continue
            value = var.numpy()
            out[unet_param_name(conv.name, name)] = (
                hwio_to_oihw(value) if name == "kernel" else value
            )
    return out


@pytest.fixture(scope="module")
def trained():
    with np.load(FIXTURE) as data:
        ref = dict(data)
    generator = rrdbnet_from_state(_prefixed(ref, "init/g/"), 4, 2, 1)
    discriminator = UNetDiscriminator(features=2)
    discriminator.build((None, 32, 32, 3))
    for name, variables in unet_to_keras(_prefixed(ref, "init/d/")).items():
        for key, value in variables.items():
            getattr(getattr(discriminator, name), key).assign(value)
    perceptual = PerceptualLoss(
        "vgg19", LAYER_WEIGHTS, "l1", normalize_input=True, weights="none", input_norm="torchvision"
    )
    names = perceptual.vgg.conv_names
    for conv, weights in zip(
        perceptual.vgg.convs, vgg_to_keras(_prefixed(ref, "vgg/"), names), strict=True
    ):
        conv.set_weights(weights)
    harness = ESRGAN(
        generator,
        discriminator,
        perceptual,
        gan_type="vanilla",
        pixel_weight=1.0,
        perceptual_weight=1.0,
        gan_weight=GAN_WEIGHT,
        ema_decay=0.999,
        usm=USM,
    )
    g_opt, d_opt = _optimizer(), _optimizer()
    harness.compile(g_opt, d_opt)
    g_vars = generator.trainable_variables
    d_vars = discriminator.trainable_variables
    steps = []
    for step in range(1, STEPS + 1):
        lq, gt = _nhwc(ref[f"step{step}/lq"]), _nhwc(ref[f"step{step}/gt"])
        for tracker in harness.trackers.values():
            tracker.reset_state()
        # The losses see the reference's sharpened GT (kerasr's own is compared on its own,
        # below): a 1e-6 difference there could flip the sign of an L1 term whose two sides
        # nearly agree, which moves that step's gradient by far more than 1e-5.
        usm = _nhwc(ref[f"step{step}/gt_usm"])
        ours_usm = ESRGAN.sharpened(harness, gt, True).numpy()
        harness.sharpened = lambda hr, wanted, usm=usm: usm if wanted else hr
        logs = {k: float(v) for k, v in harness.train_step((lq, gt)).items()}
        moments = {}
        for conv, name in zip(conv_layers(generator), rrdbnet_conv_names(1), strict=True):
            for var, suffix in ((conv.kernel, "weight"), (conv.bias, "bias")):
                m, v = _moments(g_opt, g_vars, var)
                if suffix == "weight":
                    m, v = hwio_to_oihw(m), hwio_to_oihw(v)
                moments[f"g/{name}.{suffix}"] = (m, v)
        for i in range(10):
            conv = getattr(discriminator, f"conv{i}")
            for name in ("kernel", "bias"):
                var = getattr(conv, name, None)
                if var is None:
                    continue
                m, v = _moments(d_opt, d_vars, var)
                if name == "kernel":
                    m, v = hwio_to_oihw(m), hwio_to_oihw(v)
                moments[f"d/{unet_param_name(conv.name, name)}"] = (m, v)
        steps.append(
            {
                "logs": logs,
                "usm": ours_usm,
                "g": _generator_state(generator),
                "ema": _generator_state(harness.ema_generator),
                "d": _discriminator_state(discriminator),
                "moments": moments,
            }
        )
    return ref, steps


def _assert_close(ours, expected, name, rtol=RTOL):
    # Relative to the tensor's scale: a weight near zero has no meaningful relative error.
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_loss_terms_match_realesrgan(trained, step):
    ref, steps = trained
    logs = steps[step - 1]["logs"]
    ours = {
        "l_g_pix": logs["pixel_loss"],
        "l_g_percep": logs["perceptual_loss"],
        "l_g_gan": GAN_WEIGHT * logs["adversarial_loss"],
        "l_d_real": logs["d_real_loss"],
        "l_d_fake": logs["d_fake_loss"],
    }
    for key, value in ours.items():
        assert value == pytest.approx(float(ref[f"step{step}/{key}"]), rel=RTOL), key


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_sharpened_gt_matches_usmsharp(trained, step):
    ref, steps = trained
    _assert_close(steps[step - 1]["usm"], _nhwc(ref[f"step{step}/gt_usm"]), "gt_usm")


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_weights_moments_ema_and_power_iteration_match_realesrgan(trained, step):
    ref, steps = trained
    ours = steps[step - 1]
    for net in ("g", "d", "ema"):
        for name, value in ours[net].items():
            _assert_close(value, ref[f"step{step}/{net}/{name}"], f"{net} {name}")
    for name, (m, v) in ours["moments"].items():
        net, param = name.split("/", 1)
        rtol = BIAS_MOMENT_RTOL if name == "d/conv9.bias" else RTOL
        _assert_close(m, ref[f"step{step}/{net}/exp_avg/{param}"], f"exp_avg {name}", rtol)
        _assert_close(v, ref[f"step{step}/{net}/exp_avg_sq/{param}"], f"exp_avg_sq {name}", rtol)

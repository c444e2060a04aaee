"""ESRGAN's GAN stage against BasicSR's ESRGANModel, step for step.

tests/fixtures/parity_esrgan.npz holds what three steps of BasicSR's `ESRGANModel` did to a
tiny RRDBNet and the VGG-style discriminator (relativistic average GAN 5e-3, perceptual
loss on VGG19 conv1_2 / conv2_1 before ReLU (seeded weights in torchvision's layout,
parity_esrgan_vgg19.pth), L1 1e-2, Adam(1e-4, betas 0.9 / 0.99) for both,
one discriminator warm-up step): the initial weights, the batches, and
after each step the loss terms, the logits of every discriminator call, the weights, Adam's
moments and the batch-norm running statistics. kerasr loads the same weights, takes the
same three steps and must agree within 1e-5 (relative, float32 on the CPU): the loss terms
relative to their value, tensors relative to their largest value.

Where a gradient nearly cancels, float32 rounding alone moves a tensor by more than that:
the relativistic loss does not see the discriminator's last bias (it shifts both sides'
logits alike), a one-channel batch norm's gain sums 8192 products, and Adam's first steps
magnify gradients near its epsilon. The fixture also holds, per tensor, how far the
reference's own float32 run is from the same run in float64; those tensors are held to 10x
that error (the largest over the three steps). The batch-norm running statistics and the
loss terms, which come from forward values, are held to 1e-5 throughout.
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from parity.convert import (
    TORCH_SUFFIXES,
    rrdbnet_conv_names,
    rrdbnet_from_state,
    to_keras,
    vgg_discriminator_layer_names,
)

from kerasr.config.sr import SROptimConfig
from kerasr.losses import PerceptualLoss, realness
from kerasr.models.discriminators import VGGDiscriminator
from kerasr.training.esrgan import ESRGAN
from kerasr.training.optimizers import make_optimizer
from kerasr.weights.ncnn import conv_layers

FIXTURE = Path(__file__).parent / "fixtures" / "parity_esrgan.npz"
VGG = Path(__file__).parent / "fixtures" / "parity_esrgan_vgg19.pth"
NUM_BLOCK = 1
D_CHANNELS = (1, 1, 2, 2, 4, 4, 8, 8, 8, 8)  # BasicSR's VGGStyleDiscriminator, num_feat 1
LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_1": 1.0}
STEPS = 3
RTOL = 1e-5
# How many times the reference's own float32 error a tensor may be off.
NOISE_FACTOR = 10


def _nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def _d_layers(d):
    """(Keras layer, BasicSR name) pairs of the discriminator, in forward order."""
    layers = []
    for conv, norm in zip(d.convs, d.norms, strict=True):
        layers += [conv] + ([norm] if norm is not None else [])
    layers += [*d.dense, d.out]
    return list(zip(layers, vgg_discriminator_layer_names(len(d.convs)), strict=True))


def _g_layers(g):
    return list(zip(conv_layers(g), rrdbnet_conv_names(NUM_BLOCK), strict=True))


def _pairs(layers):
    """(Keras variable, BasicSR tensor name) for every weight of `layers`."""
    for layer, name in layers:
        kind = "bn" if name.startswith("bn") else "linear" if name.startswith("linear") else "conv"
        for var, suffix in zip(layer.weights, TORCH_SUFFIXES[kind], strict=False):
            yield var, f"{name}.{suffix}"


def _to_keras(name, value):
    # The discriminator's last map before the flatten: 8 channels, 4x4 for a 128 px input.
    return to_keras(name, value, (D_CHANNELS[-1], 4, 4) if name == "linear1.weight" else None)


@pytest.fixture(scope="module")
def trained():
    with np.load(FIXTURE) as data:
        ref = dict(data)
    init = {k[len("init/g/") :]: v for k, v in ref.items() if k.startswith("init/g/")}
    generator = rrdbnet_from_state(init, 4, 2, NUM_BLOCK)
    discriminator = VGGDiscriminator(D_CHANNELS, (100,))
    discriminator.build((None, 128, 128, 3))
    for var, name in _pairs(_d_layers(discriminator)):
        var.assign(_to_keras(name, ref[f"init/d/{name}"]))
    # The VGG19 cut in torchvision's layout, loaded as torchvision's own VGG19 file would be.
    perceptual = PerceptualLoss(
        "vgg19", LAYER_WEIGHTS, "l1", True, False, weights=str(VGG), input_norm="torchvision"
    )
    model = ESRGAN(generator, discriminator, perceptual, net_d_init_iters=1)
    optim = SROptimConfig(learning_rate=1e-4, beta_1=0.9, beta_2=0.99, milestones=(1000,))
    g_opt, d_opt = (make_optimizer(optim, model.lr_scale) for _ in range(2))
    model.compile(g_opt, d_opt)
    step_fn = model.train_step  # eager: tracing the step would take longer than running it
    layers = {"g": (_g_layers(generator), g_opt), "d": (_d_layers(discriminator), d_opt)}
    steps = []
    for step in range(1, STEPS + 1):
        gt = _nhwc(ref[f"step{step}/gt"].astype(np.float32) / 255.0)
        lq = _nhwc(ref[f"step{step}/lq"])
        for metric in model.metrics:
            metric.reset_state()
        logs = {k: float(v) for k, v in step_fn((tf.constant(lq), tf.constant(gt))).items()}
        state = {}
        for tag, (net_layers, optimizer) in layers.items():
            for var, name in _pairs(net_layers):
                state[f"{tag}/{name}"] = var.numpy()
                if var.trainable:
                    i = optimizer._get_variable_index(var)
                    state[f"{tag}/exp_avg/{name}"] = optimizer._momentums[i].numpy()
                    state[f"{tag}/exp_avg_sq/{name}"] = optimizer._velocities[i].numpy()
        steps.append({"logs": logs, "state": state})
    return ref, steps


def _noise_floor(ref) -> dict[str, float]:
    """The reference's own float32 error per tensor name, the largest over the steps."""
    floor = {}
    for key, value in zip(ref["noise_keys"], ref["noise"], strict=True):
        name = str(key).partition("/")[2]
        floor[name] = max(floor.get(name, 0.0), float(value))
    return floor


def _difference(ours, expected) -> float:
    # Relative to the tensor's scale: a weight near zero has no meaningful relative error.
    # (All-zero tensors, the generator's initial biases, must stay exactly zero.)
    scale = np.max(np.abs(expected))
    return float(np.max(np.abs(ours - expected)) / (scale if scale > 0 else 1.0))


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_loss_terms_match_esrganmodel(trained, step):
    ref, steps = trained
    logs = steps[step - 1]["logs"]
    p = f"step{step}"
    d_loss = float(ref[f"{p}/l_d_real"] + ref[f"{p}/l_d_fake"])
    assert logs["d_loss"] == pytest.approx(d_loss, rel=RTOL)
    assert logs["d_real_loss"] == pytest.approx(float(ref[f"{p}/l_d_real"]), rel=RTOL)
    assert logs["d_fake_loss"] == pytest.approx(float(ref[f"{p}/l_d_fake"]), rel=RTOL)
    # The discriminator's own calls: (sr, gt, sr) at the end of `d_calls`.
    calls = ref[f"{p}/d_calls"]
    assert float(np.mean(calls[-2])) == pytest.approx(float(ref[f"{p}/out_d_real"]), rel=1e-6)
    d_real, d_fake = (float(v) for v in realness(calls[-2], calls[-1], "relativistic"))
    assert logs["d_real"] == pytest.approx(d_real, rel=RTOL)
    assert logs["d_fake"] == pytest.approx(d_fake, rel=RTOL)
    if step == 1:  # the discriminator's warm-up step: no generator update, no generator loss
        assert len(calls) == 3 and f"{p}/l_g_pix" not in ref
        assert logs["g_loss"] == 0.0
        return
    assert len(calls) == 5
    weighted = {
        "pixel_loss": (ref[f"{p}/l_g_pix"], 1e-2),
        "perceptual_loss": (ref[f"{p}/l_g_percep"], 1.0),
        "adversarial_loss": (ref[f"{p}/l_g_gan"], 5e-3),
    }
    for key, (value, weight) in weighted.items():
        assert logs[key] == pytest.approx(float(value) / weight, rel=RTOL), key
    total = sum(float(v) for v, _ in weighted.values())
    assert logs["g_loss"] == pytest.approx(total, rel=RTOL)


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_weights_moments_and_bn_statistics_match_esrganmodel(trained, step):
    ref, steps = trained
    state = steps[step - 1]["state"]
    compared = 0
    floor = _noise_floor(ref)
    for key, ours in state.items():
        tag, _, name = key.partition("/")
        ref_key = f"step{step}/{key}"
        if ref_key not in ref:  # the generator has no moments before its first update
            assert tag == "g" and step == 1 and "exp_avg" in key and not np.any(ours), key
            continue
        expected = _to_keras(name.rpartition("/")[2], ref[ref_key])
        # Batch-norm running statistics come from forward values only: no widening.
        noisy = "running_" not in key
        tolerance = max(RTOL, NOISE_FACTOR * floor[key]) if noisy else RTOL
        difference = _difference(ours, expected)
        assert difference <= tolerance, f"{ref_key}: {difference:.2e} > {tolerance:.2e}"
        compared += 1
    assert compared > 150

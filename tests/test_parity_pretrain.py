"""Pretraining (ESRGAN's PSNR stage) against BasicSR's SRModel, step for step.

tests/fixtures/parity_pretrain.npz holds what three steps of BasicSR's `SRModel` did to a tiny
RRDBNet (L1, Adam(2e-4, betas 0.9 / 0.99), MultiStepLR with a milestone at step 2): the
initial weights, the batches, and after each step the loss, the learning rate, the weights
and Adam's moments. kerasr loads the same weights, takes the same three steps and must
agree within 1e-5 (relative, float32 on the CPU).
"""

from pathlib import Path

import numpy as np
import pytest
from parity.convert import hwio_to_oihw, keras_to_rrdbnet, rrdbnet_conv_names, rrdbnet_from_state

from kerasr.config.sr import SROptimConfig
from kerasr.training.optimizers import current_learning_rate, make_optimizer
from kerasr.training.pretrain import SRModel
from kerasr.weights.ncnn import conv_layers

FIXTURE = Path(__file__).parent / "fixtures" / "parity_pretrain.npz"
NUM_BLOCK = 1
STEPS = 3
RTOL = 1e-5


def _nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


@pytest.fixture(scope="module")
def trained():
    with np.load(FIXTURE) as data:
        ref = dict(data)
    init = {k[len("init/") :]: v for k, v in ref.items() if k.startswith("init/")}
    generator = rrdbnet_from_state(init, 8, 4, NUM_BLOCK)
    convs = conv_layers(generator)
    model = SRModel(generator, pixel="l1")
    optim = SROptimConfig(learning_rate=2e-4, beta_1=0.9, beta_2=0.99, milestones=(2,))
    optimizer = make_optimizer(optim, model.lr_scale)
    model.compile(optimizer)
    index = {id(v): i for i, v in enumerate(generator.trainable_variables)}
    steps = []
    for step in range(1, STEPS + 1):
        lq, gt = _nhwc(ref[f"step{step}/lq"]), _nhwc(ref[f"step{step}/gt"])
        lr = current_learning_rate(optimizer)
        logs = model.train_step((lq, gt))
        weights = keras_to_rrdbnet([layer.get_weights() for layer in convs], NUM_BLOCK)
        moments = {}
        for layer, name in zip(convs, rrdbnet_conv_names(NUM_BLOCK), strict=True):
            for var, suffix in ((layer.kernel, "weight"), (layer.bias, "bias")):
                i = index[id(var)]
                m = optimizer._momentums[i].numpy()
                v = optimizer._velocities[i].numpy()
                if suffix == "weight":
                    m, v = hwio_to_oihw(m), hwio_to_oihw(v)
                moments[f"{name}.{suffix}"] = (m, v)
        steps.append(
            {"lr": lr, "loss": float(logs["last_g_loss"]), "weights": weights, "moments": moments}
        )
    return ref, steps


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_learning_rate_and_l1_loss_match_srmodel(trained, step):
    ref, steps = trained
    ours = steps[step - 1]
    assert ours["lr"] == pytest.approx(float(ref[f"step{step}/lr"]), rel=1e-7)
    assert ours["loss"] == pytest.approx(float(ref[f"step{step}/l_pix"]), rel=RTOL)


def _assert_close(ours, expected, name):
    # Relative to the tensor's scale: a weight near zero has no meaningful relative error.
    scale = np.max(np.abs(expected))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=RTOL * scale, err_msg=name)


@pytest.mark.parametrize("step", range(1, STEPS + 1))
def test_weights_and_adam_moments_match_srmodel(trained, step):
    ref, steps = trained
    ours = steps[step - 1]
    for name, value in ours["weights"].items():
        _assert_close(value, ref[f"step{step}/{name}"], name)
    for name, (m, v) in ours["moments"].items():
        _assert_close(m, ref[f"step{step}/exp_avg/{name}"], f"exp_avg {name}")
        _assert_close(v, ref[f"step{step}/exp_avg_sq/{name}"], f"exp_avg_sq {name}")

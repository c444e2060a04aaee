"""Three steps of Real-ESRGAN 0.3.0's RealESRGANModel (the GAN stage of x4plus), tiny networks.

`RealESRGANModel.optimize_parameters` as it is, with its x4plus switches (`l1_gt_usm`,
`percep_gt_usm` on, `gan_gt_usm` off): a tiny RRDBNet, a `UNetDiscriminatorSN` with few
features (spectral norm: its `weight_u` / `weight_v` buffers are part of the state), L1
weight 1, BasicSR's `PerceptualLoss` on a shallow VGG19 cut (conv1_1 0.1 and conv1_2 1,
before ReLU, torchvision's input normalisation), `GANLoss('vanilla')` weight 0.1, EMA 0.999,
Adam(1e-4, betas 0.9 / 0.99) for both networks. The degraded LR and the GT are fed directly
(the on-GPU degradation is compared op by op in ref_degradations.py); the USM-sharpened GT is
made by Real-ESRGAN's own `USMSharp`, as its `feed_data` does.

No network: torchvision's VGG19 constructor is replaced by one whose `features` hold seeded
random weights (rounded to float16, stored in the fixture as such).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from ref_pretrain import basicsr_options, gan_options
from torch import nn

G_ARCH = {"num_feat": 4, "num_block": 1, "num_grow_ch": 2}
D_FEATURES = 2
# Two layers with their own weights, both before the first max-pool: at a pool, SR features
# that tie within float32 rounding send the gradient to whichever one each framework's
# convolution rounds up, which moves the perceptual gradient by percents at that pixel.
LAYER_WEIGHTS = {"conv1_1": 0.1, "conv1_2": 1.0}
# torchvision's VGG19 `features` up to conv1_2: conv, relu, conv.
VGG_CONVS = {"0": (3, 64), "2": (64, 64)}
LEARNING_RATE = 1e-4
EMA_DECAY = 0.999
STEPS = 3
BATCH, LR_SIZE, SCALE = 2, 8, 4


def _options() -> dict:
    adam = {"type": "Adam", "lr": LEARNING_RATE, "weight_decay": 0, "betas": [0.9, 0.99]}
    train = {
        "ema_decay": EMA_DECAY,
        "optim_g": dict(adam),
        "optim_d": dict(adam),
        "scheduler": {"type": "MultiStepLR", "milestones": [400000], "gamma": 0.5},
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        **gan_options(LAYER_WEIGHTS, 1.0, 0.1),
        "net_d_iters": 1,
        "net_d_init_iters": 0,
    }
    d_net = {"type": "UNetDiscriminatorSN", "num_in_ch": 3, "num_feat": D_FEATURES}
    d_net["skip_connection"] = True
    switches = {"l1_gt_usm": True, "percep_gt_usm": True, "gan_gt_usm": False}
    return basicsr_options(
        "parity_realesrgan", "RealESRGANModel", G_ARCH, train, network_d=d_net, **switches
    )


def _vgg_weights() -> dict[str, np.ndarray]:
    """He-initialised VGG19 convolutions (so features neither vanish nor explode), float16."""
    rng = np.random.default_rng(7)
    out = {}
    for index, (cin, cout) in VGG_CONVS.items():
        std = np.sqrt(2.0 / (cin * 9))
        out[f"{index}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float16)
        out[f"{index}.bias"] = (rng.standard_normal(cout) * 0.05).astype(np.float16)
    return out


class _StubVGG(nn.Module):
    """What `torchvision.models.vgg19(pretrained=True)` gives VGGFeatureExtractor, cut at
    conv1_2, with the fixture's weights instead of downloaded ones."""

    def __init__(self, weights):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(64, 64, 3, padding=1)]
        self.features = nn.Sequential(*layers)
        self.features.load_state_dict(
            {k: torch.from_numpy(v.astype(np.float32)) for k, v in weights.items()}
        )


def _state(net) -> dict:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _moments(optimizer, net, prefix: str, out: dict) -> None:
    for name, p in net.named_parameters():
        out[f"{prefix}/exp_avg/{name}"] = optimizer.state[p]["exp_avg"].numpy().copy()
        out[f"{prefix}/exp_avg_sq/{name}"] = optimizer.state[p]["exp_avg_sq"].numpy().copy()


def _batches(photo: np.ndarray):
    """GT crops of the photo and LR inputs: box-downscaled, dimmed and noisy, not rounded or
    clipped, so that no two LR neighbourhoods are equal. (Equal ones give the VGG max-pool
    exact ties, which each framework breaks by its own rounding: the perceptual gradient
    then differs by percents at those pixels.)"""
    rng = np.random.default_rng(3)
    size = LR_SIZE * SCALE
    for _ in range(STEPS):
        ys = rng.integers(0, photo.shape[0] - size, BATCH)
        xs = rng.integers(0, photo.shape[1] - size, BATCH)
        gt = np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs, strict=True)])
        gt = np.ascontiguousarray(gt.transpose(0, 3, 1, 2), np.float32)
        lq = gt.reshape(BATCH, 3, LR_SIZE, SCALE, LR_SIZE, SCALE).mean(axis=(3, 5))
        lq = (0.05 + 0.9 * lq + rng.normal(0, 0.02, lq.shape)).astype(np.float32)
        yield lq, gt


def realesrgan(photo: np.ndarray) -> dict:
    from basicsr.archs import vgg_arch
    from basicsr.utils import USMSharp
    from realesrgan.models.realesrgan_model import RealESRGANModel

    logging.getLogger("basicsr").setLevel(logging.WARNING)
    vgg = _vgg_weights()
    original = vgg_arch.vgg.vgg19
    vgg_arch.vgg.vgg19 = lambda **_: _StubVGG(vgg)
    try:
        torch.manual_seed(0)
        # RealESRGANModel.__init__ moves its JPEG simulator and sharpener to CUDA; the GAN
        # step needs neither (the batches are fed degraded), so SRGANModel builds everything
        # else (networks, losses, optimizers, EMA) and the sharpener is made on the CPU.
        model = RealESRGANModel.__new__(RealESRGANModel)
        super(RealESRGANModel, model).__init__(_options())
        model.usm_sharpener = USMSharp()
    finally:
        vgg_arch.vgg.vgg19 = original
    with torch.no_grad():
        # Without BasicSR's init scale of 0.1 inside the dense blocks: at that scale their
        # gradients are near Adam's epsilon after the perceptual and GAN terms, and float32
        # rounding alone (the reference run in float64 agrees no better) moves the first
        # update by percents.
        for name, p in model.net_g.named_parameters():
            if name.startswith("body.") and name.endswith(".weight"):
                p.mul_(10.0)
        model.model_ema(0)
        # A discriminator that starts out calling everything real: at logits near 0 the real
        # and fake halves of its output bias gradient cancel, and float32 keeps only a few
        # digits of the difference.
        model.net_d.conv9.bias.fill_(1.0)
    out = {f"vgg/{k}": v for k, v in vgg.items()}
    out.update({f"init/g/{k}": v for k, v in _state(model.net_g).items()})
    out.update({f"init/d/{k}": v for k, v in _state(model.net_d).items()})
    for step, (lq, gt) in enumerate(_batches(photo), start=1):
        model.lq, model.gt = torch.from_numpy(lq), torch.from_numpy(gt)
        model.gt_usm = model.usm_sharpener(model.gt)
        model.optimize_parameters(step)
        out[f"step{step}/lq"] = lq
        out[f"step{step}/gt"] = gt
        out[f"step{step}/gt_usm"] = model.gt_usm.numpy().copy()
        for key in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake"):
            out[f"step{step}/{key}"] = np.float64(model.log_dict[key])
        out.update({f"step{step}/g/{k}": v for k, v in _state(model.net_g).items()})
        out.update({f"step{step}/d/{k}": v for k, v in _state(model.net_d).items()})
        out.update({f"step{step}/ema/{k}": v for k, v in _state(model.net_g_ema).items()})
        _moments(model.optimizer_g, model.net_g, f"step{step}/g", out)
        _moments(model.optimizer_d, model.net_d, f"step{step}/d", out)
    return out

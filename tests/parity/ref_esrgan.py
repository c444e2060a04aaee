"""Three steps of BasicSR's ESRGANModel (ESRGAN's GAN stage) on tiny networks.

A 1-block RRDBNet, BasicSR's VGG-style discriminator at its smallest (128 px input, one base
feature), the perceptual loss on a shallow VGG19 cut (conv1_2 and conv2_1, before ReLU, L1,
ImageNet input normalisation), the relativistic average GAN (`GANLoss('vanilla')` on
relative logits), pixel L1 1e-2, GAN 5e-3, Adam(1e-4, betas 0.9 / 0.99) for both networks.
The discriminator warms up for one step (`net_d_init_iters = 1`): step 1 trains only D.

BasicSR's VGG feature extractor downloads torchvision's ImageNet weights; there is no network
here, so it gets seeded random weights instead (rounded to float16, so the fixture stores
them in half the bytes and both sides use the same float32 values). They are written as a
torchvision-layout state dict, `tests/fixtures/parity_esrgan_vgg19.pth`, which kerasr loads
the way it loads torchvision's own VGG19 file.
"""

from __future__ import annotations

import logging
import types

import numpy as np
import torch
from ref_pretrain import basicsr_options, gan_options

G_ARCH = {"num_feat": 4, "num_block": 1, "num_grow_ch": 2}
D_ARCH = {"num_in_ch": 3, "num_feat": 1, "input_size": 128}
LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_1": 1.0}
# Index of each convolution of the cut in torchvision's `vgg19().features`.
VGG_CONVS = {"conv1_1": 0, "conv1_2": 2, "conv2_1": 5}
PIXEL_WEIGHT, PERCEPTUAL_WEIGHT, GAN_WEIGHT = 1e-2, 1.0, 5e-3
LEARNING_RATE = 1e-4
NET_D_ITERS, NET_D_INIT_ITERS = 1, 1
STEPS = 3
BATCH, SCALE, GT_SIZE = 2, 4, 128


def _options() -> dict:
    adam = {"type": "Adam", "lr": LEARNING_RATE, "weight_decay": 0, "betas": [0.9, 0.99]}
    train = {
        "ema_decay": 0,
        "optim_g": dict(adam),
        "optim_d": dict(adam),
        "scheduler": {"type": "MultiStepLR", "milestones": [1000], "gamma": 0.5},
        "pixel_opt": {"type": "L1Loss", "loss_weight": PIXEL_WEIGHT, "reduction": "mean"},
        **gan_options(LAYER_WEIGHTS, PERCEPTUAL_WEIGHT, GAN_WEIGHT),
        "net_d_iters": NET_D_ITERS,
        "net_d_init_iters": NET_D_INIT_ITERS,
    }
    d_net = {"type": "VGGStyleDiscriminator", **D_ARCH}
    return basicsr_options("parity_esrgan", "ESRGANModel", G_ARCH, train, network_d=d_net)


def vgg_cut_weights() -> dict[str, np.ndarray]:
    """He-initialised convolutions of the cut, as float16: `{conv1_1.weight: OIHW, ...}`."""
    rng = np.random.default_rng(7)
    shapes = {"conv1_1": (64, 3), "conv1_2": (64, 64), "conv2_1": (128, 64)}
    out = {}
    for name, (cout, cin) in shapes.items():
        std = np.sqrt(2.0 / (9 * cin))
        out[f"{name}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float16)
        out[f"{name}.bias"] = (rng.standard_normal(cout) * 0.05).astype(np.float16)
    return out


def write_vgg_cut(path) -> None:
    """The seeded VGG19 cut as torchvision's `vgg19().features` state dict (float16)."""
    state = {
        f"features.{index}.{kind}": torch.from_numpy(vgg_cut_weights()[f"{name}.{kind}"])
        for name, index in VGG_CONVS.items()
        for kind in ("weight", "bias")
    }
    torch.save(state, path)


def _patch_vgg(weights: dict[str, np.ndarray]) -> None:
    """Makes BasicSR's VGGFeatureExtractor build torchvision's VGG19 layers with `weights`
    instead of downloading the ImageNet ones."""
    from basicsr.archs import vgg_arch
    from torchvision.models.vgg import cfgs, make_layers

    def vgg19(pretrained=False, **kwargs):
        features = make_layers(cfgs["E"])
        with torch.no_grad():
            for name, index in VGG_CONVS.items():
                features[index].weight.copy_(
                    torch.from_numpy(weights[f"{name}.weight"].astype(np.float32))
                )
                features[index].bias.copy_(
                    torch.from_numpy(weights[f"{name}.bias"].astype(np.float32))
                )
        return types.SimpleNamespace(features=features)

    vgg_arch.vgg = types.SimpleNamespace(vgg19=vgg19)


def _batches(photo: np.ndarray) -> list[np.ndarray]:
    """Per step, two 128x128 crops of the photo, uint8 NCHW (exact in float32 / 255)."""
    rng = np.random.default_rng(3)
    h, w, _ = photo.shape
    out = []
    for _ in range(STEPS):
        crops = []
        for _ in range(BATCH):
            y, x = rng.integers(0, h - GT_SIZE + 1), rng.integers(0, w - GT_SIZE + 1)
            crops.append(photo[y : y + GT_SIZE, x : x + GT_SIZE].transpose(2, 0, 1))
        out.append(np.round(np.stack(crops) * 255).astype(np.uint8))
    return out


def _lq(gt: np.ndarray) -> np.ndarray:
    n, c, h, w = gt.shape
    return gt.reshape(n, c, h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(3, 5))


def _state(net) -> dict[str, np.ndarray]:
    return {
        k: v.detach().numpy().copy()
        for k, v in net.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }


def esrgan(photo: np.ndarray) -> dict:
    """The fixture: the float32 run, and for each of its step tensors the float32 run's own
    error (`noise_keys`, `noise`): its largest difference from the same run in float64,
    relative to its largest value. Where a gradient nearly cancels (the relativistic loss
    does not see the discriminator's last bias; a one-channel batch norm's gain; L1's sign
    where SR and GT pixels nearly agree), float32 rounding alone moves the result by more
    than 1e-5, in BasicSR as in kerasr."""
    out = _run(photo, torch.float32)
    exact = _run(photo, torch.float64)
    keys, noise = [], []
    for key, value in out.items():
        if key.startswith("step") and value.dtype.kind == "f" and not key.endswith("/lq"):
            truth = exact[key]
            scale = max(float(np.max(np.abs(truth))), 1e-30)
            keys.append(key)
            noise.append(np.max(np.abs(value - truth)) / scale)
    out["noise_keys"] = np.array(keys)
    out["noise"] = np.array(noise, np.float32)
    return out


def _run(photo: np.ndarray, dtype) -> dict:
    from basicsr.models.esrgan_model import ESRGANModel

    logging.getLogger("basicsr").setLevel(logging.WARNING)
    vgg = vgg_cut_weights()
    _patch_vgg(vgg)
    torch.manual_seed(0)
    model = ESRGANModel(_options())
    # Converted in place, before any step: the optimizers keep the same parameters.
    for module in (model.net_g, model.net_d, model.cri_pix, model.cri_perceptual, model.cri_gan):
        module.to(dtype)
    out = {f"init/g/{k}": v for k, v in _state(model.net_g).items()}
    out.update({f"init/d/{k}": v for k, v in _state(model.net_d).items()})
    # Every discriminator call's logits, in order: (gt, sr) for the generator when it
    # trains, then (sr, gt, sr) for the discriminator.
    calls = []
    model.net_d.register_forward_hook(lambda m, i, o: calls.append(o.detach().numpy().copy()))
    for step, gt8 in enumerate(_batches(photo), start=1):
        gt = gt8.astype(np.float32) / 255.0
        lq = _lq(gt)
        calls.clear()
        model.update_learning_rate(step, warmup_iter=-1)
        batch = {"lq": torch.from_numpy(lq).to(dtype), "gt": torch.from_numpy(gt).to(dtype)}
        model.feed_data(batch)
        model.optimize_parameters(step)
        p = f"step{step}"
        out[f"{p}/gt"] = gt8
        out[f"{p}/lq"] = lq
        out[f"{p}/d_calls"] = np.stack(calls)
        for key, value in model.log_dict.items():
            out[f"{p}/{key}"] = np.float64(value)
        for net, optimizer, tag in (
            (model.net_g, model.optimizer_g, "g"),
            (model.net_d, model.optimizer_d, "d"),
        ):
            out.update({f"{p}/{tag}/{k}": v for k, v in _state(net).items()})
            for name, param in net.named_parameters():
                state = optimizer.state.get(param)
                if state:  # the generator has no moments before its first update
                    out[f"{p}/{tag}/exp_avg/{name}"] = state["exp_avg"].numpy().copy()
                    out[f"{p}/{tag}/exp_avg_sq/{name}"] = state["exp_avg_sq"].numpy().copy()
    return out

"""The BasicSR side of `bench/train.py --peer`: BasicSR's own training steps, timed on request.

Runs in the reference environment (PyTorch, BasicSR 1.4.2, Real-ESRGAN 0.3.0; see
tests/parity/README.md), started by `bench/train.py` as

    $KERASR_PARITY_VENV/bin/python bench/peer_basicsr.py

and driven over stdin / stdout, one JSON object per line:

    {"cmd": "build", "row": "pretrain demo", "spec": {...}}   -> {"ok": true, ...}
    {"cmd": "time", "row": "pretrain demo", "steps": 20}      -> {"seconds": 1.9}
    {"cmd": "quit"}

Each row is one of BasicSR's model classes, set up from an options dict as BasicSR's
`train.py` sets it up: `SRModel` (PSNR pretraining), `ESRGANModel` (relativistic GAN,
VGG-style discriminator) or Real-ESRGAN's `RealESRGANModel` (vanilla GAN, U-Net
discriminator with spectral norm, EMA). A step is what BasicSR's training loop does per
iteration once a batch is loaded: `update_learning_rate` then `optimize_parameters`, which
ends with `reduce_loss_dict` (a `.item()` per loss, so every step waits for its result, as
kerasr's step-end callbacks do). The batch is fed once, outside the timing, as kerasr's side
gets its batch from memory; `RealESRGANModel.feed_data` in paired mode USM-sharpens the GT
there, which kerasr's data pipeline does.

Two departures from BasicSR's stock setup, neither of which changes a step's cost:
- no network: the perceptual VGG gets random weights of the same shapes (BasicSR would
  download ImageNet weights; speed does not depend on the values);
- the VGG-style discriminator has kerasr's configured channel list (BasicSR's
  `VGGStyleDiscriminator` is fixed to ten convolutions on 128 or 256 px patches): the same
  layers as BasicSR's class (Conv2d, BatchNorm2d, LeakyReLU 0.2, Linear), registered as an
  architecture and built through `build_network` like any other.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import types

import torch
from torch import nn


def _register_vgg_channels():
    from basicsr.utils.registry import ARCH_REGISTRY

    if "VGGStyleChannels" in ARCH_REGISTRY:
        return

    @ARCH_REGISTRY.register()
    class VGGStyleChannels(nn.Module):
        """BasicSR's VGGStyleDiscriminator with a channel list: an entry equal to the one
        before it is a 4x4 stride-2 convolution, the others 3x3; batch norm on all but the
        first; two linear layers to one logit."""

        def __init__(self, num_in_ch=3, channels=(64, 64), fc=(100,), input_size=128):
            super().__init__()
            layers, previous, size = [], num_in_ch, input_size
            for i, ch in enumerate(channels):
                down = i > 0 and ch == channels[i - 1]
                layers.append(
                    nn.Conv2d(previous, ch, 4 if down else 3, 2 if down else 1, 1, bias=i == 0)
                )
                if i:
                    layers.append(nn.BatchNorm2d(ch, affine=True))
                layers.append(nn.LeakyReLU(negative_slope=0.2, inplace=True))
                previous, size = ch, size // 2 if down else size
            self.features = nn.Sequential(*layers)
            head, units = [], previous * size * size
            for f in fc:
                head += [nn.Linear(units, f), nn.LeakyReLU(negative_slope=0.2, inplace=True)]
                units = f
            head.append(nn.Linear(units, 1))
            self.head = nn.Sequential(*head)

        def forward(self, x):
            return self.head(self.features(x).flatten(1))


def _random_vgg():
    """BasicSR's VGGFeatureExtractor asks torchvision for ImageNet weights (a download):
    give it the same network with random weights instead."""
    import torchvision
    from basicsr.archs import vgg_arch

    def factory(name):
        return lambda pretrained=False: getattr(torchvision.models, name)(weights=None)

    vgg_arch.vgg = types.SimpleNamespace(
        vgg19=factory("vgg19"), vgg16=factory("vgg16"), vgg19_bn=factory("vgg19_bn")
    )


PIXEL = {"l1": "L1Loss", "l2": "MSELoss", "charbonnier": "CharbonnierLoss"}


def _options(spec: dict) -> dict:
    g = spec["generator"]
    optim = {
        k: {"type": "Adam", "lr": o["lr"], "weight_decay": 0, "betas": o["betas"]}
        for k, o in (("optim_g", spec["optim_g"]), ("optim_d", spec.get("optim_d")))
        if o is not None
    }
    train = {
        "ema_decay": spec["ema_decay"],
        **optim,
        "scheduler": {"type": "MultiStepLR", "milestones": spec["milestones"], "gamma": 0.5},
        "total_iter": 10**9,
        "warmup_iter": -1,
        "pixel_opt": {
            "type": PIXEL[spec["pixel"]],
            "loss_weight": spec["pixel_weight"],
            "reduction": "mean",
        },
    }
    opt = {
        "name": "bench",
        "scale": g["scale"],
        "num_gpu": 0,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "is_train": True,
        "network_g": {
            "type": "RRDBNet",
            "num_in_ch": 3,
            "num_out_ch": 3,
            "scale": g["scale"],
            "num_feat": g["num_feat"],
            "num_block": g["num_block"],
            "num_grow_ch": g["num_grow_ch"],
        },
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": train,
        "val": None,
        "logger": {"print_freq": 1, "save_checkpoint_freq": 10**9, "use_tb_logger": False},
    }
    if spec["stage"] == "pretrain":
        opt["model_type"] = "SRModel"
        return opt
    d = spec["discriminator"]
    if d["kind"] == "unet":
        opt["network_d"] = {
            "type": "UNetDiscriminatorSN",
            "num_in_ch": 3,
            "num_feat": d["features"],
        }
    else:
        opt["network_d"] = {
            "type": "VGGStyleChannels",
            "num_in_ch": 3,
            "channels": d["channels"],
            "fc": d["fc"],
            "input_size": spec["patch"],
        }
    p = spec["perceptual"]
    if p is not None:
        train["perceptual_opt"] = {
            "type": "PerceptualLoss",
            "layer_weights": p["layer_weights"],
            "vgg_type": p["vgg_type"],
            "use_input_norm": p["normalize_input"],
            "range_norm": False,
            "perceptual_weight": p["weight"],
            "style_weight": 0,
            "criterion": p["criterion"],
        }
    train["gan_opt"] = {
        "type": "GANLoss",
        "gan_type": "vanilla",
        "real_label_val": 1.0,
        "fake_label_val": 0.0,
        "loss_weight": spec["gan_weight"],
    }
    train["net_d_iters"], train["net_d_init_iters"] = 1, 0
    if spec["gan_type"] == "relativistic":
        opt["model_type"] = "ESRGANModel"
    else:
        # Real-ESRGAN x4plus: L1 and perceptual losses on the USM-sharpened GT, the
        # discriminator on the plain one.
        opt["model_type"] = "RealESRGANModel"
        opt.update(high_order_degradation=False, l1_gt_usm=True, percep_gt_usm=True)
        opt["gan_gt_usm"] = False
    return opt


def build(spec: dict):
    from basicsr.models import build_model

    _register_vgg_channels()
    _random_vgg()
    import realesrgan.models.realesrgan_model  # noqa: F401  (registers RealESRGANModel)

    torch.manual_seed(0)
    # RealESRGANModel moves its JPEG and USM helpers to CUDA in __init__: keep them on the
    # CPU (the helpers are not part of the timed step).
    cuda = nn.Module.cuda
    nn.Module.cuda = lambda self, *a, **k: self
    try:
        model = build_model(_options(spec))
    finally:
        nn.Module.cuda = cuda
    n, s, scale = spec["batch"], spec["patch"], spec["generator"]["scale"]
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(n, 3, s, s, generator=gen)
    lq = torch.nn.functional.avg_pool2d(gt, scale)
    model.feed_data({"lq": lq, "gt": gt})
    return {"model": model, "iter": 0}


def run(state: dict, steps: int) -> float:
    model = state["model"]
    start = time.perf_counter()
    for _ in range(steps):
        state["iter"] += 1
        model.update_learning_rate(state["iter"], warmup_iter=-1)
        model.optimize_parameters(state["iter"])
    return time.perf_counter() - start


def main():
    logging.getLogger("basicsr").setLevel(logging.ERROR)
    rows = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # BasicSR prints; only replies go to the real stdout
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        if cmd == "quit":
            break
        try:
            if cmd == "build":
                rows[request["row"]] = build(request["spec"])
                reply = {"ok": True, "threads": torch.get_num_threads(), "torch": torch.__version__}
            elif cmd == "time":
                reply = {"seconds": run(rows[request["row"]], request["steps"])}
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception as e:  # the bench prints it for the row and carries on
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

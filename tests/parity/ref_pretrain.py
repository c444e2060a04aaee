"""Three steps of BasicSR's SRModel (the PSNR pretraining of ESRGAN) on a tiny RRDBNet.

L1 loss, Adam(2e-4, betas 0.9 / 0.99), MultiStepLR with a milestone inside the three steps
(gamma 0.5), from fixed initial weights and fixed batches, driven the way BasicSR's
training loop drives it: `update_learning_rate(step)`, `feed_data`, `optimize_parameters`.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

# Tiny, but every part of the generator is there: one RRDB (its three dense blocks of five
# convolutions), the body convolution, both x2 upsampling stages and the two output layers.
ARCH = {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}
LEARNING_RATE = 2e-4
MILESTONES = [2]
GAMMA = 0.5
STEPS = 3
BATCH, LR_SIZE, SCALE = 2, 8, 4


def basicsr_options(name: str, model_type: str, g_arch: dict, train: dict, **top) -> dict:
    """BasicSR's options for one model on one CPU process: what every comparison shares
    (scale x4, RRDBNet generator, no validation, no logger), plus its own `train` and
    top-level entries."""
    return {
        "name": name,
        "model_type": model_type,
        "scale": SCALE,
        "num_gpu": 0,
        "dist": False,
        "rank": 0,
        "world_size": 1,
        "is_train": True,
        "network_g": {"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3, "scale": SCALE, **g_arch},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {"total_iter": STEPS, "warmup_iter": -1, **train},
        "val": None,
        "logger": {"print_freq": 1, "save_checkpoint_freq": 1000, "use_tb_logger": False},
        **top,
    }


def gan_options(layer_weights: dict, perceptual_weight: float, gan_weight: float) -> dict:
    """The perceptual (VGG19 before ReLU, L1, ImageNet input normalisation) and vanilla GAN
    loss options of both GAN stages."""
    return {
        "perceptual_opt": {
            "type": "PerceptualLoss",
            "layer_weights": dict(layer_weights),
            "vgg_type": "vgg19",
            "use_input_norm": True,
            "range_norm": False,
            "perceptual_weight": perceptual_weight,
            "style_weight": 0,
            "criterion": "l1",
        },
        "gan_opt": {
            "type": "GANLoss",
            "gan_type": "vanilla",
            "real_label_val": 1.0,
            "fake_label_val": 0.0,
            "loss_weight": gan_weight,
        },
    }


def _options() -> dict:
    adam = {"type": "Adam", "lr": LEARNING_RATE, "weight_decay": 0, "betas": [0.9, 0.99]}
    train = {
        "ema_decay": 0,
        "optim_g": adam,
        "scheduler": {"type": "MultiStepLR", "milestones": MILESTONES, "gamma": GAMMA},
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
    }
    return basicsr_options("parity_pretrain", "SRModel", ARCH, train)


def _weights(net) -> dict:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def pretrain() -> dict:
    from basicsr.models.sr_model import SRModel

    logging.getLogger("basicsr").setLevel(logging.WARNING)
    torch.manual_seed(0)
    model = SRModel(_options())
    out = {f"init/{k}": v for k, v in _weights(model.net_g).items()}
    rng = np.random.default_rng(1)
    for step in range(1, STEPS + 1):
        gt = rng.random((BATCH, 3, LR_SIZE * SCALE, LR_SIZE * SCALE), dtype=np.float32)
        lq = gt.reshape(BATCH, 3, LR_SIZE, SCALE, LR_SIZE, SCALE).mean(axis=(3, 5))
        model.update_learning_rate(step, warmup_iter=-1)
        out[f"step{step}/lr"] = np.float64(model.get_current_learning_rate()[0])
        model.feed_data({"lq": torch.from_numpy(lq), "gt": torch.from_numpy(gt)})
        model.optimize_parameters(step)
        out[f"step{step}/lq"] = lq
        out[f"step{step}/gt"] = gt
        out[f"step{step}/l_pix"] = np.float64(model.log_dict["l_pix"])
        for k, v in _weights(model.net_g).items():
            out[f"step{step}/{k}"] = v
        state = model.optimizer_g.state
        for name, p in model.net_g.named_parameters():
            out[f"step{step}/exp_avg/{name}"] = state[p]["exp_avg"].numpy().copy()
            out[f"step{step}/exp_avg_sq/{name}"] = state[p]["exp_avg_sq"].numpy().copy()
    return out

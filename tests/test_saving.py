"""Every layer of kerasr.layers and kerasr.spectral and every network of kerasr.models through
the saving harness."""

import importlib
import inspect
import pkgutil

import keras
import numpy as np
import pytest
from harness import run_round_trip_test

import kerasr.layers
import kerasr.models
import kerasr.spectral
from kerasr.layers import (
    RRDB,
    DiffAugment,
    PixelShuffle,
    PixelUnshuffle,
    ResidualDenseBlock,
    TorchBatchNorm,
)
from kerasr.models import dcgan
from kerasr.models.discriminators import UNetDiscriminator, VGGDiscriminator
from kerasr.models.efficientnet_lite import EfficientNetLite0, MBConvBlock
from kerasr.models.fastgan import GLU, PixelNorm, build_fastgan_generator
from kerasr.models.inception import ConvBN
from kerasr.models.projected import ProjectedDiscriminator
from kerasr.models.rescaled import Rescaled
from kerasr.models.rrdbnet import RRDBNet
from kerasr.models.srvgg import SRVGGNetCompact
from kerasr.models.vgg import VGGFeatures
from kerasr.spectral import SpectralConv2D, SpectralDense

TINY = {"num_basic_blocks": 1, "rrdb_channels": 8, "growth_channels": 4, "num_dense_blocks": 1}


def _x(*shape):
    return np.random.default_rng(0).uniform(0, 1, shape).astype("float32")


# (id, the class or builder covered, factory, input shape)
CASES = [
    ("PixelUnshuffle", PixelUnshuffle, lambda: PixelUnshuffle(2), (1, 8, 8, 3)),
    ("PixelShuffle", PixelShuffle, lambda: PixelShuffle(2), (1, 4, 4, 12)),
    ("ResidualDenseBlock", ResidualDenseBlock, lambda: ResidualDenseBlock(8, 4), (1, 6, 6, 8)),
    ("RRDB", RRDB, lambda: RRDB(8, 4, 2, 3), (1, 6, 6, 8)),
    (
        "SpectralConv2D",
        SpectralConv2D,
        lambda: SpectralConv2D(4, 3, padding="same", power_iterations=2),
        (1, 6, 6, 3),
    ),
    (
        "SpectralDense",
        SpectralDense,
        lambda: SpectralDense(3, power_iterations=2),
        (2, 5),
    ),
    ("DiffAugment", DiffAugment, lambda: DiffAugment(["color", "cutout"], seed=2), (2, 8, 8, 3)),
    ("TorchBatchNorm", TorchBatchNorm, lambda: TorchBatchNorm(), (2, 4, 4, 3)),
    ("RRDBNet-x4", RRDBNet, lambda: RRDBNet(**TINY), (1, 8, 8, 3)),
    (
        "RRDBNet-x2-subpixel",
        RRDBNet,
        lambda: RRDBNet(scale=2, upsampler="subpixel", residual_scaling=0.1, **TINY),
        (1, 8, 8, 3),
    ),
    ("RRDBNet-x1-grey", RRDBNet, lambda: RRDBNet(scale=1, in_channels=1, **TINY), (1, 8, 8, 1)),
    (
        "SRVGGNetCompact",
        SRVGGNetCompact,
        lambda: SRVGGNetCompact(num_feat=8, num_conv=2),
        (1, 8, 8, 3),
    ),
    (
        "SRVGGNetCompact-x3-leakyrelu-grey",
        SRVGGNetCompact,
        lambda: SRVGGNetCompact(1, 1, num_feat=8, num_conv=1, upscale=3, act_type="leakyrelu"),
        (1, 8, 8, 1),
    ),
    (
        "Rescaled-x2-of-x4",
        Rescaled,
        lambda: Rescaled(SRVGGNetCompact(num_feat=8, num_conv=1), 0.5),
        (1, 8, 8, 3),
    ),
    ("VGGDiscriminator", VGGDiscriminator, lambda: VGGDiscriminator((4, 4), (3,)), (2, 16, 16, 3)),
    ("UNetDiscriminator", UNetDiscriminator, lambda: UNetDiscriminator(4), (1, 16, 16, 3)),
    (
        "UNetDiscriminator-no-sn",
        UNetDiscriminator,
        lambda: UNetDiscriminator(4, spectral_norm=False),
        (1, 16, 16, 3),
    ),
    (
        "VGGFeatures",
        VGGFeatures,
        lambda: VGGFeatures("vgg11", ("conv1_1", "conv2_1")),
        (1, 16, 16, 3),
    ),
    (
        "VGGFeatures-torchvision-norm",
        VGGFeatures,
        lambda: VGGFeatures("vgg11", ("conv1_1",), input_norm="torchvision"),
        (1, 16, 16, 3),
    ),
    ("MBConvBlock", MBConvBlock, lambda: MBConvBlock(8, 8, 3, 1, 6), (1, 8, 8, 8)),
    ("MBConvBlock-stride-2", MBConvBlock, lambda: MBConvBlock(8, 16, 5, 2, 1), (1, 9, 9, 8)),
    (
        "EfficientNetLite0",
        EfficientNetLite0,
        lambda: EfficientNetLite0(num_classes=5),
        (1, 32, 32, 3),
    ),
    (
        "EfficientNetLite0-features",
        EfficientNetLite0,
        lambda: EfficientNetLite0(include_top=False),
        (1, 32, 32, 3),
    ),
    ("ConvBN-same", ConvBN, lambda: ConvBN(4, 3, padding=1), (1, 7, 7, 3)),
    ("ConvBN-padded-stride-2", ConvBN, lambda: ConvBN(4, (1, 3), 2, (0, 1)), (1, 7, 7, 3)),
    ("GLU", GLU, lambda: GLU(), (1, 4, 4, 6)),
    ("PixelNorm", PixelNorm, lambda: PixelNorm(), (2, 8)),
    (
        "fastgan-generator",
        build_fastgan_generator,
        lambda: build_fastgan_generator(64, 8, 1),
        (2, 8),
    ),
    (
        "ProjectedDiscriminator",
        ProjectedDiscriminator,
        lambda: ProjectedDiscriminator(
            image_size=16, feature_size=32, scales=2, projection_channels=4, filters=4
        ),
        (2, 16, 16, 3),
    ),
    ("dcgan-generator", dcgan.build_generator, lambda: dcgan.build_generator(16, 4, 2, 8), (2, 4)),
    (
        "dcgan-discriminator",
        dcgan.build_discriminator,
        lambda: dcgan.build_discriminator(16, 2, 8, spectral_norm=True, batch_norm=True),
        (2, 16, 16, 3),
    ),
]


@pytest.mark.parametrize(("factory", "shape"), [c[2:] for c in CASES], ids=[c[0] for c in CASES])
def test_round_trip(factory, shape, tmp_path):
    keras.utils.set_random_seed(0)
    run_round_trip_test(factory(), _x(*shape), tmp_path)


def _kerasr_objects():
    """The Keras layers and models defined in kerasr.layers and kerasr.models, and the builders
    of functional networks there."""
    modules = [kerasr.layers, kerasr.spectral] + [
        importlib.import_module(f"kerasr.models.{m.name}")
        for m in pkgutil.iter_modules(kerasr.models.__path__)
    ]
    found = set()
    for module in modules:
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            layer = inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)
            if layer or (inspect.isfunction(obj) and name.startswith("build_")):
                found.add(obj)
    return found


def test_every_layer_and_network_goes_through_the_harness():
    found = _kerasr_objects()
    assert {RRDBNet, PixelShuffle, dcgan.build_generator} <= found  # the scan finds them
    covered = {c[1] for c in CASES}
    assert found - covered == set()


@keras.saving.register_keras_serializable(package="kerasr_tests")
class _ForgetsItsFactor(keras.layers.Layer):
    """A layer whose config leaves out a constructor argument: what the harness must catch."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        config = super().get_config()
        config.pop("factor", None)
        return config


def test_the_harness_catches_a_config_that_forgets_an_argument(tmp_path):
    with pytest.raises(AssertionError, match="from_config"):
        run_round_trip_test(_ForgetsItsFactor(3.0), _x(1, 2, 2, 1), tmp_path)

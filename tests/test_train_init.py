"""Fine-tuning starts from a registry model: `train.init = "realesrgan-x4plus-anime"`."""

import pytest

from kerasr.errors import KerasrError
from kerasr.models import RRDBNet
from kerasr.training.train_sr import load_init
from kerasr.weights import REGISTRY, weights_digest


def test_registry_model_initialises_a_generator_of_its_architecture():
    generator = RRDBNet(**REGISTRY["realesrgan-x4plus-anime"].arch)
    generator.build((None, None, None, 3))
    assert weights_digest(generator) != REGISTRY["realesrgan-x4plus-anime"].sha256
    assert load_init(generator, "realesrgan-x4plus-anime") == "realesrgan-x4plus-anime"
    assert weights_digest(generator) == REGISTRY["realesrgan-x4plus-anime"].sha256


def test_registry_model_that_does_not_fit_is_one_clear_error():
    generator = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4)
    generator.build((None, None, None, 3))
    with pytest.raises(KerasrError, match="does not fit the \\[generator\\] config"):
        load_init(generator, "realesrgan-x4plus-anime")

"""The private Keras / TensorFlow APIs kerasr uses are behind a version guard."""

import keras
import numpy as np
import pytest

from kerasr import keras_compat
from kerasr.errors import KerasrError


def test_installed_keras_is_a_tested_version():
    keras_compat.check_keras_version()  # raises on an untested version
    major, minor = (int(p) for p in keras.version().split(".")[:2])
    assert (major, minor) in keras_compat.TESTED_KERAS


@pytest.mark.parametrize("version", ["3.16.0", "3.14.2", "4.0.0", "nightly"])
def test_an_untested_keras_fails_loudly(version):
    with pytest.raises(KerasrError, match=f"this is Keras {version}"):
        keras_compat.check_keras_version(version)


def test_training_on_an_untested_keras_stops_with_a_clear_error(monkeypatch):
    from kerasr.config import SROptimConfig
    from kerasr.models import RRDBNet
    from kerasr.training.optimizers import make_optimizer
    from kerasr.training.pretrain import SRModel

    g = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    g.build((None, None, None, 3))
    model = SRModel(g, ema_decay=0.5)
    model.compile(make_optimizer(SROptimConfig(), model.lr_scale))
    monkeypatch.setattr(keras, "version", lambda: "3.99.0")
    lr = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(KerasrError, match="tested with Keras 3.15"):
        model.train_on_batch(lr, np.zeros((1, 32, 32, 3), np.float32))

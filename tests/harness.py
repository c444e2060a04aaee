"""The one saving check for kerasr's layers and networks, after keras-hub's test harness.

`run_round_trip_test(obj, inputs, tmp_path)` checks that a layer or model survives the three
ways Keras stores it, each giving the same outputs on `inputs` (inference mode):

1. `get_config` -> `from_config`: an object of the same class with an equal config, after the
   config went through JSON as a `.keras` file stores it;
2. `.keras` save and `keras.saving.load_model`: the same class (a layer is saved inside a
   one-layer functional model, as it would be in practice), the same config;
3. `.weights.h5` saved from the object and loaded into a fresh one built from its config.
"""

from __future__ import annotations

import json

import keras
import numpy as np


def _outputs(obj, inputs) -> list[np.ndarray]:
    return [np.asarray(y) for y in keras.tree.flatten(obj(inputs, training=False))]


def _assert_outputs_equal(actual, expected, atol, what):
    assert len(actual) == len(expected), what
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape, what
        np.testing.assert_allclose(a, e, atol=atol, rtol=0, err_msg=what)


def _json(config):
    """The config as a `.keras` file stores it (tuples become lists)."""
    return json.loads(json.dumps(config))


def _fresh(obj, inputs):
    """An object of the same class from `obj`'s config, built by one call on `inputs`."""
    clone = obj.__class__.from_config(_json(obj.get_config()))
    clone(inputs, training=False)
    return clone


def run_round_trip_test(obj, inputs, tmp_path, *, atol=1e-6) -> None:
    """Asserts that `obj` round-trips through its config, a `.keras` file and a `.weights.h5`.

    Args:
        obj: a kerasr layer or model (a subclass or a functional `keras.Model`).
        inputs: a batch `obj` accepts; its outputs (a tensor or a nest) are compared.
        tmp_path: a folder for the saved files.
        atol: tolerance of the output comparison.
    """
    expected = _outputs(obj, inputs)
    config = _json(obj.get_config())
    name = obj.__class__.__name__

    clone = _fresh(obj, inputs)
    assert type(clone) is type(obj), name
    assert _json(clone.get_config()) == config, (
        f"{name}: from_config(get_config()) changed the config"
    )
    clone.set_weights(obj.get_weights())
    _assert_outputs_equal(_outputs(clone, inputs), expected, atol, f"{name}: from_config")

    path = tmp_path / f"{name}.keras"
    if isinstance(obj, keras.Model):
        obj.save(path)
        loaded = keras.saving.load_model(path)
        restored = loaded
    else:
        x = keras.Input(shape=inputs.shape[1:], batch_size=None, dtype=str(inputs.dtype))
        keras.Model(x, obj(x)).save(path)
        loaded = keras.saving.load_model(path)
        (restored,) = [layer for layer in loaded.layers if type(layer) is type(obj)]
    assert type(restored) is type(obj), f"{name}: .keras gave {type(restored).__name__}"
    assert _json(restored.get_config()) == config, f"{name}: .keras changed the config"
    _assert_outputs_equal(_outputs(loaded, inputs), expected, atol, f"{name}: .keras")

    weights = tmp_path / f"{name}.weights.h5"
    if isinstance(obj, keras.Model):
        obj.save_weights(weights)
        other = _fresh(obj, inputs)
        other.load_weights(weights)
    else:
        x = keras.Input(shape=inputs.shape[1:], dtype=str(inputs.dtype))
        keras.Model(x, obj(x)).save_weights(weights)
        other = _fresh(obj, inputs)
        y = keras.Input(shape=inputs.shape[1:], dtype=str(inputs.dtype))
        keras.Model(y, other(y)).load_weights(weights)
    _assert_outputs_equal(_outputs(other, inputs), expected, atol, f"{name}: .weights.h5")

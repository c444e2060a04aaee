"""The inference graph (`kerasr.upscaling.inference_graph`) computes what the Keras networks
compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasr.models import Rescaled, RRDBNet, SRVGGNetCompact
from kerasr.upscaling.inference import Upscaler, with_precision
from kerasr.upscaling.inference_graph import forward_function


def _random_network(kind):
    keras.utils.set_random_seed(1)
    if kind.startswith("rrdb"):
        scale, upsampler = {"rrdb-x4": (4, "nearest"), "rrdb-x2": (2, "subpixel")}.get(
            kind, (1, "nearest")
        )
        network = RRDBNet(
            scale=scale,
            num_basic_blocks=2,
            rrdb_channels=8,
            growth_channels=4,
            num_dense_blocks=2,
            upsampler=upsampler,
        )
    else:
        act_type = kind.split("-")[1]
        network = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4, act_type=act_type)
    network.build((None, None, None, 3))
    # Weights far from their initial values, so that every bias, slope (negative, and over
    # 1 too) and residual scaling shows in the output.
    rng = np.random.default_rng(2)
    network.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in network.weights])
    return network if kind != "srvgg-prelu-x2" else Rescaled(network, 0.5)


KINDS = ["rrdb-x4", "rrdb-x2", "rrdb-x1", "srvgg-prelu", "srvgg-relu", "srvgg-leakyrelu"]


@pytest.mark.parametrize("kind", [*KINDS, "srvgg-prelu-x2"])
def test_float32_graph_matches_the_keras_network(kind):
    network = _random_network(kind)
    x = np.random.default_rng(3).uniform(0, 1, (2, 12, 16, 3)).astype("float32")
    expected = np.asarray(network(x))
    ours = tf.function(forward_function(network))(x).numpy()
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("kind", ["rrdb-x4", "srvgg-prelu"])
def test_bfloat16_graph_computes_in_bfloat16(kind):
    full = _random_network(kind)
    network = with_precision(full, "bfloat16")
    x = np.random.default_rng(3).uniform(0, 1, (1, 12, 16, 3)).astype("float32")
    graph = tf.function(forward_function(network)).get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32)
    )
    ours = graph(tf.constant(x)).numpy()
    convolutions = [op for op in graph.graph.get_operations() if op.type == "Conv2D"]
    assert convolutions and all(op.get_attr("T") == tf.bfloat16 for op in convolutions)

    def error(y):  # relative to the float32 network
        reference = np.asarray(full(x))
        return np.sqrt(np.mean((y - reference) ** 2) / np.mean(reference**2))

    # As close to float32 as the Keras network computing in bfloat16 (the two round at
    # different places, e.g. where the residual scaling is folded into a kernel).
    assert 0 < error(ours) <= 1.5 * error(np.asarray(network(x)))


def test_weights_are_read_once_and_captured_not_embedded():
    network = _random_network("rrdb-x4")
    graph = tf.function(forward_function(network)).get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32)
    )
    operations = graph.graph.get_operations()
    # Read once when traced: no variable reads or weight casts on each call ...
    assert all(op.type != "ReadVariableOp" for op in operations)
    # ... and held by reference: a weight inside the graph as a constant is copied into the
    # graph, the function and the optimised graph (ten times the weights' memory).
    kernels = [w for w in network.weights if len(w.shape) == 4]
    assert len(graph.captured_inputs) >= len(kernels)
    constant_bytes = sum(op.get_attr("value").ByteSize() for op in operations if op.type == "Const")
    assert constant_bytes < 4096


def test_other_models_run_their_own_call(photo):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(inputs))
    model.scale = 2
    assert forward_function(model) is None
    out = Upscaler(model, precision="float32").upscale(photo[:8, :8])
    np.testing.assert_array_equal(out, photo[:8, :8].repeat(2, 0).repeat(2, 1))


def test_upsampling_convolution_folded_to_the_input_resolution():
    """`conv3x3(nearest x2)` as 2x2 convolutions of the four output phases, on odd sizes."""
    from kerasr.layers import upsample_nearest
    from kerasr.upscaling.inference_graph import _upsampled_conv

    rng = np.random.default_rng(4)
    layer = keras.layers.Conv2D(5, 3, padding="same")
    layer.build((None, None, None, 4))
    layer.set_weights([rng.normal(size=(3, 3, 4, 5)), rng.normal(size=5)])
    x = rng.normal(size=(2, 7, 9, 4)).astype("float32")
    expected = tf.nn.leaky_relu(layer(upsample_nearest(x, 2)), 0.2).numpy()
    ours = tf.function(lambda x: _upsampled_conv(layer, tf.float32, x))(x).numpy()
    assert ours.shape == expected.shape == (2, 14, 18, 5)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_the_upscaler_uses_the_graph_in_bfloat16_and_the_keras_call_in_float32(monkeypatch):
    import kerasr.upscaling.inference as inference

    network = _random_network("rrdb-x4")
    seen = []
    monkeypatch.setattr(inference, "forward_function", lambda m: seen.append(m) or None)
    Upscaler(network, precision="float32")
    assert seen == []  # float32 keeps the Keras call, the computation kept against ncnn
    Upscaler(network, precision="bfloat16")
    assert len(seen) == 1 and seen[0].dtype_policy.compute_dtype == "bfloat16"

"""Pixel, perceptual and GAN losses against direct NumPy computations."""

from pathlib import Path

import numpy as np
import pytest

from kerasr import losses
from kerasr.config.sr import PerceptualConfig
from kerasr.errors import KerasrError
from kerasr.models.vgg import VGGFeatures, layer_names
from kerasr.weights.vgg import load_vgg_weights

RNG = np.random.default_rng(0)
A = RNG.random((3, 8, 8, 3), dtype=np.float32)
B = RNG.random((3, 8, 8, 3), dtype=np.float32)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("l1", np.abs(A - B).mean(axis=(1, 2, 3))),
        ("l2", ((A - B) ** 2).mean(axis=(1, 2, 3))),
        ("charbonnier", np.sqrt((A - B) ** 2 + 1e-12).mean(axis=(1, 2, 3))),
    ],
)
def test_pixel_losses_per_sample(kind, expected):
    got = np.asarray(losses.pixel_loss(A, B, kind))
    assert got.shape == (3,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_pixel_loss_rejects_unknown_kind():
    with pytest.raises(KerasrError, match="kind"):
        losses.pixel_loss(A, B, "l3")


def test_relativistic_losses_match_the_paper_formulas():
    real = RNG.normal(size=(4, 1)).astype(np.float32)
    fake = RNG.normal(size=(4, 1)).astype(np.float32)
    d_rf = _sigmoid(real - fake.mean())  # D_Ra(x_r, x_f)
    d_fr = _sigmoid(fake - real.mean())  # D_Ra(x_f, x_r)
    d_expected = 0.5 * (-np.log(d_rf) - np.log(1 - d_fr))[:, 0]
    g_expected = 0.5 * (-np.log(1 - d_rf) - np.log(d_fr))[:, 0]
    np.testing.assert_allclose(losses.relativistic_d_loss(real, fake), d_expected, rtol=1e-5)
    np.testing.assert_allclose(losses.relativistic_g_loss(real, fake), g_expected, rtol=1e-5)
    p_real, p_fake = losses.realness(real, fake, "relativistic")
    np.testing.assert_allclose(
        [float(p_real), float(p_fake)], [d_rf.mean(), d_fr.mean()], rtol=1e-5
    )


def test_detached_relativistic_loss_holds_the_other_sides_mean():
    import tensorflow as tf

    real = tf.constant(RNG.normal(size=(4, 1)).astype(np.float32))
    fake = tf.constant(RNG.normal(size=(4, 1)).astype(np.float32))
    grads = {}
    for detach in (False, True):
        with tf.GradientTape() as tape:
            tape.watch([real, fake])
            loss = tf.reduce_mean(losses.relativistic_d_loss(real, fake, detach=detach))
        grads[detach] = [g.numpy() for g in tape.gradient(loss, [real, fake])]
        values = losses.relativistic_d_loss(real, fake, detach=detach)
        np.testing.assert_allclose(values, losses.relativistic_d_loss(real, fake), rtol=1e-6)
    # BasicSR: d/d real_i of 0.5 * mean(BCE(real - mean(fake), 1)) only.
    n = 4
    expected_real = 0.5 / n * (_sigmoid(real.numpy() - fake.numpy().mean()) - 1)
    np.testing.assert_allclose(grads[True][0], expected_real, rtol=1e-5)
    assert not np.allclose(grads[False][0], grads[True][0])


def test_vanilla_losses_on_per_pixel_logits():
    real = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    fake = RNG.normal(size=(2, 4, 4, 1)).astype(np.float32)
    d_expected = (-np.log(_sigmoid(real)) - np.log(1 - _sigmoid(fake))).mean(axis=(1, 2, 3))
    g_expected = (-np.log(_sigmoid(fake))).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.vanilla_d_loss(real, fake), d_expected, rtol=1e-5)
    np.testing.assert_allclose(losses.vanilla_g_loss(real, fake), g_expected, rtol=1e-5)


def test_gan_losses_by_name_with_hinge_and_label_smoothing():
    real = np.array([[2.0], [0.5]], "float32")
    fake = np.array([[-0.5], [1.0]], "float32")
    d_hinge, g_hinge = losses.gan_losses("hinge")
    # relu(1 - real) + relu(1 + fake), per sample: 0 + 0.5 and 0.5 + 2.
    np.testing.assert_allclose(d_hinge(real, fake), [0.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(g_hinge(real, fake), [0.5, -1.0], rtol=1e-6)
    assert losses.gan_losses("nonsaturating") == losses.gan_losses("vanilla")
    d_smooth, _ = losses.gan_losses("nonsaturating", label_smoothing=0.1)
    # BCE against 0.9 for the real logits: softplus(x) - 0.9 x.
    expected = np.log1p(np.exp(real)) - 0.9 * real + np.log1p(np.exp(fake))
    np.testing.assert_allclose(d_smooth(real, fake), expected[:, 0], rtol=1e-5)
    with pytest.raises(KerasrError, match="GAN loss must be one of"):
        losses.gan_losses("wgan")
    with pytest.raises(KerasrError, match="needs the vanilla GAN loss"):
        losses.gan_losses("hinge", label_smoothing=0.1)


def test_vgg_taps_are_before_the_relu():
    vgg = load_vgg_weights(VGGFeatures("vgg11", ("conv1_1", "conv2_1")), None)
    feats = vgg(A)
    assert feats["conv1_1"].shape == (3, 8, 8, 64)
    assert feats["conv2_1"].shape == (3, 4, 4, 128)
    # Before the ReLU, features are signed; after it they would all be >= 0.
    assert float(np.min(feats["conv2_1"])) < 0 < float(np.max(feats["conv2_1"]))
    assert len(vgg.convs) == 2  # built only up to the deepest requested layer
    assert layer_names("vgg19")[-1] == "conv5_4" and len(layer_names("vgg13")) == 10


def test_perceptual_loss_weights_and_criterion():
    loss = losses.PerceptualLoss("vgg11", {"conv1_1": 0.5, "conv2_1": 2.0}, "l2", weights="none")
    feats_a = loss.vgg(A)
    feats_b = loss.vgg(B)
    expected = sum(
        w * ((np.asarray(feats_b[k]) - np.asarray(feats_a[k])) ** 2).mean(axis=(1, 2, 3))
        for k, w in {"conv1_1": 0.5, "conv2_1": 2.0}.items()
    )
    np.testing.assert_allclose(loss(A, B), expected, rtol=1e-4)
    assert not loss.vgg.trainable_weights
    assert float(np.max(np.abs(np.asarray(loss(A, A))))) < 1e-5


def test_vgg19_weights_from_a_local_keras_file(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    source = keras.applications.VGG19(include_top=False, weights=None)
    path = tmp_path / "vgg19.weights.h5"
    source.save_weights(path)
    vgg = load_vgg_weights(VGGFeatures("vgg19", ("conv3_4",)), str(path))
    np.testing.assert_array_equal(
        vgg.convs[-1].get_weights()[0], source.get_layer("block3_conv4").get_weights()[0]
    )
    # The same features through the Keras model (ReLU fused) and ours (ReLU after the tap).
    x = A * 255.0
    ours = np.maximum(np.asarray(VGGFeatures.call(vgg, A)["conv3_4"]), 0)
    probe = keras.Model(source.input, source.get_layer("block3_conv4").output)
    theirs = np.asarray(probe(x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-2)


def test_vgg_weights_file_errors(tmp_path):
    with pytest.raises(KerasrError, match="not found"):
        load_vgg_weights(VGGFeatures("vgg16", ("conv1_1",)), str(tmp_path / "missing.h5"))


def test_vgg_weights_from_a_torchvision_state_dict():
    # tests/fixtures/parity_esrgan_vgg19.pth: torchvision's `vgg19().features` keys for
    # conv1_1, conv1_2 and conv2_1 (features.0, .2, .5), as the reference wrote them.
    from kerasr.models.vgg import torchvision_index
    from kerasr.weights.torch_pickle import read_state_dict

    path = Path(__file__).parent / "fixtures" / "parity_esrgan_vgg19.pth"
    assert torchvision_index("vgg19")["conv2_1"] == 5
    assert torchvision_index("vgg19")["conv5_4"] == 34  # the last of features[:36]
    vgg = load_vgg_weights(VGGFeatures("vgg19", ("conv2_1",), input_norm="torchvision"), path)
    state = read_state_dict(path)
    kernel = vgg.convs[1].kernel.numpy()  # conv1_2: HWIO
    np.testing.assert_array_equal(kernel, state["features.2.weight"].transpose(2, 3, 1, 0))
    with pytest.raises(KerasrError, match=r"features\.7\.weight is missing"):
        load_vgg_weights(VGGFeatures("vgg19", ("conv2_2",)), path)
    with pytest.raises(KerasrError, match="input_norm"):
        PerceptualConfig(weights=str(path))

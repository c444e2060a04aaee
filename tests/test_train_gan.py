"""The two-optimizer GAN harness base: which step moves which network, losses passed in,
memory support on a GAN run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasr.config import SROptimConfig
from kerasr.errors import KerasrError
from kerasr.losses import gan_losses, pixel_loss
from kerasr.models import RRDBNet
from kerasr.models.discriminators import UNetDiscriminator, VGGDiscriminator
from kerasr.training import esrgan as esrgan_module
from kerasr.training.esrgan import ESRGAN
from kerasr.training.gan import GANHarness
from kerasr.training.optimizers import make_optimizer
from kerasr.training.rollback import MemorySupport

RNG = np.random.default_rng(1)
HR = RNG.random((2, 32, 32, 3), dtype=np.float32)
LR = tf.image.resize(HR, (8, 8), method="area").numpy()


def tiny_esrgan(discriminator, ema=0.0, harness_kwargs=None, **compile_kwargs):
    keras.utils.set_random_seed(0)
    g = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    g.build((None, None, None, 3))
    discriminator.build((None, 32, 32, 3))
    gan = ESRGAN(
        g, discriminator, None, gan_type="relativistic", ema_decay=ema, **(harness_kwargs or {})
    )
    gan.compile(
        make_optimizer(SROptimConfig(1e-3), gan.lr_scale),
        make_optimizer(SROptimConfig(1e-3), gan.lr_scale),
        **compile_kwargs,
    )
    return gan


def _values(network):
    return [w.numpy().copy() for w in network.trainable_weights]


def _changed(before, network):
    return [
        not np.array_equal(a, b.numpy())
        for a, b in zip(before, network.trainable_weights, strict=True)
    ]


@pytest.mark.parametrize(
    "discriminator", [lambda: VGGDiscriminator((4, 4, 8, 8), (8,)), lambda: UNetDiscriminator(4)]
)
def test_generator_step_leaves_d_untouched_and_d_step_leaves_g_untouched(
    discriminator, monkeypatch
):
    gan = tiny_esrgan(discriminator(), run_eagerly=True)
    updates = []
    real_update = GANHarness.update

    def recording_update(optimizer, tape, loss, variables):
        g0, d0 = _values(gan.generator), _values(gan.discriminator)
        real_update(optimizer, tape, loss, variables)
        which = "g" if optimizer is gan.g_optimizer else "d"
        updates.append((which, _changed(g0, gan.generator), _changed(d0, gan.discriminator)))

    monkeypatch.setattr(GANHarness, "update", staticmethod(recording_update))
    gan.train_on_batch(LR, HR)
    assert [u[0] for u in updates] == ["g", "d"]  # BasicSR's order: G first, then D
    (_, g_by_g, d_by_g), (_, g_by_d, d_by_d) = updates
    assert any(g_by_g) and not any(d_by_g), "the generator step moved the discriminator"
    assert any(d_by_d) and not any(g_by_d), "the discriminator step moved the generator"


def test_compile_takes_the_gan_losses():
    gan = tiny_esrgan(VGGDiscriminator((4, 4, 8, 8), (8,)))
    # BasicSR's loss by default: the relativistic one with the other side's mean detached.
    assert gan.d_loss_fn.func is gan_losses("relativistic")[0]
    assert gan.d_loss_fn.keywords == {"detach": True}
    d_loss, g_loss = gan_losses("hinge")
    gan.compile(gan.g_optimizer, gan.d_optimizer, losses=(d_loss, g_loss))
    assert (gan.d_loss_fn, gan.g_loss_fn) == (d_loss, g_loss)
    logs = gan.train_on_batch(LR, HR, return_dict=True)
    assert np.isfinite(logs["d_loss"]) and np.isfinite(logs["adversarial_loss"])


@pytest.mark.parametrize(("detach", "calls"), [(True, [HR, "sr", "sr", HR, "sr"]), (False, None)])
def test_discriminator_calls_follow_basicsr(monkeypatch, detach, calls):
    # BasicSR: the generator step calls D on (gt, sr); the discriminator step on (sr, gt, sr),
    # the first only for the real half's detached mean (and the batch-norm statistics). The
    # 2018 ESRGAN loss (no detach) needs (gt, sr) only.
    gan = tiny_esrgan(
        VGGDiscriminator((4, 4, 8, 8), (8,)), harness_kwargs={"relativistic_detach": detach}
    )
    seen = []
    real_call = VGGDiscriminator.call

    def recording_call(self, images, training=False):
        assert training
        seen.append(np.array_equal(np.asarray(images), HR))
        return real_call(self, images, training=training)

    monkeypatch.setattr(VGGDiscriminator, "call", recording_call)
    gan.train_step((LR, HR))
    expected = calls or [HR, "sr", HR, "sr"]
    assert seen == [c is HR for c in expected]


def test_discriminator_warm_up_leaves_the_generator_alone():
    # BasicSR's net_d_init_iters = 2: steps 1 and 2 train D only, step 3 both.
    gan = tiny_esrgan(VGGDiscriminator((4, 4, 8, 8), (8,)), harness_kwargs={"net_d_init_iters": 2})
    g0 = _values(gan.generator)
    for step in (1, 2):
        logs = gan.train_on_batch(LR, HR, return_dict=True)
        assert not any(_changed(g0, gan.generator)), step
        assert logs["last_g_loss"] == 0.0
    assert int(gan.g_optimizer.iterations.numpy()) == 0
    assert int(gan.d_optimizer.iterations.numpy()) == 2
    gan.train_on_batch(LR, HR)
    assert all(_changed(g0, gan.generator)) and int(gan.g_optimizer.iterations.numpy()) == 1


def test_generator_every_second_step():
    gan = tiny_esrgan(VGGDiscriminator((4, 4, 8, 8), (8,)), harness_kwargs={"net_d_iters": 2})
    counts = []
    for _ in range(4):
        gan.train_on_batch(LR, HR)
        counts.append(int(gan.g_optimizer.iterations.numpy()))
    assert counts == [0, 1, 1, 2]


def test_discriminator_only_steps_are_refused_under_a_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope(), pytest.raises(KerasrError, match="single device"):
        tiny_esrgan(VGGDiscriminator((4, 4), (4,)), harness_kwargs={"net_d_iters": 2})


class PoisonGenerator(keras.callbacks.Callback):
    """NaN generator weights once, at `at_step`."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at_step:
            w = self.model.generator.weights[0]
            w.assign(np.full(w.shape, np.nan, np.float32))


def test_memory_support_with_the_gan_harness_recovers_both_networks_from_nan():
    gan = tiny_esrgan(VGGDiscriminator((4, 4, 8, 8), (8,)), ema=0.5)
    memory = MemorySupport(check_every=1, patience=2, remember_every=1, warmup_checks=3)
    data = tf.data.Dataset.from_tensors((LR, HR)).repeat()
    gan.fit(data, steps_per_epoch=10, epochs=1, verbose=0, callbacks=[PoisonGenerator(6), memory])
    assert [e["reason"] for e in memory.events] == ["non-finite loss"]
    assert memory.events[0]["restored_from"] <= 5
    for network in (gan.generator, gan.ema_generator, gan.discriminator):
        assert all(np.isfinite(w.numpy()).all() for w in network.weights), network.name
    assert all(np.isfinite(v.numpy()).all() for v in gan.g_optimizer.variables)
    assert float(gan.lr_scale.numpy()) == pytest.approx(0.5)
    assert int(gan.step.numpy()) == 10
    # A NaN generator poisons the next discriminator step; both came back, and the
    # discriminator's optimizer still counted every step (the schedule is not replayed).
    assert int(gan.d_optimizer.iterations.numpy()) == 10
    logs = gan.train_on_batch(LR, HR, return_dict=True)
    assert all(np.isfinite(float(v)) for v in logs.values())


def test_realesrgan_switches_pick_the_gt_of_each_loss(monkeypatch):
    # Real-ESRGAN x4plus: L1 (and perceptual) against the sharpened GT, D against the GT
    # itself, and in the generator step D sees the SR batch only (vanilla loss).
    from kerasr.data import usm_sharpen

    keras.utils.set_random_seed(0)
    g = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    g.build((None, None, None, 3))
    d = UNetDiscriminator(4)
    d.build((None, 32, 32, 3))
    gan = ESRGAN(g, d, None, gan_type="vanilla", pixel_weight=1.0, usm=(0.5, 50, 10.0))
    gan.compile(
        make_optimizer(SROptimConfig(1e-3), gan.lr_scale),
        make_optimizer(SROptimConfig(1e-3), gan.lr_scale),
    )
    usm = usm_sharpen(HR, 0.5, 50, 10.0).numpy()
    assert not np.allclose(usm, HR)
    seen, targets = [], []
    real_call = UNetDiscriminator.call

    def recording_call(self, images, training=False):
        images = np.asarray(images)
        seen.append(
            "gt" if np.array_equal(images, HR) else "usm" if np.allclose(images, usm) else "sr"
        )
        return real_call(self, images, training=training)

    def recording_pixel_loss(y_true, y_pred, kind="l1"):
        targets.append(np.asarray(y_true))
        return pixel_loss(y_true, y_pred, kind)

    monkeypatch.setattr(UNetDiscriminator, "call", recording_call)
    monkeypatch.setattr(esrgan_module, "pixel_loss", recording_pixel_loss)
    gan.train_step((LR, HR))
    assert seen == ["sr", "gt", "sr"]
    np.testing.assert_allclose(targets[0], usm, atol=1e-6)

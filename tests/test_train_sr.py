"""SR training harnesses: pretrain and GAN steps, XLA, mixed precision, EMA, memory support."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasr.config import SROptimConfig
from kerasr.models import RRDBNet
from kerasr.models.discriminators import UNetDiscriminator, VGGDiscriminator
from kerasr.training.esrgan import ESRGAN
from kerasr.training.optimizers import StepDecay, make_optimizer
from kerasr.training.pretrain import SRModel
from kerasr.training.rollback import MemorySupport

RNG = np.random.default_rng(0)
HR = RNG.random((2, 32, 32, 3), dtype=np.float32)
LR = tf.image.resize(HR, (8, 8), method="area").numpy()


def tiny_generator(seed=0):
    keras.utils.set_random_seed(seed)
    g = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4, num_dense_blocks=1)
    g.build((None, None, None, 3))
    return g


def pretrain_model(jit=False, ema=0.0, seed=0):
    model = SRModel(tiny_generator(seed), "l1", ema_decay=ema)
    model.compile(make_optimizer(SROptimConfig(), model.lr_scale), jit_compile=jit)
    return model


def dataset():
    return tf.data.Dataset.from_tensors((LR, HR)).repeat()


def test_validation_psnr_ssim_match_scikit_image():
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    model = pretrain_model()
    logs = model.evaluate(LR, HR, batch_size=2, verbose=0, return_dict=True)
    sr = np.clip(np.asarray(model.generator(LR)), 0, 1)
    psnrs, ssims = [], []
    for a, b in zip(HR, sr, strict=True):
        ya, yb = rgb2ycbcr(a)[4:-4, 4:-4, 0], rgb2ycbcr(b)[4:-4, 4:-4, 0]  # border = scale
        psnrs.append(peak_signal_noise_ratio(ya, yb, data_range=255))
        ssims.append(
            structural_similarity(
                ya,
                yb,
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
        )
    assert logs["psnr"] == pytest.approx(np.mean(psnrs), abs=2e-3)
    assert logs["ssim"] == pytest.approx(np.mean(ssims), abs=2e-3)


def test_train_step_runs_xla_compiled_on_cpu_and_matches_eager():
    eager = pretrain_model(jit=False, seed=3)
    compiled = pretrain_model(jit=True, seed=3)
    a = eager.train_on_batch(LR, HR, return_dict=True)
    b = compiled.train_on_batch(LR, HR, return_dict=True)
    assert compiled.jit_compile is True  # Keras would have reset it had XLA refused the step
    assert int(compiled.step.numpy()) == 1
    assert b["pixel_loss"] == pytest.approx(a["pixel_loss"], rel=1e-4)
    for w1, w2 in zip(eager.generator.weights, compiled.generator.weights, strict=True):
        np.testing.assert_allclose(w1.numpy(), w2.numpy(), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_step(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = SRModel(tiny_generator(), "charbonnier")
        model.compile(
            make_optimizer(SROptimConfig(), model.lr_scale, loss_scaling=policy == "mixed_float16")
        )
        logs = model.train_on_batch(LR, HR, return_dict=True)
        assert model.generator.compute_dtype == policy.split("_")[1]
        assert model.generator.weights[0].dtype == "float32"
        if policy == "mixed_float16":
            assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
        assert np.isfinite(logs["pixel_loss"])
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_ema_follows_the_generator_with_its_decay():
    model = pretrain_model(ema=0.75)
    before = [w.numpy().copy() for w in model.ema_generator.weights]
    model.train_on_batch(LR, HR)
    after = [w.numpy() for w in model.generator.weights]
    for e, b, a in zip(model.ema_generator.weights, before, after, strict=True):
        np.testing.assert_allclose(e.numpy(), 0.75 * b + 0.25 * a, rtol=1e-5, atol=1e-7)
    assert model.inference_network is model.ema_generator


def test_step_decay_schedule_halves_at_milestones_and_follows_its_scale():
    scale = keras.Variable(1.0)
    schedule = StepDecay(1e-4, (50, 100), 0.5, scale)
    assert [float(schedule(s)) for s in (0, 49, 50, 99, 100, 500)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5]
    )
    scale.assign(0.1)
    assert float(schedule(0)) == pytest.approx(1e-5)


@pytest.mark.parametrize(
    ("discriminator", "gan_type"),
    [(VGGDiscriminator((4, 4, 8, 8), (8,)), "relativistic"), (UNetDiscriminator(4), "vanilla")],
)
def test_gan_step_updates_both_networks(discriminator, gan_type):
    from kerasr.losses import PerceptualLoss

    discriminator.build((None, 32, 32, 3))
    gan = ESRGAN(
        tiny_generator(),
        discriminator,
        PerceptualLoss("vgg11", {"conv1_1": 1.0}, weights="none"),
        gan_type=gan_type,
    )
    gan.compile(
        make_optimizer(SROptimConfig(1e-4), gan.lr_scale),
        make_optimizer(SROptimConfig(1e-4), gan.lr_scale),
    )
    g0 = [w.numpy().copy() for w in gan.generator.trainable_weights]
    d0 = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    logs = gan.train_on_batch(LR, HR, return_dict=True)
    assert any(
        not np.allclose(a, b.numpy())
        for a, b in zip(g0, gan.generator.trainable_weights, strict=True)
    )
    assert any(
        not np.allclose(a, b.numpy())
        for a, b in zip(d0, gan.discriminator.trainable_weights, strict=True)
    )
    assert 0 < logs["d_real"] < 1 and 0 < logs["d_fake"] < 1
    expected = 1e-2 * logs["pixel_loss"] + logs["perceptual_loss"] + 5e-3 * logs["adversarial_loss"]
    assert logs["g_loss"] == pytest.approx(expected, rel=1e-4)


class Inject(keras.callbacks.Callback):
    """Breaks training once at `at_step`: NaN generator weights or a learning-rate spike."""

    def __init__(self, at_step, kind):
        super().__init__()
        self.at_step, self.kind = at_step, kind

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at_step:
            if self.kind == "nan":
                w = self.model.generator.weights[0]
                w.assign(np.full(w.shape, np.nan, np.float32))
            else:
                self.model.lr_scale.assign(1e4)


@pytest.mark.parametrize("kind", ["nan", "spike"])
def test_memory_support_recovers(kind):
    model = pretrain_model(ema=0.5)
    events = []
    memory = MemorySupport(
        check_every=1, factor=3.0, patience=2, remember_every=1, warmup_checks=3,
        report=lambda line, event: events.append(line),
    )  # fmt: skip
    start = float(np.mean(np.abs(np.asarray(model.generator(LR)) - HR)))
    model.fit(
        dataset(), steps_per_epoch=16, epochs=1, verbose=0, callbacks=[Inject(8, kind), memory]
    )
    assert memory.events and events
    first = memory.events[0]
    assert first["reason"] == ("non-finite loss" if kind == "nan" else "loss spike")
    # NaN weights at step 8 must never be remembered; the state after step 8 is fine for a spike.
    assert first["restored_from"] <= (7 if kind == "nan" else 8)
    assert all(np.isfinite(w.numpy()).all() for w in model.generator.weights)
    assert all(np.isfinite(w.numpy()).all() for w in model.ema_generator.weights)
    assert all(np.isfinite(v.numpy()).all() for v in model.g_optimizer.variables)
    assert float(model.lr_scale.numpy()) == pytest.approx(0.5)
    assert int(model.step.numpy()) == 16
    final = model.train_on_batch(LR, HR, return_dict=True)["pixel_loss"]
    assert np.isfinite(final) and final < 1.2 * start


def test_checkpoint_restores_step_schedule_ema_and_lr_scale(tmp_path):
    from kerasr.training.checkpoints import make_manager, restore_latest
    from kerasr.training.optimizers import current_learning_rate

    def build():
        model = SRModel(tiny_generator(), ema_decay=0.5)
        optim = SROptimConfig(learning_rate=2e-4, milestones=(2,), gamma=0.5)
        model.compile(make_optimizer(optim, model.lr_scale))
        return model

    model = build()
    manager = make_manager(model, tmp_path / "checkpoints")
    model.fit(dataset(), steps_per_epoch=3, epochs=1, verbose=0)
    model.lr_scale.assign(0.25)
    manager.save(checkpoint_number=3)

    fresh = build()
    assert restore_latest(make_manager(fresh, tmp_path / "checkpoints")) == 3
    assert int(fresh.g_optimizer.iterations.numpy()) == 3
    # Past the milestone at step 2 and with the memory-support scale: 2e-4 * 0.5 * 0.25.
    assert current_learning_rate(fresh.g_optimizer) == pytest.approx(2.5e-5)
    for a, b in zip(model.ema_generator.weights, fresh.ema_generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(model.g_optimizer.variables, fresh.g_optimizer.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_holds_discriminator_state_and_generator_alone(tmp_path):
    from kerasr.training.checkpoints import make_manager, restore_generator, restore_latest

    def build():
        d = VGGDiscriminator((4, 4, 8, 8), (8,))  # batch norm: moving statistics
        d.build((None, 32, 32, 3))
        gan = ESRGAN(tiny_generator(), d, None)
        gan.compile(
            make_optimizer(SROptimConfig(), gan.lr_scale),
            make_optimizer(SROptimConfig(), gan.lr_scale),
        )
        return gan

    gan = build()
    gan.fit(dataset(), steps_per_epoch=2, epochs=1, verbose=0)
    make_manager(gan, tmp_path / "checkpoints").save(checkpoint_number=2)
    fresh = build()
    assert restore_latest(make_manager(fresh, tmp_path / "checkpoints")) == 2
    for a, b in zip(gan.discriminator.weights, fresh.discriminator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # incl. non-trainable BN stats

    generator = tiny_generator(seed=9)
    assert restore_generator(generator, tmp_path / "checkpoints")
    for a, b in zip(gan.generator.weights, generator.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("setting", ["auto", "true", "false"])
def test_jit_compile_setting_and_its_auto_default(setting):
    from kerasr.config import SRRecipe, load_config
    from kerasr.runtime import resolve_jit
    from kerasr.training.train_sr import build_harness

    overrides = [
        "generator.num_basic_blocks=1",
        "generator.rrdb_channels=8",
        "generator.growth_channels=4",
        "data.patch_size=32",
        "data.batch_size=2",
    ]
    if setting != "auto":
        overrides.append(f"train.jit_compile={setting}")
    recipe = load_config(SRRecipe, "configs/esrgan_x4_psnr.toml", overrides)
    assert recipe.train.jit_compile == {"auto": "auto", "true": True, "false": False}[setting]
    harness = build_harness(recipe, "pretrain")
    # "auto": XLA where an accelerator runs the step, the plain graph on a CPU.
    accelerated = bool(
        tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    )
    expected = accelerated if setting == "auto" else setting == "true"
    assert resolve_jit(recipe.train.jit_compile) is expected
    assert bool(harness.jit_compile) is expected
    harness.fit(dataset(), steps_per_epoch=1, epochs=1, verbose=0)
    assert int(harness.step.numpy()) == 1


@pytest.mark.parametrize(
    ("extra", "in_data"),
    [
        ([], True),  # Real-ESRNet: the pipeline sharpens the crop it degrades
        (["data.degradation.on_device=true", "data.degradation.crop_pad_size=0"], False),
        (["loss.l1_gt_usm=false"], False),
    ],
)
def test_pretraining_sharpens_the_gt_once_where_real_esrnet_does(extra, in_data):
    from pathlib import Path

    from kerasr.config import SRRecipe, load_config
    from kerasr.training.train_sr import build_harness, data_sharpens_gt

    path = Path(__file__).resolve().parents[1] / "configs" / "realesrnet_x4plus.toml"
    recipe = load_config(SRRecipe, path, ["generator.num_basic_blocks=1", *extra])
    harness = build_harness(recipe, "pretrain")
    assert data_sharpens_gt(recipe, "pretrain") is in_data
    assert data_sharpens_gt(recipe, "gan") is False  # Real-ESRGAN sharpens the final patch
    # Never twice: the step sharpens only what the pipeline did not.
    step_sharpens = harness.usm is not None and harness.l1_gt_usm
    assert step_sharpens is (recipe.loss.l1_gt_usm and not in_data)


def test_perceptual_layers_are_checked_against_the_network_before_any_work(tmp_path):
    from kerasr.config import SRRecipe, load_config
    from kerasr.errors import KerasrError
    from kerasr.training.train_sr import train_sr

    recipe = load_config(SRRecipe, overrides=["perceptual.layer_weights={conv9_9 = 1.0}"])
    with pytest.raises(KerasrError, match="^perceptual.layer_weights keys must be layers of vgg19"):
        train_sr(recipe, tmp_path / "run", "gan")
    assert not (tmp_path / "run").exists()

"""The DCGAN harness: train step (graph, XLA), determinism, quality signals, run folder, resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasr.config import DCGANConfig, load_config
from kerasr.errors import KerasrError
from kerasr.evaluation.collapse import QualityReference, quality_signals
from kerasr.generation import load_generator
from kerasr.training.callbacks import TimeLimit
from kerasr.training.dcgan import build_dcgan
from kerasr.training.train_dcgan import train_dcgan

TINY = [
    "model.image_size=16",
    "model.latent_dim=8",
    "model.g_filters=4",
    "model.d_filters=4",
    "model.max_filters=16",
    "train.batch_size=4",
    "train.grid_size=2",
    "train.kid_every=0",
    # XLA compilation costs seconds per harness; one test checks the compiled step.
    "train.jit_compile=false",
]


def _config(*overrides):
    return load_config(DCGANConfig, overrides=[*TINY, *overrides])


def _batch(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")


def _weights(model):
    return [np.array(w) for w in model.weights]


@pytest.mark.parametrize(
    "overrides",
    [
        # The shipped recipe's networks (batch norm in D), compiled with XLA.
        [
            "train.jit_compile=true",
            'train.loss="nonsaturating"',
            "model.spectral_norm=false",
            "model.d_batch_norm=true",
        ],
        # Every other option, without XLA (its compilation costs seconds per variant).
        [
            "train.label_smoothing=0.1",
            'train.loss="nonsaturating"',
            "train.instance_noise=0.05",
            "model.spectral_norm=true",
            'train.diffaugment=["translation"]',
        ],
        ['train.loss="hinge"', "model.spectral_norm=true"],
    ],
    ids=["xla-compiled", "options-graph", "hinge-graph"],
)
def test_one_train_step_updates_both_networks(overrides):
    gan = build_dcgan(_config(*overrides))
    g_before, d_before = _weights(gan.generator), _weights(gan.discriminator)
    logs = gan.train_on_batch(_batch(), return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in logs.values())
    # With jit_compile=True TensorFlow must compile the step with XLA or raise; it never falls
    # back silently, so a finite result here means the XLA-compiled step ran.
    assert gan.jit_compile is ("train.jit_compile=true" in overrides)
    assert any(
        not np.allclose(a, b) for a, b in zip(g_before, _weights(gan.generator), strict=True)
    )
    assert any(
        not np.allclose(a, b) for a, b in zip(d_before, _weights(gan.discriminator), strict=True)
    )


def test_generator_ema_follows_the_generator_and_is_what_samples_come_from():
    gan = build_dcgan(_config("train.ema_decay=0.5", 'model.upsample="resize"'))
    assert gan.inference_network is gan.ema_generator
    for step in range(2):
        before = _weights(gan.ema_generator)
        gan.train_on_batch(_batch(step))
        live, ema = _weights(gan.generator), _weights(gan.ema_generator)
        # The decay ramps up as (1 + step) / (10 + step), capped by ema_decay.
        decay = min(0.5, (1 + step) / (10 + step))
        for b, g, e in zip(before, live, ema, strict=True):
            np.testing.assert_allclose(e, decay * b + (1 - decay) * g, rtol=1e-5, atol=1e-6)
    plain = build_dcgan(_config())
    assert plain.ema_generator is None and plain.inference_network is plain.generator


def test_train_init_starts_from_a_generator_file_that_fits(tmp_path):
    from kerasr.weights.presets import Preset, save_weights

    source = build_dcgan(_config("train.seed=5")).generator
    arguments = {"image_size": 16, "latent_dim": 8, "filters": 4, "max_filters": 16}
    save_weights(source, tmp_path / "g.weights.h5", Preset("dcgan", arguments))
    gan = build_dcgan(_config(f'train.init="{tmp_path / "g.weights.h5"}"', "train.ema_decay=0.9"))
    ema = gan.ema_generator
    for a, b, e in zip(_weights(source), _weights(gan.generator), _weights(ema), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, e)
    with pytest.raises(KerasrError, match="does not fit"):
        build_dcgan(_config(f'train.init="{tmp_path / "g.weights.h5"}"', "model.latent_dim=4"))


def test_losses_match_their_definitions():
    gan = build_dcgan(_config())
    real, fake = np.array([[2.0], [0.5]], "float32"), np.array([[-0.5], [1.0]], "float32")
    d_loss, g_loss = gan.losses_from_scores(real, fake)
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = 0.25 + 1.25
    assert float(d_loss) == pytest.approx(1.5)
    assert float(g_loss) == pytest.approx(-0.25)
    gan = build_dcgan(_config('train.loss="nonsaturating"'))
    d_loss, g_loss = gan.losses_from_scores(real, fake)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    assert float(d_loss) == pytest.approx(softplus(-real).mean() + softplus(fake).mean(), rel=1e-5)
    assert float(g_loss) == pytest.approx(softplus(-fake).mean(), rel=1e-5)


def test_same_seed_same_training():
    def run(seed):
        gan = build_dcgan(_config(f"train.seed={seed}"))
        for i in range(2):
            gan.train_on_batch(_batch(i))
        return _weights(gan.generator)

    first, second, other = run(3), run(3), run(4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_quality_signals_flag_collapse_and_copies():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    reference = QualityReference(real, count=16, seed=0)
    fresh = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    healthy = quality_signals(fresh, reference)
    assert 0.8 < healthy.diversity < 1.2
    assert healthy.nearest_ratio > 0.8 and healthy.copies == 0
    assert "no sign of mode collapse" in healthy.describe()
    collapsed = quality_signals(np.repeat(fresh[:1], 16, axis=0), reference)
    assert collapsed.diversity == pytest.approx(0.0, abs=1e-3)
    assert "POSSIBLE MODE COLLAPSE" in collapsed.describe()
    # Mirror images of training sprites count as copies too (the data is flipped).
    copies = quality_signals(real[:16, :, ::-1], reference)
    assert copies.copies == 1.0 and copies.nearest_ratio < 0.01


def test_time_limit_stops_after_the_epoch_past_budget():
    now = [0.0]
    limit = TimeLimit(1.0, clock=lambda: now[0])
    limit.set_model(keras.Sequential())
    limit.model.stop_training = False
    limit.on_train_begin()
    now[0] = 59.0
    limit.on_epoch_end(0)
    assert not limit.model.stop_training
    now[0] = 61.0
    limit.on_epoch_end(1)
    assert limit.model.stop_training and limit.stopped_epoch == 1


def _sprites(folder, n=8):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        rgba = np.zeros((20, 20, 4), np.uint8)
        rgba[5:15, 5:15] = (*rng.integers(0, 256, 3), 255)
        Image.fromarray(rgba).save(folder / f"{i:02d}.png")
    return folder


def test_train_dcgan_fills_the_run_folder_and_resumes(tmp_path):
    data = _sprites(tmp_path / "sprites")
    run = tmp_path / "run"
    # The shipped recipe's levers: creatures fitted to the frame, resize-convolutions, EMA.
    levers = ("data.fit_to_frame=true", 'model.upsample="resize"', "train.ema_decay=0.9")
    cfg = _config(f'data.folder="{data}"', "train.epochs=1", *levers)
    lines = []
    result = train_dcgan(cfg, run, report=lines.append)
    assert (result.epochs, result.images, result.initial_epoch, result.step) == (1, 8, 0, 2)
    assert lines == [f"no checkpoint to resume in {run}: starting a new run from step 0"]
    for name in ("config.toml", "history.csv", "quality.txt", "progress.gif", "losses.png"):
        assert (run / name).is_file(), name
    assert (run / "grids" / "epoch_0001.png").is_file()
    assert Image.open(run / "grids" / "epoch_0001.png").size == (2 * 18 + 2, 2 * 18 + 2)
    assert any((run / "tensorboard").iterdir())
    assert set(result.losses) == {"d_loss", "g_loss", "d_real", "d_fake"}
    q = result.quality
    # The signals are the ratios they are documented as, and the run reports what it wrote.
    assert q.diversity == pytest.approx(q.sample_pairwise / q.real_pairwise)
    assert q.nearest_ratio == pytest.approx(q.sample_nearest / q.real_nearest)
    assert q.describe() in (run / "quality.txt").read_text()
    # Two steps from a random start: samples differ from one another (no collapse) and none
    # is a copy of a training sprite.
    assert q.sample_pairwise > 0 and q.copies == 0.0
    assert result.kid is None and not result.interrupted

    # The generator of an epoch loads by path (architecture from its preset epoch_0001.json).
    epoch1 = run / "generators" / "epoch_0001.weights.h5"
    g1 = load_generator(epoch1)
    assert g1.output_shape == (None, 16, 16, 3)
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in g1.layers)

    # A run killed between an epoch's log row and its checkpoint logged one epoch ahead.
    history = run / "history.csv"
    rows = history.read_text().splitlines()
    history.write_text("\n".join([*rows, "2" + rows[1][rows[1].index(",") :]]) + "\n")

    lines.clear()
    cfg = _config(f'data.folder="{data}"', "train.epochs=2", *levers)
    resumed = train_dcgan(cfg, run, report=lines.append)
    assert resumed.initial_epoch == 1 and resumed.epochs == 2 and resumed.step == 4
    assert lines == [f"resumed from {run / 'checkpoints' / 'ckpt-2'} at epoch 1"]
    assert (run / "grids" / "epoch_0002.png").is_file()
    epochs = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]  # the row past the checkpoint was dropped, not repeated
    # Resuming continued from epoch 1's networks and optimizers.
    ckpt = tf.train.load_checkpoint(str(run / "checkpoints"))
    assert ckpt.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE") == 2
    assert any(name.startswith("ema_weights/") for name in ckpt.get_variable_to_shape_map())


def test_kid_every_epoch_keeps_the_best_generator(tmp_path, monkeypatch):
    import kerasr.training.callbacks as callbacks
    from kerasr.io import read_csv

    monkeypatch.setattr(callbacks, "KID_SAMPLES", 6)  # a trend needs more; a test does not
    data = _sprites(tmp_path / "sprites")
    run = tmp_path / "run"
    cfg = _config(f'data.folder="{data}"', "train.epochs=3", "train.kid_every=1")
    result = train_dcgan(cfg, run, report=lambda line: None)
    kids = {int(r["epoch"]): r["kid"] for r in read_csv(run / "history.csv")}
    assert set(kids) == {1, 2, 3} and all(np.isfinite(list(kids.values())))
    best = min(kids, key=kids.get)
    assert (result.best_epoch, result.best_kid) == (best, kids[best])
    assert result.kid == kids[3] and result.kid_note == ""
    kept, epoch = (
        load_generator(run / "generators" / name)
        for name in ("best.weights.h5", f"epoch_{best:04d}.weights.h5")
    )
    for a, b in zip(kept.weights, epoch.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert f"best epoch by KID: {best}" in (run / "quality.txt").read_text()

    # Resumed for one more epoch, the run still knows its best epoch from history.csv.
    more = train_dcgan(
        _config(f'data.folder="{data}"', "train.epochs=4", "train.kid_every=2"),
        run,
        report=lambda line: None,
    )
    four = read_csv(run / "history.csv")[-1]["kid"]
    assert (more.best_epoch, more.best_kid) == (
        (4, four) if four < kids[best] else (best, kids[best])
    )


def test_the_best_epoch_is_the_lowest_kid_among_epochs_that_do_not_copy(tmp_path):
    from kerasr.io import append_csv
    from kerasr.training.callbacks import _best_kid

    history = tmp_path / "history.csv"
    rows = [  # (epoch, kid, nearest_ratio, copies)
        (1, 0.30, 0.95, 0.0),
        (2, 0.10, 0.90, 0.0156),
        (3, 0.05, 0.70, 0.0),  # lowest KID, but its samples sit on training images
        (4, 0.04, 0.85, 0.0625),  # lower still, with 4 of 64 near copies
        (5, 0.20, 0.88, 0.0),
    ]
    for epoch, kid, ratio, copies in rows:
        append_csv(history, {"epoch": epoch, "kid": kid, "nearest_ratio": ratio, "copies": copies})
    assert _best_kid(history, (0.0, 1.0)) == (4, 0.04)
    assert _best_kid(history, (0.8, 0.02)) == (2, 0.10)
    assert _best_kid(history, (0.99, 0.0)) == (None, None)


def test_kid_is_skipped_with_a_note_without_the_weights_package(tmp_path, monkeypatch):
    from kerasr.weights import efficientnet

    monkeypatch.setattr(efficientnet, "PACKAGE", "no_such_weights_package")
    data = _sprites(tmp_path / "sprites")
    cfg = _config(f'data.folder="{data}"', "train.epochs=1", "train.kid_every=1")
    result = train_dcgan(cfg, tmp_path / "run", report=lambda line: None)
    assert result.kid is None and result.best_epoch is None
    assert "pip install 'kerasr[quality]'" in result.kid_note
    assert "pip install 'kerasr[quality]'" in (tmp_path / "run" / "quality.txt").read_text()

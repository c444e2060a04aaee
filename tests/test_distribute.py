"""tf.distribute: strategy names, chief logic, and one step on two replicas == one device."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from kerasr.cli import app
from kerasr.errors import KerasrError
from kerasr.training import distribute
from kerasr.training.distribute import is_chief, make_strategy, parse_tf_config

HERE = Path(__file__).resolve().parent
# float32 sums in another order (each replica sums its half, then the halves are added).
RTOL, ATOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    """The weights and logs of `tests/mirrored_step.py` (one step: one device, two logical
    CPUs under MirroredStrategy, and two CPUs with the loss not divided by the replicas)."""
    out = tmp_path_factory.mktemp("mirrored") / "steps.npz"
    result = subprocess.run(
        [sys.executable, str(HERE / "mirrored_step.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    data = np.load(out)
    report = json.loads(str(data["report"]))

    def weights(stage, variant):
        count = len(report[f"{stage}/single"]["names"])
        return [data[f"{stage}/{variant}/{i:03d}"] for i in range(count)]

    return SimpleNamespace(report=report, weights=weights)


def assert_same_weights(steps, stage, variant):
    names = steps.report[f"{stage}/single"]["names"]
    assert steps.report[f"{stage}/{variant}"]["names"] == names
    for name, a, b in zip(
        names, steps.weights(stage, "single"), steps.weights(stage, variant), strict=True
    ):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=f"{stage}: {name}")


@pytest.mark.slow
def test_pretrain_step_on_two_replicas_matches_one_device(steps):
    assert_same_weights(steps, "pretrain", "mirrored")
    names = steps.report["pretrain/single"]["names"]
    assert "step" in names and sum("generator/" in n for n in names) > 20  # G and its EMA


@pytest.mark.slow
def test_gan_step_on_two_replicas_matches_one_device(steps):
    # Generator, EMA, U-Net discriminator with its spectral-norm vectors: all updated by
    # the step and all compared.
    assert_same_weights(steps, "gan", "mirrored")
    names = steps.report["gan/single"]["names"]
    assert any("discriminator/" in n for n in names)
    assert any(n.endswith("/u") for n in names)  # spectral norm's power-iteration vector


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_step_changed_the_weights_and_replicas_agree(steps, stage):
    # A step that changed nothing would make the comparisons above pass trivially.
    mirrored = steps.report[f"{stage}/mirrored"]
    assert mirrored["replicas"] == 2
    assert mirrored["replica_spread"] == 0.0  # both copies of every variable are equal
    single = steps.report[f"{stage}/single"]
    changed = set(single["changed"])
    assert "step" in changed
    trainable = [n for n in single["names"] if n.endswith("/kernel") and "vgg" not in n]
    assert trainable and set(trainable) <= changed  # G, its EMA (and D): every kernel moved
    if stage == "gan":
        assert any(n.endswith("/u") for n in changed)  # spectral norm's power iteration ran


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_global_batch_is_split_between_replicas(steps, stage):
    single, mirrored = steps.report[f"{stage}/single"], steps.report[f"{stage}/mirrored"]
    assert single["seen"] == single["first_replica_batch"] == 4
    # Two replicas together saw the global batch once: two samples each.
    assert mirrored["seen"] == 4 and mirrored["first_replica_batch"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_logged_metrics_cover_all_replicas(steps, stage):
    single = steps.report[f"{stage}/single"]["logs"]
    mirrored = steps.report[f"{stage}/mirrored"]["logs"]
    assert set(mirrored) == set(single)
    for key, value in single.items():
        assert mirrored[key] == pytest.approx(value, rel=1e-5), key


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_tolerance_catches_a_loss_not_averaged_over_the_global_batch(steps, stage):
    # With each replica's own mean as its loss, the summed gradients are twice the global
    # mean's: the comparison must see it.
    with pytest.raises(AssertionError):
        assert_same_weights(steps, stage, "unscaled")


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "gan"])
def test_recipe_optimizers_and_xla_setting_work_on_two_replicas(steps, stage):
    # Adam, its schedule and the learning-rate scale variable under the strategy; the
    # recipe asks for XLA, which cannot compile a step over two devices: the run must not
    # fail but train without it.
    assert steps.report[f"{stage}/mirrored_recipe"]["jit_compile"] is False
    names = steps.report[f"{stage}/single"]["names"]
    for name, a, b in zip(
        names,
        steps.weights(stage, "single_recipe"),
        steps.weights(stage, "mirrored_recipe"),
        strict=True,
    ):
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=f"{stage}: {name}")


@pytest.mark.slow
def test_replicas_draw_their_own_on_device_degradations(steps):
    # The same two HR images on both replicas: with one seed for all replicas they would
    # come out with the same blur, noise and JPEG, halving the variety of a global batch.
    shares = steps.report["degradation"]
    assert shares["shapes"] == [[2, 6, 6, 3], [2, 6, 6, 3]]
    assert shares["max_difference"] > 0.01


# --- strategy names, TF_CONFIG, chief ---------------------------------------------------


def tf_config(**overrides):
    config = {
        "cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
        "task": {"type": "worker", "index": 1},
    }
    config.update(overrides)
    return json.dumps(config)


def test_parse_tf_config_accepts_a_cluster():
    assert parse_tf_config(tf_config())["task"]["index"] == 1


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{cluster:", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), 'needs a "cluster"'),
        (tf_config(cluster={"worker": ["no-port"]}), '"host:port"'),
        (tf_config(cluster={"ps": ["a:1"], "worker": ["b:2"]}), "uses only"),
        (tf_config(task={"type": "chief", "index": 0}), "task type must be one of"),
        (tf_config(task={"type": "worker", "index": 2}), "task index must be in [0, 1]"),
    ],
)
def test_parse_tf_config_rejects_bad_values_in_one_line(text, message):
    with pytest.raises(KerasrError) as error:
        parse_tf_config(text)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_strategy_and_missing_tpu(monkeypatch):
    with pytest.raises(KerasrError, match="must be one of default, mirrored"):
        make_strategy("gpus")
    for var in ("TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(distribute.glob, "glob", lambda pattern: [])
    with pytest.raises(KerasrError, match="no TPU found"):
        make_strategy("tpu")


def test_default_strategy_is_the_current_one():
    import tensorflow as tf

    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert is_chief(strategy)


def fake_strategy(cluster, kind, index):
    spec = SimpleNamespace(as_dict=lambda: cluster)
    resolver = SimpleNamespace(task_type=kind, task_id=index, cluster_spec=lambda: spec)
    return SimpleNamespace(cluster_resolver=resolver)


def test_chief_is_worker_zero_or_the_chief_task(tmp_path):
    workers = {"worker": ["a:1", "b:1"]}
    assert is_chief(fake_strategy(workers, "worker", 0))
    other = fake_strategy(workers, "worker", 1)
    assert not is_chief(other)
    with_chief = {"chief": ["c:1"], **workers}
    assert is_chief(fake_strategy(with_chief, "chief", 0))
    assert not is_chief(fake_strategy(with_chief, "worker", 0))
    # A one-process strategy has no task: it is its own chief.
    assert is_chief(fake_strategy({}, None, None))

    run_dir = tmp_path / "run"
    assert distribute.worker_dir(run_dir, fake_strategy(workers, "worker", 0)) == run_dir
    scratch = distribute.worker_dir(run_dir, other)
    assert scratch != run_dir and scratch.is_dir() and "worker1" in scratch.name
    distribute.release_worker_dir(scratch, run_dir)
    assert not scratch.exists()
    run_dir.mkdir()
    distribute.release_worker_dir(run_dir, run_dir)  # never the run folder itself
    assert run_dir.is_dir()


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--strategy", "gpus"], {}, "--strategy must be one of"),
        (["--strategy", "multiworker"], {"TF_CONFIG": ""}, "needs the TF_CONFIG"),
        (["--strategy", "multiworker"], {"TF_CONFIG": "{oops"}, "TF_CONFIG is not valid JSON"),
    ],
)
def test_cli_reports_bad_strategy_settings_in_one_line(tmp_path, args, env, message):
    result = CliRunner().invoke(
        app, ["pretrain", str(tmp_path), "-o", str(tmp_path / "run"), *args], env=env
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_for_replicas_checks_the_global_batch_and_keeps_whole_validation_batches():
    import tensorflow as tf

    from kerasr.config import DataConfig

    two = SimpleNamespace(num_replicas_in_sync=2)
    images = tf.data.Dataset.range(5).map(lambda i: (tf.fill([1, 2], i), tf.fill([1, 4], i)))
    with pytest.raises(KerasrError, match="multiple of the 2 replicas"):
        distribute.for_replicas(images, None, DataConfig(batch_size=3), two)
    train, val = distribute.for_replicas(images, images, DataConfig(batch_size=4), two)
    policy = tf.data.experimental.AutoShardPolicy.DATA
    assert train.options().experimental_distribute.auto_shard_policy == policy
    assert val.options().experimental_distribute.auto_shard_policy == policy
    # Five one-image batches, two replicas: two whole steps of 2 images, the fifth skipped.
    assert [b[0].shape[0] for b in val] == [2, 2] and val.cardinality() == 2
    with pytest.raises(KerasrError, match="at least 6 images with 2 replicas"):
        distribute.for_replicas(images, images, DataConfig(batch_size=4, val_batch_size=3), two)
    one = SimpleNamespace(num_replicas_in_sync=1)
    # One replica: any batch size, validation batches untouched.
    val = distribute.for_replicas(images, images, DataConfig(batch_size=3), one)[1]
    assert [b[0].shape[0] for b in val] == [1] * 5

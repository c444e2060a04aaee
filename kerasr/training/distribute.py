"""Running the same training on one device, several GPUs, several machines or a TPU.

`make_strategy(name)` turns the `--strategy` option into a `tf.distribute.Strategy`. The
harnesses are built in its scope (`kerasr.training.train_sr.train_sr` does that), and Keras
does the rest: `fit` hands the dataset to `strategy.experimental_distribute_dataset`, so each
replica gets `global batch / replicas` samples of every batch, and runs the train step on
each replica. The step divides each replica's mean loss by the number of replicas
(`kerasr.training.harness.replica_mean`); the optimizers all-reduce the gradients with a sum, so
the update is the one of the mean over the global batch. The metrics' variables are
synchronised on read, so logged values cover all replicas.

In a multi-worker run every worker executes the same program and takes part in every
collective operation, including checkpoint saves; only the chief (`is_chief`) writes the run
folder, the others write into a temporary folder (`worker_dir`) that is deleted at the end.

`for_replicas` checks that the global batch splits evenly and prepares the datasets;
`MultiWorkerFit` works around two places where Keras 3.15's `fit` fails across workers.

Reference:
    [Distributed training with TensorFlow](https://www.tensorflow.org/guide/distributed_training);
    [Multi-worker training with Keras](https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kerasr.errors import KerasrError, first_line
from kerasr.keras_compat import TrainerHooks, first_local_batch

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def parse_tf_config(text: str | None) -> dict:
    """Checks a `TF_CONFIG` value and returns it as a dict.

    The multi-worker strategy reads `TF_CONFIG` itself; this check only turns a missing or
    malformed value into one clear line, before TensorFlow fails (or waits for peers that do
    not exist).

    Args:
        text: the value of the `TF_CONFIG` environment variable (None when unset).

    Returns:
        `{"cluster": {"worker": ["host:port", ...], ...}, "task": {"type": ..., "index": ...}}`.

    Raises:
        KerasrError: when it is missing, not JSON, or does not name this task in the cluster.

    Example:

        parse_tf_config('{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},'
                        ' "task": {"type": "worker", "index": 0}}')
    """
    example = (
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not text or not text.strip():
        raise KerasrError(
            f"--strategy multiworker needs the TF_CONFIG environment variable, {example}"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise KerasrError(
            f"TF_CONFIG is not valid JSON ({e.msg} at char {e.pos}), {example}"
        ) from None
    if not isinstance(config, dict):
        raise KerasrError(f"TF_CONFIG must be a JSON object, {example}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise KerasrError(f'TF_CONFIG needs a "cluster" and a "task" object, {example}')
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise KerasrError(
            f"TF_CONFIG cluster has {unsupported}: multiworker training uses only "
            f'"worker" (and optionally one "chief") tasks'
        )
    for kind, addresses in cluster.items():
        if (
            not isinstance(addresses, list)
            or not addresses
            or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses)
        ):
            raise KerasrError(
                f'TF_CONFIG cluster "{kind}" must be a list of "host:port" strings. '
                f"Received: {addresses!r}"
            )
    if len(cluster.get("chief", [])) > 1:
        raise KerasrError("TF_CONFIG cluster may have only one chief")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster:
        raise KerasrError(
            f'TF_CONFIG task type must be one of {sorted(cluster)}. Received: "type": {kind!r}'
        )
    if not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise KerasrError(
            f'TF_CONFIG task index must be in [0, {len(cluster[kind]) - 1}] for "{kind}". '
            f"Received: {index!r}"
        )
    return config


def _tpu_address() -> str | None:
    """The TPU to connect to: `TPU_NAME` (a name or grpc:// address), "local" on a TPU VM,
    or None when nothing points at a TPU.

    Checked before TensorFlow's resolver, which would otherwise query the Google Cloud
    metadata server (a network call that hangs or fails slowly off Google Cloud).
    """
    if os.environ.get("TPU_NAME"):
        return os.environ["TPU_NAME"]
    if os.environ.get("COLAB_TPU_ADDR"):
        return "grpc://" + os.environ["COLAB_TPU_ADDR"]
    # TPU VMs expose their chips as /dev/accel* (v2-v4) or /dev/vfio/* (v5e and later).
    if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):
        return "local"
    return None


def make_strategy(name: str = "default", devices: Sequence[str] | None = None):
    """The `tf.distribute.Strategy` for a `--strategy` name.

    Create it at the start of the program, before any TensorFlow operation: the multi-worker
    and TPU strategies configure the runtime and cannot once it is running.

    Args:
        name: `"default"` (one device: the first GPU, else the CPU), `"mirrored"` (every
            local GPU, or `devices`, synchronous data parallelism), `"multiworker"`
            (several machines described by `TF_CONFIG`, each with all its GPUs) or `"tpu"`
            (the TPU named by `TPU_NAME`, or the chips of a TPU VM).
        devices: for `"mirrored"`, the devices to use, e.g. `["/gpu:0", "/gpu:1"]` or
            logical CPUs in tests.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        KerasrError: an unknown name, a missing or malformed `TF_CONFIG`, no TPU.

    Example:

        strategy = make_strategy("mirrored")
        summary = train_sr(recipe, "runs/psnr", strategy=strategy)
    """
    if name not in STRATEGIES:
        raise KerasrError(f"--strategy must be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    if devices and name != "mirrored":
        raise KerasrError(f"devices can only be chosen for --strategy mirrored. Received: {name!r}")
    if name == "multiworker":
        # Validated first: a wrong TF_CONFIG would otherwise fail deep inside TensorFlow.
        parse_tf_config(os.environ.get("TF_CONFIG"))
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(list(devices) if devices else None)
    if name == "multiworker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError, tf.errors.OpError) as e:
            raise KerasrError(
                f"cannot start the multi-worker strategy (create it before any TensorFlow "
                f"operation; check TF_CONFIG addresses): {first_line(e)[:200]}"
            ) from None
    address = _tpu_address()
    if address is None:
        raise KerasrError(
            "--strategy tpu: no TPU found (set TPU_NAME to the TPU name or grpc:// address, "
            "or run on a TPU VM)"
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (RuntimeError, ValueError, ImportError, tf.errors.OpError) as e:
        raise KerasrError(
            f"--strategy tpu: cannot use the TPU {address!r}: {first_line(e)[:200]}"
        ) from None


def task_of(strategy) -> tuple[str | None, int | None]:
    """`(task_type, task_id)` of this process in a multi-worker cluster, or `(None, None)`."""
    resolver = getattr(strategy, "cluster_resolver", None)
    # A multi-worker strategy without TF_CONFIG has a resolver with no task: one process.
    if resolver is None or not resolver.task_type:
        return None, None
    return resolver.task_type, resolver.task_id


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of
    a multi-worker cluster (the chief is the `"chief"` task, else worker 0).

    Args:
        strategy: a `tf.distribute.Strategy` (default: the current one).

    Returns:
        True on the chief and in single-process runs.
    """
    if strategy is None:
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
    kind, index = task_of(strategy)
    if kind is None:
        return True
    if kind == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return kind == "worker" and index == 0 and "chief" not in cluster


def worker_dir(run_dir: str | Path, strategy=None) -> Path:
    """Where this process writes: `run_dir` on the chief, a new temporary folder elsewhere.

    The other workers must still save checkpoints (the save gathers values from every
    worker), but what they write is thrown away: delete it with `release_worker_dir`.

    Args:
        run_dir: the run folder.
        strategy: a `tf.distribute.Strategy` (default: the current one).

    Returns:
        The folder to write into.
    """
    run_dir = Path(run_dir)
    if is_chief(strategy):
        return run_dir
    kind, index = task_of(strategy)
    return Path(tempfile.mkdtemp(prefix=f"kerasr-{kind}{index}-"))


def release_worker_dir(path: str | Path, run_dir: str | Path) -> None:
    """Deletes a non-chief worker's temporary folder (never the run folder itself)."""
    if Path(path).resolve() != Path(run_dir).resolve():
        shutil.rmtree(path, ignore_errors=True)


def for_replicas(train_ds, val_ds, data, strategy):
    """Prepares the training and validation sets for `strategy`'s replicas.

    Each batch is a global batch that `fit` splits between the replicas, so:

    - `data.batch_size` must be a multiple of the replicas: the loss of each replica is its
      own mean divided by the replicas (`replica_mean`), which is the global mean only when
      every replica holds the same number of samples;
    - validation batches become `val_batch_size` per replica, whole batches only (a replica
      left with an empty batch cannot run the network on CPU, and a short one would weigh
      its samples differently); the images left over are skipped by the per-epoch
      validation, not by the final full-image evaluation;
    - both sets are sharded by data between the workers of a cluster: tf.data's default
      (`AUTO`) would shard by file where the source is files (TFDS records), which fails
      with fewer files than workers. `DATA` runs the same seeded pipeline on every worker
      and each keeps its own part of every batch.

    Args:
        train_ds: the batched training set.
        val_ds: the batched validation set, or None.
        data: the `DataConfig` (`batch_size`, `val_batch_size`).
        strategy: the `tf.distribute.Strategy`.

    Returns:
        `(train_ds, val_ds)`.

    Raises:
        KerasrError: a batch size that does not split evenly, fewer validation images than
            replicas.
    """
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    if data.batch_size % replicas:
        raise KerasrError(
            f"data.batch_size ({data.batch_size}) is the global batch and must be a multiple of "
            f"the {replicas} replicas of the strategy"
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train_ds = train_ds.with_options(options)
    if val_ds is not None and replicas > 1:
        per_step = data.val_batch_size * replicas
        count = sum(int(tf.shape(lr)[0]) for lr, _ in val_ds)
        if count < per_step:
            raise KerasrError(
                f"validation needs at least {per_step} images with {replicas} replicas "
                f"(data.val_batch_size {data.val_batch_size} each); found {count}"
            )
        val_ds = val_ds.unbatch().batch(per_step, drop_remainder=True)
        val_ds = val_ds.apply(tf.data.experimental.assert_cardinality(count // per_step))
    if val_ds is not None:
        val_ds = val_ds.with_options(options)
    return train_ds, val_ds


def _in_multi_worker_cluster(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        task_of(strategy)[0] is not None
    )


def any_worker(strategy, flag: bool) -> bool:
    """Whether `flag` holds on any worker of a multi-worker cluster (`flag` itself elsewhere).

    For decisions each worker makes from its own clock or signals, such as a time limit:
    the workers must all stop at the same step, as a worker that stops alone leaves the
    others waiting in their next collective operation. This is itself a collective: every
    worker must call it at the same point.

    Args:
        strategy: the `tf.distribute.Strategy`.
        flag: this worker's answer.

    Returns:
        True when any worker answered True.
    """
    if not _in_multi_worker_cluster(strategy):
        return flag
    import tensorflow as tf

    votes = strategy.run(lambda: tf.constant(int(flag), tf.int32))
    return int(strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)) > 0


class MultiWorkerFit(TrainerHooks):
    """Mixin (before `keras.Model`) that lets Keras 3.15's `fit` / `evaluate` run a model
    built in a `MultiWorkerMirroredStrategy` scope across several workers.

    Two steps of Keras' TensorFlow trainer fail there (keras-team/keras#20329):

    1. Before the first step it reduces the first distributed batch with `strategy.reduce`
       over the whole `(x, y)` structure, which the multi-worker strategy rejects; the
       model is built from this process's first replica's batch instead.
    2. It averages each logged value over the cluster with `strategy.reduce(MEAN, v,
       axis=0)`, which fails for scalars (every loss and metric); scalars get a leading
       axis of 1 before that reduction, so the mean over the cluster comes out a scalar.

    Elsewhere (one device, `MirroredStrategy`, TPU) both are Keras' own code paths. The
    private methods these hooks replace are reached through `kerasr.keras_compat`.
    """

    def symbolic_build_args(self, iterator, data_batch):
        if iterator is not None and _in_multi_worker_cluster(self.distribute_strategy):
            return None, first_local_batch(iterator, self.distribute_strategy)
        return iterator, data_batch

    def wrap_step(self, step_function):
        if not _in_multi_worker_cluster(self.distribute_strategy):
            return step_function

        def step(data):
            from keras import ops, tree

            return tree.map_structure(
                lambda v: ops.expand_dims(v, 0) if len(ops.shape(v)) == 0 else v,
                step_function(data),
            )

        return step

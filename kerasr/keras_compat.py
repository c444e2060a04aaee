"""Every use of a private Keras or TensorFlow API in kerasr, behind one version guard.

kerasr reaches into five internals, each for a reason its public API does not cover:

1. `keras.Model._maybe_symbolic_build` and `keras.Model._make_function` (Keras' TensorFlow
   trainer), overridden by `TrainerHooks` so that `fit` runs across several workers
   (keras-team/keras#20329; see `kerasr.training.distribute.MultiWorkerFit`).
2. The structure of Keras' `EpochIterator` (`first_local_batch`), for the same reason.
3. `tf.__internal__.distribute.interim.maybe_merge_call` (`merge_call`), which Keras' own
   optimizer uses to leave replica context; the generator EMA updates through it.
4. Adam's moment lists (`adam_moments`), which `kerasr.training.optimizers.TorchAdam` updates
   with PyTorch's rule in the variables Keras' Adam creates, so checkpoints stay Keras'.
5. A layer's tracked sublayers in creation order (`sublayers`), the order of the ncnn
   exports whose weights `kerasr.weights.ncnn` copies in: Keras' public `Model.layers` is
   the same list for models, but a `Layer` (an RRDB block) has no public one.

They are tested with the Keras versions in `TESTED_KERAS` only. `check_keras_version` (run
before any of them is used) raises a clear error on another version, rather than letting a
renamed internal fail deep inside `fit`; `pyproject.toml` pins the same range.
"""

from __future__ import annotations

import functools

from kerasr.errors import KerasrError

# (major, minor) releases of Keras whose internals the code below was checked against.
TESTED_KERAS = ((3, 15),)


def _parse(version: str) -> tuple[int, int]:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return (0, 0)


@functools.cache
def _checked(version: str) -> None:
    if _parse(version) not in TESTED_KERAS:
        tested = ", ".join(f"{major}.{minor}" for major, minor in TESTED_KERAS)
        raise KerasrError(
            f"kerasr's training uses Keras internals tested with Keras {tested} only; this is "
            f"Keras {version}. Install a tested version (pip install 'keras>=3.15,<3.16')"
        )


def check_keras_version(version: str | None = None) -> None:
    """Raises `KerasrError` unless `version` (default: the installed Keras) is tested.

    Raises:
        KerasrError: on a Keras release outside `TESTED_KERAS`.
    """
    if version is None:
        import keras

        version = keras.version()
    _checked(version)


def merge_call(fn, strategy) -> None:
    """Runs `fn(strategy)` once in cross-replica context: through a merge call when called
    from a replica of `strategy`, directly otherwise (as Keras' TensorFlow optimizer does)."""
    check_keras_version()
    import tensorflow as tf

    tf.__internal__.distribute.interim.maybe_merge_call(fn, strategy)


def first_local_batch(iterator, strategy):
    """This process's first replica's share of the next batch of a Keras epoch iterator.

    Building needs shapes and dtypes only, which one replica's share has. Like Keras, this
    takes one batch from the iterator.

    Args:
        iterator: the `EpochIterator` `fit` / `evaluate` passes to `_maybe_symbolic_build`.
        strategy: the model's `tf.distribute.Strategy`.

    Returns:
        The batch structure with each distributed value replaced by its first local value.
    """
    check_keras_version()
    import tensorflow as tf
    from keras import tree

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    # Keras 3.15's EpochIterator yields (epoch, step, iterator) triples.
    for _, _, it in iterator:
        return tree.map_structure(local, next(it))
    return None


class TrainerHooks:
    """Mixin (before `keras.Model`) that turns two private methods of Keras' TensorFlow
    trainer into overridable hooks with public names.

    - `symbolic_build_args(iterator, data_batch)`: what `fit` / `evaluate` build the model
      from before the first step (default: unchanged).
    - `wrap_step(step_function)`: the step function Keras compiles (default: unchanged).
    """

    def symbolic_build_args(self, iterator, data_batch):
        return iterator, data_batch

    def wrap_step(self, step_function):
        return step_function

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        check_keras_version()
        iterator, data_batch = self.symbolic_build_args(iterator, data_batch)
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _make_function(self, step_function):
        check_keras_version()
        return super()._make_function(self.wrap_step(step_function))


def adam_moments(optimizer, variable):
    """The first and second moment variables (`m`, `v`) Keras' Adam keeps for `variable`."""
    check_keras_version()
    i = optimizer._get_variable_index(variable)
    return optimizer._momentums[i], optimizer._velocities[i]


def sublayers(layer):
    """Every layer inside `layer`, depth first, each followed by its own sublayers, in the
    order Keras tracked them (the order of creation)."""
    check_keras_version()
    for child in layer._flatten_layers(include_self=False, recursive=False):
        yield child
        yield from sublayers(child)

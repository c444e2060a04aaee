"""Training harnesses (keras.Model subclasses with a custom `train_step`) and their callbacks.

Import the recipe you need (`kerasr.training.train_dcgan`; `kerasr.training.train_sr` for the SR
pretrain / GAN stages); this package itself stays light.
"""

from __future__ import annotations


def limit_threads(threads: int) -> None:
    """Caps TensorFlow's intra- and inter-op thread pools (0 leaves TensorFlow's default).

    Call it before the first TensorFlow operation runs: the pools are fixed after that.
    A training run pinned to one core (`taskset -c 1`) should use `threads=1`, so that its
    threads do not fight each other for the core.

    Raises:
        KerasrError: if `threads` is negative.
    """
    from kerasr.errors import KerasrError

    if threads < 0:
        raise KerasrError(f"`threads` must be >= 0. Received: threads={threads}")
    if threads == 0:
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)

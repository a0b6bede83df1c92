"""Small helpers shared by test files (importable: pytest puts tests/ on
sys.path)."""

import tensorflow as tf


def nonzero(grads) -> bool:
    """True if any gradient in the list exists and is not all zeros."""
    return any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
               for g in grads)

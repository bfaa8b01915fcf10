"""Python wrappers of the two writer ops."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ._keys import has_names, resolve_keys
from ._loader import load_library

_INT64 = tf.int64


def _keys_tensor(keys) -> tf.Tensor:
    """keys as an int64 tensor. Any integer dtype is widened; anything else is an error."""
    # The common case first and cheaply: this runs on every eager call, where
    # the whole op costs ~15 us (a tuple isinstance with tf.Variable cost ~1 us).
    if isinstance(keys, tf.Tensor) or isinstance(keys, tf.Variable):
        dtype = keys.dtype
        if dtype is _INT64 or dtype == _INT64:
            return keys
        if dtype.is_integer:
            return tf.cast(keys, tf.int64)
        raise TypeError(f"keys must be integers (feature ids), got a {dtype.name} tensor")
    if has_names(keys):
        return tf.constant(_named_keys(keys), tf.int64)
    array = np.asarray(keys)
    if array.size == 0:
        return tf.constant(np.zeros(array.shape, np.int64))
    if array.dtype.kind not in "iu":
        raise TypeError(f"keys must be integers (feature ids), got {array.dtype} values: {keys!r}")
    if array.dtype.kind == "u" and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"keys must fit in int64, got {array.max()}")
    return tf.constant(array.astype(np.int64))


def _named_keys(keys) -> list[int]:
    """A list mixing feature names and ids, as ids. Checked here rather than by
    the op, so a clash names both entries ('prediction' and its id, say)."""
    try:
        return resolve_keys(keys, "")[0]
    except ValueError as e:
        # The class the op raises for bad key values (a duplicate id, say).
        raise tf.errors.InvalidArgumentError(None, None, str(e)) from e


def batch_prediction_response_writer(keys, values, name=None) -> tf.Tensor:
    """Serializes `values` [B, K] as a Thrift BatchPredictionResponse.

    `keys`: K int64 feature ids, or a list of ids and feature names (str or
    bytes, hashed as twml's FeatureId does: `bpr_ops.feature_ids`).

    Record i holds `continuousFeatures` {keys[j]: values[i, j]}, in the order
    of `keys`. `values` may be [B] when there is one key. Returns uint8 [1, N].
    """
    return load_library().batch_prediction_response_writer(
        keys=_keys_tensor(keys), values=values, name=name
    )


def batch_prediction_tensor_response_writer(keys, values, name=None) -> tf.Tensor:
    """Serializes one dense tensor per key as a Thrift BatchPredictionResponse.

    `values` is a list of K tensors, each [B, ...] with the same B. Record i
    holds `tensors` {keys[j]: row i of values[j]}. Returns uint8 [1, N].
    """
    if isinstance(values, (tf.Tensor, np.ndarray)):
        values = [values]
    values = list(values)
    keys = _keys_tensor(keys)
    if not values:
        # TensorFlow itself rejects an empty input list, with a message about
        # attr 'T' that does not say what to do.
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            f"values is empty (keys has shape {keys.shape}): the tensor writer needs at least "
            "one key and exactly one values tensor per key",
        )
    return load_library().batch_prediction_tensor_response_writer(keys=keys, values=values, name=name)

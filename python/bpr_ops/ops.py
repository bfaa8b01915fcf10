"""Python wrappers of the two writer ops."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as _eager_ops

from . import _checks
from ._keys import check_ordered, has_names, resolve_keys
from ._loader import load_library

_INT64 = tf.int64
_CONTINUOUS = "BatchPredictionResponseWriter"
_TENSOR = "BatchPredictionTensorResponseWriter"
_EagerTensor = _eager_ops.EagerTensor


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
    check_ordered(keys, "")
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


def _static_keys(keys: tf.Tensor, op: str):
    """What tracing knows of the keys: (where, their values or None, their count or None)."""
    values = _checks.static_keys(keys, op)
    where = f"{op} with keys {_checks.keys_text(values)}"
    return where, values, _checks.num_static_keys(keys)


def batch_prediction_response_writer(keys, values, name=None) -> tf.Tensor:
    """Serializes `values` [B, K] as a Thrift BatchPredictionResponse.

    `keys`: K int64 feature ids, or a list of ids and feature names (str or
    bytes, hashed as twml's FeatureId does: `bpr_ops.feature_ids`).

    Record i holds `continuousFeatures` {keys[j]: values[i, j]}, in the order
    of `keys`. `values` may be [B] when there is one key. Returns uint8 [1, N].

    Raises TypeError for values that are not one dense float tensor, and, when
    tracing (tf.function), ValueError (an InvalidArgumentError too) for shapes
    that cannot be written; the kernel checks the rest when it runs.
    """
    keys = _keys_tensor(keys)
    # The eager hot path (an eager tensor) skips the Python-side checks: the
    # kernel runs at once and checks them itself.
    if type(values) is not _EagerTensor:
        values = _checks.dense(
            values, "values", _CONTINUOUS, "a dense float tensor [batch, K] (or [batch] with one key)"
        )
        if not tf.executing_eagerly():
            where, ids, k = _static_keys(keys, _CONTINUOUS)
            _checks.check_continuous(where, ids, k, values)
    try:
        return load_library().batch_prediction_response_writer(keys=keys, values=values, name=name)
    except (TypeError, tf.errors.InvalidArgumentError) as e:
        # TensorFlow's text for a dtype outside the op's list names attr 'T'.
        error = _checks.unsupported_dtype(_CONTINUOUS, [values], _checks.CONTINUOUS_DTYPES)
        if error is None:
            raise
        raise error from e


def batch_prediction_tensor_response_writer(keys, values, name=None) -> tf.Tensor:
    """Serializes one dense tensor per key as a Thrift BatchPredictionResponse.

    `keys`: as for `batch_prediction_response_writer`, ids and/or names.
    `values` is a list of K tensors, each [B, ...] with the same B. Record i
    holds `tensors` {keys[j]: row i of values[j]}. Returns uint8 [1, N].

    Raises TypeError for values that are not a list of dense tensors of the
    supported dtypes, and, when tracing (tf.function), ValueError (an
    InvalidArgumentError too) for shapes that cannot be written.
    """
    keys = _keys_tensor(keys)
    # The eager hot path (a non-empty list of eager tensors) skips the
    # Python-side checks: the kernel runs at once and checks them itself.
    eager = type(values) is list and bool(values)
    if eager:
        for v in values:
            if type(v) is not _EagerTensor:
                eager = False
                break
    if not eager:
        values = _checked_tensor_values(keys, values)
    try:
        return load_library().batch_prediction_tensor_response_writer(keys=keys, values=values, name=name)
    except (TypeError, tf.errors.InvalidArgumentError) as e:
        error = _checks.unsupported_dtype(_TENSOR, values, _checks.TENSOR_DTYPES)
        if error is None:
            raise
        raise error from e


def _checked_tensor_values(keys: tf.Tensor, values) -> list:
    """The tensor writer's values as a list of dense tensors, checked as far
    as Python types and, when tracing, static shapes and dtypes tell."""
    values = _checks.dense_list(values, _TENSOR)
    if not values:
        # TensorFlow itself rejects an empty input list, with a message about
        # attr 'T' that does not say what to do.
        raise tf.errors.InvalidArgumentError(
            None,
            None,
            f"values is empty (keys has shape {keys.shape}): the tensor writer needs at least "
            "one key and exactly one values tensor per key",
        )
    if not tf.executing_eagerly():
        where, ids, k = _static_keys(keys, _TENSOR)
        _checks.check_tensor(where, ids, k, values)
    return values


_RECORD = "DataRecordTensorWriter"
# twml's attr T: list({string, int32, int64, float, double, bool}).
RECORD_DTYPES = (tf.string, tf.int32, tf.int64, tf.float32, tf.float64, tf.bool)


def _checked_record_values(keys: tf.Tensor, values) -> list:
    values = _checks.dense_list(values, _RECORD)
    error = _checks.unsupported_dtype(_RECORD, values, RECORD_DTYPES)
    if error is not None:
        raise error
    ids = _checks.static_keys(keys, _RECORD)
    if ids is not None and len(ids) != len(values):
        raise _checks.InputShapeError(
            None,
            None,
            f"{_RECORD}: keys has {len(ids)} entries but {len(values)} values tensors were given; "
            "one values tensor per key is expected",
        )
    return values


def data_record_tensor_writer(keys, values, name=None) -> tf.Tensor:
    """Serializes K dense tensors as one Thrift DataRecord (twml's
    DataRecordTensorWriter): `tensors` {keys[j]: values[j]}, numbers and bools
    as little-endian rawTypedTensor, strings as stringTensor, in key order.

    `keys`: ids and/or names (names hashed as twml's FeatureId does), distinct.
    `values`: a list of K tensors of any shape, each string, int32, int64,
    float32, float64 or bool. Returns uint8 [1, N]: the record's bytes.
    """
    keys = _keys_tensor(keys)
    values = _checked_record_values(keys, values)
    return load_library().data_record_tensor_writer(keys=keys, values=values, name=name)


# ---- One response per request (issue 29): for models a server batches ----------

_CONTINUOUS_RESPONSES = "BatchPredictionResponsesWriter"
_TENSOR_RESPONSES = "BatchPredictionTensorResponsesWriter"


def batch_prediction_responses_writer(keys, values, row_splits, name=None) -> tf.Tensor:
    """`batch_prediction_response_writer`, one response per request.

    `row_splits`: int64 [R + 1], request r owning records
    row_splits[r]..row_splits[r + 1] (first 0, last B, never decreasing), as
    `BatchPredictionRequestReader(row_splits=True)` gives them. Returns string
    [R]: element r is the serialized BatchPredictionResponse of request r's
    records, the bytes `batch_prediction_response_writer` gives for them alone.
    A server that batches requests (TF Serving, navi) concatenates inputs along
    dim 0 and splits this output along dim 0: each caller gets its own response.
    """
    from . import _splits

    keys = _keys_tensor(keys)
    values = _checks.dense(
        values, "values", _CONTINUOUS_RESPONSES, "a dense float tensor [batch, K] (or [batch] with one key)"
    )
    row_splits = _splits.as_splits(row_splits, _CONTINUOUS_RESPONSES)
    if not tf.executing_eagerly():
        where, ids, k = _static_keys(keys, _CONTINUOUS_RESPONSES)
        _checks.check_continuous(where, ids, k, values)
    try:
        return load_library().batch_prediction_responses_writer(
            keys=keys, values=values, row_splits=row_splits, name=name
        )
    except (TypeError, tf.errors.InvalidArgumentError) as e:
        error = _checks.unsupported_dtype(_CONTINUOUS_RESPONSES, [values], _checks.CONTINUOUS_DTYPES)
        if error is None:
            raise
        raise error from e


def batch_prediction_tensor_responses_writer(keys, values, row_splits, name=None) -> tf.Tensor:
    """`batch_prediction_tensor_response_writer`, one response per request:
    string [R], element r the bytes that writer gives for records
    row_splits[r]..row_splits[r + 1] alone (see `batch_prediction_responses_writer`)."""
    from . import _splits

    keys = _keys_tensor(keys)
    values = _checked_tensor_values(keys, values)
    row_splits = _splits.as_splits(row_splits, _TENSOR_RESPONSES)
    try:
        return load_library().batch_prediction_tensor_responses_writer(
            keys=keys, values=values, row_splits=row_splits, name=name
        )
    except (TypeError, tf.errors.InvalidArgumentError) as e:
        error = _checks.unsupported_dtype(_TENSOR_RESPONSES, values, _checks.TENSOR_DTYPES)
        if error is None:
            raise
        raise error from e

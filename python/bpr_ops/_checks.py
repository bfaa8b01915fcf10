"""What can be checked before any data flows: the Python type of the values,
their dtype, and the static shapes a KerasTensor or a traced tensor carries.

The kernel checks the same things again at run time (it sees the dims that were
unknown here); the messages use its words, prefixed with who saw the mistake
and what it got, so a mistake reads the same whenever it is caught.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

CONTINUOUS_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
TENSOR_DTYPES = (
    tf.string, tf.int8, tf.uint8, tf.int32, tf.int64, tf.bool,
    tf.float16, tf.bfloat16, tf.float32, tf.float64,
)  # fmt: skip


class _InputError(tf.errors.InvalidArgumentError, ValueError):
    """A value the writer cannot write, seen before the op runs.

    A ValueError, as Keras reports a model that cannot be built, and an
    InvalidArgumentError, the error the op raises at run time for the same
    mistake, so code that handles one handles both.
    """

    # The signature of InvalidArgumentError's: Keras and AutoGraph (tf.function)
    # re-raise an OpError as cls(node_def, op, message, ...) with context added,
    # and AutoGraph would turn it into another type otherwise. Keras re-raises
    # some errors as cls(message): that works too.
    def __init__(self, node_def, op=None, message=None, *args):
        if message is None and op is None and isinstance(node_def, str):
            node_def, message = None, node_def
        super().__init__(node_def, op, message)

    def __reduce__(self):
        return type(self), (self.node_def, self.op, self.message)


class InputShapeError(_InputError):
    """A shape the writer cannot write (ValueError, InvalidArgumentError)."""


class InputDTypeError(_InputError, TypeError):
    """A dtype the writer does not write: also a TypeError, what TensorFlow
    raises for a dtype outside an op's list while tracing."""


def _is_keras_tensor(value) -> bool:
    """A Keras 3 symbolic tensor. Keras is not imported for this: the ops
    need no Keras, and only an imported Keras can have made one."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, getattr(keras, "KerasTensor", ()))


def _shape_error(message: str) -> InputShapeError:
    return InputShapeError(None, None, message)


def _dtype_error(message: str) -> InputDTypeError:
    return InputDTypeError(None, None, message)


def dtype_list(dtypes) -> str:
    names = [f"tf.{d.name}" for d in dtypes]
    return ", ".join(names[:-1]) + " or " + names[-1]


def shape_text(shape) -> str:
    """`[2,3]` as the kernel prints shapes, `None` for an unknown dim."""
    if shape is None:
        return "<unknown rank>"
    return "[" + ",".join("None" if d is None else str(d) for d in shape) + "]"


def keys_text(keys) -> str:
    if keys is None:
        return "(keys not known while tracing)"
    keys = list(keys)
    if len(keys) > 8:
        return "[" + ", ".join(map(str, keys[:8])) + f", ...] ({len(keys)} keys)"
    return str(keys)


def _static_shape(value):
    shape = value.shape
    if isinstance(shape, tf.TensorShape):
        return None if shape.rank is None else tuple(shape.as_list())
    return tuple(shape)


def _dtype(value) -> tf.DType:
    return tf.as_dtype(value.dtype)


def spec_text(value) -> str:
    return f"{_dtype(value).name} {shape_text(_static_shape(value))}"


def _not_dense(value, what: str, where: str, accepted: str):
    """The TypeError for a value no writer takes, or None when it is dense."""
    if value is None:
        return TypeError(f"{where}: {what} is None; expected {accepted}")
    if isinstance(value, Mapping):
        return TypeError(
            f"{where}: {what} is a dict (keys {list(value)[:8]}); expected {accepted}. "
            + ("Pass the tensors in a list, in the order of the keys" if "list" in accepted else
               "Stack the scores into one tensor, a column per key in the order of the keys")
        )
    if isinstance(value, tf.RaggedTensor) or getattr(value, "ragged", False):
        return TypeError(
            f"{where}: {what} is a RaggedTensor; expected {accepted}. Make it dense first "
            "with .to_tensor() (rows padded with zeros to one length), e.g. values.to_tensor()"
        )
    if isinstance(value, (tf.SparseTensor, tf.compat.v1.SparseTensorValue)) or getattr(value, "sparse", False):
        return TypeError(
            f"{where}: {what} is a SparseTensor; expected {accepted}. Make it dense first "
            "with tf.sparse.to_dense, e.g. tf.sparse.to_dense(values)"
        )
    return None


def dense(value, what: str, where: str, accepted: str):
    """`value` if it is a dense tensor or KerasTensor, else converted to one.

    Raises TypeError for None, dicts, ragged and sparse values, and anything
    TensorFlow cannot make a dense tensor of.
    """
    if isinstance(value, tf.Tensor):
        return value
    error = _not_dense(value, what, where, accepted)
    if error is not None:
        raise error
    if _is_keras_tensor(value):
        return value
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{where}: {what} ({type(value).__name__}) cannot be made a dense tensor: {e}; "
            f"expected {accepted}"
        ) from None


def dense_list(values, where: str, keys=None) -> list:
    """The tensor writer's values as a list of dense tensors (a single tensor
    is a list of one)."""
    accepted = "a list of dense tensors [batch, ...], one per key"
    if isinstance(values, (tf.Tensor, np.ndarray)) or _is_keras_tensor(values):
        values = [values]
    error = _not_dense(values, "values", where, accepted)
    if error is not None:
        raise error
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{where}: values is a {type(values).__name__}; expected {accepted}")
    out = []
    for j, v in enumerate(values):
        key = f", key {keys[j]}" if keys is not None and j < len(keys) else ""
        out.append(dense(v, f"values[{j}]{key}", where, "a dense tensor [batch, ...]"))
    return out


def check_continuous(where: str, keys, num_keys, value) -> None:
    """The continuous writer's values: dtype, rank, and columns against the keys.

    `num_keys` is None when the keys are not known statically.
    """
    dtype, shape = _dtype(value), _static_shape(value)
    got = f"{where} got values {dtype.name} {shape_text(shape)}"
    if dtype not in CONTINUOUS_DTYPES:
        raise _dtype_error(
            f"{got}: values must be {dtype_list(CONTINUOUS_DTYPES)} (one score per key), "
            f"got {dtype.name}; cast them first, e.g. tf.cast(values, tf.float32)"
        )
    if shape is None:
        return
    k = "K" if num_keys is None else num_keys
    if len(shape) == 2:
        cols = shape[1]
        if cols is not None and num_keys is not None and cols != num_keys:
            raise _shape_error(
                f"{got}: values has shape {shape_text(shape)} ({cols} columns) but keys has "
                f"{num_keys} entries; values must have shape [batch, {num_keys}], one column per key"
            )
    elif len(shape) == 1:
        if num_keys is not None and num_keys != 1:
            raise _shape_error(
                f"{got}: values has rank-1 shape {shape_text(shape)} but keys has {num_keys} entries; "
                "a rank-1 values (one score per example) needs exactly one key, otherwise values "
                f"must have shape [batch, {num_keys}]"
            )
    else:
        raise _shape_error(
            f"{got}: values must have shape [batch, {k}] (rank 2)"
            f"{' or [batch]' if num_keys in (1, None) else ''}, "
            f"got shape {shape_text(shape)} (rank {len(shape)})"
        )


def check_tensor(where: str, keys, num_keys, values: list) -> None:
    """The tensor writer's values: one per key, supported dtypes, rank >= 1,
    equal batch sizes where known."""
    got = f"{where} got {len(values)} values tensors [{', '.join(spec_text(v) for v in values)}]"

    def described(j):
        key = f"key {keys[j]}, " if keys is not None and j < len(keys) else ""
        return f"values[{j}] ({key}{_dtype(values[j]).name}, shape {shape_text(_static_shape(values[j]))})"

    for j, v in enumerate(values):
        if _dtype(v) not in TENSOR_DTYPES:
            raise _dtype_error(
                f"{got}: {described(j)} has dtype {_dtype(v).name}, which the tensor writer does not "
                f"write; supported dtypes: {dtype_list(TENSOR_DTYPES)}"
            )
    if num_keys == 0:
        raise _shape_error(
            f"{got}: keys is empty (shape [0]): at least one key, with one values tensor per key, "
            "is required"
        )
    if num_keys is not None and num_keys != len(values):
        raise _shape_error(
            f"{got}: keys has {num_keys} entries but {len(values)} values tensors were given; "
            "one values tensor per key is expected"
        )
    first = None  # (batch, j) of the first tensor whose batch size is known
    for j, v in enumerate(values):
        shape = _static_shape(v)
        if shape is None:
            continue
        if not shape:
            raise _shape_error(
                f"{got}: {described(j)} is a scalar; every values tensor needs rank >= 1 with the "
                "batch in dim 0"
            )
        b = shape[0]
        if b is None:
            continue
        if first is None:
            first = (b, j)
        elif b != first[0]:
            raise _shape_error(
                f"{got}: {described(j)} has batch size {b} but {described(first[1])} has batch size "
                f"{first[0]}; all values tensors must share dim 0"
            )


def static_keys(keys: tf.Tensor, where: str):
    """The keys' static value (a list), or None when tracing does not know it.

    Checks what the static shape and value tell: rank 1, no duplicates.
    """
    shape = keys.shape
    if shape.rank is not None and shape.rank != 1:
        raise _shape_error(
            f"{where}: keys must be a rank-1 tensor (one feature id per output), got shape "
            f"{shape_text(shape.as_list())} (rank {shape.rank})"
        )
    value = tf.get_static_value(keys)
    if value is None:
        return None
    ids = [int(k) for k in np.reshape(value, [-1])]
    seen = {}
    for i, k in enumerate(ids):
        if k in seen:
            raise _shape_error(
                f"{where}: keys has a duplicate: key {k} appears at index {seen[k]} and index {i}; "
                "each key may appear once (a Thrift map keeps one value per key)"
            )
        seen[k] = i
    return ids


def num_static_keys(keys: tf.Tensor):
    shape = keys.shape
    return shape.as_list()[0] if shape.rank == 1 else None


def unsupported_dtype(where: str, values: list, supported) -> InputDTypeError | None:
    """The error for the first of `values` whose dtype the op does not take."""
    for j, v in enumerate(values):
        dtype = getattr(v, "dtype", None)
        if dtype is not None and tf.as_dtype(dtype) not in supported:
            what = "values" if len(values) == 1 and supported is CONTINUOUS_DTYPES else f"values[{j}]"
            return _dtype_error(
                f"{where}: {what} has dtype {tf.as_dtype(dtype).name}, which this writer does not "
                f"write; supported dtypes: {dtype_list(supported)}"
            )
    return None

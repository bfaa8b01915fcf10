"""row_splits, the per-request writers' third input (issue 29): int64 [R + 1],
request r owning records row_splits[r]..row_splits[r + 1]. What can be checked
before the op runs (dtype, rank); the kernel checks the values."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from . import _checks

ACCEPTED = (
    "an int64 tensor [R + 1] (request r owns records row_splits[r]..row_splits[r + 1]), "
    "e.g. the row_splits output of BatchPredictionRequestReader(row_splits=True)"
)


def check_spec(row_splits, where: str) -> None:
    """Raises for a tensor or KerasTensor whose dtype or static rank cannot be row splits."""
    dtype = tf.as_dtype(row_splits.dtype)
    if not dtype.is_integer:
        raise _checks.InputDTypeError(
            None, None, f"{where}: row_splits is {_checks.spec_text(row_splits)}; expected {ACCEPTED}"
        )
    shape = row_splits.shape
    rank = shape.rank if isinstance(shape, tf.TensorShape) else len(shape)
    if rank is not None and rank != 1:
        raise _checks.InputShapeError(
            None, None, f"{where}: row_splits is {_checks.spec_text(row_splits)} (rank {rank}); expected {ACCEPTED}"
        )


def as_splits(row_splits, where: str) -> tf.Tensor:
    """row_splits as an int64 tensor, checked as far as its dtype and static rank tell."""
    if row_splits is None:
        raise TypeError(f"{where}: row_splits is None; expected {ACCEPTED}")
    if not isinstance(row_splits, (tf.Tensor, tf.Variable)):
        array = np.asarray(row_splits)
        if array.dtype.kind not in "iu" and array.size:
            raise _checks.InputDTypeError(
                None, None, f"{where}: row_splits has {array.dtype} values; expected {ACCEPTED}"
            )
        row_splits = tf.constant(array.astype(np.int64))
    check_spec(row_splits, where)
    if row_splits.dtype != tf.int64:
        row_splits = tf.cast(row_splits, tf.int64)
    return row_splits

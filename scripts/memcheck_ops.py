"""A short workload for valgrind (scripts/memcheck.sh): both ops, every dtype, valid and
invalid inputs, outputs checked, in eager mode and in a tf.function."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "tests" / "python")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bpr_ops  # noqa: E402
import thrift_check  # noqa: E402

rng = np.random.default_rng(0)
calls = errors = 0
for dtype in (tf.float32, tf.float64, tf.float16, tf.bfloat16):
    for shape in ([3, 2], [0, 2], [1, 2]):
        values = tf.cast(rng.normal(size=shape), dtype)
        thrift_check.decode(thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer([4, -9], values)))
        calls += 1
tensors = [
    tf.constant([[b"a", b""], [b"\xff\xfe", b"x" * 100]]),
    tf.constant([[1, 2, 3], [4, 5, 6]], tf.int32),
    tf.constant([[1], [2]], tf.int64),
    tf.ones([2, 2, 2], tf.float32),
    tf.ones([2, 0], tf.float64),
    tf.constant([[True], [False]]),
    tf.constant([[1, 2], [3, 4]], tf.uint8),
    tf.ones([2, 3], tf.float16),
    tf.ones([2, 3], tf.bfloat16),
]
keys = list(range(10, 10 + len(tensors)))
fn = tf.function(bpr_ops.batch_prediction_tensor_response_writer)
for write in (bpr_ops.batch_prediction_tensor_response_writer, fn):
    thrift_check.decode(thrift_check.to_bytes(write(keys, tensors)))
    calls += 1
bad = [
    lambda: bpr_ops.batch_prediction_response_writer([1, 1], tf.ones([2, 2])),
    lambda: bpr_ops.batch_prediction_response_writer([1, 2], tf.ones([2, 3])),
    lambda: bpr_ops.batch_prediction_tensor_response_writer([1, 2], [tf.ones([2]), tf.ones([3])]),
    lambda: bpr_ops.batch_prediction_tensor_response_writer([1], [tf.constant(1.0)]),
    lambda: bpr_ops.batch_prediction_tensor_response_writer([1], [tf.zeros([0, 2**31], tf.uint8)]),
]
for call in bad:
    try:
        call()
    except tf.errors.InvalidArgumentError:
        errors += 1
assert errors == len(bad), errors
print(f"memcheck workload: {calls} calls checked, {errors} errors raised as expected")

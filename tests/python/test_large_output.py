"""Slow limits tests (several GiB of memory): run with BPR_OPS_SLOW=1 (scripts/large_output.sh).

- A response over 2 GiB is legal Thrift (only each count and length is an i32) and must be
  written exactly: every byte is checked, with numpy views rather than a second copy.
- A single string, or a single row's content, over 2^31-1 bytes is rejected with a clear
  InvalidArgumentError before the output is allocated.
"""

from __future__ import annotations

import os
import resource

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops

slow = pytest.mark.skipif(os.environ.get("BPR_OPS_SLOW") != "1", reason="slow: set BPR_OPS_SLOW=1")

GIB = 1 << 30


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


@slow
def test_continuous_response_over_2_gib_is_written_exactly():
    k = 1000
    record = 10 + 16 * k
    batch = (2 * GIB) // record + 1000  # 9 + batch * record > 2 GiB
    keys = np.arange(k, dtype=np.int64) * 7919 - 10**12
    rng = np.random.default_rng(0)
    values = rng.standard_normal((batch, k))  # float64: written bit for bit
    out = bpr_ops.batch_prediction_response_writer(keys, values)
    data = out.numpy().reshape(-1)
    del out
    size = 9 + batch * record
    assert size > 2 * GIB
    assert data.size == size

    assert data[:4].tobytes() == b"\x0f\x00\x01\x0c"
    assert int.from_bytes(data[4:8].tobytes(), "big") == batch
    assert data[-1] == 0
    records = data[8:-1].reshape(batch, record)
    header = b"\x0d\x00\x02\x0a\x04" + k.to_bytes(4, "big")
    assert (records[:, :9] == np.frombuffer(header, np.uint8)).all()
    assert (records[:, -1] == 0).all()
    entries = records[:, 9:-1].reshape(batch, k, 16)
    assert (entries[:, :, :8].copy().view(">i8")[:, :, 0] == keys).all()
    # Compared as bits, per record block, to keep the temporary copies small.
    for start in range(0, batch, 8192):
        block = entries[start : start + 8192, :, 8:].copy().view(">u8")[:, :, 0]
        assert (block == values[start : start + 8192].view(np.uint64)).all(), f"records {start}.."
    print(f"\ncontinuous: {size} bytes ({size / GIB:.3f} GiB) checked; peak RSS {peak_rss_gib():.2f} GiB")


@slow
def test_tensor_response_over_2_gib_is_written_exactly():
    row = 1 << 20  # 1 MiB of uint8 content per record
    batch = 2 * 1024 + 16  # > 2 GiB of content in total
    values = np.empty((batch, row), np.uint8)
    values[:] = (np.arange(batch, dtype=np.uint64)[:, None] * 2654435761 % 251).astype(np.uint8)
    values[:, ::4097] = 0xA5
    tensor = tf.constant(values)
    out = bpr_ops.batch_prediction_tensor_response_writer([42], [tensor])
    del tensor
    data = out.numpy().reshape(-1)
    del out
    entry = 8 + 3 + (3 + 4) + (3 + 4) + row + (3 + 5 + 8) + 2
    record = 3 + 6 + entry + 1
    size = 9 + batch * record
    assert size > 2 * GIB and data.size == size
    assert int.from_bytes(data[4:8].tobytes(), "big") == batch
    records = data[8:-1].reshape(batch, record)
    # The framing before the content, then the content, then shape and STOPs, for every record.
    prefix = (
        b"\x0d\x00\x08\x0a\x0c\x00\x00\x00\x01" + (42).to_bytes(8, "big")
        + b"\x0c\x00\x01\x08\x00\x01\x00\x00\x00\x04\x0b\x00\x02" + row.to_bytes(4, "big")
    )
    suffix = b"\x0f\x00\x03\x0a\x00\x00\x00\x01" + row.to_bytes(8, "big") + b"\x00\x00\x00"
    assert (records[:, : len(prefix)] == np.frombuffer(prefix, np.uint8)).all()
    assert (records[:, len(prefix) + row :] == np.frombuffer(suffix, np.uint8)).all()
    for start in range(0, batch, 256):  # blocks keep the comparison's temporaries small
        block = records[start : start + 256, len(prefix) : len(prefix) + row]
        assert (block == values[start : start + 256]).all(), f"records {start}.."

    print(f"\ntensor: {size} bytes ({size / GIB:.3f} GiB) checked; peak RSS {peak_rss_gib():.2f} GiB")


@slow
def test_a_string_over_the_i32_limit_is_rejected():
    big = np.array([[b"x" * (2**31)]], dtype=object)
    values = tf.constant(big, tf.string)
    del big
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"string 0 of row 0 is 2147483648 bytes, over the Thrift string limit"):
        bpr_ops.batch_prediction_tensor_response_writer([5], [values])


@slow
def test_a_row_over_the_i32_limit_is_rejected():
    values = tf.zeros([1, 2**31], tf.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a row holds 2147483648 elements of 1 bytes, over the Thrift binary limit"):
        bpr_ops.batch_prediction_tensor_response_writer([5], [values])

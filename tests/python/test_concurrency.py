"""Both ops called from 8 threads at once, 1000 calls each per op, in one TensorFlow process:
every thread has its own inputs (its own keys, values, batch sizes, strings) and every output
must be exactly the bytes the spec oracle gives for that thread's input."""

from __future__ import annotations

import struct
import threading

import numpy as np
import tensorflow as tf

import bpr_ops
import thrift_check

THREADS = 8
CALLS = 1000
INPUTS_PER_THREAD = 4  # each thread rotates through its own inputs, so consecutive outputs differ


def continuous_input(thread: int, variant: int, rng):
    k = 1 + (thread + variant) % 5
    batch = (thread * 3 + variant) % 7  # 0 included
    keys = [thread * 1000 + variant * 10 + j for j in range(k)]
    values = rng.normal(size=(batch, k)).astype(np.float64)
    rows = values.view(np.uint64)
    return (keys, tf.constant(values)), thrift_check.oracle_continuous(keys, rows)


def tensor_input(thread: int, variant: int, rng):
    batch = 1 + (thread + variant) % 4
    keys = [-(thread * 100 + variant), 7, 1 << 40]
    ints = rng.integers(-(2**31), 2**31, size=(batch, 1 + thread % 3), dtype=np.int32)
    floats = rng.normal(size=(batch, 2, 2)).astype(np.float32)
    strings = np.array(
        [[f"t{thread}v{variant}r{i}".encode() * (1 + i), b"\xff" * thread] for i in range(batch)], dtype=object
    )
    records = []
    for i in range(batch):
        records.append([
            thrift_check.oracle_raw_tensor(2, ints[i].astype("<i4").tobytes(), list(ints.shape[1:])),
            thrift_check.oracle_raw_tensor(0, floats[i].astype("<f4").tobytes(), [2, 2]),
            thrift_check.oracle_string_tensor(list(strings[i]), [2]),
        ])
    values = [tf.constant(ints), tf.constant(floats), tf.constant(strings, tf.string)]
    return (keys, values), thrift_check.oracle_tensor_response(keys, records)


def run_threads(make_input, call, calls=CALLS):
    """Makes each thread's inputs, then runs `calls` calls in each of THREADS threads at once."""
    start = threading.Barrier(THREADS)
    failures: list[str] = []
    done = [0] * THREADS

    def worker(thread: int):
        rng = np.random.default_rng(thread)
        cases = [make_input(thread, v, rng) for v in range(INPUTS_PER_THREAD)]
        start.wait()
        try:
            for n in range(calls):
                args, expected = cases[n % INPUTS_PER_THREAD]
                got = thrift_check.to_bytes(call(*args))
                if got != expected:
                    failures.append(f"thread {thread} call {n}: {len(got)} bytes, expected {len(expected)}")
                    return
                done[thread] += 1
        except Exception as e:  # noqa: BLE001 - reported below with the thread
            failures.append(f"thread {thread}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:5]
    assert done == [calls] * THREADS


def test_continuous_writer_from_eight_threads():
    run_threads(continuous_input, bpr_ops.batch_prediction_response_writer)


def test_tensor_writer_from_eight_threads():
    run_threads(tensor_input, bpr_ops.batch_prediction_tensor_response_writer)


def test_both_ops_interleaved_in_one_graph_from_eight_threads():
    # One tf.function holding both ops, called concurrently: the kernels run on TensorFlow's
    # inter-op threads rather than the calling thread.
    @tf.function(reduce_retracing=True)
    def both(ckeys, cvalues, tkeys, tvalues):
        return (
            bpr_ops.batch_prediction_response_writer(ckeys, cvalues),
            bpr_ops.batch_prediction_tensor_response_writer(tkeys, tvalues),
        )

    def make(thread, variant, rng):
        (ck, cv), cexp = continuous_input(thread, variant, rng)
        (tk, tv), texp = tensor_input(thread, variant, rng)
        # Fixed shapes per variant slot keep the traces few.
        return (tf.constant(ck, tf.int64), cv, tf.constant(tk, tf.int64), tv), (cexp, texp)

    def call(ck, cv, tk, tv):
        c, t = both(ck, cv, tk, tv)
        return tf.concat([c, t], axis=1)

    def make_joined(thread, variant, rng):
        args, (cexp, texp) = make(thread, variant, rng)
        return args, cexp + texp

    run_threads(make_joined, call)


def test_oracle_helpers_agree_with_thriftpy2():
    # The oracle bytes above are only a judge if they decode: check one of each.
    _, cexp = continuous_input(3, 1, np.random.default_rng(0))
    _, texp = tensor_input(3, 1, np.random.default_rng(0))
    assert thrift_check.decode(cexp).predictions is not None
    assert len(thrift_check.decode(texp).predictions) == 1 + (3 + 1) % 4
    assert struct.unpack(">i", cexp[4:8])[0] == (3 * 3 + 1) % 7

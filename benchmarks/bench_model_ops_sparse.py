"""BinarySparseTensorDenseMatMul (bpr_ops) against tf.sparse.sparse_dense_matmul
with the same binary input, in graph mode (tf.function), at 1, 64, 1024 and
16384 rows of hashed features (KEYS per row in 2^BITS columns), for output
widths 1 (the Earlybird light ranker's FullSparse(1)) and 64. Rounds are
interleaved (each round times both, in alternating order); prints the median
time per call of each and their ratio. Not a test: numbers, on this machine.

    .venv/bin/python benchmarks/bench_model_ops_sparse.py [ROUNDS] [CALLS]
"""

import statistics
import sys
import time

import numpy as np
import tensorflow as tf

import bpr_ops
from bpr_ops import sparse_layers as sl

BITS = 20
KEYS = 40


def batch(rows, rng):
    cols = np.sort(rng.integers(0, 1 << BITS, size=(rows, KEYS)), axis=1)
    idx = np.stack([np.repeat(np.arange(rows), KEYS), cols.ravel()], 1).astype(np.int64)
    return tf.SparseTensor(idx, tf.ones([len(idx)]), [rows, 1 << BITS])


def timed(fn, sp, w, calls):
    fn(sp, w).numpy()  # traced and warm
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(sp, w)
    out.numpy()
    return (time.perf_counter() - start) / calls


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    rng = np.random.default_rng(0)
    ours = tf.function(lambda sp, w: sl.binary_sparse_dense_matmul(sp, w))
    theirs = tf.function(lambda sp, w: tf.sparse.sparse_dense_matmul(sp, w))
    print(f"TensorFlow {tf.__version__}, bpr_ops {bpr_ops.__version__}; {KEYS} keys per row in 2^{BITS} columns; "
          f"median of {rounds} interleaved rounds of {calls} calls")
    print(f"{'rows':>6} {'width':>5} {'bpr_ops us':>11} {'tf.sparse us':>13} {'tf/bpr_ops':>10}")
    for width in (1, 64):
        w = tf.constant(rng.normal(size=(1 << BITS, width)).astype(np.float32))
        for rows in (1, 64, 1024, 16384):
            sp = batch(rows, rng)
            np.testing.assert_allclose(ours(sp, w).numpy(), theirs(sp, w).numpy(), rtol=1e-4, atol=1e-4)
            a, b = [], []
            for r in range(rounds):
                pair = ((ours, a), (theirs, b)) if r % 2 == 0 else ((theirs, b), (ours, a))
                for fn, sink in pair:
                    sink.append(timed(fn, sp, w, calls))
            ma, mb = statistics.median(a) * 1e6, statistics.median(b) * 1e6
            print(f"{rows:>6} {width:>5} {ma:>11.1f} {mb:>13.1f} {mb / ma:>10.2f}")


if __name__ == "__main__":
    main()

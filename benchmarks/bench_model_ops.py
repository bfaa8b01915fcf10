"""Speed of twml's discretizer ops in libbpr_ops.so against the plain
TensorFlow way, in graph mode (tf.function), at 1, 64, 1024 and 16384 rows.

- hashing: BprHashingDiscretizer vs a StaticHashTable lookup of the feature's
  row, tf.searchsorted over its bins and the same hash in int64 tf ops;
- isotonic: IsotonicCalibration vs tf.searchsorted + gather + linear
  interpolation.

Rounds are interleaved (A, B, A, B, ...) and the medians printed. Numbers,
not a test: `python benchmarks/bench_model_ops.py [--rounds N]`.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bpr_ops import discretizers  # noqa: E402

N_FEATURES, N_BIN, BITS = 1000, 20, 22
C32 = 2654435761


def hashing_pair(rows):
    rng = np.random.default_rng(0)
    fids = rng.choice(1 << 40, size=N_FEATURES, replace=False).astype(np.int64)
    bins = np.sort(rng.normal(size=(N_FEATURES, N_BIN)), axis=1).astype(np.float32)
    n = rows * 40  # 40 features per row
    ids = tf.constant(rng.choice(fids, size=n))
    vals = tf.constant(rng.normal(size=n).astype(np.float32))
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(fids, np.arange(N_FEATURES)), -1)
    bins_t, flat_bins, fids_t = tf.constant(bins), tf.constant(bins.reshape(-1)), tf.constant(fids)

    @tf.function
    def ours():
        return discretizers.hashing_discretizer(ids, vals, flat_bins, fids_t, n_bin=N_BIN, output_bits=BITS)

    @tf.function
    def plain():
        row = table.lookup(ids)
        found = row >= 0
        b = tf.searchsorted(tf.gather(bins_t, tf.maximum(row, 0)), vals[:, None], side="left")[:, 0]
        # The 32-bit hash on uint64 words (wrapping multiply).
        h = tf.bitcast(ids, tf.uint64) * tf.constant(C32, tf.uint64) + tf.cast(b, tf.uint64)
        h = tf.bitwise.right_shift(h * tf.constant(C32, tf.uint64), tf.constant(32 - BITS, tf.uint64))
        h = tf.bitcast(tf.bitwise.bitwise_and(h, tf.constant((1 << BITS) - 1, tf.uint64)), tf.int64)
        keys = tf.where(found, h, tf.bitwise.bitwise_and(ids, (1 << BITS) - 1))
        return keys, tf.where(found, tf.ones_like(vals), vals)

    a, b = ours(), plain()
    np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())  # same answer before timing
    return ours, plain


def isotonic_pair(rows):
    rng = np.random.default_rng(1)
    xs = tf.constant(np.sort(rng.uniform(size=(1, 100)), axis=1).astype(np.float32))
    ys = tf.constant(np.sort(rng.uniform(size=(1, 100)), axis=1).astype(np.float32))
    inp = tf.constant(rng.uniform(size=(rows, 1)).astype(np.float32))

    @tf.function
    def ours():
        return discretizers.isotonic_calibration(inp, xs, ys)

    @tf.function
    def plain():
        r = tf.clip_by_value(tf.searchsorted(xs, tf.transpose(inp), side="right"), 1, 99)
        x0, x1 = tf.gather(xs, r - 1, batch_dims=1), tf.gather(xs, r, batch_dims=1)
        y0, y1 = tf.gather(ys, r - 1, batch_dims=1), tf.gather(ys, r, batch_dims=1)
        t = tf.clip_by_value((tf.transpose(inp) - x0) / (x1 - x0), 0.0, 1.0)
        return tf.transpose(y0 + t * (y1 - y0))

    np.testing.assert_allclose(ours().numpy(), plain().numpy(), atol=1e-5)
    return ours, plain


def timed(fn, reps):
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"{'op':10} {'rows':>6} {'bpr_ops us':>11} {'plain TF us':>12} {'plain/ours':>10}")
    for name, make in (("hashing", hashing_pair), ("isotonic", isotonic_pair)):
        for rows in (1, 64, 1024, 16384):
            ours, plain = make(rows)
            reps = max(3, 2000 // max(1, rows // 16))
            a, b = [], []
            for _ in range(args.rounds):
                a.append(timed(ours, reps))
                b.append(timed(plain, reps))
            ma, mb = statistics.median(a) * 1e6, statistics.median(b) * 1e6
            print(f"{name:10} {rows:>6} {ma:>11.1f} {mb:>12.1f} {mb / ma:>10.2f}")


if __name__ == "__main__":
    main()

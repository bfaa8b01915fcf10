"""Resident memory across many calls of both ops: it must stay flat.

    .venv/bin/python scripts/rss_check.py [CALLS]     (default 100000 of each op)

Warms up, then calls each op with valid inputs and samples VmRSS: it fails when RSS grows by
more than 4 MiB. The error path (InvalidArgumentError raised) is measured too, against the
same number of errors from a TensorFlow built-in op, since TensorFlow's eager runtime keeps
some memory per raised error by itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bpr_ops  # noqa: E402

ALLOWANCE_MB = 4


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def growth(name: str, call, calls: int) -> float:
    """RSS growth over `calls` calls, after a warm-up; prints samples."""
    for _ in range(5000):
        call()
    first = rss_mb()
    step = max(1, calls // 5)
    for i in range(calls):
        call()
        if (i + 1) % step == 0:
            print(f"  {name}: after {i + 1:>7} calls RSS {rss_mb():8.1f} MiB")
    grown = rss_mb() - first
    print(f"{name}: RSS {first:.1f} -> {first + grown:.1f} MiB ({grown:+.1f} MiB over {calls} calls)")
    return grown


def raises(call):
    def run():
        try:
            call()
        except tf.errors.InvalidArgumentError:
            return
        raise AssertionError("no error")

    return run


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    keys = tf.constant([1, 2, 3], tf.int64)
    values = tf.constant(np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32))
    tkeys = tf.constant([7, 8], tf.int64)
    tvalues = [tf.constant([[b"abc", b"\xff" * 40]] * 16), tf.ones([16, 4], tf.float16)]

    ok = True
    for name, call in [
        ("continuous writer", lambda: bpr_ops.batch_prediction_response_writer(keys, values)),
        ("tensor writer", lambda: bpr_ops.batch_prediction_tensor_response_writer(tkeys, tvalues)),
    ]:
        ok &= growth(name, call, calls) <= ALLOWANCE_MB
    # The error path. TensorFlow's eager runtime itself keeps about 0.7 KiB per raised error
    # (measured with tf.reshape below), so ours is judged against that baseline.
    errors = max(1, calls // 5)
    baseline = growth("baseline: tf.reshape error", raises(lambda: tf.reshape(values, [7])), errors)
    for name, call in [
        ("continuous writer error", lambda: bpr_ops.batch_prediction_response_writer(tf.constant([1, 1, 2], tf.int64), values)),
        ("tensor writer error", lambda: bpr_ops.batch_prediction_tensor_response_writer(tkeys, tvalues[:1])),
    ]:
        ok &= growth(name, raises(call), errors) <= baseline * 1.5 + ALLOWANCE_MB
    print("RSS flat" if ok else "RSS GROWS")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

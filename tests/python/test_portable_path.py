"""The op's two code paths give the same bytes through TensorFlow: on a CPU with AVX2 the kernels
run the AVX2 writers, and BPR_OPS_PORTABLE=1 (read once per process) forces the portable ones.
Each path runs in its own process, inside a tf.function (a graph, where TensorFlow sets DAZ and
FTZ), on values full of NaN payloads, infinities, zeros, subnormals and -0.0, and the bytes are
decoded with thriftpy2 back to the exact input bits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thrift_check import DataType, decode, oracle_continuous, oracle_raw_tensor, oracle_tensor_response

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys
sys.path[:0] = [sys.argv[1]]
import numpy as np
import tensorflow as tf
import bpr_ops

rng = np.random.default_rng(5)
def floats(n):
    # One value in three is a special or subnormal f32 pattern, the rest random normal numbers.
    special = np.array([0x7f800001, 0xffc00123, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff,
                        0x80000000, 0x00000000, 0x00400000], np.uint32)
    bits = rng.integers(0x00800000, 0x7f000000, n, dtype=np.uint32) | (rng.integers(0, 2, n, dtype=np.uint32) << 31)
    pick = rng.integers(0, 3, n) == 0
    bits[pick] = special[rng.integers(0, len(special), pick.sum())]
    return bits.view(np.float32)

out = {}
for k, b in [(1, 9), (4, 33), (16, 20), (5, 17), (13, 3)]:
    values = floats(b * k).reshape(b, k)
    f = tf.function(lambda v, k=k: bpr_ops.batch_prediction_response_writer(list(range(100, 100 + k)), v))
    out[f"continuous f32 K={k}"] = (f(tf.constant(values)).numpy().tobytes(), values)
    f64 = values.astype(np.float64)
    f = tf.function(lambda v, k=k: bpr_ops.batch_prediction_response_writer(list(range(7, 7 + k)), v))
    out[f"continuous f64 K={k}"] = (f(tf.constant(f64)).numpy().tobytes(), f64)
cols = [floats(40 * 16).reshape(40, 16), rng.integers(-9, 9, (40, 5), dtype=np.int64),
        rng.integers(0, 255, (40, 40), dtype=np.uint8), floats(40 * 3).reshape(40, 3)]
f = tf.function(lambda *v: bpr_ops.batch_prediction_tensor_response_writer([1, 2, 3, 4], list(v)))
out["tensor"] = (f(*[tf.constant(c) for c in cols]).numpy().tobytes(), cols)
np.save(sys.argv[2], np.array(out, dtype=object), allow_pickle=True)
"""


def _run(tmp_path, portable):
    env = dict(os.environ)
    env.pop("BPR_OPS_PORTABLE", None)
    if portable:
        env["BPR_OPS_PORTABLE"] = "1"
    path = tmp_path / f"out-{portable}.npy"
    run = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "python"), str(path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return np.load(path, allow_pickle=True).item()


def _f32_to_f64_bits(values: np.ndarray) -> np.ndarray:
    """Exact widening, NaN payloads kept: numpy's astype for everything but NaNs (exact in this
    process's default FPU mode), and NaNs moved bit by bit (the hardware would quiet them)."""
    bits = values.view(np.uint32).astype(np.uint64)
    with np.errstate(invalid="ignore"):  # signalling NaNs raise the invalid flag when widened
        wide = values.astype(np.float64).view(np.uint64).copy()
    nan = np.isnan(values)
    wide[nan] = ((bits[nan] >> 31) << 63) | (0x7FF << 52) | ((bits[nan] & 0x7FFFFF) << 29)
    return wide


def test_avx2_and_portable_paths_write_the_same_exact_bytes(tmp_path):
    fast = _run(tmp_path, portable=False)
    portable = _run(tmp_path, portable=True)
    assert fast.keys() == portable.keys()
    for case, (data, values) in fast.items():
        assert data == portable[case][0], case
        decode(data)  # thriftpy2 reads every byte
        if case.startswith("continuous"):
            k = values.shape[1]
            first = 100 if "f32" in case else 7
            wide = _f32_to_f64_bits(values) if "f32" in case else values.view(np.uint64)
            assert data == oracle_continuous(range(first, first + k), wide), case
        else:
            f32, i64, u8, f32b = values
            expected = oracle_tensor_response([1, 2, 3, 4], [
                [oracle_raw_tensor(DataType.FLOAT, f32[i].tobytes(), [16]),
                 oracle_raw_tensor(DataType.INT64, i64[i].tobytes(), [5]),
                 oracle_raw_tensor(DataType.UINT8, u8[i].tobytes(), [40]),
                 oracle_raw_tensor(DataType.FLOAT, f32b[i].tobytes(), [3])]
                for i in range(40)])
            assert data == expected, case


def test_the_portable_switch_is_documented():
    assert "BPR_OPS_PORTABLE" in (ROOT / "docs" / "reference" / "install.md").read_text()

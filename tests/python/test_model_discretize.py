"""twml's HashingDiscretizer and IsotonicCalibration in libbpr_ops.so: twml's
registered interfaces (twml_discretize_interfaces.py), results equal to NumPy
references written from twml's C++ (hashing_discretizer_impl.cpp,
interpolate.h) over every dtype, search and hash option, masks of 31/32/40
bits, empty inputs, NaN/inf, values on bin edges and uncalibrated ids; twml's
op in tf.function and a v1 Session, ours eagerly; clear errors where twml
hangs or reads out of bounds."""


import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

import bpr_ops
from bpr_ops import discretizers
from twml_discretize_interfaces import TWML_DISCRETIZE_OPS
from twml_opdef import check_opdef

M64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def lib():
    return tf.load_op_library(str(bpr_ops.library_path()))


@pytest.mark.parametrize("name", sorted(TWML_DISCRETIZE_OPS))
def test_interface_is_twmls(lib, name):
    check_opdef(name, op_def_registry.get(name), TWML_DISCRETIZE_OPS[name])


# --- NumPy references, from twml's C++ ---------------------------------------

def ref_mask(bits):
    # (1 << output_bits) - 1 in 32-bit int on x86: the count is taken mod 32.
    return (1 << (bits % 32)) - 1


def signed(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def ref_hash(fid, bucket, bits, hash64):
    c, n = (14695981039346656039, 64) if hash64 else (2654435761, 32)
    x = ((fid & M64) * c) & M64
    x = (x + bucket) & M64
    x = (x * c) & M64
    x >>= (n - bits) % 64  # a 64-bit shift count mod 64 on x86
    return signed(x & ref_mask(bits))


def ref_bucket(bins, v, search):
    if np.isnan(v):
        # Every comparison with NaN is false.
        return len(bins) if search == 2 else 0
    if search == 1:
        n = 0
        while n < len(bins) and v > bins[n]:
            n += 1
        return n
    return int(np.searchsorted(bins, v, side="right" if search == 2 else "left"))


def ref_hashing(ids, vals, feature_ids, bin_vals, n_bin, bits, options):
    search = options & 3
    search = 0 if search == 3 else search
    hash64 = (options >> 2) & 7 == 1
    where = {int(f): i for i, f in enumerate(feature_ids)}
    keys, out = [], []
    for fid, v in zip(ids, vals):
        i = where.get(int(fid))
        if i is None:
            keys.append(signed(int(fid) & M64 & ref_mask(bits)) if ref_mask(bits) else 0)
            out.append(v)
        else:
            b = ref_bucket(bin_vals[i * n_bin:(i + 1) * n_bin], v, search)
            keys.append(ref_hash(int(fid), b, bits, hash64))
            out.append(1)
    return np.array(keys, np.int64), np.array(out, vals.dtype)


def case(dtype, seed=0, n=200):
    rng = np.random.default_rng(seed)
    feature_ids = np.array([5, -3, 1 << 40, 77, 2], np.int64)
    n_bin = 4
    bin_vals = np.sort(rng.normal(size=(5, n_bin)), axis=1).astype(dtype)
    bin_vals[3] = [0, 1, 1, 2]  # repeated boundaries
    ids = rng.choice(np.concatenate([feature_ids, [9, -1, 123456789012]]), size=n)
    vals = rng.normal(size=n).astype(dtype)
    # Values on every boundary of their feature, and the edge values.
    for j in range(0, n, 7):
        i = np.flatnonzero(feature_ids == ids[j])
        if i.size:
            vals[j] = bin_vals[i[0], j % n_bin]
    vals[:6] = [np.nan, np.inf, -np.inf, 0.0, -0.0, np.finfo(dtype).max]
    ids[:6] = feature_ids[3]
    return ids, vals, feature_ids, bin_vals.reshape(-1), n_bin


# Every search and hash (and the reserved values 3 and 8, read as twml reads
# them) against every mask class: 1 bit, ordinary, 31, 32 (mask 0), 40 (255).
OPTION_BITS = [(0, 1), (1, 22), (2, 31), (4, 32), (5, 40), (6, 22), (3, 8), (8, 40), (0, 32), (4, 31)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options,bits", OPTION_BITS)
def test_hashing_equals_reference(lib, dtype, options, bits):
    ids, vals, fids, bins, n_bin = case(dtype, seed=bits * 10 + options)
    want_keys, want_vals = ref_hashing(ids, vals, fids, bins, n_bin, bits, options)
    keys, out = discretizers.hashing_discretizer(ids, vals, bins, fids, n_bin=n_bin, output_bits=bits, options=options)
    np.testing.assert_array_equal(keys.numpy(), want_keys)
    np.testing.assert_array_equal(out.numpy(), want_vals)
    assert out.dtype == tf.as_dtype(dtype)

    @tf.function
    def twml_op():
        return discretizers.twml_hashing_discretizer(ids, vals, bins, fids, n_bin=n_bin, output_bits=bits,
                                                     options=options)

    keys2, out2 = twml_op()
    np.testing.assert_array_equal(keys2.numpy(), want_keys)
    np.testing.assert_array_equal(out2.numpy(), want_vals)


def test_hashing_in_a_v1_session_with_twmls_attrs(lib):
    ids, vals, fids, bins, n_bin = case(np.float32, seed=3)
    want = ref_hashing(ids, vals, fids, bins, n_bin, 22, 0)
    with tf.Graph().as_default() as g:
        ph_ids = tf.compat.v1.placeholder(tf.int64, [None])
        ph_vals = tf.compat.v1.placeholder(tf.float32, [None])
        keys, out = lib.hashing_discretizer(
            input_ids=ph_ids, input_vals=ph_vals, bin_vals=tf.constant(bins),
            feature_ids=tf.make_tensor_proto(fids), n_bin=n_bin, output_bits=22, cost_per_unit=500, options=0)
        with tf.compat.v1.Session(graph=g) as sess:
            got = sess.run([keys, out], {ph_ids: ids, ph_vals: vals})
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_hashing_large_input_sharded_equals_reference(lib):
    # Over the size where the kernel shards the work over the pool.
    rng = np.random.default_rng(9)
    fids = np.arange(100, dtype=np.int64)
    bins = np.sort(rng.normal(size=(100, 3)), axis=1).reshape(-1).astype(np.float32)
    ids = rng.integers(0, 150, size=200_000)
    vals = rng.normal(size=ids.size).astype(np.float32)
    keys, out = discretizers.hashing_discretizer(ids, vals, bins, fids, n_bin=3, output_bits=18)
    # Vectorised reference for the bucket; hashes of the 100 x 4 pairs.
    calibrated = ids < 100
    b = (bins.reshape(100, 3)[np.minimum(ids, 99)] < vals[:, None]).sum(axis=1)
    table = {(f, k): ref_hash(f, k, 18, False) for f in range(100) for k in range(4)}
    want = np.where(calibrated, [table.get((int(i), int(k)), 0) for i, k in zip(ids, b)], ids & ((1 << 18) - 1))
    np.testing.assert_array_equal(keys.numpy(), want)
    np.testing.assert_array_equal(out.numpy(), np.where(calibrated, 1, vals))


def test_hashing_empty_inputs_and_empty_calibration(lib):
    keys, out = discretizers.hashing_discretizer(np.zeros(0, np.int64), np.zeros(0, np.float32),
                                                 np.zeros(0, np.float32), np.zeros(0, np.int64), 2, 10)
    assert keys.shape == (0,) and out.shape == (0,)
    keys, out = discretizers.hashing_discretizer([5, 1 << 20], np.float32([1.5, 2.5]), np.zeros(0, np.float32),
                                                 np.zeros(0, np.int64), 2, 10)
    np.testing.assert_array_equal(keys.numpy(), [5, 0])
    np.testing.assert_array_equal(out.numpy(), [1.5, 2.5])


def test_hashing_errors_name_the_input(lib):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bin_vals has 3 elements; expected n_bin \(2\) x 2"):
        discretizers.hashing_discretizer([1], np.float32([0.5]), np.float32([0, 1, 2]), [1, 2], 2, 10)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="input_vals|Dimensions must be equal"):
        discretizers.hashing_discretizer([1, 2], np.float32([0.5]), np.float32([0, 1]), [1], 2, 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="n_bin must be > 0"):
        discretizers.hashing_discretizer([1], np.float32([0.5]), np.float32([0]), [1], 0, 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="output_bits must be > 0"):
        discretizers.hashing_discretizer([1], np.float32([0.5]), np.float32([0]), [1], 1, 0)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank|vectors of one length"):
        discretizers.hashing_discretizer([[1]], np.float32([[0.5]]), np.float32([0]), [1], 1, 4)

    @tf.function
    def short():
        return discretizers.twml_hashing_discretizer([7], np.float32([0.5]), np.float32([0]), [7, 8], 1, 4)

    with pytest.raises(tf.errors.InvalidArgumentError, match="bin_vals has 1 elements"):
        short()


# --- IsotonicCalibration ------------------------------------------------------

def ref_isotonic(inputs, xs, ys):
    """interpolate.h LINEAR for ascending xs, in the inputs' dtype."""
    out = np.empty_like(inputs)
    for (i, j), v in np.ndenumerate(inputs):
        x, y = xs[j], ys[j]
        if np.isnan(v) or v <= x[0]:
            out[i, j] = y[0]  # NaN: every comparison false, the search ends at 0
        elif v >= x[-1]:
            out[i, j] = y[-1]
        else:
            r = int(np.searchsorted(x, v, side="left"))
            left = r - 1
            if x[r] == v:  # on a boundary: the segment that ends there
                out[i, j] = y[r] if x[left] != x[r] else y[left]
                continue
            ratio = (v - x[left]) / (x[r] - x[left])
            out[i, j] = ratio * (y[r] - y[left]) + y[left]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_isotonic_equals_reference(lib, dtype):
    rng = np.random.default_rng(1)
    xs = np.sort(rng.uniform(0, 1, size=(3, 9)), axis=1).astype(dtype)
    ys = np.sort(rng.uniform(0, 1, size=(3, 9)), axis=1).astype(dtype)
    inputs = rng.uniform(-0.2, 1.2, size=(50, 3)).astype(dtype)
    inputs[0] = [np.nan, np.inf, -np.inf]
    inputs[1] = xs[:, 4]  # on boundaries
    inputs[2] = xs[:, 0]
    inputs[3] = xs[:, -1]
    got = discretizers.isotonic_calibration(inputs, xs, ys).numpy()
    np.testing.assert_array_equal(got, ref_isotonic(inputs, xs, ys))
    # And np.interp (another library's interpolation) away from NaN.
    for j in range(3):
        np.testing.assert_allclose(got[1:, j], np.interp(inputs[1:, j], xs[j], ys[j]), rtol=1e-6)


def test_isotonic_empty_and_one_bin(lib):
    out = discretizers.isotonic_calibration(np.zeros((0, 2), np.float32), np.zeros((2, 3), np.float32),
                                            np.zeros((2, 3), np.float32))
    assert out.shape == (0, 2)
    out = discretizers.isotonic_calibration(np.float32([[5.0], [np.nan]]), np.float32([[1.0]]), np.float32([[0.25]]))
    np.testing.assert_array_equal(out.numpy(), [[0.25], [0.25]])


def test_isotonic_errors(lib):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"xs\[1, 2\] is NaN"):
        discretizers.isotonic_calibration(np.float32([[0.5, 0.5]]), np.float32([[0, 1, 2], [0, 1, np.nan]]),
                                          np.zeros((2, 3), np.float32))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank|Dimensions|Shapes|must equal|one shape"):
        discretizers.isotonic_calibration(np.float32([[0.5, 0.5]]), np.zeros((3, 3), np.float32),
                                          np.zeros((3, 3), np.float32))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank|Dimensions|Shapes|must equal|one shape"):
        discretizers.isotonic_calibration(np.float32([[0.5]]), np.zeros((1, 3), np.float32),
                                          np.zeros((1, 2), np.float32))
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="rank|must be matrices"):
        discretizers.isotonic_calibration(np.float32([0.5]), np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one bin"):
        discretizers.isotonic_calibration(np.float32([[0.5]]), np.zeros((1, 0), np.float32), np.zeros((1, 0), np.float32))


def test_isotonic_gradient_is_the_segment_slope(lib):
    xs = np.float32([[0.0, 1.0, 3.0]])
    ys = np.float32([[0.0, 0.5, 1.5]])
    x = tf.constant([[0.5], [2.0], [-1.0], [4.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = discretizers.isotonic_calibration(x, xs, ys)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0.5], [0.5], [0.0], [0.0]])


# --- MDL, PercentileDiscretizer, PercentileDiscretizerBinIndices --------------

def ref_mdl(keys, vals, bin_ids, bin_vals, offsets, indices):
    """mdlInfer from twml's optim.cpp, for ascending runs: the index of the
    last boundary <= value in key k's run (0 below it or for NaN)."""
    out_k, out_v = [], []
    for k, v in zip(keys, vals):
        if k == -1:
            out_k.append(-1)
            out_v.append(v)
            continue
        start = offsets[k]
        end = offsets[k + 1] if k + 1 < len(offsets) else len(bin_vals)
        run = bin_vals[start:end]
        if np.isnan(v) or v <= run[0]:
            left = 0
        elif v >= run[-1]:
            left = len(run) - 1
        else:
            # Off the boundaries (random values): the boundary below. On an
            # inner boundary twml's search decides: the traced test below.
            assert v not in run
            left = int(np.searchsorted(run, v, side="left")) - 1
        out_k.append(left if indices else bin_ids[start + left])
        out_v.append(1)
    return np.array(out_k, np.int64), np.array(out_v, vals.dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["MDL", "PercentileDiscretizer", "PercentileDiscretizerBinIndices"])
def test_mdl_family_equals_reference(lib, dtype, name):
    rng = np.random.default_rng(5)
    runs = [np.sort(rng.normal(size=n)) for n in (4, 1, 6)]
    bin_vals = np.concatenate(runs).astype(dtype)
    offsets = np.array([0, 4, 5], np.int64)
    bin_ids = np.arange(100, 100 + bin_vals.size, dtype=np.int64)
    keys = rng.integers(-1, 3, size=300)
    vals = rng.normal(size=300).astype(dtype)
    vals[:4] = [np.nan, np.inf, -np.inf, 0.0]
    op = getattr(lib, {"MDL": "mdl", "PercentileDiscretizer": "percentile_discretizer",
                       "PercentileDiscretizerBinIndices": "percentile_discretizer_bin_indices"}[name])
    got_k, got_v = op(keys=keys, vals=vals, bin_ids=bin_ids, bin_vals=bin_vals, feature_offsets=offsets)
    want_k, want_v = ref_mdl(keys, vals, bin_ids, bin_vals, offsets, name.endswith("Indices"))
    np.testing.assert_array_equal(got_k.numpy(), want_k)
    np.testing.assert_array_equal(got_v.numpy(), want_v)


def test_mdl_value_on_a_boundary_and_errors(lib):
    # Traced through twml's loop: run [0, 1, 2, 3], value 1.0: middle 1 matches
    # (1 <= 1 <= 2), so index 1; value 2.0: middle 1 matches again (1 <= 2 <= 2): index 1.
    k, _ = lib.percentile_discretizer_bin_indices(
        keys=[0, 0, 0], vals=np.float32([1.0, 2.0, 3.0]), bin_ids=[5, 6, 7, 8],
        bin_vals=np.float32([0, 1, 2, 3]), feature_offsets=[0])
    np.testing.assert_array_equal(k.numpy(), [1, 1, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"keys\[1\] = 3 is outside the 1 calibrated"):
        lib.mdl(keys=[0, 3], vals=np.float32([1, 2]), bin_ids=[5], bin_vals=np.float32([0]), feature_offsets=[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bin_vals\[1\] is NaN"):
        lib.mdl(keys=[0], vals=np.float32([1]), bin_ids=[5, 6], bin_vals=np.float32([0, np.nan]), feature_offsets=[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"feature_offsets\[1\] = 2"):
        lib.mdl(keys=[0], vals=np.float32([1]), bin_ids=[5, 6], bin_vals=np.float32([0, 1]), feature_offsets=[0, 2])
    k, v = lib.mdl(keys=np.zeros(0, np.int64), vals=np.zeros(0, np.float64), bin_ids=np.zeros(0, np.int64),
                   bin_vals=np.zeros(0, np.float64), feature_offsets=np.zeros(0, np.int64))
    assert k.shape == (0,) and v.dtype == tf.float64

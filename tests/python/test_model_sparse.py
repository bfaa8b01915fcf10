"""twml's six sparse model ops in libbpr_ops.so: their OpDefs and kernels are
twml's (twml_sparse_interfaces.py), and their results equal NumPy references
written from twml's C++ (binary_sparse_dense_matmul*, sparse_normalization.cpp,
partition_sparse_tensor.cpp), on every dtype, empty inputs, NaN/inf,
duplicates; inputs twml crashed on are clear errors (README "twml's model
ops", differences table)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import kernels, op_def_registry

import bpr_ops
from bpr_ops import sparse_layers as sl
from twml_opdef import DTYPES, check_opdef
from twml_sparse_interfaces import TWML_SPARSE_KERNELS, TWML_SPARSE_OPS

LIB = tf.load_op_library(str(bpr_ops.library_path()))
InvalidArgument = tf.errors.InvalidArgumentError


# ---- interfaces ---------------------------------------------------------------------------


def test_all_six_are_registered():
    assert sorted(TWML_SPARSE_OPS) == sorted(
        ["BinarySparseTensorDenseMatMul", "SparseMaxNorm", "SparseBatchNorm", "SparseMaxNormInference",
         "SparseMaxNormTraining", "PartitionSparseTensorMod"]
    )
    assert [n for n in TWML_SPARSE_OPS if op_def_registry.get(n) is None] == []


@pytest.mark.parametrize("name", sorted(TWML_SPARSE_OPS))
def test_opdef_is_twmls(name):
    op = op_def_registry.get(name)
    check_opdef(name, op, TWML_SPARSE_OPS[name])
    assert not op.is_stateful, "twml's ops are not stateful (SparseBatchNorm's counts notwithstanding)"


@pytest.mark.parametrize("name", sorted(TWML_SPARSE_KERNELS))
def test_kernels_are_twmls(name):
    got = set()
    for k in kernels.get_registered_kernels_for_op(name).kernel:
        assert k.device_type == "CPU"
        c = {x.name: x.allowed_values.list.type[0] for x in k.constraint}
        got.add((c.get("T"), c.get("Tindices")))
    want = {(DTYPES[t], DTYPES[i] if i else None) for t, i in TWML_SPARSE_KERNELS[name]}
    assert got == want


# ---- BinarySparseTensorDenseMatMul --------------------------------------------------------


def ref_matmul(indices, a_shape, b, adjoint_a, adjoint_b):
    """twml's loop: out zeroed; for each entry in order, row k of B' added to
    row m of out (B' = B's conjugate transpose with adjoint_b)."""
    bb = b.conj().T if adjoint_b else b
    rows = a_shape[1] if adjoint_a else a_shape[0]
    out = np.zeros((rows, bb.shape[1]), b.dtype)
    with np.errstate(over="ignore"):
        for r, c in indices:
            m, k = (c, r) if adjoint_a else (r, c)
            out[m] = out[m] + bb[k]
    return out


def random_b(rng, shape, dtype):
    if dtype == np.int32:
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    if np.issubdtype(dtype, np.complexfloating):
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    return rng.normal(size=shape).astype(dtype)


def matmul(indices, a_shape, b, adjoint_a=False, adjoint_b=False, index_dtype=tf.int64, values=None):
    indices = tf.constant(np.asarray(indices, np.int64).reshape(-1, 2), index_dtype)
    b = tf.constant(b)
    if values is None:
        values = tf.ones([indices.shape[0]], b.dtype) * tf.constant(7, b.dtype)  # never read
    return LIB.binary_sparse_tensor_dense_mat_mul(
        indices, values, tf.constant(a_shape, tf.int64), b, adjoint_a=adjoint_a, adjoint_b=adjoint_b
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.complex64, np.complex128])
@pytest.mark.parametrize("index_dtype", [tf.int64, tf.int32])
@pytest.mark.parametrize("adjoint_a,adjoint_b", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_equals_the_reference(dtype, index_dtype, adjoint_a, adjoint_b):
    rng = np.random.default_rng(hash((np.dtype(dtype).name, adjoint_a, adjoint_b)) % 2**32)
    rows, inner, cols = 7, 11, 40  # 40 columns: twml's vectorised path (>= 32) too
    a_shape = [inner, rows] if adjoint_a else [rows, inner]
    nnz = 30
    indices = np.stack([rng.integers(0, a_shape[0], nnz), rng.integers(0, a_shape[1], nnz)], 1)
    b = random_b(rng, (cols, inner) if adjoint_b else (inner, cols), dtype)
    got = matmul(indices, a_shape, b, adjoint_a, adjoint_b, index_dtype).numpy()
    want = ref_matmul(indices, a_shape, b, adjoint_a, adjoint_b)
    assert got.dtype == want.dtype and got.shape == (rows, cols)
    np.testing.assert_array_equal(got, want)


def test_matmul_equals_tensorflows_sparse_matmul_with_ones():
    rng = np.random.default_rng(3)
    indices = np.unique(np.stack([rng.integers(0, 50, 400), rng.integers(0, 1000, 400)], 1), axis=0)
    b = rng.normal(size=(1000, 3)).astype(np.float32)
    sp = tf.SparseTensor(indices, np.ones(len(indices), np.float32), [50, 1000])
    np.testing.assert_allclose(
        sl.binary_sparse_dense_matmul(sp, b).numpy(), tf.sparse.sparse_dense_matmul(sp, b).numpy(), rtol=1e-5, atol=1e-5
    )


def test_values_are_not_read_nan_and_inf_in_b_propagate():
    b = np.array([[1.0, np.inf], [np.nan, 2.0], [3.0, -np.inf]], np.float32)
    got = matmul([[0, 0], [0, 2], [1, 1]], [2, 3], b, values=tf.constant([np.nan, 0.0, -5.0])).numpy()
    np.testing.assert_array_equal(got, ref_matmul([[0, 0], [0, 2], [1, 1]], [2, 3], b, False, False))
    assert np.isnan(got[0, 1]) and np.isnan(got[1, 0])  # inf + -inf, NaN row


def test_empty_inputs_follow_twml():
    b = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(matmul(np.zeros((0, 2)), [4, 3], b).numpy(), np.zeros((4, 2), np.float32))
    assert matmul(np.zeros((0, 2)), [0, 3], b).shape == (0, 2)
    # An empty product is not looked at (twml returns first; so does TensorFlow's own).
    assert matmul([[9, 9]], [0, 3], b).shape == (0, 2)
    np.testing.assert_array_equal(matmul([[1, 0]], [2, 0], np.zeros((0, 5), np.float32)).numpy(), np.zeros((2, 5)))


@pytest.mark.parametrize(
    "index,message",
    [
        ([3, 0], r"a_indices\[1, 0\] = 3 is out of bounds: A's row must be in \[0, 3\)"),
        ([0, 4], r"a_indices\[1, 1\] = 4 is out of bounds: A's column must be in \[0, 4\)"),
        ([-1, 0], r"a_indices\[1, 0\] = -1 is out of bounds"),
        ([1_000_000_000, 0], r"a_indices\[1, 0\] = 1000000000 is out of bounds"),
        ([0, -(2**40)], r"a_indices\[1, 1\] = -1099511627776 is out of bounds"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_out_of_range_indices_are_errors(index, message, dtype):
    # twml's float, no-adjoint path did not check the row: 1e9 segfaulted.
    with pytest.raises(InvalidArgument, match=message):
        matmul([[0, 0], index], [3, 4], np.ones((4, 2), dtype))


def test_bad_shapes_are_errors():
    b = np.ones((3, 2), np.float32)
    with pytest.raises(InvalidArgument, match=r"a_shape must be non-negative, got \[-1,3\]"):
        matmul([[0, 0]], [-1, 3], b)  # twml aborted the process
    with pytest.raises((InvalidArgument, ValueError), match="inner dimensions do not match: 4 vs. 3|must be equal"):
        matmul([[0, 0]], [2, 4], b)
    with pytest.raises((InvalidArgument, ValueError), match="a_indices has 1 rows but a_values has 2|must be equal"):
        matmul([[0, 0]], [2, 3], b, values=tf.ones([2]))


def test_matmul_in_graph_mode_infers_the_shape():
    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([5, 3], tf.float32)])
    def f(indices, b):
        out = LIB.binary_sparse_tensor_dense_mat_mul(indices, tf.ones([tf.shape(indices)[0]]), [4, 5], b)
        assert out.shape.as_list() == [4, 3], out.shape
        return out

    got = f(tf.constant([[1, 2], [3, 4]], tf.int64), tf.ones([5, 3]))
    np.testing.assert_array_equal(got.numpy(), ref_matmul([[1, 2], [3, 4]], [4, 5], np.ones((5, 3), np.float32), False, False))
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        tf.function(lambda: LIB.binary_sparse_tensor_dense_mat_mul([[0, 0]], [1.0], [4, 6], tf.ones([5, 3]))).get_concrete_function()


@pytest.mark.parametrize("adjoint_a,adjoint_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gradient_wrt_b_is_the_dense_product_transposed(adjoint_a, adjoint_b):
    rng = np.random.default_rng(5)
    a_shape = [6, 4] if adjoint_a else [4, 6]
    indices = np.stack([rng.integers(0, a_shape[0], 15), rng.integers(0, a_shape[1], 15)], 1)
    b = tf.Variable(rng.normal(size=(3, 6) if adjoint_b else (6, 3)).astype(np.float64))
    upstream = rng.normal(size=(4, 3))
    with tf.GradientTape() as tape:
        out = matmul(indices, a_shape, b.numpy(), adjoint_a, adjoint_b)  # shape check
        out = LIB.binary_sparse_tensor_dense_mat_mul(
            tf.constant(indices, tf.int64), tf.ones([15], tf.float64), a_shape, b, adjoint_a=adjoint_a, adjoint_b=adjoint_b
        )
        loss = tf.reduce_sum(out * upstream)
    grad = tape.gradient(loss, b).numpy()
    dense_a = np.zeros(a_shape)
    for r, c in indices:
        dense_a[r, c] += 1
    a_eff = dense_a.T if adjoint_a else dense_a
    want = a_eff.T @ upstream  # dL/dB'
    np.testing.assert_allclose(grad, want.T if adjoint_b else want, rtol=1e-12)


# ---- the sparse norms -----------------------------------------------------------------------


def cpp_max(a, b):
    return b if a < b else a


def ref_max_norm(max_values, indices, values, epsilon, update):
    """twml's loop, in float32: a NaN maximum stays, a NaN value does not update it."""
    maxima = np.array(max_values, np.float32).copy()
    out = np.zeros(len(values), np.float32)
    eps = np.float32(epsilon)
    for i, (idx, v) in enumerate(zip(indices, np.asarray(values, np.float32))):
        m = cpp_max(maxima[idx], np.abs(v))
        out[i] = v / cpp_max(m, eps)
        if update:
            maxima[idx] = m
    return maxima, out


NORM_CASES = [
    ([1.0, 0.0, 2.0], [1, 1, 0, 2], [4.0, -2.0, 0.5, -3.0]),
    ([0.0, 0.0], [0, 1, 0], [0.0, 1e-7, -0.0]),  # below epsilon
    ([np.nan, 3.0, 1.0], [0, 1, 2, 2], [1.0, np.nan, np.inf, 2.0]),
    ([-5.0], [0, 0], [1.0, -2.0]),  # a negative maximum
    ([1.0, 2.0], [], []),
]


@pytest.mark.parametrize("max_values,indices,values", NORM_CASES)
def test_max_norm_training_and_inference(max_values, indices, values):
    idx = tf.constant(indices, tf.int64)
    val = tf.constant(values, tf.float32)
    mx = tf.constant(max_values, tf.float32)
    upd, norm = LIB.sparse_max_norm_training(mx, idx, val, epsilon=1e-5)
    want_max, want_norm = ref_max_norm(max_values, indices, values, 1e-5, True)
    np.testing.assert_array_equal(upd.numpy(), want_max)
    np.testing.assert_array_equal(norm.numpy(), want_norm)
    inf = LIB.sparse_max_norm_inference(mx, idx, val, epsilon=1e-5)
    np.testing.assert_array_equal(inf.numpy(), ref_max_norm(max_values, indices, values, 1e-5, False)[1])


def test_max_norm_bad_inputs_are_errors():
    for op in (LIB.sparse_max_norm_training, LIB.sparse_max_norm_inference):
        with pytest.raises(InvalidArgument, match=r"indices\[1\] = 3 is out of bounds: feature indices must be in \[0, 3\)"):
            op(tf.ones([3]), tf.constant([0, 3], tf.int64), tf.ones([2]), epsilon=1e-5)
        with pytest.raises(InvalidArgument, match="indices\\[0\\] = -1"):
            op(tf.ones([3]), tf.constant([-1], tf.int64), tf.ones([1]), epsilon=1e-5)
        with pytest.raises(InvalidArgument, match="indices has 2 elements but values has 1"):
            op(tf.ones([3]), tf.constant([0, 1], tf.int64), tf.ones([1]), epsilon=1e-5)


def _v1(build):
    """Runs build(sess) in a v1 graph with reference variables."""
    with tf.Graph().as_default():
        with tf.compat.v1.Session() as sess:
            return build(sess)


def test_ref_sparse_max_norm_updates_the_variable_in_a_v1_session():
    def build(sess):
        var = tf.compat.v1.Variable([1.0, 0.0, 2.0], use_resource=False)
        flag = tf.compat.v1.placeholder(tf.bool, [])
        upd, norm = LIB.sparse_max_norm(var, tf.constant([1, 1, 0], tf.int64), tf.constant([4.0, -2.0, 0.5]), flag,
                                        epsilon=1e-5)
        assert upd.dtype._is_ref_dtype
        sess.run(var.initializer)
        n_inf = sess.run(norm, {flag: False})
        after_inf = sess.run(var)
        n_train = sess.run(norm, {flag: True})
        return n_inf, after_inf, n_train, sess.run(var)

    n_inf, after_inf, n_train, after_train = _v1(build)
    np.testing.assert_array_equal(n_inf, ref_max_norm([1, 0, 2], [1, 1, 0], [4, -2, 0.5], 1e-5, False)[1])
    np.testing.assert_array_equal(after_inf, [1.0, 0.0, 2.0])
    want_max, want_norm = ref_max_norm([1, 0, 2], [1, 1, 0], [4, -2, 0.5], 1e-5, True)
    np.testing.assert_array_equal(n_train, want_norm)
    np.testing.assert_array_equal(after_train, want_max)


def test_ref_sparse_max_norm_errors_in_a_v1_session():
    def build(sess):
        var = tf.compat.v1.Variable([1.0, 2.0], use_resource=False)
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        flag = tf.compat.v1.placeholder(tf.bool, None)
        _, norm = LIB.sparse_max_norm(var, idx, tf.ones_like(idx, tf.float32), flag, epsilon=1e-5)
        with pytest.raises(tf.errors.FailedPreconditionError, match="uninitialized"):
            sess.run(norm, {idx: [0], flag: True})
        sess.run(var.initializer)
        with pytest.raises(InvalidArgument, match=r"is_training must be a scalar bool, got shape \[2\]"):
            sess.run(norm, {idx: [0], flag: [True, False]})  # twml aborted
        with pytest.raises(InvalidArgument, match=r"indices\[1\] = 2 is out of bounds"):
            sess.run(norm, {idx: [0, 2], flag: True})
        return sess.run(var)

    np.testing.assert_array_equal(_v1(build), [1.0, 2.0])  # a bad batch changes nothing


def ref_batch_norm(state, means, variances, indices, values, epsilon, training):
    """twml's Welford update in float32, the counts and m2s in `state`."""
    counts, m2s = state
    if training:
        for idx, v in zip(indices, np.asarray(values, np.float32)):
            count = counts[idx] + 1
            old_mean = means[idx]
            old_delta = np.float32(v - old_mean)
            new_mean = np.float32(old_mean + old_delta / np.float32(count))
            new_delta = np.float32(v - new_mean)
            counts[idx] = count
            m2s[idx] = np.float32(m2s[idx] + np.float32(new_delta * old_delta))
            means[idx] = new_mean
            variances[idx] = np.float32(m2s[idx] / np.float32(count))
    out = np.zeros(len(values), np.float32)
    for i, (idx, v) in enumerate(zip(indices, np.asarray(values, np.float32))):
        out[i] = np.float32(v - means[idx]) / np.sqrt(np.float32(variances[idx] + np.float32(epsilon)))
    return out


def test_ref_sparse_batch_norm_keeps_counts_across_runs():
    batches = [([0, 1, 0, 2], [1.0, -3.0, 2.5, 0.25], True), ([0, 0, 1], [4.0, -1.0, 7.0], True),
               ([2, 1], [1.0, 2.0], False), ([2], [np.nan], True)]

    def build(sess):
        means = tf.compat.v1.Variable(tf.zeros([3]), use_resource=False)
        variances = tf.compat.v1.Variable(tf.zeros([3]), use_resource=False)
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        val = tf.compat.v1.placeholder(tf.float32, [None])
        flag = tf.compat.v1.placeholder(tf.bool, [])
        _, _, norm = LIB.sparse_batch_norm(means, variances, idx, val, flag, input_size=3, epsilon=1e-3)
        sess.run([means.initializer, variances.initializer])
        outs = [sess.run(norm, {idx: i, val: v, flag: t}) for i, v, t in batches]
        return outs, sess.run(means), sess.run(variances)

    outs, means, variances = _v1(build)
    state = (np.zeros(3, np.int64), np.zeros(3, np.float32))
    m, v = np.zeros(3, np.float32), np.zeros(3, np.float32)
    for (i, vals, t), got in zip(batches, outs):
        np.testing.assert_allclose(got, ref_batch_norm(state, m, v, i, vals, 1e-3, t), rtol=1e-6)
    np.testing.assert_allclose(means, m, rtol=1e-6)
    np.testing.assert_allclose(variances, v, rtol=1e-6)


def test_ref_sparse_batch_norm_bad_inputs():
    def build(sess):
        means = tf.compat.v1.Variable(tf.zeros([2]), use_resource=False)
        idx = tf.compat.v1.placeholder(tf.int64, [None])
        _, _, norm = LIB.sparse_batch_norm(means, means, idx, tf.ones_like(idx, tf.float32), True, input_size=2,
                                           epsilon=1e-3)
        sess.run(means.initializer)
        with pytest.raises(InvalidArgument, match="means and variances are the same variable"):
            sess.run(norm, {idx: [0]})
        variances = tf.compat.v1.Variable(tf.zeros([1]), use_resource=False)
        _, _, norm = LIB.sparse_batch_norm(means, variances, idx, tf.ones_like(idx, tf.float32), True, input_size=2,
                                           epsilon=1e-3)
        sess.run(variances.initializer)
        with pytest.raises(InvalidArgument, match=r"indices\[0\] = 1 is out of bounds: feature indices must be in \[0, 1\)"):
            sess.run(norm, {idx: [1]})
        _, _, norm = LIB.sparse_batch_norm(means, means, idx, tf.ones_like(idx, tf.float32), True, input_size=-1,
                                           epsilon=1e-3)
        with pytest.raises(InvalidArgument, match="input_size must be non-negative, got -1"):
            sess.run(norm, {idx: [0]})

    _v1(build)


# ---- PartitionSparseTensorMod ---------------------------------------------------------------


def ref_partition(indices, values, n):
    """twml's loop for non-negative keys; floor division / Euclidean remainder
    (Python's // and %) for negative ones, where twml crashed."""
    parts = [([], []) for _ in range(n)]
    for (i, key), v in zip(indices, values):
        parts[key % n][0].append((i, key // n))
        parts[key % n][1].append(v)
    return [(np.array(p[0], np.int64).reshape(-1, 2), np.array(p[1])) for p in parts]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_partition_equals_the_reference(dtype, n):
    rng = np.random.default_rng(n)
    indices = np.stack([rng.integers(0, 10, 50), rng.integers(-(2**62), 2**62, 50)], 1)
    indices[:10, 1] = np.abs(indices[:10, 1])
    values = rng.normal(size=50).astype(dtype)
    values[3] = np.nan
    got = sl.partition_sparse_tensor_mod(tf.constant(indices), tf.constant(values), n)
    for (gi, gv), (wi, wv) in zip(got, ref_partition(indices.tolist(), values, n)):
        np.testing.assert_array_equal(gi.numpy(), wi)
        np.testing.assert_array_equal(gv.numpy(), wv.astype(dtype))
        assert gv.dtype == dtype


def test_partition_empty_and_errors():
    got = sl.partition_sparse_tensor_mod(tf.zeros([0, 2], tf.int64), tf.zeros([0]), 3)
    assert [g[0].shape for g in got] == [(0, 2)] * 3
    with pytest.raises(InvalidArgument, match=r"output_types must be \[int64, float\] repeated num_partitions \(1\) times"):
        LIB.partition_sparse_tensor_mod([[0, 1]], [1.0], num_partitions=1, output_types=[tf.float32, tf.int64])
    with pytest.raises((InvalidArgument, ValueError), match=r"output_types must be \[int64, double\]"):
        tf.function(lambda: LIB.partition_sparse_tensor_mod(
            tf.constant([[0, 1]], tf.int64), tf.constant([1.0], tf.float64), num_partitions=2,
            output_types=[tf.int64, tf.float64])).get_concrete_function()
    for n in (0, -1):
        with pytest.raises(InvalidArgument, match=f"num_partitions must be positive, got {n}"):
            LIB.partition_sparse_tensor_mod([[0, 1]], [1.0], num_partitions=n, output_types=[tf.int64, tf.float32])
    with pytest.raises(InvalidArgument, match=r"values must be a vector with one value per row of indices, \[2\]"):
        LIB.partition_sparse_tensor_mod([[0, 1], [0, 2]], [1.0], num_partitions=1, output_types=[tf.int64, tf.float32])
    with pytest.raises((InvalidArgument, ValueError), match=r"indices must be a matrix \[n, 2\]|must be rank 2"):
        LIB.partition_sparse_tensor_mod([[0, 1, 2]], [1.0], num_partitions=1, output_types=[tf.int64, tf.float32])

"""twml's small tensor ops on TensorFlow: results against NumPy references
written from twml's C++ (twml/libtwml/src/ops/*.cpp, loop by loop), for every
op and dtype, empty inputs, NaN/inf, and the inputs where twml aborted, read
out of bounds or dropped values (now errors naming the op and the input).
Also: a graph built from NodeDefs as twml exported them, run in a v1 Session.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
from bpr_ops import tensor_ops_model as ops

RNG_SEED = 37


# --- references, from twml's C++ -------------------------------------------------


def ref_fixed_length(ids, values, pad, max_length, batch_size=None):
    """fixed_length_tensor.cpp's ComputeFixedLengthTensor, row by row."""
    ids = [int(i) for i in ids]
    if max_length < 0 and ids:
        cur, length = ids[0], 1
        for i in ids[1:]:
            if i == cur:
                length += 1
            else:
                cur = i
                max_length = max(max_length, length)
                length = 1
        max_length = max(max_length, length)
    if batch_size is None:
        batch_size = ids[-1] + 1 if ids else 0
    out = []
    n = 0
    for i in range(batch_size):
        row = []
        for _ in range(max_length):
            if n < len(ids) and ids[n] == i:
                row.append(values[n])
                n += 1
            else:
                row.append(pad)
        while n < len(ids) and ids[n] == i:
            n += 1
        out.append(row)
    return out, (batch_size, max(max_length, 0))


def ref_substrings(word: bytes, min_n: int, max_n: int) -> bytes:
    """contrib/get_substrings.cpp's computeSubwords: a std::set of bytes."""
    wrapped = b"<" + word + b">"
    grams = {word, wrapped}
    for i in range(len(wrapped)):
        if wrapped[i] & 0xC0 == 0x80:
            continue
        j = min_n
        while i + j <= len(wrapped) and j <= max_n:
            grams.add(wrapped[i:i + j])
            j += 1
    return b";".join(sorted(grams))


def ref_compress(ids):
    counts = [0] * (ids[-1] + 1 if len(ids) else 0)
    for i in ids:
        counts[i] += 1
    return counts


def ref_decompress(counts):
    return [s for s, c in enumerate(counts) for _ in range(c)]


def sorted_ids(rng, n, max_step=2):
    return np.cumsum(rng.integers(0, max_step + 1, n)) if n else np.zeros(0, np.int64)


# --- FeatureMask -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [tf.int64, tf.int8])
def test_feature_mask_is_membership_flattened(dtype):
    rng = np.random.default_rng(RNG_SEED)
    keep = rng.integers(-5, 6, (4, 3))
    list_keep = [-5, 0, 3, 1000]
    got = ops.feature_mask(tf.constant(keep, dtype), list_keep)
    assert got.shape == (12,)
    np.testing.assert_array_equal(got.numpy(), np.isin(keep.ravel(), list_keep))


def test_feature_mask_empty_input_and_empty_list():
    assert ops.feature_mask(tf.zeros([0], tf.int64), [1]).shape == (0,)
    np.testing.assert_array_equal(ops.feature_mask(tf.constant([1, 2], tf.int64), []).numpy(), [False, False])


def test_feature_mask_shape_is_known_when_tracing():
    @tf.function(input_signature=[tf.TensorSpec([2, 5], tf.int64)])
    def f(x):
        out = ops.feature_mask(x, [1])
        assert out.shape.as_list() == [10]
        return out

    f.get_concrete_function()


# --- Hashmap -----------------------------------------------------------------------


def test_hashmap_looks_up_and_passes_misses_through():
    rng = np.random.default_rng(RNG_SEED)
    hash_keys = rng.choice(np.arange(-50, 50), 30, replace=False).astype(np.int64)
    hash_values = rng.integers(-(2**62), 2**62, 30)
    keys = rng.integers(-60, 60, (5, 7))
    values, mask = ops.hashmap(keys, hash_keys, hash_values)
    table = dict(zip(hash_keys.tolist(), hash_values.tolist()))
    assert values.shape == mask.shape == (5, 7) and mask.dtype == tf.int8
    want = [table.get(k, k) for k in keys.ravel().tolist()]
    np.testing.assert_array_equal(values.numpy().ravel(), want)
    np.testing.assert_array_equal(mask.numpy().ravel(), [k in table for k in keys.ravel().tolist()])


def test_hashmap_later_duplicate_wins_and_extremes():
    big, small = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    values, mask = ops.hashmap([big, small, 7, 8], [7, big, 7, small], [1, 2, 3, 4])
    np.testing.assert_array_equal(values.numpy(), [2, 4, 3, 8])
    np.testing.assert_array_equal(mask.numpy(), [1, 1, 1, 0])


def test_hashmap_uses_each_calls_table():
    # twml built its table once, from the first run, and kept it.
    @tf.function
    def f(k, v):
        return ops.hashmap(tf.constant([1, 2], tf.int64), k, v)[0]

    np.testing.assert_array_equal(f(tf.constant([1], tf.int64), tf.constant([10], tf.int64)).numpy(), [10, 2])
    np.testing.assert_array_equal(f(tf.constant([2], tf.int64), tf.constant([20], tf.int64)).numpy(), [1, 20])
    np.testing.assert_array_equal(f(tf.constant([1], tf.int64), tf.constant([11], tf.int64)).numpy(), [11, 2])


def test_hashmap_empty():
    values, mask = ops.hashmap(tf.zeros([0], tf.int64), tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
    assert values.shape == mask.shape == (0,)
    values, mask = ops.hashmap([5], tf.zeros([0], tf.int64), tf.zeros([0], tf.int64))
    assert values.numpy().tolist() == [5] and mask.numpy().tolist() == [0]


def test_hashmap_table_of_different_sizes_is_an_error():
    # twml read hash_values past its end.
    with pytest.raises(tf.errors.InvalidArgumentError, match="hash_keys and hash_values must have as many elements, got 3 and 2"):
        ops.hashmap([1], [1, 2, 3], [1, 2])


# --- CompressSampleIds / DecompressSampleIds -------------------------------------------


def test_compress_and_decompress_are_twmls():
    rng = np.random.default_rng(RNG_SEED)
    for n in [0, 1, 2, 10, 100]:
        ids = sorted_ids(rng, n).astype(np.int32)
        counts = ops.compress_sample_ids(ids)
        assert counts.dtype == tf.int32
        np.testing.assert_array_equal(counts.numpy(), ref_compress(ids.tolist()))
        np.testing.assert_array_equal(ops.decompress_sample_ids(counts).numpy(), ids)
    np.testing.assert_array_equal(ops.decompress_sample_ids([0, 3, 0, 1]).numpy(), ref_decompress([0, 3, 0, 1]))
    assert ops.decompress_sample_ids(tf.zeros([0], tf.int32)).shape == (0,)


def test_compress_and_decompress_refuse_bad_ids_naming_them():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"CompressSampleIds: .* input\[0\] = -1"):
        ops.compress_sample_ids([-1, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input\[2\] = 1 follows input\[1\] = 3"):
        ops.compress_sample_ids([0, 3, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"DecompressSampleIds: counts must be non-negative; input\[1\] = -2"):
        ops.decompress_sample_ids([1, -2])


# --- FixedLengthTensor / V2 ----------------------------------------------------------

VALUE_DTYPES = [tf.int64, tf.int32, tf.string]


def _values(dtype, n):
    if dtype == tf.string:
        return [f"v{i}".encode() * (i % 3) for i in range(n)], b"pad"
    return list(range(10, 10 + n)), -1


@pytest.mark.parametrize("index_dtype", [tf.int64, tf.int32])
@pytest.mark.parametrize("value_dtype", VALUE_DTYPES)
def test_fixed_length_is_twmls(index_dtype, value_dtype):
    rng = np.random.default_rng(RNG_SEED)
    for case in range(30):
        n = int(rng.integers(1, 15))
        ids = sorted_ids(rng, n)
        values, pad = _values(value_dtype, n)
        max_length = int(rng.integers(-1, 4))
        want, shape = ref_fixed_length(ids, values, pad, max_length)
        got = ops.fixed_length_tensor(tf.constant(ids, index_dtype), tf.constant(values, value_dtype),
                                      tf.constant(pad, value_dtype), max_length=max_length)
        assert got.dtype == value_dtype and tuple(got.shape) == shape, case
        np.testing.assert_array_equal(got.numpy().reshape(shape), np.array(want, dtype=object).reshape(shape))
        batch = int(ids[-1]) + 1 + int(rng.integers(0, 3))
        want, shape = ref_fixed_length(ids, values, pad, max_length, batch)
        got = ops.fixed_length_tensor_v2(tf.constant(ids, index_dtype), tf.constant(values, value_dtype),
                                         tf.constant(pad, value_dtype), batch, max_length=max_length)
        assert tuple(got.shape) == shape, case
        np.testing.assert_array_equal(got.numpy().reshape(shape), np.array(want, dtype=object).reshape(shape))


@pytest.mark.parametrize("value_dtype", VALUE_DTYPES)
def test_fixed_length_empty_batches(value_dtype):
    # twml aborted here (max_length -1 with no ids: shape [0, -1] or [3, -1]).
    values, pad = _values(value_dtype, 0)
    empty_ids, empty_values = tf.zeros([0], tf.int64), tf.constant(values, value_dtype, shape=[0])
    pad = tf.constant(pad, value_dtype)
    assert ops.fixed_length_tensor(empty_ids, empty_values, pad, max_length=-1).shape == (0, 0)
    assert ops.fixed_length_tensor(empty_ids, empty_values, pad, max_length=2).shape == (0, 2)
    got = ops.fixed_length_tensor_v2(empty_ids, empty_values, pad, 3, max_length=2)
    assert got.shape == (3, 2)
    assert (got.numpy() == pad.numpy()).all()
    assert ops.fixed_length_tensor_v2(empty_ids, empty_values, pad, 3, max_length=-1).shape == (3, 0)
    assert ops.fixed_length_tensor_v2(empty_ids, empty_values, pad, 0, max_length=-1).shape == (0, 0)


def test_fixed_length_truncates_to_max_length():
    got = ops.fixed_length_tensor([0, 0, 0, 1], [1, 2, 3, 4], 0, max_length=2)
    np.testing.assert_array_equal(got.numpy(), [[1, 2], [4, 0]])


@pytest.mark.parametrize(
    "call, message",
    [
        # twml aborted (a CHECK in Tensor::scalar) on a pad_value that is not a scalar.
        (lambda: ops.fixed_length_tensor([0], [1], tf.zeros([0], tf.int32)), "pad_value must be a scalar"),
        (lambda: ops.fixed_length_tensor([0], [1], [0]), "pad_value must be a scalar"),
        # twml aborted on a negative last id (a negative batch size).
        (lambda: ops.fixed_length_tensor([-3, -1], [1, 2], 0), r"segment_ids must be non-negative; segment_ids\[0\] = -3"),
        # twml dropped the values of ids it never reached.
        (lambda: ops.fixed_length_tensor([1, 0], [1, 2], 0), r"sorted \(non-decreasing\); segment_ids\[1\] = 0 follows"),
        (lambda: ops.fixed_length_tensor_v2([0, 4], [1, 2], 0, 3), "segment_ids must be below batch_size 3; the last is 4"),
        # twml read values past its end (or ignored its tail).
        (lambda: ops.fixed_length_tensor([0, 1], [1], 0), "segment_ids has 2 elements, values 1"),
        (lambda: ops.fixed_length_tensor([0], [1, 2], 0), "segment_ids has 1 elements, values 2"),
        # twml aborted on a negative batch size and read past an empty one.
        (lambda: ops.fixed_length_tensor_v2([0], [1], 0, -1), "batch_size must be non-negative, got -1"),
        (lambda: ops.fixed_length_tensor_v2([0], [1], 0, tf.zeros([0], tf.int64)), "batch_size must hold one value"),
    ],
)
def test_fixed_length_refuses_what_twml_aborted_on_or_dropped(call, message):
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=message):
        call()


def test_fixed_length_shape_is_known_when_tracing():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.string)])
    def f(ids, values):
        v1 = ops.fixed_length_tensor(ids, values, "", max_length=4)
        v2 = ops.fixed_length_tensor_v2(ids, values, "", 8, max_length=4)
        assert v1.shape.as_list() == [None, 4] and v2.shape.as_list() == [8, 4]
        return v1

    f.get_concrete_function()
    with pytest.raises(ValueError, match="Shape must be rank 0"):
        tf.function(lambda: ops.fixed_length_tensor([0], [1], [0, 0], max_length=1)).get_concrete_function()
    with pytest.raises(ValueError, match="batch_size must be non-negative, got -2"):
        tf.function(lambda: ops.fixed_length_tensor_v2([0], [1], 0, -2)).get_concrete_function()
    with pytest.raises(ValueError, match="batch_size must hold one value"):
        tf.function(lambda: ops.fixed_length_tensor_v2([0], [1], 0, [1, 2])).get_concrete_function()


# --- VarLengthReader -----------------------------------------------------------------


def test_var_length_reader_is_ones_of_the_first_length():
    for first in [0, 1, 5]:
        got = ops.var_length_reader([first, 99])
        assert got.dtype == tf.int32
        np.testing.assert_array_equal(got.numpy(), np.ones((1, first), np.int32))


def test_var_length_reader_refuses_empty_and_negative():
    # twml read element 0 of an empty input and aborted on a negative one.
    with pytest.raises(tf.errors.InvalidArgumentError, match="input1 must have at least one element"):
        ops.var_length_reader(tf.zeros([0], tf.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be non-negative, got -4"):
        ops.var_length_reader([-4])
    # twml's shape function: rank 1, when a graph is built.
    with pytest.raises(ValueError, match="must be rank 1"):
        tf.function(lambda: ops.var_length_reader([[1]])).get_concrete_function()


# --- FeatureExtractor ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_extractor_keeps_masked_rows(dtype):
    rng = np.random.default_rng(RNG_SEED)
    n = 40
    mask = rng.random(n) < 0.4
    cols = [rng.integers(-(2**62), 2**62, n), rng.integers(-(2**62), 2**62, n),
            rng.standard_normal(n).astype(dtype), rng.integers(-(2**62), 2**62, n), rng.integers(-128, 128, n).astype(np.int8)]
    cols[2][:3] = [np.nan, np.inf, -np.inf]
    got = ops.feature_extractor(mask, *cols)
    assert got.values_out.dtype == tf.as_dtype(dtype)
    for g, c in zip(got, cols):
        np.testing.assert_array_equal(g.numpy(), c[mask])


def test_feature_extractor_empty():
    got = ops.feature_extractor(tf.zeros([0], tf.bool), *(tf.zeros([0], t) for t in (tf.int64, tf.int64, tf.float32, tf.int64, tf.int8)))
    assert all(g.shape == (0,) for g in got)


def test_feature_extractor_sizes_must_agree():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"keys_in differs \(mask_in 2, ids_in 2, keys_in 1"):
        ops.feature_extractor([True, False], [1, 2], [1], [1.0, 2.0], [1, 2], tf.constant([1, 2], tf.int8))


# --- GetSubstrings -------------------------------------------------------------------

WORDS = ["", "a", "abc", "twitter", "é", "naïve", "日本語", "a;b", "<x>", "\x00\xff"]


@pytest.mark.parametrize("min_n, max_n", [(0, 2), (1, 1), (2, 3), (3, 6), (4, 2), (1, 20)])
def test_get_substrings_is_twmls(min_n, max_n):
    words = [w.encode("utf-8") for w in WORDS] + [b"\xc3", b"\x80abc", bytes(range(200, 210))]
    got = ops.get_substrings(tf.constant(np.array(words, dtype=object).reshape(1, -1)), min_n, max_n)
    assert got.shape == (1, len(words))
    assert got.numpy().ravel().tolist() == [ref_substrings(w, min_n, max_n) for w in words]


def test_get_substrings_empty_and_attrs():
    assert ops.get_substrings(tf.zeros([0], tf.string), 1, 2).shape == (0,)
    # twml took negative lengths, which wrapped to huge unsigned values.
    for min_n, max_n, name in [(-1, 3, "min_n"), (1, -2, "max_n")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"GetSubstrings: {name} .* non-negative"):
            ops.get_substrings(["a"], min_n, max_n)


# --- twml's exported graph, in a v1 Session ------------------------------------------


def _node(graph_def, name, op, inputs=(), **attrs):
    node = graph_def.node.add(name=name, op=op)
    node.input.extend(inputs)
    for k, v in attrs.items():
        if isinstance(v, tf.DType):
            node.attr[k].type = v.as_datatype_enum
        elif isinstance(v, list):
            node.attr[k].list.i.extend(v)
        else:
            node.attr[k].i = v
    return node


def test_a_graph_def_with_twmls_nodes_runs_in_a_v1_session():
    """NodeDefs as twml's Python wrappers wrote them (op type, attrs; no
    defaults filled in: FeatureExtractor's T comes from its default)."""
    g = tf.compat.v1.GraphDef()
    for name, dtype in [("ids", tf.int64), ("keys", tf.int64), ("vals", tf.float32), ("codes", tf.int64),
                        ("types", tf.int8), ("words", tf.string), ("seg", tf.int32), ("segv", tf.int64),
                        ("pad", tf.int64), ("bs", tf.int64), ("tab_k", tf.int64), ("tab_v", tf.int64)]:
        _node(g, name, "Placeholder", dtype=dtype)
    _node(g, "mask", "FeatureMask", ["keys"], T=tf.int64, list_keep=[3, 5])
    _node(g, "extract", "FeatureExtractor", ["mask", "ids", "keys", "vals", "codes", "types"])
    _node(g, "hashed", "Hashmap", ["extract:1", "tab_k", "tab_v"])
    _node(g, "fixed", "FixedLengthTensorV2", ["seg", "segv", "pad", "bs"], IndexType=tf.int32, ValueType=tf.int64,
          max_length=-1)
    _node(g, "subs", "GetSubstrings", ["words"], ValueType=tf.string, min_n=3, max_n=3)
    _node(g, "counts", "CompressSampleIds", ["seg"], T=tf.int32)
    _node(g, "ones", "VarLengthReader", ["counts"])
    bpr_ops.load_library()
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(g, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            feed = {"ids:0": [0, 0, 1], "keys:0": [3, 4, 5], "vals:0": [0.5, 1.5, np.nan], "codes:0": [7, 8, 9],
                    "types:0": [1, 1, 2], "words:0": ["abcd"], "seg:0": [0, 0, 2], "segv:0": [1, 2, 3], "pad:0": 0,
                    "bs:0": 4, "tab_k:0": [5], "tab_v:0": [50]}
            out = sess.run({"extract": "extract:2", "hashed": "hashed:0", "fixed": "fixed:0", "subs": "subs:0",
                            "ones": "ones:0"}, feed)
    np.testing.assert_array_equal(out["extract"], [0.5, np.nan])
    np.testing.assert_array_equal(out["hashed"], [3, 50])
    np.testing.assert_array_equal(out["fixed"], [[1, 2], [0, 0], [3, 0], [0, 0]])
    assert out["subs"].tolist() == [ref_substrings(b"abcd", 3, 3)]
    np.testing.assert_array_equal(out["ones"], np.ones((1, 2), np.int32))

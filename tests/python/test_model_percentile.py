"""twml's PercentileDiscretizerV2 (and our eager BprPercentileDiscretizer), the
PercentileDiscretizer and MDL layers and their calibrators: results equal
NumPy references written from twml's C++ (discretizer_impl.cpp,
interpolate.h, layers/mdl.py) over both dtypes, empty inputs, NaN/inf,
values on bin edges, uncalibrated and negative ids and twml's 32-bit shift;
twml's op in tf.function and a v1 Session; clear errors where twml dies of
SIGFPE, hangs or reads out of bounds; each layer trained with model.fit,
saved, exported and served in bpr-host with model.predict's scores; the
calibrators fitted from block files give twml's bins. (The OpDef test for
PercentileDiscretizerV2 is test_model_discretize.py's test_interface_is_twmls,
over twml_discretize_interfaces.py.)"""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check
from bpr_ops import calibrators, data, discretizers
from bpr_ops.calibrators import MDLCalibrator, PercentileDiscretizerCalibrator
from test_serving_host import built, host  # noqa: F401  (built is a fixture)

M64 = (1 << 64) - 1


# --- NumPy references, from twml's C++ and Python ----------------------------

def ref_search(xs, v):
    """interpolate.h, NEAREST, lowest=0: the index the search stops at."""
    n = len(xs)
    left, right = 0, n - 1
    if v <= xs[0]:
        return 0
    if v >= xs[right]:
        return right
    while left < right:
        middle = (left + right) // 2
        if middle < n - 1 and xs[middle] <= v <= xs[middle + 1]:
            return middle
        if v > xs[middle]:
            left = middle
        else:
            right = middle
    return left


def ref_output_size(bits):
    """`uint64_t output_size = (1 << output_bits)`: int arithmetic, the count
    mod 32 (x86), the int sign-extended into 64 bits."""
    x = 1 << (bits % 32)
    if x >= 1 << 31:
        x -= 1 << 32
    return x & M64


def signed(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def ref_v2(ids, vals, bin_ids, bin_vals, offsets, bits, feature_ids, feature_indices):
    """discretizerInfer: found ids -> bin id of the boundary, value 1;
    others -> id % (size - total) + total in uint64, value kept."""
    index = {}
    for f, k in zip(feature_ids, feature_indices):
        index[int(f)] = int(k)
    total = len(bin_ids)
    modulus = (ref_output_size(bits) - total) & M64
    keys, out = [], []
    for i, v in zip(ids, vals):
        k = index.get(int(i))
        if k is None:
            keys.append(signed((((int(i) & M64) % modulus) + total) & M64))
            out.append(v)
            continue
        start = offsets[k]
        end = offsets[k + 1] if k + 1 < len(offsets) else total
        keys.append(int(bin_ids[start + ref_search(bin_vals[start:end], v)]))
        out.append(vals.dtype.type(1))
    return np.array(keys, np.int64), np.array(out, vals.dtype)


def ref_mdl_layer(cols, vals, n_feature, n_bin, out_bits, bin_values, hash_keys, hash_values, bin_ids,
                  feature_offsets):
    """twml's MDL layer: hash-table lookup, the MDL op on found keys, floormod
    (Python's %) + len(bin_ids) on the others."""
    index = dict(zip(map(int, hash_keys), map(int, hash_values)))
    size = len(bin_ids)
    keys, out = [], []
    for c, v in zip(cols, vals):
        k = index.get(int(c))
        if k is None:
            keys.append(int(c) % ((1 << out_bits) - size) + size)
            out.append(v)
            continue
        start = feature_offsets[k]
        end = feature_offsets[k + 1] if k + 1 < len(feature_offsets) else size
        keys.append(int(bin_ids[start + ref_search(bin_values[start:end], v)]))
        out.append(1.0)
    return np.array(keys, np.int64), np.array(out, vals.dtype)


def ref_percentile_bins(values, weights, n_bin):
    """PercentileDiscretizerFeature.calibrate: sort, float32 weight cumsum less
    its first, normalised; twml_optim_nearest_interpolation of the float32
    percentiles on (cum, float32 indices); ends pinned; fewer values than
    boundaries: -inf, the values, +inf."""
    values = np.asarray(values, np.float32)
    weights = np.asarray(weights, np.float32)
    order = np.argsort(values)
    v = values[order]
    cum = np.cumsum(weights[order]).astype(np.float32)
    cum = cum - cum[0]
    if cum[-1] > 0:
        cum = (cum / cum[-1]).astype(np.float32)
    out = np.full(n_bin + 1, np.inf, np.float32)
    if v.size < n_bin + 1:
        out[0] = -np.inf
        out[1:v.size + 1] = v
        return out
    ys = np.arange(v.size, dtype=np.float32)
    idx = [int(ys[ref_search(cum, p)]) for p in np.linspace(0, 1, n_bin + 1, dtype=np.float32)]
    idx[0], idx[-1] = 0, v.size - 1
    return v[idx]


# --- the op ------------------------------------------------------------------

def calibration(dtype, seed=0):
    """4 features with runs of 3..6 boundaries (ascending, with repeats)."""
    rng = np.random.default_rng(seed)
    runs = [3, 5, 4, 6]
    bin_vals = np.concatenate([np.sort(rng.choice(np.arange(-6, 7) / 2.0, size=n)) for n in runs]).astype(dtype)
    offsets = np.cumsum([0] + runs[:-1]).astype(np.int64)
    bin_ids = (100 + np.arange(bin_vals.size)).astype(np.int64)
    feature_ids = np.array([7, -3, 1 << 40, 12], np.int64)
    feature_indices = np.array([2, 0, 3, 1], np.int64)
    return bin_ids, bin_vals, offsets, feature_ids, feature_indices


def inputs(dtype, bin_vals, feature_ids, n=300, seed=1):
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.concatenate([feature_ids, [0, 5, -1, -(1 << 62), 99999]]), size=n).astype(np.int64)
    edges = np.concatenate([bin_vals, [np.nan, np.inf, -np.inf, 0.25, -7, 7]])
    vals = np.where(rng.random(n) < 0.5, rng.choice(edges, size=n), rng.normal(0, 3, size=n)).astype(dtype)
    return ids, vals


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bits", [10, 22, 30, 31, 32, 40, 4])
def test_ours_and_twmls_equal_the_reference(dtype, bits):
    bin_ids, bin_vals, offsets, fids, findices = calibration(dtype)
    ids, vals = inputs(dtype, bin_vals, fids)
    want_keys, want_vals = ref_v2(ids, vals, bin_ids, bin_vals, offsets, bits, fids, findices)
    keys, out = discretizers.percentile_discretizer(ids, vals, bin_ids, bin_vals, offsets, fids, findices, bits)
    np.testing.assert_array_equal(keys.numpy(), want_keys)
    np.testing.assert_array_equal(out.numpy(), want_vals)  # NaN passes through where uncalibrated
    assert out.dtype == dtype

    @tf.function
    def twml():
        return discretizers.twml_percentile_discretizer_v2(ids, vals, bin_ids, bin_vals, offsets, bits, fids, findices)

    keys, out = twml()
    np.testing.assert_array_equal(keys.numpy(), want_keys)
    np.testing.assert_array_equal(out.numpy(), want_vals)


def test_twmls_odd_arithmetic_is_kept():
    # -1 -> 435 at 10 bits with 3 bins: (2**64 - 1) % 1021 + 3 (model-ops.md).
    keys, vals = discretizers.percentile_discretizer(
        np.int64([-1, 5]), np.float32([2.5, 1.0]), np.int64([1, 2, 3]), np.float32([0, 1, 2]),
        np.int64([0]), np.int64([5]), np.int64([0]), 10)
    assert keys.numpy().tolist() == [435, 2] and vals.numpy().tolist() == [2.5, 1.0]
    # Fewer output ids than bins (1 << 2 < 5): the subtraction wraps, the id is kept + 5.
    keys, _ = discretizers.percentile_discretizer(
        np.int64([9]), np.float32([0]), np.int64([1, 2, 3, 4, 5]), np.float32([0, 1, 2, 3, 4]),
        np.int64([0]), np.int64([5]), np.int64([0]), 2)
    assert keys.numpy().tolist() == [14]


def test_empty_input_start_end_ignored_and_v1_session():
    bin_ids, bin_vals, offsets, fids, findices = calibration(np.float32)
    keys, vals = discretizers.percentile_discretizer(np.zeros(0, np.int64), np.zeros(0, np.float32),
                                                     bin_ids, bin_vals, offsets, fids, findices, 12)
    assert keys.shape == (0,) and vals.shape == (0,)
    ids, x = inputs(np.float32, bin_vals, fids, n=40)
    want = ref_v2(ids, x, bin_ids, bin_vals, offsets, 12, fids, findices)
    with tf.Graph().as_default() as g:
        ids_in = tf.compat.v1.placeholder(tf.int64, [None])
        x_in = tf.compat.v1.placeholder(tf.float32, [None])
        # start_compute/end_compute say rows 5..7: twml's kernel ignored them, ours too.
        out = discretizers.twml_percentile_discretizer_v2(ids_in, x_in, bin_ids, bin_vals, offsets, 12, fids,
                                                          findices, start_compute=5, end_compute=7)
        assert out[0].shape.as_list() == [None]
        with tf.compat.v1.Session(graph=g) as sess:
            keys, vals = sess.run(out, {ids_in: ids, x_in: x})
            empty = sess.run(out, {ids_in: np.zeros(0, np.int64), x_in: np.zeros(0, np.float32)})
    np.testing.assert_array_equal(keys, want[0])
    np.testing.assert_array_equal(vals, want[1])
    assert empty[0].shape == (0,)


def test_duplicate_feature_ids_keep_the_last_index():
    keys, _ = discretizers.percentile_discretizer(
        np.int64([4]), np.float32([0.5]), np.int64([1, 2, 3, 4]), np.float32([0, 1, 0, 1]),
        np.int64([0, 2]), np.int64([4, 4]), np.int64([0, 1]), 10)
    assert keys.numpy().tolist() == [3]


def test_where_twml_crashes_or_hangs_ours_is_an_error():
    ids, vals = np.int64([1, 9]), np.float32([0.5, 0.5])
    bins, bin_ids, offsets = np.float32([0, 1, 2, 3]), np.int64([1, 2, 3, 4]), np.int64([0])
    # 1 << 2 == 4 bins and id 9 uncalibrated: twml's modulo by zero (SIGFPE).
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_ids\[1\] = 9 is not calibrated.*SIGFPE"):
        discretizers.percentile_discretizer(ids, vals, bin_ids, bins, offsets, [1], [0], 2)
    # Every id calibrated: twml ran, so do we.
    keys, _ = discretizers.percentile_discretizer(ids[:1], vals[:1], bin_ids, bins, offsets, [1], [0], 2)
    assert keys.numpy().tolist() == [1]
    # A NaN boundary: twml's search never ends.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bin_vals\[1\] is NaN"):
        discretizers.percentile_discretizer(ids, vals, bin_ids, np.float32([0, np.nan, 2, 3]), offsets, [1], [0], 10)
    # An index outside the offsets: twml reads out of bounds.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"feature_indices\[0\] = 1 is outside the 1 features"):
        discretizers.percentile_discretizer(ids, vals, bin_ids, bins, offsets, [1], [1], 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature_offsets"):
        discretizers.percentile_discretizer(ids, vals, bin_ids, bins, np.int64([0, 4]), [1], [0], 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="vectors of one length"):
        discretizers.percentile_discretizer(ids, vals, bin_ids, bins, offsets, [1, 2], [0], 10)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="input_vals|Dimensions must be equal"):
        discretizers.percentile_discretizer(ids, vals[:1], bin_ids, bins, offsets, [1], [0], 10)

    @tf.function
    def attrs_mismatch():
        return discretizers.twml_percentile_discretizer_v2(ids, vals, bin_ids, bins, offsets, 10, [1, 2], [0])

    with pytest.raises(tf.errors.InvalidArgumentError, match="feature_ids and feature_indices must be vectors"):
        attrs_mismatch()

    @tf.function
    def negative_cost():
        return discretizers.twml_percentile_discretizer_v2(ids, vals, bin_ids, bins, offsets, 10, [1], [0],
                                                           cost_per_unit=-1)

    with pytest.raises(tf.errors.InvalidArgumentError, match="cost_per_unit must be >= 0"):
        negative_cost()


def test_v2_graph_shape_function_checks_ranks():
    @tf.function
    def bad():
        return discretizers.twml_percentile_discretizer_v2(np.int64([[1]]), np.float32([[1]]), np.int64([1]),
                                                           np.float32([0]), np.int64([0]), 10, [1], [0])

    with pytest.raises(ValueError, match="must be rank 1"):
        bad()


# --- the layers --------------------------------------------------------------

def layer_args(n_feature=3, n_bin=4, out_bits=12, seed=0):
    rng = np.random.default_rng(seed)
    size = n_feature * (n_bin + 1)
    bins = np.concatenate([np.sort(rng.normal(size=n_bin + 1)) for _ in range(n_feature)]).astype(np.float32)
    return {"n_feature": n_feature, "n_bin": n_bin, "out_bits": out_bits, "bin_values": bins,
            "hash_keys": np.array([70, 3, 900][:n_feature], np.int64),
            "hash_values": np.arange(n_feature, dtype=np.int64)[::-1].copy(),
            "bin_ids": np.arange(1, size + 1, dtype=np.int64),
            "feature_offsets": np.arange(0, size, n_bin + 1, dtype=np.int64)}


def sparse_input(seed=0, batch=16, width=1 << 10):
    rng = np.random.default_rng(seed)
    idx, vals = [], []
    for r in range(batch):
        for c in (3, 5, 70, 900, 1000):
            if rng.random() < 0.7:
                idx.append([r, c])
                vals.append(rng.normal() if c != 5 else 1.0)
    return tf.SparseTensor(np.array(idx, np.int64), np.array(vals, np.float32), [batch, width])


@pytest.mark.parametrize("name", ["PercentileDiscretizer", "MDL"])
def test_layers_equal_the_reference(name):
    args = layer_args()
    layer = getattr(bpr_ops, name)(**args)
    st = sparse_input()
    out = layer(st)
    cols, vals = st.indices.numpy()[:, 1], st.values.numpy()
    if name == "MDL":
        want_keys, want_vals = ref_mdl_layer(cols, vals, **args)
    else:
        want_keys, want_vals = ref_v2(cols, vals, args["bin_ids"], args["bin_values"], args["feature_offsets"],
                                      args["out_bits"], args["hash_keys"], args["hash_values"])
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], want_keys)
    np.testing.assert_array_equal(out.indices.numpy()[:, 0], st.indices.numpy()[:, 0])
    np.testing.assert_array_equal(out.values.numpy(), want_vals)
    np.testing.assert_array_equal(out.dense_shape.numpy(), [16, 1 << 12])


def test_negative_columns_each_layer_as_twml():
    args = layer_args()
    fake = tf.SparseTensor([[0, -1]], [2.0], [1, 4])  # column -1 (twml's ids are signed)
    p = bpr_ops.PercentileDiscretizer(**args)(fake).indices.numpy()[0, 1]
    m = bpr_ops.MDL(**args)(fake).indices.numpy()[0, 1]
    assert p == ((M64 % ((1 << 12) - 15)) + 15)
    assert m == (-1) % ((1 << 12) - 15) + 15 == (1 << 12) - 1


def test_keep_inputs_as_twmls_layer():
    args = layer_args()
    layer = bpr_ops.PercentileDiscretizer(**args)
    st = tf.SparseTensor([[0, 3], [0, 5]], [0.1, 2.0], [1, 1 << 10])
    out = layer(st, keep_inputs=True)
    dense = tf.sparse.to_dense(out).numpy()[0]
    size = 15
    k3 = ref_v2(np.int64([3]), np.float32([0.1]), args["bin_ids"], args["bin_values"], args["feature_offsets"], 12,
                args["hash_keys"], args["hash_values"])[0][0]
    # Calibrated 3 -> its bin (1) and its input column 3 % (4096 - 15) + 15 (0.1);
    # uncalibrated 5 -> 5 + 15 twice (twml's doubling).
    want = np.zeros(1 << 12, np.float32)
    want[k3] += 1.0
    want[3 + size] += 0.1
    want[5 + size] += 4.0
    np.testing.assert_allclose(dense, want)


def test_layer_mistakes_are_value_errors_at_construction():
    args = layer_args()
    with pytest.raises(ValueError, match=r"bin_values must be a vector of 15 .*got shape \[14\]"):
        bpr_ops.PercentileDiscretizer(**{**args, "bin_values": args["bin_values"][:-1]})
    with pytest.raises(ValueError, match=r"out_bits must be in \[1, 30\]"):
        bpr_ops.PercentileDiscretizer(**{**args, "out_bits": 31})
    with pytest.raises(ValueError, match="makes up to 15 new ids but out_bits=3 allows 8"):
        bpr_ops.MDL(**{**args, "out_bits": 3})
    with pytest.raises(ValueError, match=r"bin_values\[2\] is NaN"):
        bpr_ops.MDL(**{**args, "bin_values": np.where(np.arange(15) == 2, np.nan, args["bin_values"])})
    with pytest.raises(ValueError, match=r"hash_values must be feature indices in \[0, n_feature = 3\)"):
        bpr_ops.MDL(**{**args, "hash_values": [0, 1, 3]})
    with pytest.raises(ValueError, match="hash_keys must be distinct"):
        bpr_ops.MDL(**{**args, "hash_keys": [1, 1, 2]})
    with pytest.raises(ValueError, match=r"feature_offsets\[1\] = 5 starts a run of bins ending at 5"):
        bpr_ops.MDL(**{**args, "feature_offsets": [0, 5, 5]})
    with pytest.raises(ValueError, match="bin_values is required"):
        bpr_ops.PercentileDiscretizer(3, 4, 12)
    layer = bpr_ops.MDL(**args)
    with pytest.raises(ValueError, match="expects a rank-2 sparse tensor"):
        layer(tf.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="values must be float32 or float64, got int32"):
        layer(tf.zeros((2, 3), tf.int32))


def test_empty_calibration_layers():
    cal = PercentileDiscretizerCalibrator(n_bin=2, out_bits=10, allow_empty_calibration=True).calibrate()
    st = tf.SparseTensor([[0, 5], [1, 1030]], [1.5, 2.5], [2, 1 << 12])
    out = cal.to_layer()(st)
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], [5, 1030 & 1023])  # twml: limit_bits
    out = MDLCalibrator(n_bin=2, out_bits=10, allow_empty_calibration=True).calibrate().to_layer()(st)
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], [5, 1030 % 1024])


def model_with(layer, width):
    inp = keras.Input(shape=(width,), sparse=True, name="features")
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(layer(inp))
    return keras.Model(inp, score)


@pytest.mark.parametrize("name", ["PercentileDiscretizer", "MDL"])
def test_layer_trains_saves_and_exports(name, tmp_path):
    width = 1 << 10
    batches = [sparse_input(seed=s, batch=32, width=width) for s in range(4)]
    cal = (PercentileDiscretizerCalibrator if name == "PercentileDiscretizer" else MDLCalibrator)(n_bin=5, out_bits=12)
    for st in batches:
        cal.accumulate_sparse(st)
    layer = cal.calibrate().to_layer(name="disc")
    assert type(layer).__name__ == name
    model = model_with(layer, width)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    labels = [(tf.sparse.to_dense(st).numpy()[:, 3:4] > 0).astype(np.float32) for st in batches]
    ds = tf.data.Dataset.from_generator(lambda: zip(batches, labels), output_signature=(
        tf.SparseTensorSpec([None, width], tf.float32), tf.TensorSpec([None, 1], tf.float32)))
    history = model.fit(ds, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    st = batches[0]
    want = model.predict(st, verbose=0)
    # tf.function gives the eager result.
    np.testing.assert_allclose(tf.function(lambda s: model(s))(st).numpy(), want, rtol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(st, verbose=0), want)
    config = again.get_layer("disc").get_config()
    assert config["hash_keys"] == cal.feature_ids.tolist()
    np.testing.assert_array_equal(np.float32(config["bin_values"]), cal.bin_vals.reshape(-1))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", lambda i, v, s: model(tf.SparseTensor(i, v, s), training=False),
        input_signature=[tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([None], tf.float32),
                         tf.TensorSpec([2], tf.int64)])
    archive.write_out(str(tmp_path / "sm"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(served.serve(st.indices, st.values, st.dense_shape).numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("name", ["PercentileDiscretizer", "MDL"])
def test_layer_serves_in_bpr_host_with_predicts_scores(name, built, tmp_path):  # noqa: F811
    key = 4242
    rng = np.random.default_rng(5)
    x = rng.normal(size=(256, 8)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.3] = 0.0
    y = ((x[:, 0] + x[:, 3]) > 0).astype(np.float32).reshape(-1, 1)
    cal = (PercentileDiscretizerCalibrator if name == "PercentileDiscretizer" else MDLCalibrator)(n_bin=6, out_bits=12)
    cal.accumulate_sparse(tf.sparse.from_dense(x))
    layer = cal.calibrate().to_layer(name="disc")
    inp = keras.Input((8,), name="features")
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(layer(inp))
    base = keras.Model(inp, score)
    base.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    base.fit(x, y, epochs=3, batch_size=64, verbose=0)
    served_model = keras.Model(inp, bpr_ops.BatchPredictionWriter([key])(score))
    served_model.export(str(tmp_path / "model"), format="tf_saved_model", verbose=False)
    batch = x[:5]
    np.save(tmp_path / "batch.npy", batch)
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    (python_result,) = loaded.signatures["serving_default"](tf.constant(batch)).values()
    run = host(built, "--model", tmp_path / "model", "--input", tmp_path / "batch.npy",
               "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    got_bytes = (tmp_path / "out.bin").read_bytes()
    assert got_bytes == thrift_check.to_bytes(python_result)
    response = thrift_check.decode(got_bytes)
    got = [p.continuousFeatures[key] for p in response.predictions]
    np.testing.assert_allclose(got, base.predict(batch, verbose=0)[:, 0], rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed")
def test_tf_keras_layers_train_save_and_reload(tmp_path):
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        import bpr_ops
        import tf_keras as keras
        from bpr_ops.calibrators import MDLCalibrator, PercentileDiscretizerCalibrator
        assert bpr_ops.PercentileDiscretizer.__module__ == "bpr_ops.tf_keras_layers"
        assert bpr_ops.MDL.__module__ == "bpr_ops.tf_keras_layers"
        out = sys.argv[1]
        rng = np.random.default_rng(0)
        st = tf.SparseTensor([[0, 1], [0, 2], [1, 1], [1, 3]], [0.5, -1.0, 2.0, 4.0], [2, 16])
        for cls in (PercentileDiscretizerCalibrator, MDLCalibrator):
            cal = cls(n_bin=4, out_bits=8)
            cal.accumulate(np.repeat([1, 2], 50), rng.normal(size=100))
            layer = cal.calibrate().to_layer(name="disc", keras_module=keras)
            assert isinstance(layer, keras.layers.Layer)
            inp = keras.Input(shape=(16,), sparse=True)
            model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(layer(inp)))
            model.compile("adam", "mse")
            model.fit(st, np.float32([[1], [0]]), epochs=2, verbose=0)
            want = model.predict(st, verbose=0)
            model.save(out + "/m.keras")
            got = keras.models.load_model(out + "/m.keras").predict(st, verbose=0)
            np.testing.assert_array_equal(got, want)
            keras.models.save_model(model, out + "/sm", save_format="tf")
            got = keras.models.load_model(out + "/sm").predict(st, verbose=0)
            np.testing.assert_allclose(got, want, rtol=1e-6)
            print("ok", model.get_layer("disc").__class__.__name__, model.get_layer("disc").__class__.__module__)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(bpr_ops.__file__).resolve().parents[1]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()[-2:]
    assert lines == ["ok PercentileDiscretizer bpr_ops.tf_keras_layers", "ok MDL bpr_ops.tf_keras_layers"], done.stdout


# --- the calibrators ---------------------------------------------------------

FEATURES = [11, 4242, 70001]  # continuous feature ids (hashed into 20 bits unchanged)


def block_files(tmp_path, seed=3):
    """Two block files of DataRecords: three continuous features (one
    sparse), a weight, and the values and weights each feature saw."""
    rng = np.random.default_rng(seed)
    seen = {f: ([], []) for f in FEATURES}
    files = []
    for i in range(2):
        records = []
        for r in range(150):
            weight = float(rng.choice([1.0, 2.0, 0.5]))
            cont = {99: weight}
            for f in FEATURES:
                if f == 70001 and (i, r) not in ((0, 2), (0, 5), (0, 9)):
                    continue  # a rare feature: fewer values than boundaries
                v = float(np.float32(rng.choice([rng.normal(), rng.exponential(), 1.0])))
                cont[f] = v
                seen[f][0].append(v)
                seen[f][1].append(weight)
            records.append({"continuous": cont})
        path = tmp_path / f"part-{i}.gz"
        data.write_block_format(str(path), records, records_per_block=40)
        files.append(str(path))
    return files, seen


@pytest.mark.parametrize("cls", [PercentileDiscretizerCalibrator, MDLCalibrator])
def test_calibrators_fit_from_block_files_give_twmls_bins(cls, tmp_path):
    files, seen = block_files(tmp_path)
    config = bpr_ops.FeatureConfig(hashed={"continuous": FEATURES}, hashed_bits=20, weights=[99])
    batches = data.training_dataset(files, config, batch_size=64)
    cal = cls(n_bin=6, out_bits=10, max_values_per_feature=None)
    cal.fit(batches.map(lambda x, y, w: (x["hashed"], w)))
    ids = cal.feature_ids.tolist()
    # twml's hash map order: first seen, ascending within a batch (all three are in the first).
    assert ids == FEATURES
    for i, f in enumerate(ids):
        np.testing.assert_array_equal(cal.bin_vals[i], ref_percentile_bins(*seen[f], 6), err_msg=str(f))
    # 3 values, 7 boundaries: -inf, the values, then +inf (twml's short-feature rule).
    assert cal.bin_vals[2][0] == -np.inf and cal.bin_vals[2][4:].tolist() == [np.inf] * 3
    np.testing.assert_array_equal(cal.bin_vals[2][1:4], np.sort(np.float32(seen[70001][0])))
    layer = cal.to_layer()
    assert type(layer).__name__ == ("MDL" if cls is MDLCalibrator else "PercentileDiscretizer")
    config = layer.get_config()
    # twml's layout: bin ids from 1, runs of n_bin + 1, index i for the i-th feature.
    assert config["bin_ids"] == list(range(1, 3 * 7 + 1))
    assert config["feature_offsets"] == [0, 7, 14]
    assert config["hash_values"] == [0, 1, 2] and config["hash_keys"] == ids
    # The layer on a batch of the files equals the reference with these bins.
    x, _, _ = next(iter(batches))
    st = x["hashed"]
    out = layer(st)
    cols, vals = st.indices.numpy()[:, 1], st.values.numpy()
    args = {k: np.asarray(config[k]) for k in ("bin_ids", "feature_offsets", "hash_keys", "hash_values")}
    bins = np.float32(config["bin_values"])
    if cls is MDLCalibrator:
        want = ref_mdl_layer(cols, vals, 3, 6, 10, bins, args["hash_keys"], args["hash_values"], args["bin_ids"],
                             args["feature_offsets"])
    else:
        want = ref_v2(cols, vals, args["bin_ids"], bins, args["feature_offsets"], 10, args["hash_keys"],
                      args["hash_values"])
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], want[0])
    np.testing.assert_array_equal(out.values.numpy(), want[1])


def test_percentile_bins_equal_the_reference():
    rng = np.random.default_rng(9)
    for n, n_bin in ((1, 4), (5, 4), (6, 5), (100, 7), (1000, 20)):
        v = rng.choice(np.arange(-20, 20) / 4.0, size=n)
        w = rng.choice([0.0, 0.5, 1.0, 3.0], size=n)
        np.testing.assert_array_equal(calibrators.percentile_bins(v, w, n_bin), ref_percentile_bins(v, w, n_bin))


def test_calibrator_mistakes():
    with pytest.raises(ValueError, match=r"PercentileDiscretizerCalibrator: out_bits must be an int in \[1, 30\]"):
        PercentileDiscretizerCalibrator(n_bin=4, out_bits=31)
    cal = MDLCalibrator(n_bin=4, out_bits=3)
    with pytest.raises(RuntimeError, match="MDLCalibrator: call calibrate"):
        cal.to_layer()
    cal.accumulate(np.array([1, 2]), np.array([1.0, 2.0]))
    cal.calibrate()
    with pytest.raises(ValueError, match="MDLCalibrator: the discretizer makes up to 10 new ids but out_bits=3"):
        cal.to_layer()

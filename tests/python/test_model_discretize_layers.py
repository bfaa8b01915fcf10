"""The HashingDiscretizer and Isotonic layers and their calibrators: bins
checked by hand against twml's algorithm, the Earlybird shape (hashed sparse
features -> HashingDiscretizer calibrated on the training data -> Dense ->
sigmoid) trained with model.fit, saved (.keras) and exported (SavedModel)
with the same scores as model.predict; mistakes caught at build; the tf_keras
classes in a fresh interpreter."""

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
from bpr_ops import calibrators, discretizers
from bpr_ops.calibrators import HashingDiscretizerCalibrator, IsotonicCalibrator
from test_model_discretize import ref_hashing

INPUT_BITS = 12


def sparse_batches(n_batches=6, batch=32, seed=0):
    """Hashed sparse batches as the reader gives them: [batch, 1 << INPUT_BITS],
    features 3, 70 and 900 continuous, 5 binary, and labels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        idx, vals = [], []
        x = rng.normal(size=batch)
        for r in range(batch):
            idx += [[r, 3], [r, 70], [r, 5]]
            vals += [x[r], rng.exponential(), 1.0]
            if r % 3 == 0:
                idx.append([r, 900])
                vals.append(rng.uniform(-5, 5))
        st = tf.SparseTensor(np.array(idx, np.int64), np.array(vals, np.float32), [batch, 1 << INPUT_BITS])
        out.append((st, (x > 0.3).astype(np.float32).reshape(-1, 1)))
    return out


def test_percentile_bins_by_hand():
    # 0..9, weight 1: cum = k / 9; p = .25 stops between 2/9 and 3/9, so 2.
    np.testing.assert_array_equal(calibrators.percentile_bins(np.arange(10.0)[::-1], np.ones(10), 4),
                                  [0, 2, 4, 6, 9])
    # cum of weights [1, 1, 1, 5] less the first = [0, 1, 2, 7] / 7: p = .5 -> 2.
    np.testing.assert_array_equal(calibrators.percentile_bins([3.0, 1.0, 0.0, 2.0], [5, 1, 1, 1], 2), [0, 2, 3])
    # Fewer values than boundaries: -inf, the values, +inf.
    np.testing.assert_array_equal(calibrators.percentile_bins([3.0, 1.0], [1, 1], 4),
                                  [-np.inf, 1, 3, np.inf, np.inf])


def test_hashing_calibrator_and_layer_equal_the_op_reference():
    batches = sparse_batches()
    cal = HashingDiscretizerCalibrator(n_bin=4, out_bits=14)
    for st, _ in batches:
        cal.accumulate_sparse(st)
    cal.calibrate()
    # First-seen order, ascending within a batch (twml's hash map order).
    np.testing.assert_array_equal(cal.feature_ids, [3, 5, 70, 900])
    assert cal.bin_vals.shape == (4, 5)
    # Feature 3's bins from all its values, computed directly.
    values3 = np.concatenate([st.values.numpy()[st.indices.numpy()[:, 1] == 3] for st, _ in batches])
    np.testing.assert_array_equal(cal.bin_vals[0], calibrators.percentile_bins(values3, np.ones(values3.size), 4))
    assert cal.bin_vals[0][0] == values3.min() and cal.bin_vals[0][-1] == values3.max()
    layer = cal.to_layer()
    st = batches[0][0]
    out = layer(st)
    keys, vals = ref_hashing(st.indices.numpy()[:, 1], st.values.numpy(), cal.feature_ids,
                             cal.bin_vals.reshape(-1), 5, 14, 0)
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], keys)
    np.testing.assert_array_equal(out.indices.numpy()[:, 0], st.indices.numpy()[:, 0])
    np.testing.assert_array_equal(out.values.numpy(), vals)
    np.testing.assert_array_equal(out.dense_shape.numpy(), [32, 1 << 14])


def test_calibrator_fit_on_a_dataset_with_weights_and_bound():
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 3, size=5000)
    values = rng.normal(size=5000).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices({"keys": keys, "values": values, "weights": np.ones(5000, np.float32)})
    exact = HashingDiscretizerCalibrator(n_bin=3, out_bits=8, max_values_per_feature=None).fit(ds.batch(500))
    bounded = HashingDiscretizerCalibrator(n_bin=3, out_bits=8, max_values_per_feature=200).fit(ds.batch(500))
    assert exact.sampled_features == [] and sorted(bounded.sampled_features) == [0, 1, 2]
    for f in range(3):
        v = values[keys == f]
        np.testing.assert_array_equal(exact.bin_vals[f], calibrators.percentile_bins(v, np.ones(v.size), 3))
        # A 200-value sample: quartiles within sampling error, inside the data.
        np.testing.assert_allclose(bounded.bin_vals[f][1:-1], np.quantile(v, [1 / 3, 2 / 3]), atol=0.3)
        assert v.min() <= bounded.bin_vals[f].min() and bounded.bin_vals[f].max() <= v.max()


def test_calibrator_mistakes():
    with pytest.raises(ValueError, match="out_bits"):
        HashingDiscretizerCalibrator(n_bin=4, out_bits=0)
    cal = HashingDiscretizerCalibrator(n_bin=4, out_bits=3)
    with pytest.raises(ValueError, match="weights must be finite"):
        cal.accumulate(np.array([1]), np.array([1.0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="vectors of one length"):
        cal.accumulate(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(RuntimeError, match="no feature was accumulated"):
        cal.calibrate()
    cal.accumulate(np.array([1, 2]), np.array([1.0, 2.0]))
    cal.calibrate()
    with pytest.raises(ValueError, match="makes up to 10 new ids but out_bits=3 allows 8"):
        cal.to_layer()


def test_layer_mistakes_are_caught_at_construction():
    with pytest.raises(ValueError, match=r"bin_vals must be a vector of n_bin \(2\) x 2 feature_ids = 4"):
        discretizers.HashingDiscretizer([1, 2], [0.0, 1.0, 2.0], n_bin=2, out_bits=8)
    with pytest.raises(ValueError, match=r"out_bits must be in \[1, 62\]"):
        discretizers.HashingDiscretizer([1], [0.0], n_bin=1, out_bits=63)
    with pytest.raises(ValueError, match="feature_ids must be a vector of ints"):
        discretizers.HashingDiscretizer([[1]], [0.0], n_bin=1, out_bits=8)
    layer = discretizers.HashingDiscretizer([1], [0.0], n_bin=1, out_bits=8)
    with pytest.raises(ValueError, match="expects a rank-2 sparse tensor"):
        layer(tf.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="values must be float32 or float64, got int32"):
        layer(tf.zeros((2, 3), tf.int32))
    # Dense input: its zeros are absent features.
    out = layer(tf.constant([[0.0, -1.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(out.indices.numpy(), [[0, ref_hashing([1], np.float32([-1.0]), [1], [0.0], 1, 8, 0)[0][0]]])
    with pytest.raises(ValueError, match=r"xs_input must have shape \[n_unit, n_bin\] = \[1, 3\]"):
        discretizers.Isotonic(1, 3, [[0.0, 1.0]], [[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"xs_input\[0, 1\] is NaN"):
        discretizers.Isotonic(1, 2, [[0.0, np.nan]], [[0.0, 1.0]])
    with pytest.raises(ValueError, match=r"expects inputs \[batch, n_unit = 2\], got shape \[None, 3\]"):
        discretizers.Isotonic(2, 2, [[0, 1], [0, 1]], [[0, 1], [0, 1]])(keras.Input((3,)))


def test_empty_calibration_limits_bits_as_twmls_layer():
    cal = HashingDiscretizerCalibrator(n_bin=2, out_bits=40, allow_empty_calibration=True).calibrate()
    st = tf.SparseTensor([[0, 5], [1, (1 << 45) + 7]], [1.5, 2.5], [2, 1 << 50])
    out = cal.to_layer()(st)
    # twml's layer limits bits in Python (64-bit) when nothing is calibrated.
    np.testing.assert_array_equal(out.indices.numpy()[:, 1], [5, 7])


def pava_reference(y, w):
    """Isotonic regression by repeated passes: merge the first adjacent
    violating blocks until none is left (slow, obviously correct)."""
    blocks = [[float(v), float(wi), 1] for v, wi in zip(y, w)]
    merged = True
    while merged:
        merged = False
        for i in range(len(blocks) - 1):
            if blocks[i][0] > blocks[i + 1][0]:
                a, b = blocks[i], blocks[i + 1]
                wsum = a[1] + b[1]
                blocks[i] = [(a[0] * a[1] + b[0] * b[1]) / wsum, wsum, a[2] + b[2]]
                del blocks[i + 1]
                merged = True
                break
    return np.concatenate([[m] * n for m, _, n in blocks])


def test_isotonic_regression_and_binning():
    np.testing.assert_allclose(calibrators.isotonic_regression([1, 3, 2, 4], [1, 1, 1, 1]), [1, 2.5, 2.5, 4])
    rng = np.random.default_rng(2)
    y, w = rng.uniform(size=300), rng.uniform(0.1, 2, size=300)
    np.testing.assert_allclose(calibrators.isotonic_regression(y, w), pava_reference(y, w), rtol=1e-12)
    cal = IsotonicCalibrator(n_bin=2)
    cal.accumulate(np.array([[0.4], [0.1], [0.3], [0.2]]), np.array([[1.0], [0.0], [0.0], [1.0]]))
    cal.calibrate()
    # sorted by prediction: targets [0, 1, 0, 1] -> fit [0, .5, .5, 1]; two bins of two.
    np.testing.assert_allclose(cal.xs_input, [[0.15, 0.35]], rtol=1e-6)
    np.testing.assert_allclose(cal.ys_input, [[0.25, 0.75]], rtol=1e-6)


def earlybird_model(layer):
    inp = keras.Input(shape=(1 << INPUT_BITS,), sparse=True, name="features")
    hashed = layer(inp)
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hashed)
    return keras.Model(inp, score)


def test_earlybird_trains_saves_and_exports(tmp_path):
    batches = sparse_batches()
    cal = HashingDiscretizerCalibrator(n_bin=8, out_bits=10)
    cal.fit(tf.data.Dataset.from_generator(lambda: (b[0] for b in batches),
                                           output_signature=tf.SparseTensorSpec([None, 1 << INPUT_BITS], tf.float32)))
    model = earlybird_model(cal.to_layer(name="hashing"))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    ds = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=(
        tf.SparseTensorSpec([None, 1 << INPUT_BITS], tf.float32), tf.TensorSpec([None, 1], tf.float32)))
    history = model.fit(ds, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    st = batches[0][0]
    want = model.predict(st, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(st, verbose=0), want)
    assert again.get_layer("hashing").get_config()["feature_ids"] == cal.feature_ids.tolist()
    # model.export gives a sparse input a dense spec (Keras 3.15): the
    # endpoint takes the COO parts, as the request reader gives them.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", lambda i, v, s: model(tf.SparseTensor(i, v, s), training=False),
        input_signature=[tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([None], tf.float32),
                         tf.TensorSpec([2], tf.int64)])
    archive.write_out(str(tmp_path / "sm"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "sm"))
    got = served.serve(st.indices, st.values, st.dense_shape).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_isotonic_layer_trains_saves_and_exports(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)
    inp = keras.Input((4,))
    logits = keras.layers.Dense(1, activation="sigmoid")(inp)
    base = keras.Model(inp, logits)
    cal = IsotonicCalibrator(n_bin=8).fit([(base.predict(x, verbose=0), y)])
    model = keras.Model(inp, cal.to_layer(name="iso")(logits))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "iso.keras")
    np.testing.assert_array_equal(keras.saving.load_model(tmp_path / "iso.keras").predict(x, verbose=0), want)
    model.export(str(tmp_path / "iso"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "iso"))  # held: its variables live with it
    np.testing.assert_allclose(served.serve(x).numpy(), want, rtol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed")
def test_tf_keras_layers_train_save_and_reload(tmp_path):
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        import bpr_ops
        import tf_keras as keras
        from bpr_ops.calibrators import HashingDiscretizerCalibrator, IsotonicCalibrator
        assert bpr_ops.HashingDiscretizer.__module__ == "bpr_ops.tf_keras_layers"
        out = sys.argv[1]
        cal = HashingDiscretizerCalibrator(n_bin=4, out_bits=8)
        rng = np.random.default_rng(0)
        cal.accumulate(np.repeat([1, 2], 50), rng.normal(size=100))
        layer = cal.calibrate().to_layer(name="hashing", keras_module=keras)
        assert isinstance(layer, keras.layers.Layer)
        inp = keras.Input(shape=(16,), sparse=True)
        score = keras.layers.Dense(1, activation="sigmoid")(layer(inp))
        iso = IsotonicCalibrator(n_bin=2)
        iso.accumulate(np.array([[0.1], [0.9], [0.2], [0.8]]), np.array([[0.0], [1.0], [0.0], [1.0]]))
        score = iso.calibrate().to_layer(name="iso", keras_module=keras)(score)
        model = keras.Model(inp, score)
        model.compile("adam", "mse")
        st = tf.SparseTensor([[0, 1], [0, 2], [1, 1]], [0.5, -1.0, 2.0], [2, 16])
        model.fit(st, np.float32([[1], [0]]), epochs=2, verbose=0)
        want = model.predict(st, verbose=0)
        model.save(out + "/m.keras")
        got = keras.models.load_model(out + "/m.keras").predict(st, verbose=0)
        np.testing.assert_array_equal(got, want)
        keras.models.save_model(model, out + "/sm", save_format="tf")
        got = keras.models.load_model(out + "/sm").predict(st, verbose=0)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        print("ok", model.get_layer("hashing").__class__.__module__)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(bpr_ops.__file__).resolve().parents[1]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().endswith("ok bpr_ops.tf_keras_layers"), done.stdout

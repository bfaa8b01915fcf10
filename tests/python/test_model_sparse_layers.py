"""twml's sparse layers on Keras 3 (and tf_keras, in fresh interpreters):
FullSparse with binary and weighted values trains with model.fit on a
tf.SparseTensor input (the Earlybird light ranker's hashed features ->
FullSparse(1) -> sigmoid), saves and reloads (.keras, SavedModel), exports
(keras.export.ExportArchive) and serves in bpr-host with the scores
model.predict gives; SparseMaxNorm learns its maxima in fit only; Partition
and Stitch invert each other. References are NumPy from twml's layer math."""

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
from bpr_ops import sparse_layers as sl

BITS = 12
WIDTH = 1 << BITS
ROOT = Path(__file__).resolve().parents[2]


def hashed_batch(rng, rows, per_row=6):
    """Earlybird-like input: per record a few hashed keys (limit_bits'd), binary."""
    idx = sorted({(r, int(k)) for r in range(rows) for k in rng.integers(0, WIDTH, per_row)})
    idx = np.array(idx, np.int64)
    # A label the keys decide: records with more even keys than odd are 1.
    even = np.bincount(idx[:, 0], weights=(idx[:, 1] % 2 == 0), minlength=rows)
    odd = np.bincount(idx[:, 0], weights=(idx[:, 1] % 2 == 1), minlength=rows)
    return idx, (even > odd).astype(np.float32)


def sparse(idx, rows, values=None):
    values = np.ones(len(idx), np.float32) if values is None else values
    return tf.SparseTensor(idx, values, [rows, WIDTH])


def dense_of(idx, rows, values=None):
    d = np.zeros((rows, WIDTH), np.float64)
    values = np.ones(len(idx)) if values is None else values
    for (r, c), v in zip(idx, values):
        d[r, c] += v
    return d


def earlybird_model(**kwargs):
    inp = keras.Input(shape=(WIDTH,), sparse=True, name="features")
    out = sl.FullSparse(1, activation="sigmoid", use_binary_values=True, name="full_sparse", **kwargs)(inp)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(11)
    idx, labels = hashed_batch(rng, 512)
    model = earlybird_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    x = sparse(idx, 512)
    before = model.evaluate(x, labels, verbose=0, batch_size=512)
    history = model.fit(x, labels, epochs=8, batch_size=64, verbose=0)
    return {"model": model, "idx": idx, "labels": labels, "before": before, "history": history.history["loss"]}


def test_earlybird_full_sparse_trains_with_fit_on_a_sparse_input(trained):
    loss = trained["history"]
    assert loss[-1] < 0.5 * trained["before"], (trained["before"], loss)
    model = trained["model"]
    w, b = model.get_layer("full_sparse").weights_parts[0].numpy(), model.get_layer("full_sparse").bias.numpy()
    assert np.count_nonzero(w) > 100, "the binary op's gradient reached the weight"
    # The scores are sigmoid(A . w + b) with A's values taken as 1.
    idx = trained["idx"]
    want = 1 / (1 + np.exp(-(dense_of(idx, 512) @ w.astype(np.float64) + b)))
    got = model.predict(sparse(idx, 512), verbose=0, batch_size=512)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_binary_values_ignore_the_values_weighted_ones_use_them():
    rng = np.random.default_rng(2)
    idx, _ = hashed_batch(rng, 9)
    values = rng.normal(size=len(idx)).astype(np.float32)
    for binary in (True, False):
        layer = sl.FullSparse(3, use_binary_values=binary, weight_initializer=keras.initializers.RandomNormal(seed=1))
        got = layer(sparse(idx, 9, values)).numpy()
        w = layer.weights_parts[0].numpy().astype(np.float64)
        a = dense_of(idx, 9, None if binary else values)
        np.testing.assert_allclose(got, a @ w + 1 / 3, rtol=1e-5, atol=1e-5)  # twml's bias: 1 / output_size


def test_a_list_of_inputs_and_partitioned_weights():
    rng = np.random.default_rng(4)
    (i1, _), (i2, _) = hashed_batch(rng, 5), hashed_batch(rng, 5)
    v2 = rng.normal(size=len(i2)).astype(np.float32)
    for axis in (0, 1):
        layer = sl.FullSparse(4, use_binary_values=[True, False], num_partitions=3, partition_axis=axis,
                              weight_initializer=keras.initializers.RandomNormal(seed=2))
        got = layer([sparse(i1, 5), sparse(i2, 5, v2)]).numpy()
        parts = [p.numpy() for p in layer.weights_parts]
        assert len(parts) == 3
        # tf.fixed_size_partitioner's split: the first ones get the extra row/column.
        sizes = [p.shape[axis] for p in parts]
        total = WIDTH if axis == 0 else 4
        assert sizes == [total // 3 + (1 if p < total % 3 else 0) for p in range(3)]
        w = np.concatenate(parts, axis=axis).astype(np.float64)
        want = dense_of(i1, 5) @ w + dense_of(i2, 5, v2) @ w + 0.25
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,shape,message",
    [
        ({"output_size": 0}, (None, 8), "output_size must be a positive int, got 0"),
        ({"output_size": 1, "partition_axis": 2}, (None, 8), "partition_axis must be 0 or 1, got 2"),
        ({"output_size": 1, "num_partitions": 0}, (None, 8), "num_partitions must be None or a positive int"),
        ({"output_size": 1, "use_binary_values": "yes"}, (None, 8), "use_binary_values must be a bool"),
        ({"output_size": 1}, (None, None), r"input_size \(the second dim\) must be known"),
        ({"output_size": 1}, (None, 8, 2), r"must be a 2-D sparse tensor \[batch, input_size\], got shape"),
        ({"output_size": 1 << 10}, (None, 1 << 20), r"is not below 2GB: pass a larger num_partitions"),
        ({"output_size": 1, "use_binary_values": [True, True]}, (None, 8), "use_binary_values has 2 entries for 1 inputs"),
    ],
)
def test_mistakes_are_caught_when_the_layer_is_built(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        layer = sl.FullSparse(**kwargs)
        layer.build(shape)


def test_full_sparse_needs_a_sparse_tensor():
    layer = sl.FullSparse(1)
    with pytest.raises(TypeError, match=r"input 0 must be a tf.SparseTensor \[batch, 8\], got"):
        layer(tf.ones([2, 8]))


def test_saves_and_reloads_as_keras_and_saved_model(trained, tmp_path):
    model, idx = trained["model"], trained["idx"]
    x = sparse(idx, 512)
    want = model.predict(x, verbose=0, batch_size=512)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert type(again.get_layer("full_sparse")) is sl.FullSparse
    np.testing.assert_array_equal(again.predict(x, verbose=0, batch_size=512), want)
    cfg = again.get_layer("full_sparse").get_config()
    assert cfg["use_binary_values"] is True and cfg["output_size"] == 1


def export_serving(model, path: Path):
    """The Earlybird serving form: the sparse parts as plain tensors in, the
    scores written as a BatchPredictionResponse out."""
    writer = bpr_ops.BatchPredictionWriter(["prediction"])
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.int64, name="indices"),
                                  tf.TensorSpec([None], tf.float32, name="values"),
                                  tf.TensorSpec([], tf.int64, name="batch_size")])
    def serve(indices, values, batch_size):
        sp = tf.SparseTensor(indices, values, tf.stack([batch_size, tf.constant(WIDTH, tf.int64)]))
        return writer(model(sp))

    archive.add_endpoint("serving_default", serve)
    archive.write_out(str(path), verbose=False)
    return path


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full_sparse")
    path = export_serving(trained["model"], tmp / "model")
    idx = trained["idx"][trained["idx"][:, 0] < 20]
    np.save(tmp / "indices.npy", idx)
    np.save(tmp / "values.npy", np.ones(len(idx), np.float32))
    np.save(tmp / "batch_size.npy", np.array(20, np.int64))
    scores = trained["model"].predict(sparse(idx, 20), verbose=0)
    return {"dir": tmp, "path": path, "idx": idx, "scores": scores}


def test_exported_model_gives_predicts_scores_in_python(exported):
    serve = tf.saved_model.load(str(exported["path"])).signatures["serving_default"]
    idx = exported["idx"]
    (out,) = serve(indices=tf.constant(idx), values=tf.ones([len(idx)]), batch_size=tf.constant(20, tf.int64)).values()
    records = thrift_check.decode(thrift_check.to_bytes(out)).predictions
    got = np.array([list(r.continuousFeatures.values())[0] for r in records])
    np.testing.assert_array_equal(got, exported["scores"].ravel().astype(np.float64))


@pytest.fixture(scope="module")
def host_built():
    if os.environ.get("BPR_OPS_LIBRARY"):
        pytest.skip("bpr-host is built against .venv's TensorFlow; this run is pointed at another build")
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    for cmd in (["cargo", "build", "--release"], ["cargo", "build", "--release", "-p", "bpr-host"]):
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"


def test_bpr_host_serves_the_scores_model_predict_gives(host_built, exported, tmp_path):
    d = exported["dir"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run(
        [str(host_built / "bpr-host"), "--ops", str(host_built / "libbpr_ops.so"), "--model", str(exported["path"]),
         "--input", f"indices={d / 'indices.npy'}", "--input", f"values={d / 'values.npy'}",
         "--input", f"batch_size={d / 'batch_size.npy'}", "--output", str(tmp_path / "out.bin")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    records = thrift_check.decode((tmp_path / "out.bin").read_bytes()).predictions
    got = np.array([list(r.continuousFeatures.values())[0] for r in records])
    assert len(got) == 20
    np.testing.assert_array_equal(got, exported["scores"].ravel().astype(np.float64))


# ---- SparseMaxNorm ----------------------------------------------------------------------------


def test_sparse_max_norm_learns_maxima_in_fit_only():
    rng = np.random.default_rng(8)
    rows, width = 64, 16
    idx = np.array(sorted({(r, int(c)) for r in range(rows) for c in rng.integers(0, width, 3)}), np.int64)
    values = (rng.normal(size=len(idx)) * 5).astype(np.float32)
    x = tf.SparseTensor(idx, values, [rows, width])
    inp = keras.Input(shape=(width,), sparse=True)
    norm = sl.SparseMaxNorm(name="norm")
    # Ones, not twml's zeros: bias_x's gradient passes through the weight.
    out = sl.FullSparse(1, name="fs", weight_initializer="ones")(norm(inp))
    model = keras.Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(norm.max_x.numpy(), np.zeros(width), "predict does not learn maxima")
    model.fit(x, np.zeros(rows, np.float32), epochs=1, batch_size=rows, verbose=0)
    want = np.zeros(width, np.float32)
    np.maximum.at(want, idx[:, 1], np.abs(values))
    np.testing.assert_array_equal(norm.max_x.numpy(), want)
    assert np.any(norm.bias_x.numpy() != 0), "bias_x learns"
    # Inference: values / max(max_x, |v|, eps) + bias_x, the indices kept.
    got = norm(x)
    np.testing.assert_array_equal(got.indices.numpy(), idx)
    m = np.maximum(want[idx[:, 1]], np.abs(values))
    np.testing.assert_allclose(got.values.numpy(), values / np.maximum(m, 1e-5) + norm.bias_x.numpy()[idx[:, 1]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="is_training must be a bool"):
        sl.SparseMaxNorm(is_training="yes")


# ---- Partition / Stitch ------------------------------------------------------------------------


def test_partition_then_stitch_is_the_identity():
    ids = tf.constant([1, 0, 1, 2, 0], tf.int32)
    vals = tf.constant([10.0, 20.0, 30.0, 40.0, 50.0])
    keys = tf.constant([5, 6, 7, 8, 9], tf.int64)
    pv, pk, pi = sl.Partition(partitions=3)(ids, vals, keys)
    np.testing.assert_array_equal(pv[1].numpy(), [10.0, 30.0])
    np.testing.assert_array_equal(pi[0].numpy(), [1, 4])
    v, k = sl.Stitch()(pv, pk, pi)
    np.testing.assert_array_equal(v.numpy(), vals.numpy())
    np.testing.assert_array_equal(k.numpy(), keys.numpy())
    with pytest.raises(ValueError, match="partitions must be a positive int, got 0"):
        sl.Partition(partitions=0)


# ---- tf_keras ---------------------------------------------------------------------------------

TF_KERAS = """
    import sys, numpy as np, tensorflow as tf
    import bpr_ops
    import tf_keras as keras
    assert bpr_ops.FullSparse.__module__ == "bpr_ops.tf_keras_layers", bpr_ops.FullSparse.__module__
    # Sorted, distinct (tf_keras batches a SparseTensor with ops that need that).
    idx = np.unique(np.array([[r, (r * 7 + j * 13) % 64] for r in range(32) for j in range(3)], np.int64), axis=0)
    y = (np.arange(32) % 2).astype(np.float32)
    x = tf.SparseTensor(idx, np.ones(len(idx), np.float32), [32, 64])
    inp = keras.Input(shape=(64,), sparse=True)
    h = bpr_ops.SparseMaxNorm(name="norm")(inp)
    out = bpr_ops.FullSparse(1, activation="sigmoid", use_binary_values=True, name="fs")(h)
    m = keras.Model(inp, out)
    m.compile(keras.optimizers.Adam(0.1), "binary_crossentropy")
    hist = m.fit(x, y, epochs=5, batch_size=32, verbose=0).history["loss"]
    assert hist[-1] < hist[0], hist
    assert type(m.get_layer("fs")).__module__ == "bpr_ops.tf_keras_layers"
    want = m.predict(x, verbose=0)
    m.save(sys.argv[1] + "/m.keras")
    again = keras.models.load_model(sys.argv[1] + "/m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)
    m.save(sys.argv[1] + "/sm", save_format="tf")
    again = keras.models.load_model(sys.argv[1] + "/sm")
    np.testing.assert_array_equal(again.predict(x, verbose=0), want)
    print("ok")
"""


@pytest.mark.skipif(__import__("importlib").util.find_spec("tf_keras") is None, reason="tf_keras is not installed")
def test_tf_keras_layers_train_save_and_reload(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(bpr_ops.__file__).resolve().parents[1]), "TF_CPP_MIN_LOG_LEVEL": "3",
           "TF_USE_LEGACY_KERAS": "1"}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(TF_KERAS), str(tmp_path)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.strip().endswith("ok")

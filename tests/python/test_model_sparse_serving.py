"""SparseMaxNorm, Partition and Stitch served in bpr-host (issue 37): each
model trains with model.fit, is exported with keras.export.ExportArchive in
the Earlybird serving form (the sparse input's indices, values and batch
size in as plain tensors, a BatchPredictionResponse out), and bpr-host gives
the bytes the exported model gives in Python, whose scores (decoded by
thriftpy2) are model.predict's. The maxima and the partition-and-stitch
path are checked against NumPy written from twml's layer math."""

import keras
import numpy as np
import tensorflow as tf

import thrift_check
from bpr_ops import sparse_layers as sl
from test_model_sparse_layers import WIDTH, export_serving, sparse
from test_serving_host import built, host  # noqa: F401  (built is a fixture)

ROWS, SERVED = 512, 20


def weighted_batch(rng, rows, per_row=6):
    """Hashed keys with real values whose scale depends on the key, so
    SparseMaxNorm's per-key maxima change the product; the label is the sign
    of the values' sum over even keys."""
    idx = np.array(sorted({(r, int(k)) for r in range(rows) for k in rng.integers(0, WIDTH, per_row)}), np.int64)
    scale = 1.0 + (idx[:, 1] % 7)
    values = (rng.normal(size=len(idx)) * scale).astype(np.float32)
    even = np.bincount(idx[:, 0], weights=np.where(idx[:, 1] % 2 == 0, values, 0.0), minlength=rows)
    return idx, values, (even > 0).astype(np.float32)


def fit(model, x, y):
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    before = model.evaluate(x, y, verbose=0, batch_size=ROWS)
    loss = model.fit(x, y, epochs=6, batch_size=64, verbose=0).history["loss"]
    return before, loss


def served_scores(model, idx, values, built, tmp):  # noqa: F811
    """Exports `model`, serves the first SERVED records in Python and in
    bpr-host; asserts both give the same bytes and returns the host's scores
    (thriftpy2-decoded) with model.predict's."""
    keep = idx[:, 0] < SERVED
    idx, values = idx[keep], values[keep]
    path = export_serving(model, tmp / "model")
    np.save(tmp / "indices.npy", idx)
    np.save(tmp / "values.npy", values)
    np.save(tmp / "batch_size.npy", np.array(SERVED, np.int64))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    (out,) = serve(indices=tf.constant(idx), values=tf.constant(values),
                   batch_size=tf.constant(SERVED, tf.int64)).values()
    run = host(built, "--model", path, "--input", f"indices={tmp / 'indices.npy'}",
               "--input", f"values={tmp / 'values.npy'}", "--input", f"batch_size={tmp / 'batch_size.npy'}",
               "--output", tmp / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp / "out.bin").read_bytes()
    assert data == thrift_check.to_bytes(out)
    records = thrift_check.decode(data).predictions
    got = np.array([list(r.continuousFeatures.values())[0] for r in records])
    assert len(got) == SERVED
    want = model.predict(sparse(idx, SERVED, values), verbose=0).ravel().astype(np.float64)
    return got, want


# ---- SparseMaxNorm -> FullSparse ---------------------------------------------------------------


def test_sparse_max_norm_model_trains_and_serves_predicts_scores(built, tmp_path):  # noqa: F811
    rng = np.random.default_rng(21)
    idx, values, y = weighted_batch(rng, ROWS)
    inp = keras.Input(shape=(WIDTH,), sparse=True, name="features")
    norm = sl.SparseMaxNorm(name="norm")
    # Weighted values: with binary ones the normalisation would not reach the score.
    out = sl.FullSparse(1, activation="sigmoid", use_binary_values=False, name="fs")(norm(inp))
    model = keras.Model(inp, out)
    x = sparse(idx, ROWS, values)
    before, loss = fit(model, x, y)
    assert loss[-1] < 0.7 * before, (before, loss)
    # twml's maxima after fit: the largest |value| seen per key (zeros, the initial value, elsewhere).
    want_max = np.zeros(WIDTH, np.float32)
    np.maximum.at(want_max, idx[:, 1], np.abs(values))
    np.testing.assert_array_equal(norm.max_x.numpy(), want_max)
    assert np.count_nonzero(norm.max_x.numpy()) > 1000

    got, want = served_scores(model, idx, values, built, tmp_path)
    np.testing.assert_array_equal(got, want)
    # The served path is the inference form: values / max(max_x, |v|, eps) + bias_x, then the product.
    keep = idx[:, 0] < SERVED
    i, v = idx[keep], values[keep].astype(np.float64)
    normed = v / np.maximum(np.maximum(want_max[i[:, 1]], np.abs(v)), 1e-5) + norm.bias_x.numpy()[i[:, 1]]
    fs = model.get_layer("fs")
    logits = np.bincount(i[:, 0], weights=normed * fs.weights_parts[0].numpy()[i[:, 1], 0], minlength=SERVED)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(logits + fs.bias.numpy()[0]))), rtol=1e-5, atol=1e-6)


# ---- Partition -> FullSparse per part, Stitch -> FullSparse ----------------------------------------


class PartitionStitch(keras.layers.Layer):
    """A layer (in a functional model, so the model's input is sparse when it
    is exported; a subclassed keras.Model's default signature is dense). The keys split by key mod 2 (Partition): a FullSparse per part; part
    1's values halved and put back in input order (Stitch) under the input's
    own indices: a FullSparse over that; the score is sigmoid of the sum. A
    Stitch that misplaced a value would put it under another key."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.partition = sl.Partition(partitions=2, name="partition")
        self.stitch = sl.Stitch(name="stitch")
        self.per_part = [sl.FullSparse(1, name=f"fs_part_{p}") for p in range(2)]
        self.joined = sl.FullSparse(1, name="fs_stitched")

    def call(self, sp):
        if not isinstance(sp, tf.SparseTensor):
            # As bpr_ops's sparse layers: ExportArchive traces a functional
            # model's default signature with dense inputs and skips a
            # TypeError (any other error fails the export).
            raise TypeError(f"PartitionStitch: the input must be a tf.SparseTensor, got {type(sp).__name__}")
        ids = sp.indices[:, 1] % 2
        vals, keys, positions = self.partition(ids, sp.values, sp.indices)
        logits = 0.0
        for p in range(2):
            part = tf.SparseTensor(keys[p], vals[p], sp.dense_shape)
            part.set_shape(sp.shape)
            logits = logits + self.per_part[p](part)
        stitched, _ = self.stitch([vals[0], 0.5 * vals[1]], keys, positions)
        joined = tf.SparseTensor(sp.indices, stitched, sp.dense_shape)
        joined.set_shape(sp.shape)
        return tf.sigmoid(logits + self.joined(joined))


def test_partition_and_stitch_model_trains_and_serves_predicts_scores(built, tmp_path):  # noqa: F811
    rng = np.random.default_rng(22)
    idx, values, y = weighted_batch(rng, ROWS)
    inp = keras.Input(shape=(WIDTH,), sparse=True, name="features")
    scorer = PartitionStitch(name="scorer")
    model = keras.Model(inp, scorer(inp))
    x = sparse(idx, ROWS, values)
    before, loss = fit(model, x, y)
    assert loss[-1] < 0.7 * before, (before, loss)
    w = [scorer.per_part[p].weights_parts[0].numpy()[:, 0].astype(np.float64) for p in range(2)]
    wj = scorer.joined.weights_parts[0].numpy()[:, 0].astype(np.float64)
    assert all(np.count_nonzero(a) > 100 for a in (*w, wj)), "every FullSparse learns"

    got, want = served_scores(model, idx, values, built, tmp_path)
    np.testing.assert_array_equal(got, want)
    keep = idx[:, 0] < SERVED
    i, v = idx[keep], values[keep].astype(np.float64)
    odd = i[:, 1] % 2 == 1
    per_part = np.where(odd, w[1][i[:, 1]], w[0][i[:, 1]]) * v
    stitched = np.where(odd, 0.5 * v, v) * wj[i[:, 1]]
    bias = sum(f.bias.numpy()[0] for f in (*scorer.per_part, scorer.joined))
    logits = np.bincount(i[:, 0], weights=per_part + stitched, minlength=SERVED) + bias
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logits)), rtol=1e-5, atol=1e-6)

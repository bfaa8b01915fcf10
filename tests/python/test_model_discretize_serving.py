"""The discretizer and isotonic layers served in bpr-host (the Rust host on
the TensorFlow C API, loading libbpr_ops.so): a model with HashingDiscretizer
-> Dense -> sigmoid -> Isotonic -> BatchPredictionWriter, trained with
model.fit and exported with model.export, gives the same response bytes in
bpr-host as in Python, and its scores (decoded by thriftpy2) are
model.predict's."""

import keras
import numpy as np
import tensorflow as tf

import bpr_ops
import thrift_check
from bpr_ops.calibrators import HashingDiscretizerCalibrator, IsotonicCalibrator
from test_serving_host import built, host  # noqa: F401  (built is a fixture)

KEY = 4242


def test_discretizer_model_serves_in_bpr_host_with_predicts_scores(built, tmp_path):  # noqa: F811
    rng = np.random.default_rng(11)
    # Dense features [batch, 8]: zeros are absent features (the layer's reading).
    x = rng.normal(size=(512, 8)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.3] = 0.0
    y = ((x[:, 0] + x[:, 3]) > 0).astype(np.float32).reshape(-1, 1)
    cal = HashingDiscretizerCalibrator(n_bin=6, out_bits=12)
    st = tf.sparse.from_dense(x)
    cal.accumulate_sparse(st)
    hashing = cal.calibrate().to_layer(name="hashing")

    inp = keras.Input((8,), name="features")
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(hashing(inp))
    base = keras.Model(inp, score)
    base.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    base.fit(x, y, epochs=3, batch_size=64, verbose=0)
    iso = IsotonicCalibrator(n_bin=10).fit([(base.predict(x, verbose=0), y)]).to_layer(name="iso")
    calibrated = iso(score)
    scores = keras.Model(inp, calibrated)
    served_model = keras.Model(inp, bpr_ops.BatchPredictionWriter([KEY])(calibrated))
    served_model.export(str(tmp_path / "model"), format="tf_saved_model", verbose=False)

    batch = x[:5]
    np.save(tmp_path / "batch.npy", batch)
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    (python_result,) = loaded.signatures["serving_default"](tf.constant(batch)).values()
    python_bytes = thrift_check.to_bytes(python_result)

    run = host(built, "--model", tmp_path / "model", "--input", tmp_path / "batch.npy",
               "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    assert data == python_bytes
    response = thrift_check.decode(data)
    got = [p.continuousFeatures[KEY] for p in response.predictions]
    want = scores.predict(batch, verbose=0)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert 0.0 <= min(got) and max(got) <= 1.0

"""Exports that C++ servers run, and navi's contract (issue 36).

A trained head (a Dense after model.fit) is exported each way the README
shows: bpr_ops.export_for_serving with Keras 3 and with tf_keras
(TF_USE_LEGACY_KERAS=1, in a subprocess), and Keras 3's model.export. Each is
served by bpr-host (the TensorFlow C API through the Rust `tensorflow` crate,
which TensorFlow Serving's C++ loader and navi share) and, for
export_for_serving, by the TF1 loader. A tf.Module of Keras 3 layers saved
with tf.saved_model.save failed there ("Could not find variable dense/bias"):
its variables were not restored.

navi: `bpr-host --navi` serves the `navi` signature as navi does (one row
per caller, the callers' rows one input, one run, every output 2-D and split
by rows, strings decoded as strict UTF-8 by the crate's String). Each
caller's row is base64-decoded by Python's base64 module and decoded by
thriftpy2, and its scores must equal model.predict's for that request alone
and NumPy's from the trained weights and the request's own features.
"""

import base64
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check
from test_batching import FEATURES, requests
from test_serving_host import assert_one_line_error, built, host  # noqa: F401 (fixture)

OUT_KEYS = [601, 602]
SIZES = [2, 0, 3, 1, 4]  # records per request; 0: an empty request


def trained_head(keras_module, seed=36):
    """Dense(2) trained a few steps, so its variables are not their initial values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(256, len(FEATURES))).astype("float32")
    y = (x @ np.array([[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0]], "float32") + [0.5, -0.25]).astype("float32")
    head = keras_module.Sequential([keras_module.Input((len(FEATURES),)), keras_module.layers.Dense(2)])
    before = [np.array(w) for w in head.get_weights()]
    head.compile(keras_module.optimizers.SGD(0.05), "mse")
    head.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert all(np.abs(a - np.array(b)).max() > 1e-3 for a, b in zip(before, head.get_weights()))
    return head


def per_request_model(keras_module, head, reader, writer):
    requests_in = keras_module.Input((), dtype="string", name="requests")
    features = reader(continuous=FEATURES, row_splits=True)(requests_in)
    return keras_module.Model(requests_in, writer(OUT_KEYS)(head(features["continuous"]), row_splits=features["row_splits"]))


def numpy_scores(features, kernel, bias):
    return features.astype(np.float64) @ kernel.astype(np.float64) + bias


def check_scores(response: bytes, want: np.ndarray):
    """thriftpy2 reads one record per row of `want`, each the row's scores."""
    predictions = thrift_check.decode(response).predictions
    assert len(predictions) == len(want)
    for record, row in zip(predictions, want):
        assert sorted(record.continuousFeatures) == OUT_KEYS
        np.testing.assert_allclose([record.continuousFeatures[k] for k in OUT_KEYS], row, rtol=1e-5, atol=1e-5)


def unbase64(text: str) -> bytes:
    """Python's decoder, not ours: web-safe alphabet, padding restored."""
    assert "=" not in text and "+" not in text and "/" not in text, text
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(scope="module")
def reqs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("navi_requests")
    out = requests(SIZES, seed=36)
    assert any(b"\x00" in d for d, _ in out) and any(max(d) > 0x7F for d, _ in out)  # not UTF-8
    for i, (data, _) in enumerate(out):
        (tmp / f"{i:03d}.bin").write_bytes(data)
    return {"dir": tmp, "list": out}


@pytest.fixture(scope="module")
def keras3(tmp_path_factory, reqs):
    tmp = tmp_path_factory.mktemp("keras3_export")
    head = trained_head(keras)
    model = per_request_model(keras, head, bpr_ops.BatchPredictionRequestReader, bpr_ops.BatchPredictionWriter)
    bpr_ops.export_for_serving(model, tmp / "model", single=True)
    model.export(str(tmp / "exported"), format="tf_saved_model", verbose=False)
    kernel, bias = (np.array(w) for w in head.get_weights())
    alone = [bytes(model.predict(tf.constant([d]), verbose=0)[0]) for d, _ in reqs["list"]]
    return {"path": tmp / "model", "exported": tmp / "exported", "kernel": kernel, "bias": bias, "alone": alone}


TF_KERAS_EXPORT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    import tf_keras
    import bpr_ops
    from test_navi_export import module_class, per_request_model, trained_head

    out, requests = sys.argv[1], sys.argv[2:]
    head = trained_head(tf_keras)
    model = per_request_model(tf_keras, head, bpr_ops.BatchPredictionRequestReader, bpr_ops.BatchPredictionWriter)
    assert isinstance(model, tf_keras.Model)
    bpr_ops.export_for_serving(model, out + "/model", single=True)
    Module = module_class()
    module = Module(model)
    tf.saved_model.save(module, out + "/module", signatures={"serving_default": module.serve})
    alone = [bytes(model.predict(tf.constant([open(r, "rb").read()]), verbose=0)[0]) for r in requests]
    kernel, bias = head.get_weights()
    np.savez(out + "/expected.npz", kernel=kernel, bias=bias, alone=np.array(alone, dtype=object))
    """
)


@pytest.fixture(scope="module")
def tf_keras_export(tmp_path_factory, reqs):
    """The tf_keras model, exported in a process where tf.keras is tf_keras."""
    pytest.importorskip("tf_keras")
    tmp = tmp_path_factory.mktemp("tf_keras_export")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    files = sorted(str(p) for p in reqs["dir"].glob("*.bin"))
    run = subprocess.run([sys.executable, "-c", TF_KERAS_EXPORT, str(tmp), *files],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    with np.load(tmp / "expected.npz", allow_pickle=True) as npz:
        return {"path": tmp / "model", "module": tmp / "module", "kernel": npz["kernel"], "bias": npz["bias"],
                "alone": list(npz["alone"])}


EXPORTS = ["keras3", "tf_keras_export"]


def module_class():
    """The README's old recipe: a tf.Module around the model, saved by tf.saved_model.save."""

    class Serving(tf.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="requests")])
        def serve(self, requests_t):
            return {"responses": self.model(requests_t)}

    return Serving


def serve_navi(built, model_dir, reqs, out_dir, signature="navi"):  # noqa: F811
    return host(built, "--model", model_dir, "--signature", signature, "--navi",
                "--input", reqs["dir"], "--output", out_dir)


@pytest.mark.parametrize("export", EXPORTS)
def test_navi_serves_each_caller_its_own_response(built, reqs, export, request, tmp_path):  # noqa: F811
    exp = request.getfixturevalue(export)
    run = serve_navi(built, exp["path"], reqs, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    callers = sorted((tmp_path / "out").glob("caller-*.json"))
    assert len(callers) == len(SIZES)
    for (data, features), path, alone in zip(reqs["list"], callers, exp["alone"]):
        row = json.loads(path.read_text())["outputs"]
        assert list(row) == ["responses"] and row["responses"]["dtype"] == "string"
        (text,) = row["responses"]["values"]  # a row of width 1: one response per caller
        response = unbase64(text)
        check_scores(response, numpy_scores(features, exp["kernel"], exp["bias"]))
        # model.predict on the request alone: the same records and scores.
        check_scores(alone, numpy_scores(features, exp["kernel"], exp["bias"]))
        got = thrift_check.decode(response).predictions
        want = thrift_check.decode(alone).predictions
        for g, w in zip(got, want):
            np.testing.assert_allclose([g.continuousFeatures[k] for k in OUT_KEYS],
                                       [w.continuousFeatures[k] for k in OUT_KEYS], rtol=1e-6, atol=1e-6)
    # --print: each caller's base64 row shown as the response's records.
    run = host(built, "--model", exp["path"], "--signature", "navi", "--navi", "--input", reqs["dir"], "--print")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"{len(SIZES)} callers, one row each, as navi splits them (outputs: 'responses' [{len(SIZES)}, 1] width 1)"
    for i, n in enumerate(SIZES):
        assert any(line.startswith(f"caller {i}: 'responses' {n} records,") for line in lines), run.stdout


@pytest.mark.parametrize("export", EXPORTS)
def test_serving_default_and_single_run_in_bpr_host_with_the_trained_variables(built, reqs, export, request,  # noqa: F811
                                                                                  tmp_path):
    exp = request.getfixturevalue(export)
    run = host(built, "--model", exp["path"], "--input", reqs["dir"], "--output", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    got = [p.read_bytes() for p in sorted((tmp_path / "out").glob("response-*.bin"))]
    assert len(got) == len(SIZES)
    for (_, features), response in zip(reqs["list"], got):
        check_scores(response, numpy_scores(features, exp["kernel"], exp["bias"]))
    # twml's form, one request's bytes as uint8: byte for byte what predict answers for it alone.
    for i in (0, 2):
        run = host(built, "--model", exp["path"], "--signature", "single", "--input", reqs["dir"] / f"{i:03d}.bin",
                   "--output", tmp_path / f"single{i}.bin")
        assert run.returncode == 0, run.stderr
        single = (tmp_path / f"single{i}.bin").read_bytes()
        assert single == exp["alone"][i]
        check_scores(single, numpy_scores(reqs["list"][i][1], exp["kernel"], exp["bias"]))


def test_keras_model_export_runs_in_bpr_host_with_the_trained_variables(built, reqs, keras3, tmp_path):  # noqa: F811
    run = host(built, "--model", keras3["exported"], "--input", reqs["dir"], "--output", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    got = [p.read_bytes() for p in sorted((tmp_path / "out").glob("response-*.bin"))]
    for (_, features), response in zip(reqs["list"], got):
        check_scores(response, numpy_scores(features, keras3["kernel"], keras3["bias"]))


def test_a_tf_module_of_keras_3_layers_loses_its_variables_in_cpp_loaders(built, reqs, keras3, tf_keras_export,  # noqa: F811
                                                                           tmp_path):
    """Why the README does not save a tf.Module with Keras 3: bpr-host cannot
    restore its variables (the TF1 loader fails alike, issue 36). With tf_keras
    the same recipe runs, with the trained scores."""
    head = trained_head(keras)
    Serving = module_class()
    module = Serving(per_request_model(keras, head, bpr_ops.BatchPredictionRequestReader,
                                       bpr_ops.BatchPredictionWriter))
    tf.saved_model.save(module, str(tmp_path / "module"), signatures={"serving_default": module.serve})
    run = host(built, "--model", tmp_path / "module", "--input", reqs["dir"], "--output", tmp_path / "out")
    assert_one_line_error(run, "FailedPrecondition", "Could not find variable")
    run = host(built, "--model", tf_keras_export["module"], "--input", reqs["dir"], "--output", tmp_path / "tfk")
    assert run.returncode == 0, run.stderr
    got = [p.read_bytes() for p in sorted((tmp_path / "tfk").glob("response-*.bin"))]
    assert len(got) == len(SIZES)
    for (_, features), response in zip(reqs["list"], got):
        check_scores(response, numpy_scores(features, tf_keras_export["kernel"], tf_keras_export["bias"]))


def test_the_tf1_loader_runs_every_signature(keras3, reqs):
    data = [d for d, _ in reqs["list"]]
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(keras3["path"]))
        assert sorted(meta.signature_def) == ["__saved_model_init_op", "navi", "serving_default", "single"]

        def run(name, feed):
            sig = meta.signature_def[name]
            (inp,), (out,) = sig.inputs.values(), sig.outputs.values()
            return session.run(out.name, {inp.name: feed})

        texts = run("navi", data)
        assert texts.shape == (len(data), 1)
        responses = run("serving_default", data)
        single = run("single", np.frombuffer(data[2], np.uint8))
    for (_, features), text, response in zip(reqs["list"], texts[:, 0], responses):
        assert unbase64(text.decode("ascii")) == response
        check_scores(response, numpy_scores(features, keras3["kernel"], keras3["bias"]))
    assert single.shape[0] == 1 and single.tobytes() == keras3["alone"][2]


def test_navi_refuses_what_navi_panics_on(built, reqs, keras3, tmp_path):  # noqa: F811
    # string [R] raw responses: navi reads dims()[1] of a rank-1 tensor.
    run = serve_navi(built, keras3["path"], reqs, tmp_path / "o", signature="serving_default")
    assert_one_line_error(run, "output 'responses' of shape [5]", "dims()[1]",
                          "the len is 1 but the index is 1", "export_for_serving")
    # string [R, 1] raw responses: 2-D, but not UTF-8.
    model = tf.saved_model.load(str(keras3["path"]))
    serve = model.signatures["serving_default"]

    class Raw(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="requests")])
        def raw(self, requests_t):
            return {"responses": tf.reshape(serve(requests=requests_t)["responses"], [-1, 1])}

    raw = Raw()
    raw.model = model
    tf.saved_model.save(raw, str(tmp_path / "raw"), signatures={"serving_default": raw.raw})
    run = serve_navi(built, tmp_path / "raw", reqs, tmp_path / "o", signature="serving_default")
    assert_one_line_error(run, "String contained invalid UTF-8", "decodes string outputs as UTF-8")
    # twml's single form, uint8 [1, N]: navi cannot return uint8 at all.
    run = host(built, "--model", keras3["path"], "--signature", "single", "--navi", "--input", reqs["dir"],
               "--output", tmp_path / "o")
    assert_one_line_error(run, "'request' is uint8", "string tensor, one serialized request per caller")


def test_export_for_serving_names_what_the_model_should_take_and_give(tmp_path):
    reader = bpr_ops.BatchPredictionRequestReader(continuous=FEATURES)
    request_in = keras.Input((), dtype="string")
    single = keras.Model(request_in, bpr_ops.BatchPredictionWriter(OUT_KEYS)(
        keras.layers.Dense(2)(reader(request_in)["continuous"])))
    with pytest.raises(ValueError, match=r"gives \['uint8 \[1, None\]'\].*one string output of shape \[None\]"
                                         r".*twml's one response for the whole batch"):
        bpr_ops.export_for_serving(single, tmp_path / "a")
    floats = keras.Input((3,))
    with pytest.raises(ValueError, match=r"takes \['float32 \[None, 3\]'\]; expected one string input"):
        bpr_ops.export_for_serving(keras.Model(floats, keras.layers.Dense(1)(floats)), tmp_path / "b")
    with pytest.raises(TypeError, match="must be a Keras model"):
        bpr_ops.export_for_serving(tf.Module(), tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

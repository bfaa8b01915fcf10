"""twml's chained model graph, unchanged: request bytes -> twml's hashed
reader (the Earlybird light ranker's "infer" path, keys masked with
limit_bits) -> HashingDiscretizer (its calibration in the tensor attr
feature_ids) -> BinarySparseTensorDenseMatMul (twml.layers.full_sparse with
binary values, on TF1 reference variables) -> sigmoid -> IsotonicCalibration
-> BatchPredictionResponseWriter, built with tf.compat.v1 in a v1 Graph from
twml's op names (not our Bpr* forms) and saved with
tf.compat.v1.saved_model.Builder, the way twml exported models.

It runs (a) in a v1 Session after `import bpr_ops`, (b) in bpr-host (the Rust
host on the TensorFlow C API) and (c) as a frozen GraphDef (.pb) imported with
tf.compat.v1.import_graph_def. The request is written by thriftpy2, the
response decoded by thriftpy2, and the scores checked against a NumPy
reference written here from twml's C++ semantics (the hashed reader's rows,
limit_bits, hashing_discretizer_impl.cpp's lower_bound and 32-bit
multiplicative hash, the binary matmul's sum of weight rows, interpolate.h's
linear interpolation), not by calling our kernels."""

import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
import thrift_check
from test_serving_host import built, host  # noqa: F401  (built is a fixture)

IDL = thrift_check.IDL
INPUT_BITS = 18  # Earlybird's limit_bits on the reader's keys
OUT_BITS = 10  # HashingDiscretizer's output_bits: weights [1 << OUT_BITS, 1]
N_BIN = 4
OUT_KEY = 777
# Calibrated feature ids (after limit_bits) and their boundaries, one row each.
FEATURE_IDS = np.array([11, 12, 200_000, 7], np.int64)
BIN_VALS = np.array([[-1.0, 0.0, 0.5, 2.0], [0.0, 1.0, 1.0, 3.0], [10.0, 20.0, 30.0, 40.0], [0.0, 0.1, 0.2, 0.3]],
                    np.float32)
# Isotonic calibration of the sigmoid's output: one label, six bins.
XS = np.array([[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]], np.float32)
YS = np.array([[0.0, 0.05, 0.3, 0.5, 0.9, 1.0]], np.float32)
# Ids the request carries. 11 + (5 << 18) and -(1 << 18) + 12 mask to 11 and
# 12 (limit_bits keeps the low bits, of a negative id too); 13, 99 and
# 123456 are not calibrated (their values pass through, ignored by the
# binary matmul: only their masked keys count).
BIG_11 = 11 + (5 << INPUT_BITS)
NEG_12 = -(1 << INPUT_BITS) + 12
KEEP = [11, 12, 200_000, 7, 13, 99, 123456, BIG_11, NEG_12]
M64 = (1 << 64) - 1


def _records():
    records = [
        # Values below, on and above boundaries, an infinity, a binary feature.
        IDL.data.DataRecord(continuousFeatures={11: -5.0, 12: 1.0, 200_000: 25.0, 13: 4.5},
                            binaryFeatures={7}),
        IDL.data.DataRecord(continuousFeatures={11: 0.5, 12: float("inf"), 99: -3.0, BIG_11: 2.5}),
        IDL.data.DataRecord(continuousFeatures={NEG_12: 0.0, 200_000: 40.0, 7: 0.15}, binaryFeatures={123456}),
        IDL.data.DataRecord(),  # only commonFeatures' rows
        IDL.data.DataRecord(continuousFeatures={11: 2.0, 12: -float("inf"), 200_000: 9.0}, binaryFeatures={13}),
    ]
    return records, IDL.data.DataRecord(continuousFeatures={7: 0.25})


def _request() -> bytes:
    records, common = _records()
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


def _weights():
    rng = np.random.default_rng(37)
    return rng.normal(scale=0.5, size=(1 << OUT_BITS, 1)).astype(np.float32), np.float32(-0.25)


# ---- the NumPy reference, from twml's C++ ----------------------------------

def _rows():
    """The hashed reader's rows (record, key, value) of the request: per
    record, the kept features of commonFeatures, then its own; in each, wire
    order: binaryFeatures (DataRecord field 1, value 1) before
    continuousFeatures (field 2), each in the order thriftpy2 wrote them."""
    records, common = _records()
    rows = []
    for r, rec in enumerate(records):
        for source in (common, rec):
            for k in source.binaryFeatures or ():
                if k in KEEP:
                    rows.append((r, k, np.float32(1.0)))
            for k, v in (source.continuousFeatures or {}).items():
                if k in KEEP:
                    rows.append((r, k, np.float32(v)))
    return len(records), rows


def _hash32(fid: int, bucket: int, bits: int) -> int:
    # integer_multiplicative_hashing: (fid * C + bucket) * C in uint64, top
    # `bits` of the low 32 (shift 32 - bits), masked.
    c = 2654435761
    h = ((((fid & M64) * c) & M64) + bucket) & M64
    h = (h * c) & M64
    return (h >> (32 - bits)) & ((1 << bits) - 1)


def reference():
    """(discretized keys per row, logits [B, 1], calibrated scores [B, 1])."""
    batch, rows = _rows()
    weights, bias = _weights()
    where = {int(f): i for i, f in enumerate(FEATURE_IDS)}
    logits = np.zeros((batch, 1), np.float32)
    new_keys = []
    for r, k, v in rows:
        key = k & ((1 << INPUT_BITS) - 1)  # limit_bits
        i = where.get(key)
        if i is None:
            nk = key & ((1 << OUT_BITS) - 1)
        else:
            bucket = int(np.sum(BIN_VALS[i] < v))  # std::lower_bound on sorted boundaries
            nk = _hash32(key, bucket, OUT_BITS)
        new_keys.append(nk)
        logits[r, 0] = np.float32(logits[r, 0] + weights[nk, 0])  # value taken as 1, rows added in order
    logits = (logits + bias).astype(np.float32)
    probs = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    xs, ys = XS[0], YS[0]
    scores = np.empty_like(probs)
    for b, p in enumerate(probs[:, 0]):
        if p <= xs[0]:
            scores[b, 0] = ys[0]
        elif p >= xs[-1]:
            scores[b, 0] = ys[-1]
        else:
            j = int(np.searchsorted(xs, p, side="right")) - 1
            ratio = np.float32((p - xs[j]) / (xs[j + 1] - xs[j]))
            scores[b, 0] = np.float32(ratio * (ys[j + 1] - ys[j]) + ys[j])
    return np.array(new_keys, np.int64), logits, scores


# ---- the graph, as twml exported it -----------------------------------------

TWML_OPS = {"DecodeAndHashBatchPredictionRequestV2", "HashingDiscretizer", "BinarySparseTensorDenseMatMul",
            "IsotonicCalibration", "BatchPredictionResponseWriter"}


def _build(lib):
    """The graph's tensors by name; call inside a v1 Graph."""
    request = tf.compat.v1.placeholder(tf.uint8, [None], name="request")
    handle = lib.decode_and_hash_batch_prediction_request_v2(
        input_bytes=request, keep_features=KEEP, keep_codes=[0] * len(KEEP), label_features=[])
    ids = lib.get_ids_from_hashed_data_record(handle)
    keys = lib.get_keys_from_hashed_data_record(handle)
    values = lib.get_values_from_hashed_data_record(handle)
    batch = lib.get_batch_size_from_hashed_data_record(handle)
    keys = tf.bitwise.bitwise_and(keys, (1 << INPUT_BITS) - 1)  # twml.limit_bits
    new_keys, new_vals = lib.hashing_discretizer(
        input_ids=keys, input_vals=values, bin_vals=tf.constant(BIN_VALS.reshape(-1)),
        feature_ids=tf.make_tensor_proto(FEATURE_IDS), n_bin=N_BIN, output_bits=OUT_BITS, cost_per_unit=500,
        options=0)
    w, b = _weights()
    weight = tf.compat.v1.Variable(w, name="full_sparse/weight", use_resource=False)
    bias = tf.compat.v1.Variable(b, name="full_sparse/bias", use_resource=False)
    indices = tf.stack([tf.cast(ids, tf.int64), new_keys], axis=1)
    shape = tf.stack([tf.cast(batch, tf.int64), tf.constant(1 << OUT_BITS, tf.int64)])
    logits = tf.add(lib.binary_sparse_tensor_dense_mat_mul(
        a_indices=indices, a_values=new_vals, a_shape=shape, b=weight), bias, name="logits")
    calibrated = lib.isotonic_calibration(input=tf.sigmoid(logits), xs=tf.constant(XS), ys=tf.constant(YS))
    response = lib.batch_prediction_response_writer(keys=[OUT_KEY], values=calibrated)
    return {"request": request, "new_keys": new_keys, "logits": logits, "scores": calibrated,
            "response": tf.identity(response, name="response")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The SavedModel (Builder, serving signature) and a frozen GraphDef."""
    tmp = tmp_path_factory.mktemp("twml_graph")
    lib = tf.load_op_library(str(bpr_ops.library_path()))
    with tf.Graph().as_default() as g:
        t = _build(lib)
        with tf.compat.v1.Session(graph=g) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sig = tf.compat.v1.saved_model.predict_signature_def(
                inputs={"request": t["request"]}, outputs={"response": t["response"]})
            builder = tf.compat.v1.saved_model.Builder(str(tmp / "model"))
            builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": sig})
            builder.save()
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, g.as_graph_def(), ["response", "logits", t["scores"].op.name, t["new_keys"].op.name])
    (tmp / "graph.pb").write_bytes(frozen.SerializeToString())
    names = {k: v.name for k, v in t.items()}
    (tmp / "request.bin").write_bytes(_request())
    return tmp, names


def _scores(data: bytes) -> np.ndarray:
    return np.float32([[r.continuousFeatures[OUT_KEY]] for r in thrift_check.decode(data).predictions])


def test_the_graph_holds_twmls_ops_with_the_tensor_attr(exported):
    tmp, _ = exported
    graph = tf.compat.v1.GraphDef.FromString((tmp / "graph.pb").read_bytes())
    ops = {n.op for n in graph.node}
    assert TWML_OPS <= ops
    assert not any(op.startswith("Bpr") for op in ops), ops
    (node,) = [n for n in graph.node if n.op == "HashingDiscretizer"]
    assert tf.make_ndarray(node.attr["feature_ids"].tensor).tolist() == FEATURE_IDS.tolist()


def _session_run(tmp, names):
    """(a): the SavedModel in a v1 Session, loaded by tf.compat.v1's loader."""
    with tf.Graph().as_default() as g, tf.compat.v1.Session(graph=g) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(tmp / "model"))
        sig = meta.signature_def["serving_default"]
        feed = {sig.inputs["request"].name: np.frombuffer(_request(), np.uint8)}
        fetch = [sig.outputs["response"].name, names["new_keys"], names["logits"], names["scores"]]
        return sess.run(fetch, feed)


def test_v1_session_equals_the_numpy_reference(exported):
    tmp, names = exported
    response, new_keys, logits, scores = _session_run(tmp, names)
    want_keys, want_logits, want_scores = reference()
    np.testing.assert_array_equal(new_keys, want_keys)
    np.testing.assert_array_equal(logits, want_logits)
    # The sigmoid (TF's float32 vs the reference's float64 exp) may differ in
    # the last bit; everything before it is exact.
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(_scores(thrift_check.to_bytes(response)), scores)
    # Both ends of the calibration and the interior are reached.
    assert len(set(np.round(want_scores[:, 0], 6))) >= 3, want_scores


def test_imported_graphdef_equals_the_session(exported):
    tmp, names = exported
    graph_def = tf.compat.v1.GraphDef.FromString((tmp / "graph.pb").read_bytes())
    with tf.Graph().as_default() as g:
        request = tf.compat.v1.placeholder(tf.uint8, [None])
        response, logits = tf.compat.v1.import_graph_def(
            graph_def, input_map={names["request"]: request}, return_elements=["response:0", "logits:0"],
            name="twml")
        with tf.compat.v1.Session(graph=g) as sess:
            got_bytes, got_logits = sess.run([response, logits], {request: np.frombuffer(_request(), np.uint8)})
    want_bytes, _, want_logits, _ = _session_run(tmp, names)
    np.testing.assert_array_equal(got_logits, want_logits)
    assert thrift_check.to_bytes(got_bytes) == thrift_check.to_bytes(want_bytes)


def test_bpr_host_serves_the_same_bytes_and_scores(exported, built):  # noqa: F811
    tmp, names = exported
    run = host(built, "--model", tmp / "model", "--input", f"request={tmp / 'request.bin'}",
               "--output", tmp / "host.bin")
    assert run.returncode == 0, run.stderr
    host_bytes = (tmp / "host.bin").read_bytes()
    session_bytes = thrift_check.to_bytes(_session_run(tmp, names)[0])
    assert host_bytes == session_bytes
    _, _, want = reference()
    np.testing.assert_allclose(_scores(host_bytes), want, rtol=1e-6, atol=1e-7)
    assert len(thrift_check.decode(host_bytes).predictions) == 5

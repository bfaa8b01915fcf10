"""A twml serving graph, request bytes in and response bytes out, built only
from the op names and attrs twml registers (raw ops, as a graph exported with
twml holds them), saved as a SavedModel and served in Python with only
libbpr_ops.so loaded (test_serving_host.py serves it in bpr-host). The request is written by thriftpy2 and the
expected scores are computed here from the request's own values."""

import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
import thrift_check

IDL = thrift_check.IDL
KEEP = [101, 102, 103, 104]
OUT_KEY = 555
WEIGHTS = [0.5, -1.0, 2.0, 0.25, 1.5, -0.5, 3.0]  # by key mod 7


def _request() -> bytes:
    records = [
        IDL.data.DataRecord(binaryFeatures={101}, continuousFeatures={102: 2.0, 999: 5.0}),
        IDL.data.DataRecord(continuousFeatures={102: -1.5}, discreteFeatures={103: 4}),
        IDL.data.DataRecord(),
    ]
    common = IDL.data.DataRecord(continuousFeatures={104: 0.5})
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


def _expected() -> np.ndarray:
    """Per record: sum of value * WEIGHTS[key % 7] over its hashed rows
    (twml's keys: binary and continuous keys are the id; discrete mixes in
    the value), commonFeatures' row first; id 999 is not kept."""
    def mix(i, v):
        return np.int64(i) ^ np.int64((17 + v) * 2654435761)
    rows = [
        [(104, 0.5), (101, 1.0), (102, 2.0)],
        [(104, 0.5), (102, -1.5), (int(mix(103, 4)), 1.0)],
        [(104, 0.5)],
    ]
    return np.array([sum(np.float32(v) * np.float32(WEIGHTS[k % 7]) for k, v in r) for r in rows], np.float32)


class TwmlGraph(tf.Module):
    def __init__(self):
        super().__init__()
        self.lib = tf.load_op_library(str(bpr_ops.library_path()))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8, name="request")])
    def serve(self, request):
        lib = self.lib
        handle = lib.decode_and_hash_batch_prediction_request_v2(
            input_bytes=request, keep_features=KEEP, keep_codes=[0] * len(KEEP), label_features=[]
        )
        ids = lib.get_ids_from_hashed_data_record(handle)
        keys = lib.get_keys_from_hashed_data_record(handle)
        values = lib.get_values_from_hashed_data_record(handle)
        batch = lib.get_batch_size_from_hashed_data_record(handle)
        score = tf.math.unsorted_segment_sum(values * tf.gather(WEIGHTS, tf.math.floormod(keys, 7)), ids, batch)
        return {"response": lib.batch_prediction_response_writer(keys=[OUT_KEY], values=score[:, None])}


def save_twml_graph(path):
    module = TwmlGraph()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_twml_graph(tmp_path_factory.mktemp("twml_graph") / "model")


def _scores(data: bytes) -> list:
    return [r.continuousFeatures[OUT_KEY] for r in thrift_check.decode(data).predictions]


def test_python_serves_the_twml_graph(saved):
    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    out = serve(request=tf.constant(np.frombuffer(_request(), np.uint8)))["response"]
    np.testing.assert_array_equal(np.float32(_scores(thrift_check.to_bytes(out))), _expected())

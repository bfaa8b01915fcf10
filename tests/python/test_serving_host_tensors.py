"""twml's nine tensor-feature ops in bpr-host: a SavedModel whose graph holds
the eight tensor getters (on both handle kinds) and DataRecordTensorWriter by
their twml op names (raw ops of the loaded library, as a graph exported with
twml holds them), served in bpr-host from request bytes in a .bin file. Every
getter output (string, int64, bool, uint8 widened to int32) goes into the
writer, whose uint8 DataRecord is the signature's one output: bpr-host's bytes
must equal Python's, and thriftpy2 reads in them the values put in the request.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
from test_serving_host import built, host  # noqa: F401 (a fixture)
from thrift_check import IDL

T = IDL.data.tensor
G = T.GeneralTensor
EMB, WORDS, CLICKS = 31, 32, 33
# The getters' outputs, in the order they go into the writer.
OUTPUTS = {
    "tensors": ("output", "out_shape", "out_type", "out_endian"),
    "masked": ("output", "out_type", "out_endian", "is_found"),
    "strings": ("ids", "strings"),
    "sparse": ("ids", "indices", "values", "dense_shape", "values_type", "endian"),
}


def _request() -> bytes:
    def emb(*v):
        return G(rawTypedTensor=T.RawTypedTensor(dataType=T.DataType.FLOAT, content=struct.pack("<2f", *v), shape=[2]))

    coo = T.SparseTensor(cooSparseTensor=T.COOSparseTensor(
        denseShape=[5], indices=T.Int64Tensor(longs=[1, 4], shape=[1, 2]),
        values=G(doubleTensor=T.DoubleTensor(doubles=[0.5, -2.0]))))
    records = [
        IDL.data.DataRecord(tensors={EMB: emb(1.5, -1.0), WORDS: G(stringTensor=T.StringTensor(strings=["a", "bc"]))},
                            sparseTensors={CLICKS: coo}),
        IDL.data.DataRecord(tensors={WORDS: G(stringTensor=T.StringTensor(strings=["é"]))}),
    ]
    common = IDL.data.DataRecord(tensors={EMB: emb(3.0, 4.0)})
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


class TensorGraph(tf.Module):
    def __init__(self):
        super().__init__()
        self.lib = tf.load_op_library(str(bpr_ops.library_path()))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8, name="request")])
    def serve(self, request):
        lib = self.lib
        none = dict(keep_features=[], keep_codes=[], label_features=[])
        values = []
        for hashed, handle in (
            (False, lib.decode_batch_prediction_request_v2(input_bytes=request, weight_features=[], **none)),
            (True, lib.decode_and_hash_batch_prediction_request_v2(input_bytes=request, **none)),
        ):
            kind = "hashed_data_record" if hashed else "data_record"
            got = {
                "tensors": getattr(lib, f"get_tensors_from_{kind}")(handle, assert_shape=True, feature_id=EMB),
                "masked": getattr(lib, f"get_tensors_with_missing_mask_from_{kind}")(
                    handle, assert_shape=True, feature_id=EMB, default_shape=[2], dtype_size=4),
                "strings": getattr(lib, f"get_string_tensors_from_{kind}")(handle, feature_id=WORDS),
                "sparse": getattr(lib, f"get_sparse_tensors_from_{kind}")(handle, feature_id=CLICKS),
            }
            for op in OUTPUTS:
                for t in got[op]:
                    # The writer takes string, int32, int64, float, double, bool: out_endian (uint8) as int32.
                    values.append(tf.cast(t, tf.int32) if t.dtype == tf.uint8 else t)
        keys = tf.range(len(values), dtype=tf.int64)
        return {"record": lib.data_record_tensor_writer(keys=keys, values=values)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tensor_graph") / "model"
    module = TensorGraph()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _record(data: bytes):
    buf = TMemoryBuffer(data)
    rec = IDL.data.DataRecord()
    rec.read(TBinaryProtocol(buf, decode_response=False, strict_decode=True))
    assert buf._pos == len(data)
    return rec


def _value(t):
    """A tensor the writer wrote: (numpy array) from a rawTypedTensor or a stringTensor."""
    if t.stringTensor is not None:
        return np.array(t.stringTensor.strings, object).reshape(t.stringTensor.shape)
    r = t.rawTypedTensor
    dtype = {T.DataType.INT32: "<i4", T.DataType.INT64: "<i8", T.DataType.BOOL: "?"}[r.dataType]
    return np.frombuffer(r.content, dtype).reshape(r.shape)


def test_bpr_host_runs_the_nine_tensor_ops_as_python_does(built, saved, tmp_path):  # noqa: F811
    request = _request()
    (tmp_path / "request.bin").write_bytes(request)
    run = host(built, "--model", saved, "--input", tmp_path / "request.bin", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    python = serve(request=tf.constant(np.frombuffer(request, np.uint8)))["record"].numpy()
    assert python.shape[0] == 1 and data == python.tobytes()

    # What the ops read, judged against the request's own values, for both handle kinds.
    tensors = _record(data).tensors
    per_kind = sum(len(v) for v in OUTPUTS.values())
    assert sorted(tensors) == list(range(2 * per_kind))
    for first in (0, per_kind):
        vals = iter(_value(tensors[k]) for k in range(first, first + per_kind))
        got = {op: dict(zip(names, vals)) for op, names in OUTPUTS.items()}
        emb = [struct.pack("<2f", 1.5, -1.0), struct.pack("<2f", 3.0, 4.0)]
        assert got["tensors"]["output"].tolist() == emb
        assert got["tensors"]["out_shape"].tolist() == [2, 2]
        assert got["tensors"]["out_type"].tolist() == b"float32" and got["tensors"]["out_endian"].tolist() == 0
        assert got["masked"]["out_type"].tolist() == b"float32" and got["masked"]["out_endian"].tolist() == 0
        assert got["masked"]["output"].tolist() == emb and got["masked"]["is_found"].tolist() == [True, True]
        assert got["strings"]["ids"].tolist() == [0, 0, 1]
        assert got["strings"]["strings"].tolist() == [b"a", b"bc", "é".encode()]
        sparse = got["sparse"]
        assert sparse["ids"].tolist() == [0, 0] and sparse["dense_shape"].tolist() == [2, 5]
        assert sparse["indices"].tolist() == [struct.pack(">2q", 1, 4)]
        assert sparse["values"].tolist() == [struct.pack(">2d", 0.5, -2.0)]
        assert sparse["values_type"].tolist() == b"float64" and sparse["endian"].tolist() == 1

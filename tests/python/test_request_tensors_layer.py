"""BatchPredictionRequestReader(tensors=...): tensor features as dense
[B, *shape] tensors plus a found mask, on requests written by thriftpy2;
expected values are the ones put in."""

from __future__ import annotations

import struct

import keras
import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
from thrift_check import IDL

T = IDL.data.tensor
DT = T.DataType
EMB = bpr_ops.feature_id("user.embedding")


def ser(obj) -> bytes:
    buf = TMemoryBuffer()
    obj.write(TBinaryProtocol(buf))
    return buf.getvalue()


def request(tensors_per_record, common=None) -> tf.Tensor:
    recs = [IDL.data.DataRecord(tensors=t) for t in tensors_per_record]
    c = IDL.data.DataRecord(tensors=common) if common else None
    return tf.constant([ser(IDL.BatchPredictionRequest(individualFeaturesList=recs, commonFeatures=c))])


def raw(dtype, fmt, values, shape=None):
    return T.GeneralTensor(rawTypedTensor=T.RawTypedTensor(dataType=dtype, content=struct.pack(fmt, *values), shape=shape))


@pytest.mark.parametrize(
    "dtype, make, values",
    [
        (tf.float32, lambda v: raw(DT.FLOAT, "<2f", v), [[0.5, -1.0], [2.0, 3.0]]),
        (tf.float32, lambda v: T.GeneralTensor(floatTensor=T.FloatTensor(floats=v)), [[0.5, -1.0], [2.0, 3.0]]),
        (tf.float64, lambda v: T.GeneralTensor(doubleTensor=T.DoubleTensor(doubles=v)), [[1e300, 2.0], [3.0, 4.0]]),
        (tf.int64, lambda v: T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=v)), [[2**40, -1], [3, 4]]),
        (tf.int32, lambda v: raw(DT.INT32, "<2i", v), [[1, -2], [3, 4]]),
        (tf.bool, lambda v: T.GeneralTensor(boolTensor=T.BoolTensor(booleans=v)), [[True, False], [False, True]]),
    ],
)
def test_dense_tensor_and_mask(dtype, make, values):
    read = bpr_ops.BatchPredictionRequestReader(tensors={"user.embedding": (dtype, [2])})
    out = read(request([{EMB: make(values[0])}, {}, {EMB: make(values[1])}]))
    got = out["tensors"]["user.embedding"]
    assert got.dtype == dtype and got.shape == (3, 2)
    zero = [False, False] if dtype == tf.bool else [0, 0]
    np.testing.assert_array_equal(got.numpy(), np.array([values[0], zero, values[1]], dtype=dtype.as_numpy_dtype))
    assert out["tensors_found"]["user.embedding"].numpy().tolist() == [True, False, True]


def test_common_features_and_keras_model():
    read = bpr_ops.BatchPredictionRequestReader(tensors={"user.embedding": ("float32", [3])}, continuous=["x"])
    inp = keras.Input((), dtype="string")
    model = keras.Model(inp, read(inp))
    out = model(request([{}, {EMB: raw(DT.FLOAT, "<3f", [4, 5, 6])}], common={EMB: raw(DT.FLOAT, "<3f", [1, 2, 3])}))
    np.testing.assert_array_equal(out["tensors"]["user.embedding"].numpy(), [[1, 2, 3], [4, 5, 6]])
    assert out["tensors_found"]["user.embedding"].numpy().tolist() == [True, True]
    assert out["continuous"].shape == (2, 1)


def test_declared_dtype_or_shape_mismatch_is_an_error():
    read = bpr_ops.BatchPredictionRequestReader(tensors={"user.embedding": (tf.int32, [2])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="declared int32 \\[2\\]"):
        read(request([{EMB: raw(DT.FLOAT, "<2f", [1, 2])}]))
    read = bpr_ops.BatchPredictionRequestReader(tensors={"user.embedding": (tf.float32, [3])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="record 0.*default_shape \\[3\\]"):
        read(request([{EMB: raw(DT.FLOAT, "<2f", [1, 2])}]))


def test_construction_checks_and_config():
    with pytest.raises(TypeError, match="must be \\(dtype, shape\\)"):
        bpr_ops.BatchPredictionRequestReader(tensors={"e": tf.float32})
    with pytest.raises(TypeError, match="has dtype string"):
        bpr_ops.BatchPredictionRequestReader(tensors={"e": (tf.string, [1])})
    with pytest.raises(ValueError, match="already reads"):
        bpr_ops.BatchPredictionRequestReader(continuous=["e"], tensors={"e": (tf.float32, [1])})
    read = bpr_ops.BatchPredictionRequestReader(tensors={"e": (tf.float32, [2, 2]), 7: ("int64", [1])})
    config = read.get_config()
    assert config["tensors"] == {"e": ("float32", [2, 2]), 7: ("int64", [1])}
    again = bpr_ops.BatchPredictionRequestReader.from_config(config)
    assert again.get_config()["tensors"] == config["tensors"]


def test_python_encoder_writes_tensors_thriftpy2_reads():
    emb = np.array([[0.5, 1.5]], np.float32)
    data = bpr_ops.encode_batch_prediction_request(
        [{"tensors": {"user.embedding": emb, 3: np.array([True, False]), 4: ["a", "bc"]},
          "sparse_tensors": {5: ([[0, 2], [1, 0]], np.array([1.0, 2.0]), [3, 2])}}]
    )
    buf = TMemoryBuffer(data)
    req = IDL.BatchPredictionRequest()
    req.read(TBinaryProtocol(buf, decode_response=False, strict_decode=True))
    assert buf._pos == len(data)
    t = req.individualFeaturesList[0].tensors
    assert (t[EMB].rawTypedTensor.dataType, t[EMB].rawTypedTensor.content, t[EMB].rawTypedTensor.shape) == (
        DT.FLOAT, struct.pack("<2f", 0.5, 1.5), [1, 2])
    assert (t[3].rawTypedTensor.dataType, t[3].rawTypedTensor.content) == (DT.BOOL, b"\x01\x00")
    assert t[4].stringTensor.strings == [b"a", b"bc"] and t[4].stringTensor.shape == [2]
    coo = req.individualFeaturesList[0].sparseTensors[5].cooSparseTensor
    assert coo.denseShape == [3, 2]
    # indices an Int64Tensor struct: thrift/ and Twitter's IDL, what twml reads.
    assert coo.indices.longs == [0, 2, 1, 0] and coo.indices.shape == [2, 2]
    assert coo.values.rawTypedTensor.content == struct.pack("<2d", 1.0, 2.0)
    # And the layer reads what the encoder wrote.
    read = bpr_ops.BatchPredictionRequestReader(tensors={"user.embedding": (tf.float32, [1, 2])})
    np.testing.assert_array_equal(read(tf.constant([data]))["tensors"]["user.embedding"].numpy(), emb[None])

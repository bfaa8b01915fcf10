"""A BatchPredictionResponse that sets every DataRecord field and every
GeneralTensor member, serialized by code we did not write: the Apache Thrift
compiler's Python structs (TBase classes made from thrift/ at run time by
apache_thrift.py, as `thrift --gen py:dynamic` would emit them) on the `thrift`
package's binary protocol. `extended_bytes` writes the same records with thriftpy2 from a newer
schema that adds fields of every type and nesting, as another producer might.

`EXPECTED` is what decode_batch_prediction_response must return for it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import thriftpy2
from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.TSerialization import serialize
from thriftpy2.protocol.binary import TBinaryProtocol as Tpy2BinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops

import apache_thrift

ROOT = Path(__file__).resolve().parents[2]
_APACHE = apache_thrift.load()
D, P, T = _APACHE.data, _APACHE.prediction_service, _APACHE.tensor


def _records(ns_data, ns_tensor):
    """Two records built with the struct classes of `ns_data` / `ns_tensor`
    (Apache's generated modules or thriftpy2's loaded ones)."""
    G = ns_tensor.GeneralTensor
    dt = ns_tensor.DataType
    tensors = {
        9: G(rawTypedTensor=ns_tensor.RawTypedTensor(dataType=dt.BYTE, content=bytes([0x80, 0xFF, 0x01]), shape=[3])),
        10: G(rawTypedTensor=ns_tensor.RawTypedTensor(dataType=dt.FLOAT, content=np.float32([1.5, -2]).tobytes(), shape=[1, 2])),
        11: G(stringTensor=ns_tensor.StringTensor(strings=["a", "é"], shape=[2])),
        12: G(int32Tensor=ns_tensor.Int32Tensor(ints=[-1, 2, 3, 4], shape=[2, 2])),
        13: G(int64Tensor=ns_tensor.Int64Tensor(longs=[2**40])),  # no shape: a flat list
        14: G(floatTensor=ns_tensor.FloatTensor(floats=[0.25], shape=[1])),
        15: G(doubleTensor=ns_tensor.DoubleTensor(doubles=[1e300, -0.5], shape=[2])),
        16: G(boolTensor=ns_tensor.BoolTensor(booleans=[True, False, True], shape=[3])),
        17: G(binaryTensor=ns_tensor.BinaryTensor(binaries=[b"\x00\xff"], shape=[1])),
    }
    coo = ns_tensor.COOSparseTensor(
        denseShape=[2, 3],
        # [rank, n]: values at (0, 2) and (1, 0).
        indices=ns_tensor.Int64Tensor(longs=[0, 1, 2, 0], shape=[2, 2]),
        values=G(rawTypedTensor=ns_tensor.RawTypedTensor(dataType=dt.DOUBLE, content=np.float64([7, 8]).tobytes(), shape=[2])),
    )
    first = ns_data.DataRecord(
        binaryFeatures={1, 2},
        continuousFeatures={3: 0.5, -4: float("inf")},
        discreteFeatures={5: -(2**63)},
        stringFeatures={6: "café"},
        sparseBinaryFeatures={7: {"x", "y"}},
        sparseContinuousFeatures={8: {"w": 1.25}},
        blobFeatures={18: b"\x00\x01\xfe"},
        tensors=tensors,
        sparseTensors={19: ns_tensor.SparseTensor(cooSparseTensor=coo)},
    )
    second = ns_data.DataRecord(continuousFeatures={3: -1.0})  # only one field set
    return [first, second]


def apache_bytes() -> bytes:
    response = P.BatchPredictionResponse(predictions=_records(D, T))
    return serialize(response, TBinaryProtocolFactory())


EXPECTED = [
    {
        1: True,
        2: True,
        3: 0.5,
        -4: float("inf"),
        5: -(2**63),
        6: "café".encode(),
        7: {b"x", b"y"},
        8: {b"w": 1.25},
        18: b"\x00\x01\xfe",
        9: np.array([-128, -1, 1], np.int8),
        10: np.array([[1.5, -2.0]], np.float32),
        11: np.array(["a".encode(), "é".encode()], object),
        12: np.array([[-1, 2], [3, 4]], np.int32),
        13: np.array([2**40], np.int64),
        14: np.array([0.25]),
        15: np.array([1e300, -0.5]),
        16: np.array([True, False, True]),
        17: np.array([b"\x00\xff"], object),
        19: bpr_ops.SparseTensorValue(
            indices=np.array([[0, 2], [1, 0]], np.int64), values=np.array([7.0, 8.0]), dense_shape=(2, 3)
        ),
    },
    {3: -1.0},
]


def assert_records_equal(test, got, expected):
    test.assertEqual(len(got), len(expected))
    for g, e in zip(got, expected):
        test.assertEqual(set(g), set(e))
        for key, want in e.items():
            have = g[key]
            if isinstance(want, np.ndarray):
                test.assertEqual(have.dtype, want.dtype, key)
                test.assertEqual(have.shape, want.shape, key)
                test.assertEqual(have.tolist(), want.tolist(), key)
            elif isinstance(want, bpr_ops.SparseTensorValue):
                test.assertEqual(have.dense_shape, want.dense_shape)
                test.assertEqual(have.indices.tolist(), want.indices.tolist())
                test.assertEqual(have.values.tolist(), want.values.tolist())
            else:
                test.assertEqual(type(have), type(want), key)
                test.assertEqual(have, want, key)


# Fields a newer schema might add: every wire type, nested containers, structs
# and unions, in the response, the record, a tensor struct and a union.
_EXTRA_RESPONSE = """
  2: optional map<string, list<set<i16>>> servedBy
  3: optional data.DataRecord commonRecord
"""
_EXTRA_RECORD = """
  20: optional byte tiny
  21: optional i16 small
  22: optional bool flag
  23: optional double weight
  24: optional i32 version
  25: optional list<map<i64, tensor.GeneralTensor>> history
  26: optional set<binary> tags
  27: optional tensor.RawTypedTensor extra
"""
_EXTRA_RAW = """
  4: optional string note
  5: optional map<i32, list<double>> quantization
"""


def extended_bytes(tmp: Path) -> bytes:
    """The same records from a newer schema, with every added field set."""
    # New file names: thriftpy2 caches included modules by name, and the old
    # schema is loaded as "data" and "tensor" already (thrift_check).
    idl = tmp / "idl_v2"
    idl.mkdir(exist_ok=True)
    for name in ("prediction_service", "data", "tensor"):
        text = (ROOT / "thrift" / f"{name}.thrift").read_text()
        text = re.sub(r'include "(\w+)\.thrift"', r'include "\1_v2.thrift"', text)
        text = re.sub(r"\b(data|tensor)\.", r"\1_v2.", text)
        (idl / f"{name}_v2.thrift").write_text(text)

    def add(file, struct, extra):
        path = idl / file
        text = path.read_text()
        pattern = re.compile(r"(struct " + struct + r" \{.*?)(\n\})", re.S)
        text, n = pattern.subn(lambda m: m.group(1) + extra + m.group(2), text, count=1)
        assert n == 1, (file, struct)
        path.write_text(text)

    add("prediction_service_v2.thrift", "BatchPredictionResponse", _EXTRA_RESPONSE.replace("data.", "data_v2."))
    add("data_v2.thrift", "DataRecord", _EXTRA_RECORD.replace("tensor.", "tensor_v2."))
    add("tensor_v2.thrift", "RawTypedTensor", _EXTRA_RAW)
    v2 = thriftpy2.load(
        str(idl / "prediction_service_v2.thrift"), module_name="prediction_service_v2_thrift", include_dirs=[str(idl)]
    )
    data_v2 = v2.data_v2
    records = _records(data_v2, data_v2.tensor_v2)
    t = data_v2.tensor_v2
    raw = records[0].tensors[9].rawTypedTensor
    raw.note = "int8 scores"
    raw.quantization = {0: [0.5, 1.0]}
    for r in records:
        r.tiny, r.small, r.flag, r.weight, r.version = -3, 300, True, 0.75, 2
        r.history = [{1: t.GeneralTensor(boolTensor=t.BoolTensor(booleans=[False]))}, {}]
        # UTF-8: Apache's Python skip() reads an unknown binary as a UTF-8 string.
        r.tags = {b"a", "é".encode()}
        r.extra = t.RawTypedTensor(dataType=t.DataType.INT32, content=b"\x01\x00\x00\x00", shape=[1])
    response = v2.BatchPredictionResponse(
        predictions=records,
        servedBy={"host": [{1, 2}, set()]},
        commonRecord=data_v2.DataRecord(continuousFeatures={1: 1.0}),
    )
    buf = TMemoryBuffer()
    response.write(Tpy2BinaryProtocol(buf))
    return buf.getvalue()

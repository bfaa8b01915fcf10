"""Judges our bytes with code we did not write.

`decode` parses a response with thriftpy2 (loading the IDL in thrift/) and
checks that every byte was consumed. `oracle_*` build the expected bytes
straight from the binary-protocol spec with struct.pack: simple enough to
check by eye, and independent of the Rust encoder.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import thriftpy2
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

ROOT = Path(__file__).resolve().parents[2]
IDL = thriftpy2.load(
    str(ROOT / "thrift" / "prediction_service.thrift"),
    module_name="prediction_service_thrift",
    include_dirs=[str(ROOT / "thrift")],
)
DataType = IDL.data.tensor.DataType

# thrift/'s COOSparseTensor before issue 28: indices a GeneralTensor union (Twitter's IDL and
# twml: an Int64Tensor struct). The readers still take it. thriftpy2 writes a nested struct by its
# own class's spec, so values of the old form sit in the Old* records and requests here.
_OLD_SPARSE_IDL = """
include "tensor.thrift"
struct OldCOOSparseTensor {
  1: required list<i64> denseShape
  2: required tensor.GeneralTensor indices
  3: required tensor.GeneralTensor values
}
union OldSparseTensor { 1: OldCOOSparseTensor cooSparseTensor }
struct OldRecord { 9: optional map<i64, OldSparseTensor> sparseTensors }
struct OldRequest { 1: required list<OldRecord> individualFeaturesList }
"""
with tempfile.TemporaryDirectory() as _d:
    _p = Path(_d) / "old_sparse.thrift"
    _p.write_text(_OLD_SPARSE_IDL)
    OLD_SPARSE = thriftpy2.load(str(_p), module_name="old_sparse_thrift", include_dirs=[str(ROOT / "thrift")])


def serialize(obj) -> bytes:
    """thriftpy2's binary-protocol bytes of a struct."""
    buf = TMemoryBuffer()
    obj.write(TBinaryProtocol(buf))
    return buf.getvalue()


def to_bytes(result) -> bytes:
    array = result.numpy() if hasattr(result, "numpy") else np.asarray(result)
    assert array.dtype == np.uint8, array.dtype
    assert array.ndim == 2 and array.shape[0] == 1, array.shape
    return array.tobytes()


def decode(data: bytes):
    """thriftpy2's (pure-Python protocol) BatchPredictionResponse; all bytes consumed."""
    buf = TMemoryBuffer(data)
    proto = TBinaryProtocol(buf, decode_response=False, strict_decode=True)
    response = IDL.BatchPredictionResponse()
    response.read(proto)
    # TMemoryBuffer keeps its read position in _pos (thriftpy2 0.7).
    assert buf._pos == len(data), f"{len(data) - buf._pos} bytes left after the response"
    assert response.predictions is not None
    return response


def _response(records: list[bytes]) -> bytes:
    return b"\x0f\x00\x01\x0c" + struct.pack(">i", len(records)) + b"".join(records) + b"\x00"


def oracle_continuous(keys, rows_f64_bits) -> bytes:
    """Expected bytes: rows_f64_bits is a [B, K] array of uint64 double bit patterns."""
    records = []
    for row in rows_f64_bits:
        body = b"".join(struct.pack(">qQ", int(k), int(v)) for k, v in zip(keys, row))
        records.append(b"\x0d\x00\x02\x0a\x04" + struct.pack(">i", len(keys)) + body + b"\x00")
    return _response(records)


def _shape_list(field_id: int, shape) -> bytes:
    return (
        b"\x0f" + struct.pack(">h", field_id) + b"\x0a" + struct.pack(">i", len(shape))
        + b"".join(struct.pack(">q", d) for d in shape)
    )


def oracle_raw_tensor(data_type: int, content: bytes, shape) -> bytes:
    """A GeneralTensor with rawTypedTensor set."""
    raw = (
        b"\x08\x00\x01" + struct.pack(">i", data_type)
        + b"\x0b\x00\x02" + struct.pack(">i", len(content)) + content
        + _shape_list(3, shape) + b"\x00"
    )
    return b"\x0c\x00\x01" + raw + b"\x00"


def oracle_string_tensor(strings: list[bytes], shape) -> bytes:
    """A GeneralTensor with stringTensor set."""
    body = b"".join(struct.pack(">i", len(s)) + s for s in strings)
    st = b"\x0f\x00\x01\x0b" + struct.pack(">i", len(strings)) + body + _shape_list(2, shape) + b"\x00"
    return b"\x0c\x00\x02" + st + b"\x00"


def oracle_tensor_response(keys, per_record_tensors: list[list[bytes]]) -> bytes:
    """per_record_tensors[i][j]: the GeneralTensor bytes of key j in record i."""
    records = []
    for tensors in per_record_tensors:
        body = b"".join(struct.pack(">q", int(k)) + t for k, t in zip(keys, tensors))
        records.append(b"\x0d\x00\x08\x0a\x0c" + struct.pack(">i", len(keys)) + body + b"\x00")
    return _response(records)

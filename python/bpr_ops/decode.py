"""A reader of serialized BatchPredictionResponse bytes, for people inspecting
what a model emits. Pure Python and numpy: it needs neither TensorFlow nor a
Thrift library (except to label keys with feature names, which hashes them with
the op). (The tests judge our bytes with Thrift libraries we did not
write; this decoder is a convenience, not the reference.)
"""

from __future__ import annotations

import struct

import numpy as np

# Binary-protocol type codes.
_STOP, _BOOL, _BYTE, _DOUBLE, _I16, _I32, _I64 = 0, 2, 3, 4, 6, 8, 10
_STRING, _STRUCT, _MAP, _SET, _LIST = 11, 12, 13, 14, 15

# Thrift DataType -> numpy dtype of RawTypedTensor.content (little-endian).
_RAW_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<i4"),
    3: np.dtype("<i8"),
    4: np.dtype("u1"),
    6: np.dtype("i1"),
    7: np.dtype("?"),
}


class DecodeError(ValueError):
    """The bytes are not a well-formed BatchPredictionResponse."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DecodeError(
                f"truncated response: needed {n} bytes at offset {self.pos}, "
                f"{len(self.data) - self.pos} remain"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def double(self) -> float:
        return struct.unpack(">d", self.take(8))[0]

    def count(self) -> int:
        n = self.i32()
        if n < 0:
            raise DecodeError(f"negative count {n} at offset {self.pos - 4}")
        return n

    def binary(self) -> bytes:
        return self.take(self.count())

    def fields(self):
        """Yields (type, id) of each field of a struct, consuming its STOP."""
        while True:
            t = self.u8()
            if t == _STOP:
                return
            yield t, self.i16()

    def value(self, t: int):
        """A value of any type, as plain Python (used for fields we do not interpret)."""
        if t == _BOOL:
            return self.u8() != 0
        if t == _BYTE:
            return struct.unpack(">b", self.take(1))[0]
        if t == _DOUBLE:
            return self.double()
        if t == _I16:
            return self.i16()
        if t == _I32:
            return self.i32()
        if t == _I64:
            return self.i64()
        if t == _STRING:
            return self.binary()
        if t == _STRUCT:
            return {fid: self.value(ft) for ft, fid in self.fields()}
        if t == _MAP:
            kt, vt, n = self.u8(), self.u8(), self.count()
            return {self.value(kt): self.value(vt) for _ in range(n)}
        if t in (_SET, _LIST):
            et, n = self.u8(), self.count()
            return [self.value(et) for _ in range(n)]
        raise DecodeError(f"unknown Thrift type code {t} at offset {self.pos}")

    def expect(self, t: int, want: int, what: str):
        if t != want:
            raise DecodeError(f"{what}: expected Thrift type {want}, got {t} at offset {self.pos}")


def _shape(shape, n: int, what: str):
    if shape is None:
        return (n,)
    if int(np.prod(shape, dtype=np.int64)) != n:
        raise DecodeError(f"{what}: shape {shape} does not hold {n} elements")
    return tuple(shape)


def _general_tensor(r: _Reader) -> np.ndarray:
    value = None
    for t, fid in r.fields():
        r.expect(t, _STRUCT, "GeneralTensor member")
        member = {f: r.value(ft) for ft, f in r.fields()}
        if value is not None:
            raise DecodeError("GeneralTensor union has more than one member set")
        value = _tensor_member(fid, member)
    if value is None:
        raise DecodeError("GeneralTensor union has no member set")
    return value


def _tensor_member(fid: int, m: dict) -> np.ndarray:
    if fid == 1:  # rawTypedTensor {1: dataType, 2: content, 3: shape}
        dtype = _RAW_DTYPES.get(m.get(1))
        if dtype is None:
            raise DecodeError(f"rawTypedTensor with unsupported dataType {m.get(1)}")
        content = m.get(2, b"")
        if len(content) % dtype.itemsize:
            raise DecodeError(f"rawTypedTensor content of {len(content)} bytes is not a whole number of {dtype}")
        flat = np.frombuffer(content, dtype=dtype)
        return flat.reshape(_shape(m.get(3), flat.size, "rawTypedTensor")).astype(dtype.newbyteorder("="))
    elements = m.get(1, [])
    if fid in (2, 8):  # stringTensor, binaryTensor: raw bytes, which need not be UTF-8
        flat = np.empty(len(elements), dtype=object)
        flat[:] = elements
    else:  # int32Tensor, int64Tensor, floatTensor, doubleTensor, boolTensor
        dtype = {3: np.int32, 4: np.int64, 5: np.float64, 6: np.float64, 7: np.bool_}.get(fid)
        if dtype is None:
            raise DecodeError(f"GeneralTensor member {fid} is not known")
        flat = np.asarray(elements, dtype=dtype)
    return flat.reshape(_shape(m.get(2), len(elements), "tensor"))


def _record(r: _Reader) -> dict:
    out: dict = {}
    for t, fid in r.fields():
        if fid == 2:  # continuousFeatures map<i64, double>
            r.expect(t, _MAP, "continuousFeatures")
            kt, vt, n = r.u8(), r.u8(), r.count()
            if (kt, vt) != (_I64, _DOUBLE):
                raise DecodeError(f"continuousFeatures has key/value types {kt}/{vt}, not i64/double")
            entries = ((r.i64(), r.double()) for _ in range(n))
        elif fid == 8:  # tensors map<i64, GeneralTensor>
            r.expect(t, _MAP, "tensors")
            kt, vt, n = r.u8(), r.u8(), r.count()
            if (kt, vt) != (_I64, _STRUCT):
                raise DecodeError(f"tensors has key/value types {kt}/{vt}, not i64/struct")
            entries = ((r.i64(), _general_tensor(r)) for _ in range(n))
        else:
            raise DecodeError(
                f"DataRecord field {fid} is not one the writer ops produce (only 2 and 8 are decoded)"
            )
        for key, value in entries:
            if key in out:
                raise DecodeError(f"key {key} appears twice in one record")
            out[key] = value
    return out


def decode_batch_prediction_response(data, names=None) -> list[dict]:
    """Decodes the writer ops' output into one dict per record: feature key ->
    float (continuousFeatures) or numpy array of the row's shape (tensors;
    strings as an object array of bytes).

    `data`: bytes, a numpy uint8 array or the op's uint8 [1, N] tensor.
    `names`: feature names; a key that one of them hashes to (twml's feature
    id, `bpr_ops.feature_ids`) is labelled with that name (str) instead of the
    number. Hashing loads TensorFlow and the op library; without names the
    decoder needs neither.
    Raises DecodeError for anything that is not a well-formed response.
    """
    if hasattr(data, "numpy"):
        data = data.numpy()
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"expected uint8 bytes, got a {data.dtype} array")
        data = data.tobytes()
    data = bytes(data)
    r = _Reader(data)
    records = None
    for t, fid in r.fields():
        if fid != 1:
            raise DecodeError(f"BatchPredictionResponse has an unknown field {fid}")
        r.expect(t, _LIST, "predictions")
        et, n = r.u8(), r.count()
        r.expect(et, _STRUCT, "predictions element")
        records = [_record(r) for _ in range(n)]
    if r.pos != len(data):
        raise DecodeError(f"{len(data) - r.pos} trailing bytes after the response")
    if records is None:
        raise DecodeError("BatchPredictionResponse has no predictions field")
    if names is not None:
        from ._keys import label_records

        return label_records(records, names)
    return records

"""A reader of serialized BatchPredictionResponse bytes, for people inspecting
what a model emits. Pure Python and numpy: it needs neither TensorFlow nor a
Thrift library (except to label keys with feature names, which hashes them with
the op). (The tests judge our bytes with Thrift libraries we did not
write; this decoder is a convenience, not the reference.)

It is a Thrift binary-protocol reader of the schema in thrift/: every field of
a DataRecord is decoded, whoever wrote the response, and fields it does not
know (a newer schema, another producer's extensions) are skipped as Thrift's
rules say, whatever their type and nesting.
"""

from __future__ import annotations

import struct
from collections import namedtuple

import numpy as np

# Binary-protocol type codes.
_STOP, _BOOL, _BYTE, _DOUBLE, _I16, _I32, _I64 = 0, 2, 3, 4, 6, 8, 10
_STRING, _STRUCT, _MAP, _SET, _LIST, _UUID = 11, 12, 13, 14, 15, 16
_TYPE_NAMES = {
    _BOOL: "bool", _BYTE: "byte", _DOUBLE: "double", _I16: "i16", _I32: "i32", _I64: "i64",
    _STRING: "string", _STRUCT: "struct", _MAP: "map", _SET: "set", _LIST: "list", _UUID: "uuid",
}  # fmt: skip

# Deeper nesting than any schema has: a hostile input must not exhaust the stack.
_MAX_DEPTH = 64

# Thrift DataType -> numpy dtype of RawTypedTensor.content (little-endian).
_RAW_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<i4"),
    3: np.dtype("<i8"),
    4: np.dtype("u1"),
    6: np.dtype("i1"),  # BYTE: int8, one byte per element
    7: np.dtype("?"),
}

_RAW_STRING = 5  # DataType.STRING

SparseTensorValue = namedtuple("SparseTensorValue", ["indices", "values", "dense_shape"])
SparseTensorValue.__doc__ = """A COOSparseTensor: indices [N, rank] and values [N] as numpy arrays, dense_shape a tuple."""

# The fields of DataRecord (thrift/data.thrift), in id order.
RECORD_FIELDS = {
    1: "binaryFeatures",
    2: "continuousFeatures",
    3: "discreteFeatures",
    4: "stringFeatures",
    5: "sparseBinaryFeatures",
    6: "sparseContinuousFeatures",
    7: "blobFeatures",
    8: "tensors",
    9: "sparseTensors",
}


class DecodeError(ValueError):
    """The bytes are not a well-formed BatchPredictionResponse."""


def _type_name(t: int) -> str:
    return _TYPE_NAMES.get(t, f"type {t}")


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        # (struct, field id, type) -> how many times it was skipped
        self.skipped: dict = {}

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

    def skip(self, t: int, depth: int = 0) -> None:
        """Consumes one value of wire type `t`, of any type and nesting."""
        if depth > _MAX_DEPTH:
            raise DecodeError(f"values nested over {_MAX_DEPTH} deep at offset {self.pos}")
        width = {_BOOL: 1, _BYTE: 1, _DOUBLE: 8, _I16: 2, _I32: 4, _I64: 8, _UUID: 16}.get(t)
        if width is not None:
            self.take(width)
        elif t == _STRING:
            self.binary()
        elif t == _STRUCT:
            for ft, _ in self.fields():
                self.skip(ft, depth + 1)
        elif t == _MAP:
            kt, vt, n = self.u8(), self.u8(), self.count()
            for _ in range(n):
                self.skip(kt, depth + 1)
                self.skip(vt, depth + 1)
        elif t in (_SET, _LIST):
            et, n = self.u8(), self.count()
            for _ in range(n):
                self.skip(et, depth + 1)
        else:
            raise DecodeError(f"unknown Thrift type code {t} at offset {self.pos}")

    def skip_field(self, owner: str, t: int, fid: int) -> None:
        self.skip(t)
        key = (owner, fid, _type_name(t))
        self.skipped[key] = self.skipped.get(key, 0) + 1


# A value's expected type: a type code, or a tuple (LIST|SET, element),
# (MAP, key, value), (STRUCT, reader) with reader(r, what) -> value.
def _read(r: _Reader, t: int, want, what: str):
    code = want[0] if isinstance(want, tuple) else want
    if t != code:
        raise DecodeError(f"{what}: expected Thrift {_type_name(code)}, got {_type_name(t)} at offset {r.pos}")
    if code == _BOOL:
        return r.u8() != 0
    if code == _BYTE:
        return struct.unpack(">b", r.take(1))[0]
    if code == _DOUBLE:
        return r.double()
    if code == _I16:
        return r.i16()
    if code == _I32:
        return r.i32()
    if code == _I64:
        return r.i64()
    if code == _STRING:
        return r.binary()
    if code == _STRUCT:
        return want[1](r, what)
    if code in (_LIST, _SET):
        et, n = r.u8(), r.count()
        # Element types are checked per element, so an empty container's are
        # not looked at: some writers put 0 there.
        return [_read(r, et, want[1], f"{what}[{i}]") for i in range(n)]
    if code == _MAP:
        kt, vt, n = r.u8(), r.u8(), r.count()
        out = {}
        for _ in range(n):
            key = _read(r, kt, want[1], f"{what} key")
            if key in out:
                raise DecodeError(f"{what}: key {key!r} appears twice in one map")
            out[key] = _read(r, vt, want[2], f"{what}[{key!r}]")
        return out
    raise AssertionError(f"schema type {code}")


def _check_elem(t: int, want, what: str, r: _Reader) -> None:
    code = want[0] if isinstance(want, tuple) else want
    if t != code:
        raise DecodeError(f"{what}: expected Thrift {_type_name(code)}, got {_type_name(t)} at offset {r.pos}")


def _struct(r: _Reader, name: str, schema: dict, what: str) -> dict:
    """A struct's known fields by name; unknown field ids are skipped."""
    out = {}
    for t, fid in r.fields():
        field = schema.get(fid)
        if field is None:
            r.skip_field(name, t, fid)
            continue
        fname, want = field
        if fname in out:
            raise DecodeError(f"{what}: field {fname} ({fid}) appears twice")
        out[fname] = _read(r, t, want, f"{what}.{fname}")
    return out


def _required(fields: dict, name: str, what: str):
    if name not in fields:
        raise DecodeError(f"{what}: required field {name} is missing")
    return fields[name]


def _shape(shape, n: int, what: str):
    if shape is None:
        return (n,)
    if any(d < 0 for d in shape) or int(np.prod(shape, dtype=np.int64)) != n:
        raise DecodeError(f"{what}: shape {shape} does not hold {n} elements")
    return tuple(shape)


_I64_LIST = (_LIST, _I64)


def _raw_typed_tensor(r: _Reader, what: str) -> np.ndarray:
    m = _struct(r, "RawTypedTensor", {1: ("dataType", _I32), 2: ("content", _STRING), 3: ("shape", _I64_LIST)}, what)
    data_type = _required(m, "dataType", what)
    content = _required(m, "content", what)
    if data_type == _RAW_STRING:
        # twml's layout: the strings one after another, each a big-endian i32 length and its bytes.
        strings, at = [], 0
        while at < len(content):
            (n,) = struct.unpack(">i", content[at : at + 4]) if at + 4 <= len(content) else (-1,)
            if n < 0 or at + 4 + n > len(content):
                raise DecodeError(
                    f"{what}: rawTypedTensor of STRING: the string at content byte {at} overruns the "
                    f"content's {len(content)} bytes (each string is an i32 length and its bytes)"
                )
            strings.append(content[at + 4 : at + 4 + n])
            at += 4 + n
        flat = np.empty(len(strings), dtype=object)
        flat[:] = strings
        return flat.reshape(_shape(m.get("shape"), flat.size, what))
    dtype = _RAW_DTYPES.get(data_type)
    if dtype is None:
        raise DecodeError(f"{what}: rawTypedTensor with unsupported dataType {data_type}")
    if len(content) % dtype.itemsize:
        raise DecodeError(f"{what}: rawTypedTensor content of {len(content)} bytes is not a whole number of {dtype}")
    flat = np.frombuffer(content, dtype=dtype)
    return flat.reshape(_shape(m.get("shape"), flat.size, what)).astype(dtype.newbyteorder("="))


def _list_tensor(member: str, elem, dtype):
    def read(r: _Reader, what: str) -> np.ndarray:
        m = _struct(r, member, {1: ("elements", (_LIST, elem)), 2: ("shape", _I64_LIST)}, what)
        elements = _required(m, "elements", what)
        if dtype is object:  # strings and binaries: raw bytes, which need not be UTF-8
            flat = np.empty(len(elements), dtype=object)
            flat[:] = elements
        else:
            flat = np.asarray(elements, dtype=dtype)
        return flat.reshape(_shape(m.get("shape"), len(elements), what))

    return read


_GENERAL_TENSOR = {
    1: ("rawTypedTensor", (_STRUCT, _raw_typed_tensor)),
    2: ("stringTensor", (_STRUCT, _list_tensor("StringTensor", _STRING, object))),
    3: ("int32Tensor", (_STRUCT, _list_tensor("Int32Tensor", _I32, np.int32))),
    4: ("int64Tensor", (_STRUCT, _list_tensor("Int64Tensor", _I64, np.int64))),
    5: ("floatTensor", (_STRUCT, _list_tensor("FloatTensor", _DOUBLE, np.float64))),
    6: ("doubleTensor", (_STRUCT, _list_tensor("DoubleTensor", _DOUBLE, np.float64))),
    7: ("boolTensor", (_STRUCT, _list_tensor("BoolTensor", _BOOL, np.bool_))),
    8: ("binaryTensor", (_STRUCT, _list_tensor("BinaryTensor", _STRING, object))),
}


def _union(name: str, schema: dict):
    def read(r: _Reader, what: str):
        start = r.pos
        members = _struct(r, name, schema, what)
        if len(members) > 1:
            raise DecodeError(f"{what}: {name} union has more than one member set: {sorted(members)}")
        if not members:
            if r.pos == start + 1:
                raise DecodeError(f"{what}: {name} union has no member set")
            return None  # only members this schema does not know (skipped)
        return next(iter(members.values()))

    return read


_general_tensor = _union("GeneralTensor", _GENERAL_TENSOR)


_int64_tensor = _list_tensor("Int64Tensor", _I64, np.int64)


def _sparse_indices(r: _Reader, what: str) -> np.ndarray:
    """COOSparseTensor.indices: an Int64Tensor struct (thrift/, Twitter's IDL,
    what twml reads), whose first field is its longs list (1), or a
    GeneralTensor union (this repository's IDL before), whose first field is
    a variant struct."""
    start = r.pos
    first = r.u8()
    first_id = r.i16() if first != _STOP else None
    r.pos = start
    if (first, first_id) == (_LIST, 1):
        return _int64_tensor(r, what)
    return _general_tensor(r, what)


def _coo_sparse_tensor(r: _Reader, what: str) -> SparseTensorValue:
    tensor = (_STRUCT, _general_tensor)
    m = _struct(
        r, "COOSparseTensor",
        {1: ("denseShape", _I64_LIST), 2: ("indices", (_STRUCT, _sparse_indices)), 3: ("values", tensor)}, what,
    )
    dense_shape = tuple(_required(m, "denseShape", what))
    values = _required(m, "values", what)
    indices = _required(m, "indices", what)
    if values is None or indices is None:  # a union of members this schema does not know
        return SparseTensorValue(indices=indices, values=values, dense_shape=dense_shape)
    n, rank = values.size, len(dense_shape)
    # On the wire indices are [rank, n] (row d: each value's index along
    # dimension d; [n] for rank 1); shown as [n, rank], TF's layout.
    if indices.dtype.kind not in "iu" or indices.size != n * rank or indices.shape not in ((rank, n), (n,) * (rank == 1)):
        raise DecodeError(
            f"{what}: indices {indices.dtype}{list(indices.shape)} do not place {n} values in denseShape "
            f"{list(dense_shape)}: expected int64 [{rank}, {n}]"
        )
    return SparseTensorValue(indices=indices.reshape(rank, n).T.astype(np.int64), values=values, dense_shape=dense_shape)


_sparse_tensor = _union("SparseTensor", {1: ("cooSparseTensor", (_STRUCT, _coo_sparse_tensor))})

_RECORD_SCHEMA = {
    1: ("binaryFeatures", (_SET, _I64)),
    2: ("continuousFeatures", (_MAP, _I64, _DOUBLE)),
    3: ("discreteFeatures", (_MAP, _I64, _I64)),
    4: ("stringFeatures", (_MAP, _I64, _STRING)),
    5: ("sparseBinaryFeatures", (_MAP, _I64, (_SET, _STRING))),
    6: ("sparseContinuousFeatures", (_MAP, _I64, (_MAP, _STRING, _DOUBLE))),
    7: ("blobFeatures", (_MAP, _I64, _STRING)),
    8: ("tensors", (_MAP, _I64, (_STRUCT, _general_tensor))),
    9: ("sparseTensors", (_MAP, _I64, (_STRUCT, _sparse_tensor))),
}
assert {fid: name for fid, (name, _) in _RECORD_SCHEMA.items()} == RECORD_FIELDS


def _record(r: _Reader, what: str) -> dict:
    """A record as {field name: {feature key: value}}, fields in wire order."""
    fields = _struct(r, "DataRecord", _RECORD_SCHEMA, what)
    if "binaryFeatures" in fields:
        keys = fields["binaryFeatures"]
        if len(set(keys)) != len(keys):
            raise DecodeError(f"{what}.binaryFeatures: a key appears twice in one set")
        fields["binaryFeatures"] = dict.fromkeys(keys, True)
    if "sparseBinaryFeatures" in fields:
        fields["sparseBinaryFeatures"] = {k: set(v) for k, v in fields["sparseBinaryFeatures"].items()}
    return fields


def _flat(fields: dict, what: str) -> dict:
    out: dict = {}
    owner: dict = {}
    for name, entries in fields.items():
        for key, value in entries.items():
            if key in out:
                raise DecodeError(
                    f"{what}: key {key} appears in both {owner[key]} and {name}; "
                    "decode with by_field=True to keep both"
                )
            out[key] = value
            owner[key] = name
    return out


def _decode_one(data: bytes, by_field: bool, skipped: dict, first: int) -> list[dict]:
    r = _Reader(data)
    records = None
    for t, fid in r.fields():
        if fid != 1:
            r.skip_field("BatchPredictionResponse", t, fid)
            continue
        if records is not None:
            raise DecodeError("BatchPredictionResponse has the predictions field twice")
        if t != _LIST:
            raise DecodeError(f"predictions: expected Thrift list, got {_type_name(t)} at offset {r.pos}")
        et, n = r.u8(), r.count()
        if n:
            _check_elem(et, _STRUCT, "predictions element", r)
        records = [_record(r, f"record {first + i}") for i in range(n)]
    if r.pos != len(data):
        raise DecodeError(f"{len(data) - r.pos} trailing bytes after the response")
    if records is None:
        raise DecodeError("BatchPredictionResponse has no predictions field")
    for key, n in r.skipped.items():
        skipped[key] = skipped.get(key, 0) + n
    if by_field:
        return records
    return [_flat(fields, f"record {first + i}") for i, fields in enumerate(records)]


def decode_request(data: bytes) -> tuple[list[dict], dict | None, dict]:
    """A serialized BatchPredictionRequest (the bare struct, what the request
    readers take): (its records by field, its commonFeatures by field or None,
    the unknown fields skipped). Records are {DataRecord field name: {feature
    key: value}}, values as decode_batch_prediction_response gives them."""
    r = _Reader(bytes(data))
    records, common = None, None
    for t, fid in r.fields():
        if fid == 1:
            if records is not None:
                raise DecodeError("BatchPredictionRequest has individualFeaturesList twice")
            if t != _LIST:
                raise DecodeError(f"individualFeaturesList: expected Thrift list, got {_type_name(t)} at offset {r.pos}")
            et, n = r.u8(), r.count()
            if n:
                _check_elem(et, _STRUCT, "individualFeaturesList element", r)
            records = [_record(r, f"record {i}") for i in range(n)]
        elif fid == 2:
            if t != _STRUCT:
                raise DecodeError(f"commonFeatures: expected Thrift struct, got {_type_name(t)} at offset {r.pos}")
            if common is not None:
                raise DecodeError("BatchPredictionRequest has commonFeatures twice")
            common = _record(r, "commonFeatures")
        else:
            r.skip_field("BatchPredictionRequest", t, fid)
    if r.pos != len(data):
        raise DecodeError(f"{len(data) - r.pos} trailing bytes after the request")
    if records is None:
        raise DecodeError("BatchPredictionRequest has no individualFeaturesList field")
    return records, common, dict(r.skipped)


def _as_bytes(array: np.ndarray, what: str) -> bytes:
    if array.dtype == np.uint8:
        return array.tobytes()
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what}: expected uint8 bytes, got a {array.dtype} array")
    # model.predict hands back the bytes widened to int32 when it stacks responses.
    if array.size and (array.min() < 0 or array.max() > 255):
        raise TypeError(f"{what}: a {array.dtype} array with values outside 0..255 is not bytes")
    return array.astype(np.uint8).tobytes()


def _responses(data, what: str = "data"):
    """The serialized responses in `data`, in order."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
        return
    if hasattr(data, "row_splits") and hasattr(data, "flat_values"):
        # A RaggedTensor [M, None]: what model.predict makes of M responses of
        # different lengths, one row each.
        if getattr(data, "ragged_rank", 1) != 1:
            raise TypeError(f"{what}: expected a RaggedTensor [responses, None], got ragged rank {data.ragged_rank}")
        flat = np.asarray(data.flat_values)
        splits = np.asarray(data.row_splits)
        if flat.ndim != 1:
            raise TypeError(f"{what}: expected a RaggedTensor [responses, None], got shape {data.shape}")
        for i in range(len(splits) - 1):
            yield _as_bytes(flat[splits[i] : splits[i + 1]], f"{what}[{i}]")
        return
    if hasattr(data, "numpy"):
        data = data.numpy()
    if isinstance(data, (list, tuple)):
        for i, item in enumerate(data):
            yield from _responses(item, f"{what}[{i}]")
        return
    if isinstance(data, np.ndarray):
        if data.dtype == object:
            for i, item in enumerate(data.reshape(-1)):
                yield from _responses(item, f"{what}[{i}]")
        elif data.ndim == 1:
            yield _as_bytes(data, what)
        elif data.ndim == 2:
            # The op's [1, N] output, or model.predict's [M, N] when every
            # response has the same length: one response per row.
            for i, row in enumerate(data):
                yield _as_bytes(row, f"{what}[{i}]")
        else:
            raise TypeError(f"{what}: expected bytes [N] or responses [M, N], got an array of shape {data.shape}")
        return
    raise TypeError(
        f"{what}: expected the op's uint8 output, bytes, model.predict's output or a list of those, "
        f"got {type(data).__name__}"
    )


def decode_responses(data, by_field: bool = False) -> tuple[list[dict], dict]:
    """decode_batch_prediction_response, and the unknown fields it skipped:
    {(struct name, field id, Thrift type name): count}."""
    records: list[dict] = []
    skipped: dict = {}
    for response in _responses(data):
        records += _decode_one(response, by_field, skipped, len(records))
    return records, skipped


def decode_batch_prediction_response(data, by_field: bool = False, names=None) -> list[dict]:
    """Decodes serialized BatchPredictionResponses into one dict per record.

    `data`: the op's uint8 [1, N] output; bytes or a uint8 array; what
    `model.predict` returns for a model ending in a writer layer (one response
    per batch: an [M, N] array, or an int32 RaggedTensor [M, None] when the
    responses differ in length); or a list of any of these. The records of all
    responses are returned in order.

    By default a record is {feature key: value}: float (continuousFeatures),
    numpy array of the row's shape (tensors; strings as an object array of
    bytes), True (binaryFeatures), int (discreteFeatures), bytes
    (stringFeatures, blobFeatures), set of bytes (sparseBinaryFeatures),
    {bytes: float} (sparseContinuousFeatures), SparseTensorValue
    (sparseTensors). With `by_field=True` a record is {DataRecord field name:
    {feature key: value}}, which keeps a key that appears in two fields.

    `names`: feature names; a key that one of them hashes to (twml's feature
    id, `bpr_ops.feature_ids`) is labelled with that name (str) instead of the
    number. Neither decoding nor hashing imports TensorFlow.

    Fields this schema does not know are skipped. Raises DecodeError for
    anything that is not a well-formed response, TypeError for data that is
    not bytes.
    """
    records = decode_responses(data, by_field)[0]
    return records if names is None else label_keys(records, names, by_field)


def label_keys(records: list[dict], names, by_field: bool = False) -> list[dict]:
    """Records with every key that one of `names` hashes to replaced by that
    name; `by_field`: records are {field: {key: value}}. Loads TensorFlow and
    the op library (the names are hashed by the FeatureId op), once per call."""
    from ._keys import label_records

    if not by_field:
        return label_records(records, names)
    fields = [(i, f) for i, r in enumerate(records) for f in r]
    labelled = label_records([records[i][f] for i, f in fields], names)
    out: list[dict] = [{} for _ in records]
    for (i, f), keyed in zip(fields, labelled):
        out[i][f] = keyed
    return out

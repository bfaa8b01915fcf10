"""Build BatchPredictionRequest bytes (Thrift binary protocol) in pure Python.

`encode_batch_prediction_request(records, common=None)` returns the bare struct
(no message envelope), which is what twml's request-side decode ops read.
Each record (and `common`) is a dict with any of the keys
"binary": [key], "continuous": {key: float}, "discrete": {key: int},
"string" (or "strings", the reader's name for the kind): {key: str},
"sparse_binary": {key: [str]},
"sparse_continuous": {key: {str: float}},
"tensors": {key: array} (a numpy array or nested list: numbers and bools as
a little-endian rawTypedTensor with the array's shape, strings as a
stringTensor), "sparse_tensors": {key: (indices, values, dense_shape)}
(indices int [rank, n] or [n], values a numeric array of n elements).
A key is an int feature id or a feature name (hashed with bpr_ops.feature_id,
in Python). Imports no TensorFlow. The request-side decode ops (and
bpr_ops.BatchPredictionRequestReader) read these bytes; this encoder is for
clients, tests and benchmarks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

__all__ = ["encode_batch_prediction_request", "encode_data_record"]

# Thrift binary protocol type ids.
_STOP, _DOUBLE, _I32, _I64, _STRING, _STRUCT, _MAP, _SET, _LIST = 0, 4, 8, 10, 11, 12, 13, 14, 15

_KINDS = ("binary", "continuous", "discrete", "string", "sparse_binary", "sparse_continuous", "tensors",
          "sparse_tensors")
# Other names of a kind: "strings" is BatchPredictionRequestReader's argument,
# so a record written with the reader's names encodes too.
_ALIASES = {"strings": "string"}

# numpy dtype name -> Thrift DataType (thrift/tensor.thrift).
_DATA_TYPES = {"float32": 0, "float64": 1, "int32": 2, "int64": 3, "uint8": 4, "int8": 6, "bool": 7}


def _shape(field_id: int, shape) -> bytes:
    return _field(_LIST, field_id) + struct.pack(">bi", _I64, len(shape)) + b"".join(struct.pack(">q", d) for d in shape)


def _general_tensor(value, where: str) -> bytes:
    """A GeneralTensor union: rawTypedTensor (numbers, bools) or stringTensor."""
    import numpy as np

    array = np.asarray(value)
    if array.dtype.kind in "USO":
        items = [_string(v, where) for v in array.reshape(-1).tolist()]
        body = _field(_LIST, 1) + struct.pack(">bi", _STRING, len(items)) + b"".join(items)
        return _field(_STRUCT, 2) + body + _shape(2, array.shape) + bytes([_STOP, _STOP])
    data_type = _DATA_TYPES.get(array.dtype.name)
    if data_type is None:
        raise TypeError(f"{where}: dtype {array.dtype.name} has no Thrift DataType; use one of {sorted(_DATA_TYPES)}")
    content = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    body = _field(_I32, 1) + struct.pack(">i", data_type) + _field(_STRING, 2) + struct.pack(">i", len(content)) + content
    return _field(_STRUCT, 1) + body + _shape(3, array.shape) + bytes([_STOP, _STOP])


def _sparse_tensor(value, where: str) -> bytes:
    import numpy as np

    try:
        indices, values, dense_shape = value
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected (indices, values, dense_shape)") from None
    indices = np.asarray(indices, dtype=np.int64)
    longs = b"".join(struct.pack(">q", int(x)) for x in indices.reshape(-1))
    # An Int64Tensor struct, as Twitter's IDL and twml's reader have it (thrift/tensor.thrift).
    int64_tensor = _field(_LIST, 1) + struct.pack(">bi", _I64, indices.size) + longs + _shape(2, indices.shape) + bytes([_STOP])
    coo = (_shape(1, [int(d) for d in dense_shape]) + _field(_STRUCT, 2) + int64_tensor
           + _field(_STRUCT, 3) + _general_tensor(values, where) + bytes([_STOP]))
    return _field(_STRUCT, 1) + coo + bytes([_STOP])

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _key(key, where: str) -> int:
    if isinstance(key, bool):
        raise TypeError(f"{where}: a feature key must be an int id or a name, got a bool")
    if isinstance(key, int):
        if not _I64_MIN <= key <= _I64_MAX:
            raise ValueError(f"{where}: feature id {key} does not fit in an i64")
        return key
    if isinstance(key, (str, bytes)):
        from .feature_ids import feature_id

        return feature_id(key)
    raise TypeError(f"{where}: a feature key must be an int id or a name, got {type(key).__name__}")


def _field(type_id: int, field_id: int) -> bytes:
    return struct.pack(">bh", type_id, field_id)


def _string(value, where: str) -> bytes:
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, bytes):
        data = value
    else:
        raise TypeError(f"{where}: expected a str, got {type(value).__name__}")
    return struct.pack(">i", len(data)) + data


def _i64(value, where: str) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: expected an int, got {type(value).__name__}")
    if not _I64_MIN <= value <= _I64_MAX:
        raise ValueError(f"{where}: {value} does not fit in an i64")
    return struct.pack(">q", value)


def _double(value, where: str) -> bytes:
    try:
        return struct.pack(">d", float(value))
    except (TypeError, ValueError):
        raise TypeError(f"{where}: expected a float, got {type(value).__name__}") from None


def _collection(value, kind: str, what: str):
    """`value` when it is a collection of several items; a str (or bytes)
    would be read as its characters, each one a feature."""
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(
            f"{kind}: expected {what}, got the single {type(value).__name__} {value!r}, whose characters "
            f"would each be encoded as a feature; write [{value!r}]"
        )
    if not hasattr(value, "__iter__"):
        raise TypeError(f"{kind}: expected {what}, got {type(value).__name__} {value!r}")
    return value


def _mapping(value, kind: str, what: str):
    if not isinstance(value, Mapping):
        raise TypeError(f"{kind}: expected {what} (a dict), got {type(value).__name__} {value!r}")
    return value


def encode_data_record(record: dict) -> bytes:
    """The binary-protocol bytes of one DataRecord struct (ending with STOP)."""
    if not isinstance(record, dict):
        raise TypeError(f"a record must be a dict, got {type(record).__name__}")
    unknown = set(record) - set(_KINDS) - set(_ALIASES)
    if unknown:
        import difflib

        hints = [f"{k!r} (did you mean {close[0]!r}?)" if close else repr(k)
                 for k in sorted(unknown, key=str)
                 for close in [difflib.get_close_matches(str(k), [*_KINDS, *_ALIASES], n=1)]]
        raise ValueError(f"unknown feature kind(s) {', '.join(hints)}; expected some of {list(_KINDS)} "
                         f"(\"strings\" is \"string\" too)")
    for alias, kind in _ALIASES.items():
        if alias in record:
            if kind in record:
                raise ValueError(f"a record has both {kind!r} and {alias!r}, two names of one kind (the "
                                 f"DataRecord's {kind}Features); give one")
            record = {**{k: v for k, v in record.items() if k != alias}, kind: record[alias]}
    for kind, what in (("continuous", "{key: float}"), ("discrete", "{key: int}"), ("string", "{key: str}"),
                       ("sparse_binary", "{key: [str]}"), ("sparse_continuous", "{key: {str: float}}")):
        if kind in record:
            _mapping(record[kind], kind, what)
    out = bytearray()
    if "binary" in record:
        keys = [_key(k, "binary") for k in _collection(record["binary"], "binary", "a list of feature keys")]
        out += _field(_SET, 1) + struct.pack(">bi", _I64, len(keys))
        out += b"".join(struct.pack(">q", k) for k in keys)
    # The three maps of one scalar per key: (kind, field id, value type, value writer).
    for kind, field, value_type, write in (("continuous", 2, _DOUBLE, _double), ("discrete", 3, _I64, _i64),
                                           ("string", 4, _STRING, _string)):
        if kind in record:
            items = record[kind].items()
            out += _field(_MAP, field) + struct.pack(">bbi", _I64, value_type, len(items))
            for k, v in items:
                out += struct.pack(">q", _key(k, kind)) + write(v, f"{kind}[{k!r}]")
    if "sparse_binary" in record:
        items = record["sparse_binary"].items()
        out += _field(_MAP, 5) + struct.pack(">bbi", _I64, _SET, len(items))
        for k, values in items:
            values = list(_collection(values, f"sparse_binary[{k!r}]", "a list of str"))
            out += struct.pack(">qbi", _key(k, "sparse_binary"), _STRING, len(values))
            out += b"".join(_string(v, f"sparse_binary[{k!r}]") for v in values)
    if "sparse_continuous" in record:
        items = record["sparse_continuous"].items()
        out += _field(_MAP, 6) + struct.pack(">bbi", _I64, _MAP, len(items))
        for k, inner in items:
            _mapping(inner, f"sparse_continuous[{k!r}]", "{str: float}")
            out += struct.pack(">qbbi", _key(k, "sparse_continuous"), _STRING, _DOUBLE, len(inner))
            for name, v in inner.items():
                out += _string(name, f"sparse_continuous[{k!r}]") + _double(v, f"sparse_continuous[{k!r}][{name!r}]")
    for kind, field, write in (("tensors", 8, _general_tensor), ("sparse_tensors", 9, _sparse_tensor)):
        if kind in record:
            items = record[kind].items()
            out += _field(_MAP, field) + struct.pack(">bbi", _I64, _STRUCT, len(items))
            for k, v in items:
                out += struct.pack(">q", _key(k, kind)) + write(v, f"{kind}[{k!r}]")
    out += bytes([_STOP])
    return bytes(out)


def encode_batch_prediction_request(records, common=None) -> bytes:
    """The binary-protocol bytes of a BatchPredictionRequest: `records` become
    individualFeaturesList (field 1), `common` (if not None) commonFeatures (field 2)."""
    if isinstance(records, Mapping):
        raise TypeError(
            "records must be a list of records (dicts), got one dict: for a request of one record, "
            "write [record]"
        )
    if isinstance(records, (str, bytes, bytearray)) or not hasattr(records, "__iter__"):
        raise TypeError(f"records must be a list of records (dicts), got {type(records).__name__} {records!r}")
    records = list(records)
    out = bytearray(_field(_LIST, 1) + struct.pack(">bi", _STRUCT, len(records)))
    for record in records:
        out += encode_data_record(record)
    if common is not None:
        out += _field(_STRUCT, 2) + encode_data_record(common)
    out += bytes([_STOP])
    return bytes(out)

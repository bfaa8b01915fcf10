"""Property tests of both ops through TensorFlow (hypothesis): random dtypes, ranks, shapes
(zero-sized dims included), keys (duplicates, extremes) and values (NaN payloads, infinities,
subnormals, empty and non-UTF-8 strings). Every input either decodes, with Apache Thrift's
Python binary protocol, to exactly the input, or raises InvalidArgumentError with a message."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

import bpr_ops
import thrift_check

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------
# Decoding with Apache Thrift (order kept, strings as bytes, every byte consumed)
# ---------------------------------------------------------------------------


def _expect(p, ttype, fid):
    _, t, i = p.readFieldBegin()
    assert (t, i) == (ttype, fid), f"expected field {fid} of type {ttype}, got {i} of type {t}"


def _stop(p):
    assert p.readFieldBegin()[1] == TType.STOP


def _i64_list(p):
    etype, n = p.readListBegin()
    assert etype == TType.I64 and n >= 0
    return [p.readI64() for _ in range(n)]


def _general_tensor(p):
    _, t, fid = p.readFieldBegin()
    assert t == TType.STRUCT, t
    if fid == 1:
        _expect(p, TType.I32, 1)
        data_type = p.readI32()
        _expect(p, TType.STRING, 2)
        content = p.readBinary()
        _expect(p, TType.LIST, 3)
        row = ("raw", data_type, content, _i64_list(p))
    else:
        assert fid == 2, fid
        _expect(p, TType.LIST, 1)
        etype, n = p.readListBegin()
        assert etype == TType.STRING and n >= 0
        strings = [p.readBinary() for _ in range(n)]
        _expect(p, TType.LIST, 2)
        row = ("str", strings, _i64_list(p))
    _stop(p)  # the payload struct
    _stop(p)  # the union: one field only
    return row


def apache_decode(data: bytes):
    """[[(key, value), ...] per record]: value is double bits or a row tuple."""
    buf = TMemoryBuffer(data)
    p = TBinaryProtocol(buf, strictRead=True)
    _expect(p, TType.LIST, 1)
    etype, n = p.readListBegin()
    assert etype == TType.STRUCT and n >= 0
    records = []
    for _ in range(n):
        _, t, fid = p.readFieldBegin()
        ktype, vtype, size = p.readMapBegin()
        assert t == TType.MAP and ktype == TType.I64 and size >= 0
        if fid == 2:
            assert vtype == TType.DOUBLE
            entries = [(p.readI64(), struct.unpack("<Q", struct.pack("<d", p.readDouble()))[0]) for _ in range(size)]
        else:
            assert (fid, vtype) == (8, TType.STRUCT)
            entries = [(p.readI64(), _general_tensor(p)) for _ in range(size)]
        _stop(p)
        records.append(entries)
    _stop(p)
    assert buf._buffer.tell() == len(data), f"{len(data) - buf._buffer.tell()} bytes left"
    return records


# ---------------------------------------------------------------------------
# Inputs and what the spec says they become
# ---------------------------------------------------------------------------

# name -> (bits per element, unsigned numpy type of the bits, Thrift DataType, content width)
FLOATS = {"float32": (32, np.uint32), "float64": (64, np.uint64), "float16": (16, np.uint16), "bfloat16": (16, np.uint16)}
NUMERIC = ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "int8", "bool"]
DATA_TYPE = {"float32": 0, "float16": 0, "bfloat16": 0, "float64": 1, "int32": 2, "int64": 3, "uint8": 4, "int8": 6, "bool": 7}
SUPPORTED = NUMERIC + ["string"]


def float_bits(bits: int):
    """Bit patterns biased to NaNs with payloads, infinities, zeros, subnormals, extremes."""
    exp_bits = {16: 5, 32: 8, 64: 11}[bits]
    mant = bits - 1 - exp_bits
    sign, exp = 1 << (bits - 1), ((1 << exp_bits) - 1) << mant
    special = st.sampled_from([exp | 1, exp | (1 << (mant - 1)) | 5, exp, 0, 1, (1 << mant) - 1, exp - 1])
    return st.one_of(st.integers(0, (1 << bits) - 1), st.builds(lambda s, v: s | v, st.sampled_from([0, sign]), special))


BF16_BITS = st.one_of(
    st.integers(0, 0xFFFF), st.sampled_from([0x7F81, 0xFFC1, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x7F7F])
)
STRINGS = st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"\xff\xfe", b"\xc3(", "naïve 😀".encode(), b"\0"]))
INTS = {
    "int32": st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([-(2**31), 2**31 - 1, 0, -1])),
    "int64": st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([-(2**63), 2**63 - 1, 0, -1])),
    "uint8": st.integers(0, 255),
    "int8": st.integers(-128, 127),
    "bool": st.booleans(),
}
KEY = st.one_of(st.integers(-2, 2), st.sampled_from([-(2**63), 2**63 - 1, 1 << 40]), st.integers(-(2**63), 2**63 - 1))


def elements(dtype: str):
    if dtype == "bfloat16":
        return BF16_BITS
    if dtype in FLOATS:
        return float_bits(FLOATS[dtype][0])
    if dtype == "string":
        return STRINGS
    if dtype == "int16":
        return st.integers(-(2**15), 2**15 - 1)
    return INTS[dtype]


def make_tensor(dtype: str, shape: list[int], flat: list) -> tf.Tensor:
    if dtype in FLOATS:
        bits = np.array(flat, FLOATS[dtype][1]).reshape(shape)
        return tf.bitcast(tf.constant(bits), getattr(tf, dtype))
    if dtype == "string":
        return tf.constant(np.array(flat, dtype=object).reshape(shape), tf.string)
    return tf.constant(np.array(flat, {"bool": bool}.get(dtype, dtype)).reshape(shape))


def widen32(bits: int) -> int:
    """float32 bits -> float64 bits: exact; a NaN keeps sign and payload, not quieted."""
    if bits & 0x7FFFFFFF > 0x7F800000:
        return ((bits >> 31) << 63) | (0x7FF << 52) | ((bits & 0x7FFFFF) << 29)
    return struct.unpack("<Q", struct.pack("<d", struct.unpack("<f", struct.pack("<I", bits))[0]))[0]


def to_f32_bits(dtype: str, bits: int) -> int:
    if dtype == "bfloat16":
        return bits << 16
    if dtype == "float16":
        if bits & 0x7FFF > 0x7C00:
            return ((bits >> 15) << 31) | (0xFF << 23) | ((bits & 0x3FF) << 13)
        return int(np.array([bits], np.uint16).view(np.float16).astype(np.float32).view(np.uint32)[0])
    return bits


def as_double_bits(dtype: str, bits: int) -> int:
    return bits if dtype == "float64" else widen32(to_f32_bits(dtype, bits))


def content(dtype: str, flat: list) -> bytes:
    """A raw row's little-endian content."""
    if dtype in ("float16", "bfloat16"):
        return struct.pack(f"<{len(flat)}I", *[to_f32_bits(dtype, b) for b in flat])
    fmt = {"float32": "I", "float64": "Q", "int32": "i", "int64": "q", "uint8": "B", "int8": "b", "bool": "?"}[dtype]
    return struct.pack(f"<{len(flat)}{fmt}", *flat)


@st.composite
def keys_input(draw):
    """(ids, keys tensor, whether the op must accept the keys)."""
    ids = draw(st.lists(KEY, max_size=5))
    form = draw(st.sampled_from(["rank1"] * 8 + ["scalar", "rank2"]))
    if form == "scalar" and len(ids) != 1:
        form = "rank1"
    shape = {"rank1": [len(ids)], "scalar": [], "rank2": [1, len(ids)]}[form]
    tensor = tf.constant(np.array(ids, np.int64).reshape(shape))
    return ids, tensor, form == "rank1" and len(set(ids)) == len(ids)


def rejected(call) -> None:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        call()
    assert info.value.message.strip(), "an error without a message"


def write_and_decode(call):
    data = thrift_check.to_bytes(call())
    thrift_check.decode(data)  # a second, independent decoder: must parse all bytes too
    return apache_decode(data)


# ---------------------------------------------------------------------------
# BatchPredictionResponseWriter
# ---------------------------------------------------------------------------


@SETTINGS
@given(keys=keys_input(), data=st.data())
def test_continuous_writes_exactly_the_input_or_rejects_it(keys, data):
    ids, keys_t, keys_ok = keys
    k = len(ids)
    dtype = data.draw(st.sampled_from(["float32"] * 3 + ["float64", "float16", "bfloat16"]), "dtype")
    batch = data.draw(st.integers(0, 4), "batch")
    shape = data.draw(
        st.sampled_from([[batch, k]] * 4 + [[batch], [batch, k + 1], [batch, k, 1], []]), "shape"
    )
    n = int(np.prod(shape))
    flat = data.draw(st.lists(elements(dtype), min_size=n, max_size=n), "values")
    values = make_tensor(dtype, shape, flat)
    call = lambda: bpr_ops.batch_prediction_response_writer(keys_t, values)  # noqa: E731

    shape_ok = (len(shape) == 2 and shape[1] == k) or (len(shape) == 1 and k == 1)
    if not (keys_ok and shape_ok):
        rejected(call)
        return
    records = write_and_decode(call)
    expected = [[(ids[j], as_double_bits(dtype, flat[i * k + j])) for j in range(k)] for i in range(batch)]
    assert records == expected


# ---------------------------------------------------------------------------
# BatchPredictionTensorResponseWriter
# ---------------------------------------------------------------------------


@SETTINGS
@given(keys=keys_input(), data=st.data())
def test_tensor_writes_exactly_the_input_or_rejects_it(keys, data):
    ids, keys_t, keys_ok = keys
    batch = data.draw(st.integers(0, 3), "batch")
    count = max(1, len(ids) + data.draw(st.sampled_from([0] * 8 + [-1, 1]), "extra values"))
    columns = []
    for _ in range(count):
        dtype = data.draw(st.sampled_from(SUPPORTED * 4 + ["int16"]), "dtype")
        kind = data.draw(st.sampled_from(["shared"] * 10 + ["scalar", "other batch"]), "kind")
        row = data.draw(st.lists(st.integers(0, 3), max_size=3), "row shape")
        shape = {"shared": [batch] + row, "scalar": [], "other batch": [batch + 1] + row}[kind]
        n = int(np.prod(shape))
        flat = data.draw(st.lists(elements(dtype), min_size=n, max_size=n), "values")
        columns.append((dtype, shape, flat, make_tensor(dtype, shape, flat)))
    call = lambda: bpr_ops.batch_prediction_tensor_response_writer(keys_t, [c[3] for c in columns])  # noqa: E731

    valid = (
        keys_ok
        and len(ids) >= 1
        and count == len(ids)
        and all(c[0] != "int16" for c in columns)  # not a type the op takes
        and all(len(c[1]) >= 1 and c[1][0] == columns[0][1][0] for c in columns)
    )
    if not valid:
        rejected(call)
        return
    batch = columns[0][1][0]
    records = write_and_decode(call)
    expected = []
    for i in range(batch):
        entries = []
        for key, (dtype, shape, flat, _) in zip(ids, columns):
            per_row = int(np.prod(shape[1:]))
            row = flat[i * per_row : (i + 1) * per_row]
            if dtype == "string":
                entries.append((key, ("str", row, shape[1:])))
            else:
                entries.append((key, ("raw", DATA_TYPE[dtype], content(dtype, row), shape[1:])))
        expected.append(entries)
    assert records == expected


@SETTINGS
@given(data=st.data())
def test_identical_inputs_give_identical_bytes(data):
    dtype = data.draw(st.sampled_from(SUPPORTED))
    shape = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    n = int(np.prod(shape))
    values = make_tensor(dtype, shape, data.draw(st.lists(elements(dtype), min_size=n, max_size=n)))
    keys = data.draw(st.lists(KEY, min_size=1, max_size=1))
    first = thrift_check.to_bytes(bpr_ops.batch_prediction_tensor_response_writer(keys, [values]))
    again = thrift_check.to_bytes(bpr_ops.batch_prediction_tensor_response_writer(keys, [values]))
    assert first == again


@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("dtype,bits", [("float32", [1, 0x807FFFFF]), ("bfloat16", [1, 0x8040])])
def test_subnormals_are_not_flushed_to_zero(dtype, bits, mode):
    # Regression: TensorFlow runs kernels with the FPU's denormals-are-zero and flush-to-zero
    # flags set; the continuous writer widened float32 with the FPU, so subnormals became 0.0.
    values = make_tensor(dtype, [1, 2], bits)
    write = bpr_ops.batch_prediction_response_writer
    if mode == "function":
        write = tf.function(write)
    records = write_and_decode(lambda: write([1, 2], values))
    assert [hex(b) for _, b in records[0]] == [hex(as_double_bits(dtype, b)) for b in bits]
    assert all(b & 0x7FFFFFFFFFFFFFFF for _, b in records[0]), "a subnormal became 0.0"

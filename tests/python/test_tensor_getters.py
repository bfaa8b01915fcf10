"""twml's eight tensor getters (tensor_record.cpp), judged through TensorFlow.

Records and requests are written by thriftpy2 (code we did not write) from
the IDL in thrift/ (COOSparseTensor.indices an Int64Tensor, as in Twitter's IDL
and what twml's reader reads), and, for sparse tensors, also from the older
form of thrift/ (indices a GeneralTensor), which the getters still read. Expected
outputs are built here from the values put in (struct.pack of the wire's
element encoding), never from our decoder.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
from thrift_check import IDL, OLD_SPARSE as OLD, serialize as ser

LIB = bpr_ops.load_library()
T = IDL.data.tensor
DT = T.DataType


def record(tensors=None, sparse=None, **kw):
    return IDL.data.DataRecord(tensors=tensors, sparseTensors=sparse, **kw)


def gt(**kw):
    return T.GeneralTensor(**kw)


HANDLES = ["records", "hashed_records", "request", "hashed_request"]


def handle(kind: str, records: list, common=None):
    """A handle of `kind` over `records` (DataRecord structs)."""
    none = dict(keep_features=[], keep_codes=[])
    if kind.endswith("records"):
        assert common is None
        msgs = tf.constant(np.array([ser(r) for r in records], dtype=object), dtype=tf.string)
        op = LIB.decode_and_hash_data_record if kind.startswith("hashed") else LIB.decode_data_record
        return op(msgs, label_features=[], **none)
    req = IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common)
    msg = tf.constant(np.frombuffer(ser(req), dtype=np.uint8))
    if kind.startswith("hashed"):
        return LIB.decode_and_hash_batch_prediction_request(msg, **none)
    return LIB.decode_batch_prediction_request(msg, **none)


def getter(kind: str, what: str):
    hashed = "hashed_" if kind.startswith("hashed") else ""
    return getattr(LIB, f"get_{what}_from_{hashed}data_record")


def get_tensors(kind, records, feature_id, common=None, assert_shape=True):
    return getter(kind, "tensors")(handle(kind, records, common), assert_shape=assert_shape, feature_id=feature_id)


def masked(kind, records, feature_id, default_shape, dtype_size, common=None, assert_shape=True):
    return getter(kind, "tensors_with_missing_mask")(
        handle(kind, records, common),
        assert_shape=assert_shape,
        feature_id=feature_id,
        default_shape=default_shape,
        dtype_size=dtype_size,
    )


# (GeneralTensor, expected output bytes, out_type, out_endian, shape)
def _typed_cases():
    return {
        "int32Tensor": (gt(int32Tensor=T.Int32Tensor(ints=[1, -2, 3], shape=[3])), struct.pack(">3i", 1, -2, 3), "int32", 1, [3]),
        "int64Tensor": (gt(int64Tensor=T.Int64Tensor(longs=[2**40, -1], shape=[1, 2])), struct.pack(">2q", 2**40, -1), "int64", 1, [1, 2]),
        "floatTensor": (gt(floatTensor=T.FloatTensor(floats=[0.5, -1.25], shape=[2])), struct.pack(">2d", 0.5, -1.25), "float64", 1, [2]),
        "doubleTensor": (gt(doubleTensor=T.DoubleTensor(doubles=[1e300, 3.0, 4.0, 5.0], shape=[2, 2])), struct.pack(">4d", 1e300, 3, 4, 5), "float64", 1, [2, 2]),
        "boolTensor": (gt(boolTensor=T.BoolTensor(booleans=[True, False])), b"\x01\x00", "bool", 1, [2]),
        "raw FLOAT": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.FLOAT, content=struct.pack("<2f", 1.5, 2.5), shape=[2])), struct.pack("<2f", 1.5, 2.5), "float32", 0, [2]),
        "raw DOUBLE": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.DOUBLE, content=struct.pack("<d", 7.0), shape=[1, 1])), struct.pack("<d", 7.0), "float64", 0, [1, 1]),
        "raw INT32": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.INT32, content=struct.pack("<2i", 5, -5))), struct.pack("<2i", 5, -5), "int32", 0, [2]),
        "raw INT64": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.INT64, content=struct.pack("<q", -9), shape=[1])), struct.pack("<q", -9), "int64", 0, [1]),
        "raw UINT8": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.UINT8, content=b"\x00\xff\x10", shape=[3])), b"\x00\xff\x10", "uint8", 0, [3]),
        # twml failed the whole batch on BYTE ("DataType is a required field").
        "raw BYTE": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.BYTE, content=b"\x80\x7f", shape=[2])), b"\x80\x7f", "int8", 0, [2]),
        "raw BOOL": (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.BOOL, content=b"\x01\x00\x01", shape=[3])), b"\x01\x00\x01", "bool", 0, [3]),
    }


TYPED = _typed_cases()


@pytest.mark.parametrize("kind", HANDLES)
@pytest.mark.parametrize("case", sorted(TYPED))
def test_every_general_tensor_type(kind, case):
    tensor, want, type_name, endian, shape = TYPED[case]
    other = gt(int32Tensor=T.Int32Tensor(ints=[9]))
    records = [record({7: tensor, 8: other}), record({8: other, 7: tensor})]
    out = get_tensors(kind, records, 7)
    assert out.output.numpy().tolist() == [want, want]
    assert out.out_shape.numpy().tolist() == [2] + shape
    assert out.out_type.numpy() == type_name.encode()
    assert out.out_endian.numpy() == endian
    # What a twml graph does next: decode_raw with the type and byte order.
    dtype = {"float64": tf.float64, "float32": tf.float32, "int32": tf.int32, "int64": tf.int64,
             "uint8": tf.uint8, "int8": tf.int8, "bool": tf.uint8}[type_name]
    decoded = tf.io.decode_raw(out.output, dtype, little_endian=not endian)
    fmt = {"float64": "d", "float32": "f", "int32": "i", "int64": "q", "uint8": "B", "int8": "b", "bool": "B"}[type_name]
    n = len(want) // struct.calcsize(fmt)
    expect = struct.unpack((">" if endian else "<") + fmt * n, want)
    assert decoded.numpy()[0].tolist() == list(expect)


@pytest.mark.parametrize("kind", HANDLES)
def test_string_tensors_every_string_variant(kind):
    raw = b"".join(struct.pack(">i", len(s)) + s for s in (b"x", b"", b"yz"))
    records = [
        record({3: gt(stringTensor=T.StringTensor(strings=["a", "bc"], shape=[2]))}),
        record({}),  # no tensor: no rows (twml: a warning, no rows)
        record({3: gt(binaryTensor=T.BinaryTensor(binaries=[b"\x00\xff"]))}),
        record({3: gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.STRING, content=raw, shape=[3]))}),
    ]
    out = getter(kind, "string_tensors")(handle(kind, records), feature_id=3)
    assert out.ids.numpy().tolist() == [0, 0, 2, 3, 3, 3]
    assert out.strings.numpy().tolist() == [b"a", b"bc", b"\x00\xff", b"x", b"", b"yz"]


@pytest.mark.parametrize("kind", HANDLES)
def test_missing_mask(kind):
    emb = [0.25, -0.5]
    records = [
        record({}),
        record({5: gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.FLOAT, content=struct.pack("<2f", *emb), shape=[2]))}),
        record({6: gt(int32Tensor=T.Int32Tensor(ints=[1]))}),
    ]
    out = masked(kind, records, 5, [2], 4)
    assert out.is_found.numpy().tolist() == [False, True, False]
    assert out.output.numpy().tolist() == [b"\0" * 8, struct.pack("<2f", *emb), b"\0" * 8]
    assert out.out_type.numpy() == b"float32" and out.out_endian.numpy() == 0
    # None found: twml's "Unknown type", zeros of default_shape x dtype_size.
    out = masked(kind, records, 99, [3, 1], 2)
    assert out.is_found.numpy().tolist() == [False] * 3
    assert out.output.numpy().tolist() == [b"\0" * 6] * 3
    assert out.out_type.numpy() == b"Unknown type"


@pytest.mark.parametrize("kind", HANDLES)
def test_missing_mask_float_tensor_takes_8_bytes_per_element(kind):
    # twml: FloatTensor is a list of doubles; asked for dtype_size 4 the
    # length doubles, and missing records get that many zeros too.
    records = [record({}), record({5: gt(floatTensor=T.FloatTensor(floats=[1.0, 2.0], shape=[2]))})]
    out = masked(kind, records, 5, [2], 4)
    assert out.output.numpy().tolist() == [b"\0" * 16, struct.pack(">2d", 1.0, 2.0)]
    assert out.out_type.numpy() == b"float64" and out.out_endian.numpy() == 1


@pytest.mark.parametrize("kind", ["request", "hashed_request"])
def test_common_features_tensors(kind):
    # twml ignored tensors in commonFeatures ("unordered_map::at" for records
    # without their own). A record's own tensor wins over the common one.
    common = record({7: gt(int64Tensor=T.Int64Tensor(longs=[1, 2]))})
    own = gt(int64Tensor=T.Int64Tensor(longs=[3, 4]))
    out = get_tensors(kind, [record({}), record({7: own})], 7, common=common)
    assert out.output.numpy().tolist() == [struct.pack(">2q", 1, 2), struct.pack(">2q", 3, 4)]
    out = masked(kind, [record({}), record({7: own})], 7, [2], 8, common=common)
    assert out.is_found.numpy().tolist() == [True, True]


def _coo(dense_shape, indices, values, twml_idl=False, indices_shape=None):
    if twml_idl:
        coo = T.COOSparseTensor(
            denseShape=dense_shape, indices=T.Int64Tensor(longs=indices, shape=indices_shape), values=values
        )
        return T.SparseTensor(cooSparseTensor=coo)
    idx = gt(int64Tensor=T.Int64Tensor(longs=indices, shape=indices_shape))
    return OLD.OldSparseTensor(cooSparseTensor=OLD.OldCOOSparseTensor(denseShape=dense_shape, indices=idx, values=values))


@pytest.mark.parametrize("kind", HANDLES)
@pytest.mark.parametrize("twml_idl", [False, True], ids=["older_repo_idl", "idl"])
def test_sparse_tensors(kind, twml_idl):
    def rec(sp):
        return record(sparse=sp)

    vals = lambda xs: gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.FLOAT, content=struct.pack(f"<{len(xs)}f", *xs)))
    recs = [
        rec({4: _coo([3, 5], [0, 2, 1, 4], vals([1.0, 2.0]), twml_idl, indices_shape=[2, 2])}),
        rec({}),
        rec({4: _coo([3, 5], [2, 0], vals([3.0]), twml_idl, indices_shape=[2, 1])}),
    ]
    msgs = [ser(r) for r in recs]
    none = dict(keep_features=[], keep_codes=[])
    if kind.endswith("records"):
        t = tf.constant(np.array(msgs, dtype=object), dtype=tf.string)
        op = LIB.decode_and_hash_data_record if kind.startswith("hashed") else LIB.decode_data_record
        h = op(t, label_features=[], **none)
    else:
        # A request's records: the list header, then each record's bytes.
        body = b"\x0f\x00\x01\x0c" + struct.pack(">i", len(msgs)) + b"".join(msgs) + b"\x00"
        op = (LIB.decode_and_hash_batch_prediction_request if kind.startswith("hashed")
              else LIB.decode_batch_prediction_request)
        h = op(tf.constant(np.frombuffer(body, dtype=np.uint8)), **none)
    out = getter(kind, "sparse_tensors")(h, feature_id=4)
    assert out.ids.numpy().tolist() == [0, 0, 2]
    assert out.indices.numpy().tolist() == [struct.pack(">6q", 0, 2, 1, 4, 2, 0)]
    assert out.values.numpy().tolist() == [struct.pack("<3f", 1.0, 2.0, 3.0)]
    assert out.dense_shape.numpy().tolist() == [3, 3, 5]
    assert out.values_type.numpy() == b"float32"
    assert out[5].numpy() == 0


# ---- bad input: InvalidArgumentError naming the feature, the record and what was expected


def raises(fn, *needles):
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        fn()
    for n in needles:
        assert n in str(e.value), f"{n!r} not in {e.value}"


I32 = lambda xs, shape=None: gt(int32Tensor=T.Int32Tensor(ints=xs, shape=shape))


@pytest.mark.parametrize("kind", HANDLES)
def test_missing_tensor_is_an_error_naming_the_record(kind):
    raises(lambda: get_tensors(kind, [record({7: I32([1])}), record({})], 7),
           "feature_id 7, record 1", "no tensors entry 7", "GetTensorsWithMissingMask")


@pytest.mark.parametrize("kind", HANDLES)
def test_string_tensor_through_get_tensors(kind):
    # twml returned N bytes of the serialized list: the strings were lost.
    recs = [record({7: gt(stringTensor=T.StringTensor(strings=["a", "b"]))})]
    raises(lambda: get_tensors(kind, recs, 7), "feature_id 7, record 0", "stringTensor", "GetStringTensors")
    raises(lambda: masked(kind, recs, 7, [2], 1), "feature_id 7, record 0", "GetStringTensors")


@pytest.mark.parametrize("kind", HANDLES)
def test_number_tensor_through_get_string_tensors(kind):
    # twml returned garbage strings read from the int bytes.
    raises(lambda: getter(kind, "string_tensors")(handle(kind, [record({7: I32([1, 2])})]), feature_id=7),
           "feature_id 7, record 0", "int32Tensor")


@pytest.mark.parametrize("kind", HANDLES)
def test_shape_and_type_mismatches(kind):
    # assert_shape: every record's shape must be the first's (twml compared
    # past the end of the shorter dims).
    raises(lambda: get_tensors(kind, [record({7: I32([1, 2])}), record({7: I32([1, 2], [1, 2])})], 7),
           "feature_id 7, record 1", "[1, 2]", "record 0", "assert_shape")
    out = get_tensors(kind, [record({7: I32([1, 2])}), record({7: I32([1, 2, 3])})], 7, assert_shape=False)
    assert out.out_shape.numpy().tolist() == [2, 2]
    raises(lambda: get_tensors(kind, [record({7: I32([1])}), record({7: gt(int64Tensor=T.Int64Tensor(longs=[1]))})], 7),
           "feature_id 7, record 1", "int64Tensor of int64", "int32Tensor of int32")
    raises(lambda: masked(kind, [record({7: I32([1, 2, 3])})], 7, [2], 4),
           "feature_id 7, record 0", "default_shape [2]", "8 bytes")


@pytest.mark.parametrize("kind", HANDLES)
def test_bad_general_tensors(kind):
    cases = [
        (I32([1, 2, 3], [2, 2]), "shape [2, 2], which holds 4 elements, but 3 elements were sent"),
        (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.INT32, content=b"\0" * 6)), "6 bytes of content are no whole number of 4-byte int32"),
        (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.FLOAT, content=b"\0" * 8, shape=[3])), "holds 3 elements, but 2"),
        (gt(rawTypedTensor=T.RawTypedTensor(dataType=42, content=b"")), "dataType 42"),
        (gt(), "no variant set"),
        (I32([1], [-1]), "negative dimension"),
        (gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.STRING, content=b"\0\0\0\x09ab", shape=[1])), "overruns"),
    ]
    for tensor, needle in cases:
        raises(lambda: get_tensors(kind, [record({7: I32([1])}), record({7: tensor})], 7, assert_shape=False),
               "feature_id 7, record 1", "tensors[7]", needle)


@pytest.mark.parametrize("kind", HANDLES)
def test_unknown_general_tensor_variant(kind):
    # A GeneralTensor with field 9: written by hand (no IDL has it).
    bad = (b"\x0d\x00\x08\x0a\x0c" + struct.pack(">i", 1) + struct.pack(">q", 7)
           + b"\x0c\x00\x09\x00" + b"\x00" + b"\x00")
    t = tf.constant(np.array([bad], dtype=object), dtype=tf.string)
    op = LIB.decode_and_hash_data_record if kind.startswith("hashed") else LIB.decode_data_record
    h = op(t, keep_features=[], keep_codes=[], label_features=[])
    raises(lambda: getter(kind, "tensors")(h, assert_shape=True, feature_id=7),
           "feature_id 7, record 0", "field 9, which is no variant")


@pytest.mark.parametrize("kind", HANDLES)
def test_bad_sparse_tensors(kind):
    f = lambda xs: gt(doubleTensor=T.DoubleTensor(doubles=xs))
    cases = [
        (_coo([3], [3], f([1.0])), "index 3 along dimension 0, outside [0, 3)"),
        (_coo([3, 2], [0, -1], f([1.0]), indices_shape=[2, 1]), "index -1 along dimension 1"),
        (_coo([3, 2], [0, 1], f([1.0])), "must be [2, 1]"),
        (_coo([3], [0, 1], f([1.0])), "must be [1, 1]"),
        (OLD.OldSparseTensor(cooSparseTensor=OLD.OldCOOSparseTensor(denseShape=[2], indices=I32([0]), values=f([1.0]))), "must be int64"),
        (_coo([3], [0], gt(stringTensor=T.StringTensor(strings=["a"]))), "sparse values must be numbers"),
    ]
    for sp, needle in cases:
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            getter(kind, "sparse_tensors")(handle(kind, [record(sparse={4: _coo([3], [0], f([1.0]))}), record(sparse={4: sp})]), feature_id=4)
        for n in ("feature_id 4, record 1", "sparseTensors[4]", needle):
            assert n in str(e.value), f"{n!r} not in {e.value}"
    raises(lambda: getter(kind, "sparse_tensors")(
        handle(kind, [record(sparse={4: _coo([3], [0], f([1.0]))}), record(sparse={4: _coo([4], [0], f([1.0]))})]), feature_id=4),
        "feature_id 4, record 1", "denseShape [4], record 0 has [3]")


def test_bad_attrs_fail_at_construction():
    h = handle("records", [record({})])
    with pytest.raises(tf.errors.InvalidArgumentError, match="dtype_size is 0"):
        LIB.get_tensors_with_missing_mask_from_data_record(h, assert_shape=True, feature_id=1, default_shape=[1], dtype_size=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="negative dimension -2"):
        LIB.get_tensors_with_missing_mask_from_data_record(h, assert_shape=True, feature_id=1, default_shape=[-2], dtype_size=4)


def test_wrong_handle_kind():
    h = handle("records", [record({})])
    with pytest.raises(tf.errors.InvalidArgumentError, match="hashed_data_record_handle comes from DecodeDataRecord"):
        LIB.get_tensors_from_hashed_data_record(h, assert_shape=True, feature_id=1)


def test_twml_style_graph():
    """A twml-style graph: decode, get raw bytes, decode_raw + reshape, in a tf.function."""
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    recs = [record({11: gt(rawTypedTensor=T.RawTypedTensor(dataType=DT.FLOAT, content=row.tobytes(), shape=[3]))}) for row in emb]
    req = ser(IDL.BatchPredictionRequest(individualFeaturesList=recs))

    @tf.function
    def model(msg):
        h = LIB.decode_batch_prediction_request(msg, keep_features=[], keep_codes=[])
        out = LIB.get_tensors_with_missing_mask_from_data_record(
            h, assert_shape=True, feature_id=11, default_shape=[3], dtype_size=4)
        dense = tf.reshape(tf.io.decode_raw(out.output, tf.float32), [-1, 3])
        return dense * tf.cast(out.is_found, tf.float32)[:, None]

    got = model(tf.constant(np.frombuffer(req, dtype=np.uint8)))
    np.testing.assert_array_equal(got.numpy(), emb)

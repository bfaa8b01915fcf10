"""DataRecordTensorWriter (twml's data_record_tensor_writer.cpp), the op and
the Keras layer: its bytes judged by thriftpy2 (strict, every byte consumed)
and by a struct.pack oracle of the wire, every dtype twml accepts."""

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

LIB = bpr_ops.load_library()
DT = IDL.data.tensor.DataType


def decode_record(result) -> object:
    data = result.numpy().tobytes() if hasattr(result, "numpy") else bytes(result)
    assert result.shape[0] == 1 and len(result.shape) == 2
    buf = TMemoryBuffer(data)
    rec = IDL.data.DataRecord()
    rec.read(TBinaryProtocol(buf, decode_response=False, strict_decode=True))
    assert buf._pos == len(data), f"{len(data) - buf._pos} bytes left after the record"
    return rec


def test_every_dtype_twml_accepts():
    values = [
        tf.constant([[1.5, -2.0]], tf.float32),
        tf.constant([3.25], tf.float64),
        tf.constant([[1], [2], [3]], tf.int32),
        tf.constant(7, tf.int64),  # a scalar
        tf.constant([True, False]),
        tf.constant([["a", "bc"], ["", "\xff"]]),
    ]
    keys = [10, 11, 12, 13, 14, -15]
    rec = decode_record(bpr_ops.data_record_tensor_writer(keys, values))
    assert set(rec.tensors) == set(keys)
    want_raw = {
        10: (DT.FLOAT, struct.pack("<2f", 1.5, -2.0), [1, 2]),
        11: (DT.DOUBLE, struct.pack("<d", 3.25), [1]),
        12: (DT.INT32, struct.pack("<3i", 1, 2, 3), [3, 1]),
        13: (DT.INT64, struct.pack("<q", 7), []),
        14: (DT.BOOL, b"\x01\x00", [2]),
    }
    for k, (dtype, content, shape) in want_raw.items():
        raw = rec.tensors[k].rawTypedTensor
        assert (raw.dataType, raw.content, raw.shape) == (dtype, content, shape), k
    s = rec.tensors[-15].stringTensor
    assert s.strings == [b"a", b"bc", b"", "\xff".encode()] and s.shape == [2, 2]
    for field in ("continuousFeatures", "binaryFeatures", "sparseTensors"):
        assert getattr(rec, field) is None


def test_bytes_match_the_wire_oracle():
    # key 7, int32 [1, 2]: map header, key, union field 1, RawTypedTensor.
    got = bpr_ops.data_record_tensor_writer([7], [tf.constant([1, 2], tf.int32)]).numpy().tobytes()
    want = (
        b"\x0d\x00\x08\x0a\x0c" + struct.pack(">i", 1) + struct.pack(">q", 7)
        + b"\x0c\x00\x01"
        + b"\x08\x00\x01" + struct.pack(">i", DT.INT32)
        + b"\x0b\x00\x02" + struct.pack(">i", 8) + struct.pack("<2i", 1, 2)
        + b"\x0f\x00\x03\x0a" + struct.pack(">i", 1) + struct.pack(">q", 2)
        + b"\x00\x00"
        + b"\x00"
    )
    assert got == want


def test_keys_in_the_order_given():
    keys = [5, 3, 9, 1]
    out = bpr_ops.data_record_tensor_writer(keys, [tf.constant([float(k)]) for k in keys]).numpy().tobytes()
    # Each entry starts with its key right after the previous entry.
    positions = [out.find(struct.pack(">q", k) + b"\x0c\x00\x01") for k in keys]
    assert positions == sorted(positions) and -1 not in positions


def test_duplicate_keys_are_an_error():
    # twml kept the first tensor of a repeated key and dropped the rest silently.
    with pytest.raises(tf.errors.InvalidArgumentError, match="duplicate: key 3 appears at index 0 and index 1"):
        bpr_ops.data_record_tensor_writer([3, 3], [tf.constant([1.0]), tf.constant([2.0])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="duplicate: key 3"):
        LIB.data_record_tensor_writer(keys=tf.constant([3, 3], tf.int64), values=[tf.constant([1.0]), tf.constant([2.0])])


def test_count_and_dtype_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="keys has 2 entries but 1 values tensors"):
        bpr_ops.data_record_tensor_writer([1, 2], [tf.constant([1.0])])
    with pytest.raises(tf.errors.InvalidArgumentError, match="keys has 2 entries but 1 values tensors"):
        LIB.data_record_tensor_writer(keys=tf.constant([1, 2], tf.int64), values=[tf.constant([1.0])])
    with pytest.raises(TypeError, match="float16"):
        bpr_ops.data_record_tensor_writer([1], [tf.constant([1.0], tf.float16)])


def test_no_values_is_refused_by_tensorflow():
    # An input list has at least one tensor (TensorFlow's rule, twml's too);
    # the Rust writer gives an empty record (one STOP) for no keys.
    with pytest.raises(tf.errors.InvalidArgumentError, match="minimum 1"):
        LIB.data_record_tensor_writer(keys=tf.constant([], tf.int64), values=[])


def test_round_trip_through_the_tensor_getters():
    emb = np.array([0.5, 1.5, -3.0], np.float32)
    rec = bpr_ops.data_record_tensor_writer([42, 43], [tf.constant(emb), tf.constant(["u", "v"])])
    h = LIB.decode_data_record(tf.reshape(rec, [-1]), keep_features=[], keep_codes=[], label_features=[])
    out = LIB.get_tensors_from_data_record(h, assert_shape=True, feature_id=42)
    np.testing.assert_array_equal(tf.io.decode_raw(out.output, tf.float32).numpy()[0], emb)
    assert out.out_type.numpy() == b"float32" and out.out_endian.numpy() == 0
    assert LIB.get_string_tensors_from_data_record(h, feature_id=43).strings.numpy().tolist() == [b"u", b"v"]


def test_layer_checks_config_and_serialization(tmp_path):
    with pytest.raises(ValueError, match="keys is empty"):
        bpr_ops.DataRecordTensorWriter([])
    with pytest.raises(ValueError, match="duplicate"):
        bpr_ops.DataRecordTensorWriter([3, 3])
    layer = bpr_ops.DataRecordTensorWriter(["user.embedding", 9])
    assert layer.key_ids[0] == bpr_ops.feature_id("user.embedding")
    inp = keras.Input((4,), batch_size=1, name="x")
    emb = keras.layers.Dense(3, kernel_initializer="ones")(inp)
    with pytest.raises(ValueError, match="got 1 values tensors for 2 keys"):
        layer([emb])
    with pytest.raises(TypeError, match="float16"):
        layer([emb, tf.constant([1.0], tf.float16)])
    model = keras.Model(inp, layer([emb, keras.ops.cast(emb, "int32")]))
    x = np.ones((1, 4), np.float32)
    rec = decode_record(model(x))
    assert rec.tensors[9].rawTypedTensor.content == struct.pack("<3i", 4, 4, 4)
    cfg = layer.get_config()
    assert cfg["keys"] == ["user.embedding", 9]
    again = bpr_ops.DataRecordTensorWriter.from_config(cfg)
    assert again.key_ids == layer.key_ids
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded(x).numpy().tobytes() == model(x).numpy().tobytes()

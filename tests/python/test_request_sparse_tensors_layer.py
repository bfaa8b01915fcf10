"""BatchPredictionRequestReader(sparse_tensors=...): sparse tensor features
as one tf.SparseTensor [B, *dense_shape] per key, on requests and records
written by thriftpy2 (thrift/, where COOSparseTensor.indices is an
Int64Tensor as in Twitter's IDL, and its older form, a GeneralTensor). Expected values
are the ones put in, placed by hand into a numpy array."""

from __future__ import annotations

import struct

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
from bpr_ops import data
from thrift_check import IDL, OLD_SPARSE as OLD, serialize as ser

T = IDL.data.tensor
DT = T.DataType
KEY = "user.clicks"
FID = bpr_ops.feature_id(KEY)


def coo(points, values, dense_shape):
    """A SparseTensor of values at points ([n][rank]): indices [rank, n], an Int64Tensor (thrift/, twml)."""
    idx = np.asarray(points, np.int64).reshape(len(points), len(dense_shape)).T
    indices = T.Int64Tensor(longs=idx.reshape(-1).tolist(), shape=list(idx.shape))
    return T.SparseTensor(cooSparseTensor=T.COOSparseTensor(denseShape=list(dense_shape), indices=indices, values=values))


def old_coo(points, values, dense_shape):
    """The same in the older form (indices a GeneralTensor's int64Tensor)."""
    idx = np.asarray(points, np.int64).reshape(len(points), len(dense_shape)).T
    indices = T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=idx.reshape(-1).tolist(), shape=list(idx.shape)))
    return OLD.OldSparseTensor(cooSparseTensor=OLD.OldCOOSparseTensor(
        denseShape=list(dense_shape), indices=indices, values=values))


def doubles(v):
    return T.GeneralTensor(doubleTensor=T.DoubleTensor(doubles=list(v)))


def request(sparse_per_record, common=None) -> tf.Tensor:
    recs = [IDL.data.DataRecord(sparseTensors=s) for s in sparse_per_record]
    c = IDL.data.DataRecord(sparseTensors=common) if common else None
    return tf.constant([ser(IDL.BatchPredictionRequest(individualFeaturesList=recs, commonFeatures=c))])


def expected(batch, dense_shape, placed, dtype):
    """numpy [batch, *dense_shape] with placed = [(record, point, value)]."""
    out = np.zeros([batch, *dense_shape], dtype)
    for r, point, v in placed:
        out[(r, *point)] = v
    return out


def check(sp, batch, dense_shape, placed, dtype):
    assert isinstance(sp, tf.SparseTensor)
    assert sp.dtype == tf.as_dtype(dtype)
    assert sp.dense_shape.numpy().tolist() == [batch, *dense_shape]
    idx = sp.indices.numpy().tolist()
    assert idx == sorted(idx), "indices in row-major order"
    np.testing.assert_array_equal(tf.sparse.to_dense(sp).numpy(), expected(batch, dense_shape, placed, dtype))
    assert len(idx) == len(placed)


def test_sparse_tensor_per_record_missing_and_empty():
    # Record 0: two values given out of row-major order; 1: lacks the
    # feature; 2: an empty sparse tensor (no values); 3: one value.
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: (tf.float64, [3, 4])})
    out = read(request([
        {FID: coo([[2, 1], [0, 3]], doubles([1.5, -2.0]), [3, 4])},
        {},
        {FID: coo([], doubles([]), [3, 4])},
        {FID: coo([[1, 0]], doubles([7.0]), [3, 4])},
    ]))
    check(out["sparse_tensors"][KEY], 4, [3, 4], [(0, (2, 1), 1.5), (0, (0, 3), -2.0), (3, (1, 0), 7.0)], np.float64)


def test_nobody_has_it():
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: ("float32", [5])}, continuous=["x"])
    out = read(request([{}, {}]))
    check(out["sparse_tensors"][KEY], 2, [5], [], np.float32)


@pytest.mark.parametrize(
    "dtype, make, values",
    [
        (tf.float32, lambda v: T.GeneralTensor(floatTensor=T.FloatTensor(floats=v)), [0.5, -3.0]),
        (tf.float32, lambda v: T.GeneralTensor(rawTypedTensor=T.RawTypedTensor(
            dataType=DT.FLOAT, content=struct.pack("<2f", *v))), [0.5, -3.0]),
        (tf.int64, lambda v: T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=v)), [2**40, -1]),
        (tf.int32, lambda v: T.GeneralTensor(int32Tensor=T.Int32Tensor(ints=v)), [7, -8]),
        (tf.bool, lambda v: T.GeneralTensor(boolTensor=T.BoolTensor(booleans=v)), [True, False]),
    ],
)
def test_value_types(dtype, make, values):
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: (dtype, [6])})
    out = read(request([{FID: coo([[4], [1]], make(values), [6])}]))
    check(out["sparse_tensors"][KEY], 1, [6], [(0, (4,), values[0]), (0, (1,), values[1])], dtype.as_numpy_dtype)


def test_common_features_fallback_and_keras_model():
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: (tf.float64, [2, 2])})
    inp = keras.Input((), dtype="string")
    spec = read.compute_output_spec(inp)["sparse_tensors"][KEY]
    assert spec.sparse and spec.shape == (None, 2, 2) and spec.dtype == "float64"
    model = keras.Model(inp, read(inp))
    out = model(request(
        [{}, {FID: coo([[1, 1]], doubles([5.0]), [2, 2])}, {}],
        common={FID: coo([[0, 1], [1, 0]], doubles([1.0, 2.0]), [2, 2])},
    ))
    check(out["sparse_tensors"][KEY], 3, [2, 2],
          [(0, (0, 1), 1.0), (0, (1, 0), 2.0), (1, (1, 1), 5.0), (2, (0, 1), 1.0), (2, (1, 0), 2.0)], np.float64)


def test_older_idl_indices():
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: (tf.float32, [2, 3])})
    out = read(request([{FID: old_coo([[1, 2], [0, 0]], doubles([4.0, 5.0]), [2, 3])}, {}]))
    check(out["sparse_tensors"][KEY], 2, [2, 3], [(0, (1, 2), 4.0), (0, (0, 0), 5.0)], np.float32)


def test_run_time_errors_name_feature_and_record():
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={KEY: (tf.int64, [3])})
    # Another element type than declared.
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"sparse tensor .+{KEY}.+ is declared int64 \\[3\\]; record 1 sends values of type \"float64\""):
        read(request([{}, {FID: coo([[0]], doubles([1.0]), [3])}]))
    # Another dense shape than declared.
    with pytest.raises(tf.errors.InvalidArgumentError, match="declared int64 \\[3\\]; record 0 has denseShape \\[4\\]"):
        read(request([{FID: coo([[0]], T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=[1])), [4])}]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="declared int64 \\[3\\]; record 0 has denseShape \\[3 1\\]"):
        read(request([{FID: coo([[0, 0]], T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=[1])), [3, 1])}]))
    # An index out of its dense shape.
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"record 1.*sparseTensors\\[{FID}\\].*index 3 along dimension 0"):
        read(request([{}, {FID: coo([[3]], T.GeneralTensor(int64Tensor=T.Int64Tensor(longs=[1])), [3])}]))


def test_construction_checks_and_config(tmp_path):
    with pytest.raises(TypeError, match="sparse_tensors\\['e'\\] must be \\(dtype, shape\\)"):
        bpr_ops.BatchPredictionRequestReader(sparse_tensors={"e": tf.float32})
    with pytest.raises(TypeError, match="sparse_tensors\\['e'\\] has dtype string"):
        bpr_ops.BatchPredictionRequestReader(sparse_tensors={"e": (tf.string, [1])})
    with pytest.raises(ValueError, match="has shape \\[\\]; a sparse tensor has rank 1"):
        bpr_ops.BatchPredictionRequestReader(sparse_tensors={"e": (tf.float32, [])})
    with pytest.raises(ValueError, match="'e' in sparse_tensors is feature id .* which tensors \\('e'\\) already reads"):
        bpr_ops.BatchPredictionRequestReader(tensors={"e": (tf.float32, [1])}, sparse_tensors={"e": (tf.float32, [1])})
    with pytest.raises(ValueError, match="which continuous"):
        bpr_ops.BatchPredictionRequestReader(continuous=["e"], sparse_tensors={"e": (tf.float32, [1])})
    read = bpr_ops.BatchPredictionRequestReader(sparse_tensors={"e": (tf.float32, [2, 2]), 7: ("int64", [9])})
    config = read.get_config()
    assert config["sparse_tensors"] == {"e": ("float32", [2, 2]), 7: ("int64", [9])}
    again = bpr_ops.BatchPredictionRequestReader.from_config(config)
    assert again.get_config()["sparse_tensors"] == config["sparse_tensors"]
    # Saved and loaded as part of a model, it reads the same.
    inp = keras.Input((), dtype="string")
    model = keras.Model(inp, read(inp))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    fid_e = bpr_ops.feature_id("e")
    out = loaded(request([{fid_e: coo([[1, 0]], doubles([3.0]), [2, 2])}]))
    check(out["sparse_tensors"]["e"], 1, [2, 2], [(0, (1, 0), 3.0)], np.float32)


def test_training_dataset_reads_sparse_tensors(tmp_path):
    records = [
        ser(IDL.data.DataRecord(sparseTensors={FID: coo([[2]], doubles([0.25]), [4])})),
        ser(IDL.data.DataRecord()),
        ser(IDL.data.DataRecord(sparseTensors={FID: old_coo([[0], [3]], doubles([1.0, 2.0]), [4])})),
    ]
    path = tmp_path / "part-0.block"
    data.write_block_format(str(path), records, compression="")
    ds = data.training_dataset([str(path)], {"sparse_tensors": {KEY: (tf.float32, [4])}}, batch_size=3)
    (x, _, _), = list(ds)
    check(x["sparse_tensors"][KEY], 3, [4], [(0, (2,), 0.25), (2, (0,), 1.0), (2, (3,), 2.0)], np.float32)


def test_tf_keras_layer_gives_the_sparse_tensor():
    tf_keras = pytest.importorskip("tf_keras")
    from bpr_ops.tf_keras_layers import BatchPredictionRequestReader

    read = BatchPredictionRequestReader(sparse_tensors={KEY: (tf.float64, [3])})
    inp = tf_keras.Input((), dtype="string")
    model = tf_keras.Model(inp, read(inp)["sparse_tensors"][KEY])
    check(model(request([{}, {FID: coo([[2]], doubles([6.0]), [3])}])), 2, [3], [(1, (2,), 6.0)], np.float64)

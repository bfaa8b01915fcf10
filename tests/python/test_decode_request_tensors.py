"""bpr-decode --request (and bpr_ops.decode.decode_request) shows tensors and
sparseTensors of a request's records and commonFeatures; block files of
records show them through the same record printer. Requests are written by
thriftpy2 from thrift/ (COOSparseTensor.indices an Int64Tensor, what twml
sends) and from the older form of this repository's IDL (a GeneralTensor);
expected values are the ones put in."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

import bpr_ops
from bpr_ops import data
from bpr_ops.decode import decode_request
from thrift_check import IDL, OLD_SPARSE as OLD, serialize as ser

T = IDL.data.tensor
DT = T.DataType
G = T.GeneralTensor
PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]


def raw(dtype, content, shape=None):
    return G(rawTypedTensor=T.RawTypedTensor(dataType=dtype, content=content, shape=shape))


# Every GeneralTensor member, and a rawTypedTensor of every DataType: (tensor, expected array).
TENSORS = {
    1: (G(floatTensor=T.FloatTensor(floats=[0.25, -1.0], shape=[2])), np.array([0.25, -1.0])),
    2: (G(doubleTensor=T.DoubleTensor(doubles=[1e300], shape=[1, 1])), np.array([[1e300]])),
    3: (G(int32Tensor=T.Int32Tensor(ints=[-1, 2, 3, 4, 5, 6], shape=[2, 3])), np.array([[-1, 2, 3], [4, 5, 6]], np.int32)),
    4: (G(int64Tensor=T.Int64Tensor(longs=[2**40, -(2**63)])), np.array([2**40, -(2**63)], np.int64)),
    5: (G(boolTensor=T.BoolTensor(booleans=[True, False, True])), np.array([True, False, True])),
    6: (G(stringTensor=T.StringTensor(strings=["a", "é"], shape=[2])), np.array(["a".encode(), "é".encode()], object)),
    7: (G(binaryTensor=T.BinaryTensor(binaries=[b"\x00\xff"])), np.array([b"\x00\xff"], object)),
    8: (raw(DT.FLOAT, struct.pack("<3f", 1.5, 2, -3), [3, 1]), np.array([[1.5], [2], [-3]], np.float32)),
    9: (raw(DT.DOUBLE, struct.pack("<d", -0.5)), np.array([-0.5])),
    10: (raw(DT.INT32, struct.pack("<2i", 7, -7)), np.array([7, -7], np.int32)),
    11: (raw(DT.INT64, struct.pack("<q", -(2**62))), np.array([-(2**62)], np.int64)),
    12: (raw(DT.UINT8, b"\x00\x80\xff"), np.array([0, 128, 255], np.uint8)),
    13: (raw(DT.STRING, struct.pack(">i", 2) + b"hi" + struct.pack(">i", 0)), np.array([b"hi", b""], object)),
    14: (raw(DT.BYTE, b"\x80\x7f"), np.array([-128, 127], np.int8)),
    15: (raw(DT.BOOL, b"\x01\x00"), np.array([True, False])),
}


def coo(points, values, dense_shape, old=False):
    """values at points ([n][rank]); indices [rank, n] on the wire."""
    idx = np.asarray(points, np.int64).reshape(len(points), len(dense_shape)).T
    longs = T.Int64Tensor(longs=idx.reshape(-1).tolist(), shape=list(idx.shape))
    if old:
        c = OLD.OldCOOSparseTensor(denseShape=dense_shape, indices=G(int64Tensor=longs), values=values)
        return OLD.OldSparseTensor(cooSparseTensor=c)
    return T.SparseTensor(cooSparseTensor=T.COOSparseTensor(denseShape=dense_shape, indices=longs, values=values))


def request_bytes() -> bytes:
    rec0 = IDL.data.DataRecord(
        continuousFeatures={100: 0.5},
        tensors={k: t for k, (t, _) in TENSORS.items()},
        sparseTensors={20: coo([[1, 2], [0, 0]], G(doubleTensor=T.DoubleTensor(doubles=[3.0, 4.0])), [2, 3])},
    )
    rec1 = IDL.data.DataRecord(sparseTensors={21: coo([[4]], raw(DT.INT64, struct.pack("<q", 9)), [5])})
    common = IDL.data.DataRecord(tensors={30: G(int64Tensor=T.Int64Tensor(longs=[1, 2]))},
                                 sparseTensors={31: coo([], G(floatTensor=T.FloatTensor(floats=[])), [4])})
    return ser(IDL.BatchPredictionRequest(individualFeaturesList=[rec0, rec1], commonFeatures=common))


def assert_array(have, want, what):
    assert isinstance(have, np.ndarray), what
    assert (have.dtype, have.shape, have.tolist()) == (want.dtype, want.shape, want.tolist()), what


def test_decode_request_every_tensor_and_sparse_tensor():
    records, common, skipped = decode_request(request_bytes())
    assert skipped == {} and len(records) == 2
    tensors = records[0]["tensors"]
    assert sorted(tensors) == sorted(TENSORS)
    for k, (_, want) in TENSORS.items():
        assert_array(tensors[k], want, k)
    assert records[0]["continuousFeatures"] == {100: 0.5}
    sp = records[0]["sparseTensors"][20]
    assert sp.dense_shape == (2, 3)
    # [n, rank]: TF's layout, value j at indices[j].
    assert_array(sp.indices, np.array([[1, 2], [0, 0]], np.int64), "indices")
    assert_array(sp.values, np.array([3.0, 4.0]), "values")
    sp = records[1]["sparseTensors"][21]
    assert (sp.dense_shape, sp.indices.tolist(), sp.values.tolist()) == ((5,), [[4]], [9])
    assert_array(common["tensors"][30], np.array([1, 2], np.int64), "common")
    sp = common["sparseTensors"][31]
    assert (sp.dense_shape, sp.indices.shape, sp.values.size) == ((4,), (0, 1), 0)


def test_older_idl_indices_decode_the_same():
    old = ser(OLD.OldRequest(individualFeaturesList=[OLD.OldRecord(sparseTensors={
        20: coo([[1, 2], [0, 0]], G(doubleTensor=T.DoubleTensor(doubles=[3.0, 4.0])), [2, 3], old=True)})]))
    records, common, _ = decode_request(old)
    assert common is None
    sp = records[0]["sparseTensors"][20]
    assert (sp.indices.tolist(), sp.values.tolist(), sp.dense_shape) == ([[1, 2], [0, 0]], [3.0, 4.0], (2, 3))


def test_indices_that_do_not_place_the_values_are_an_error():
    bad = T.SparseTensor(cooSparseTensor=T.COOSparseTensor(
        denseShape=[2, 3], indices=T.Int64Tensor(longs=[0, 1, 2], shape=[3]),
        values=G(doubleTensor=T.DoubleTensor(doubles=[1.0]))))
    req = ser(IDL.BatchPredictionRequest(individualFeaturesList=[IDL.data.DataRecord(sparseTensors={5: bad})]))
    try:
        decode_request(req)
    except bpr_ops.DecodeError as e:
        assert "record 0.sparseTensors" in str(e) and "expected int64 [2, 1]" in str(e), str(e)
    else:
        raise AssertionError("no error")


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "bpr_ops", *map(str, args)], capture_output=True, text=True, env=env)


def test_cli_request_table_and_json(tmp_path):
    path = tmp_path / "request.bin"
    path.write_bytes(request_bytes())
    done = run("decode", "--request", path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[0] == "common" and lines[2].split()[0] == "0" and lines[3].split()[0] == "1"
    assert lines[-1] == "(2 records)"
    for cell in ("int64[2] [1 2]", "sparse[4] float64[0] [] at int64[0, 1] []"):
        assert cell in lines[1], lines[1]
    for cell in ("float64[2] [ 0.25 -1.  ]", "int32[2, 3] [[-1  2  3] [ 4  5  6]]", "string[2] ['a', 'é']",
                 "string[1] ['\\x00\\xff']", "string[2] ['hi', '']", "int8[2] [-128  127]", "uint8[3] [  0 128 255]",
                 "bool[3] [ True False  True]", "sparse[2, 3] float64[2] [3. 4.] at int64[2, 2] [[1 2] [0 0]]"):
        assert cell in lines[2], (cell, lines[2])
    assert "sparse[5] int64[1] [9] at int64[1, 1] [[4]]" in lines[3]
    done = run("decode", "--request", path, "--format", "json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["commonFeatures"]["30"] == {"dtype": "int64", "shape": [2], "values": [1, 2]}
    first = out["records"][0]
    assert first["3"] == {"dtype": "int32", "shape": [2, 3], "values": [-1, 2, 3, 4, 5, 6]}
    assert first["13"] == {"dtype": "object", "shape": [2], "values": ["hi", ""]}
    assert first["20"] == {
        "indices": {"dtype": "int64", "shape": [2, 2], "values": [1, 2, 0, 0]},
        "values": {"dtype": "float64", "shape": [2], "values": [3.0, 4.0]},
        "dense_shape": [2, 3],
    }
    # Without --request (issue 36: they read as a response, and the commonFeatures were dropped
    # with one note line) a request with commonFeatures is recognised by them: the same table,
    # common row included, and a note on stderr saying it was read as a request.
    plain = run("decode", path)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == run("decode", "--request", path).stdout
    assert plain.stdout.splitlines()[1].split()[0] == "common"
    assert "read as a BatchPredictionRequest" in plain.stderr


def test_cli_block_file_of_records_shows_tensors(tmp_path):
    rec = IDL.data.DataRecord(tensors={1: TENSORS[8][0]},
                              sparseTensors={2: coo([[0], [3]], G(int32Tensor=T.Int32Tensor(ints=[5, 6])), [4])})
    path = tmp_path / "part-0.block"
    data.write_block_format(str(path), [ser(rec)], compression="")
    done = run("decode", path)
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[1]
    assert "float32[3, 1] [[ 1.5] [ 2. ] [-3. ]]" in row and "sparse[4] int32[2] [5 6] at int64[2, 1] [[0] [3]]" in row, row

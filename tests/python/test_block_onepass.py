"""training_dataset's one-pass source (BlockFormatFeatureDataset, issue 38)
against the two-step path (BlockFormatBatchDataset + DecodeDataRecord and the
getter ops in a map): the same batches for every kind the reader has, labels,
weights, batch sizes and drop_remainder; exact checkpoints at every batch
boundary; the same errors. Files are written without bpr_ops (block_files:
protobuf + thriftpy2)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import block_files as bf
import bpr_ops
from bpr_ops import data, feature_id
from thrift_check import IDL


def record(i: int) -> bytes:
    """Every kind the reader reads: continuous a (all), b (odd i), label,
    weight; binary flag (even i); discrete d; string s; sparse binary sb
    (i % 3 names); sparse continuous sc (i % 4 entries, none at 0)."""
    rec = IDL.data.DataRecord(
        continuousFeatures={feature_id("a"): float(i) * 0.25, feature_id("label"): float(i % 2),
                            feature_id("weight"): float(1 + i % 3), feature_id("w2"): 0.5 + i % 2},
        discreteFeatures={feature_id("d"): i * 7},
        stringFeatures={feature_id("s"): f"v{i}"},
        sparseBinaryFeatures={feature_id("sb"): {f"n{j}" for j in range(i % 3)}} if i % 3 else None,
        sparseContinuousFeatures={feature_id("sc"): {f"k{j}": float(i + j) for j in range(i % 4)}} if i % 4 else None,
    )
    if i % 2:
        rec.continuousFeatures[feature_id("b")] = i / 2
    if i % 5 == 4:
        del rec.continuousFeatures[feature_id("label")]  # default_label
    if i % 2 == 0:
        rec.binaryFeatures = {feature_id("flag")}
    buf = TMemoryBuffer()
    rec.write(TBinaryProtocol(buf))
    return buf.getvalue()


RECORDS = [record(i) for i in range(150)]

READERS = {
    "dense kinds": dict(continuous=["a", "b"], binary=["flag"], discrete=["d"], strings=["s"], default_value=-2.0),
    "names": dict(continuous=["a", "b"], binary=["flag"], output_mode="names"),
    "sparse": dict(continuous=["a"], sparse_binary=["sb"], sparse_continuous=["sc"]),
    "hashed": dict(hashed={"continuous": ["a", "b"], "binary": ["flag"], "sparse_continuous": ["sc"]},
                   hashed_bits=12),
    "sources": dict(continuous=["a", "b"], sparse_binary=["sb"], sources=True),
}


def _write(path, content: bytes) -> str:
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("onepass")
    plain = [_write(d / "p0.block", bf.file_bytes(RECORDS[:100], 9)),
             _write(d / "p1.block", bf.file_bytes(RECORDS[100:], 16))]
    gzipped = [_write(d / "g0.gz", bf.gz(bf.file_bytes(RECORDS[:100], 9))),
               _write(d / "g1.gz", bf.gz(bf.file_bytes(RECORDS[100:], 16)))]
    return {"plain": plain, "gzip": gzipped}


def _flat(batch):
    return [t.numpy() for t in tf.nest.flatten(batch, expand_composites=True)]


def _batches(ds):
    return [_flat(b) for b in ds]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert u.dtype == v.dtype and u.shape == v.shape
            np.testing.assert_array_equal(u, v)


def _both(names, reader_args, batch_size, **kw):
    reader = bpr_ops.BatchPredictionRequestReader(**reader_args)
    one = data.training_dataset(names, reader, batch_size, **kw)
    two = data.training_dataset(names, reader, batch_size, one_pass=False, **kw)
    return one, two


@pytest.mark.parametrize("compression", ["plain", "gzip"])
@pytest.mark.parametrize("reader", sorted(READERS))
def test_same_batches_as_the_two_step_path(files, reader, compression):
    for batch_size, drop in ((1, False), (7, False), (7, True), (64, False)):
        one, two = _both(files[compression], READERS[reader], batch_size, labels=["label", "a"],
                         weights=["weight", "w2"], default_label=-1.0, drop_remainder=drop)
        got = _batches(one)
        _same(got, _batches(two))
        n = len(RECORDS) // batch_size if drop else -(-len(RECORDS) // batch_size)
        assert len(got) == n
    # No weights: ones; no labels: [B, 0].
    one, two = _both(files[compression], READERS[reader], 64)
    _same(_batches(one), _batches(two))


def test_labels_and_weights_are_the_records(files):
    """Independent of both paths: labels, default_label and the weight product."""
    one, _ = _both(files["plain"], READERS["dense kinds"], 64, labels=["label"], weights=["weight", "w2"],
                   default_label=-1.0)
    ys = np.concatenate([y.numpy() for _, y, _ in one])
    ws = np.concatenate([w.numpy() for _, _, w in one])
    want_y = np.array([[-1.0 if i % 5 == 4 else float(i % 2)] for i in range(len(RECORDS))], np.float32)
    want_w = np.array([np.float32(1 + i % 3) * np.float32(0.5 + i % 2) for i in range(len(RECORDS))], np.float32)
    np.testing.assert_array_equal(ys, want_y)
    np.testing.assert_array_equal(ws, want_w)


def _ops(ds) -> set[str]:
    """The op types of a dataset's graph and of its functions (the maps)."""
    from tensorflow.compat.v1 import GraphDef

    g = GraphDef()
    g.ParseFromString(ds._as_serialized_graph().numpy())
    return {n.op for n in g.node} | {n.op for f in g.library.function for n in f.node_def}


def test_which_path_runs(files):
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
    one = _ops(data.training_dataset(files["plain"], reader, 8))
    assert "BlockFormatFeatureDataset" in one
    assert not one & {"DecodeDataRecord", "BlockFormatBatchDataset", "BlockFormatDatasetV2"}
    two = _ops(data.training_dataset(files["plain"], reader, 8, one_pass=False))
    assert {"BlockFormatBatchDataset", "DecodeDataRecord"} <= two and "BlockFormatFeatureDataset" not in two
    # Records moved one by one (shuffle, interleave) are read the two-step way.
    for kw in (dict(shuffle_buffer=10), dict(num_parallel_reads=2)):
        ops = _ops(data.training_dataset(files["plain"], reader, 8, **kw))
        assert "BlockFormatFeatureDataset" not in ops and "DecodeDataRecord" in ops, kw


def _drain(it, cap=200):
    out = []
    for _ in range(cap):
        try:
            out.append(_flat(next(it)))
        except StopIteration:
            return out
    pytest.fail("no end")


@pytest.mark.parametrize("compression", ["plain", "gzip"])
def test_checkpoint_at_every_batch_boundary(files, tmp_path, compression):
    reader = bpr_ops.BatchPredictionRequestReader(**READERS["sparse"])
    ds = data.training_dataset(files[compression], reader, 16, labels=["label"])
    full = _batches(ds)
    for k in range(len(full) + 1):
        it = iter(ds)
        for _ in range(k):
            next(it)
        path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / f"ck{compression}{k}"))
        it2 = iter(ds)
        next(it2)  # elsewhere first: the restore must move it
        tf.train.Checkpoint(iterator=it2).restore(path).assert_consumed()
        _same(_drain(it2), full[k:])


# ---- errors -------------------------------------------------------------------

GOOD = RECORDS[:7]


def _messages_and_rest(ds, cap=100):
    """The errors' messages (without the op's name) and the good batches."""
    errors, batches = [], []
    it = iter(ds)
    for _ in range(cap):
        try:
            batches.append(_flat(next(it)))
        except StopIteration:
            return errors, batches
        except tf.errors.OpError as e:
            msg = e.message
            for op in ("BlockFormatFeatureDataset: ", "BlockFormatBatchDataset: "):
                msg = msg.replace(op, "")
            errors.append((type(e), msg.split("\n")[0]))
    pytest.fail("no end")


def _damaged(tmp_path, gzipped):
    content = bf.file_bytes(RECORDS[20:32], 4)
    cut = content.index(RECORDS[26]) + 5  # inside record 2 of the second block
    garbage = bf.block([RECORDS[40], b"\x0b\x00\x01garbage", RECORDS[41]]) + bf.block(RECORDS[42:45])
    good = bf.file_bytes(GOOD, 3)
    wrap = bf.gz if gzipped else (lambda b: b)
    ext = ".gz" if gzipped else ".block"
    return [_write(tmp_path / f"cut{ext}", wrap(content[:cut])),
            str(tmp_path / f"missing{ext}"),
            _write(tmp_path / f"garbage{ext}", wrap(garbage)),
            _write(tmp_path / f"good{ext}", wrap(good))]


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_same_errors_and_ignore_errors(tmp_path, gzipped):
    names = _damaged(tmp_path, gzipped)
    args = dict(continuous=["a", "b"], sparse_continuous=["sc"])
    for batch_size in (1, 3, 5):
        one, two = _both(names, args, batch_size, labels=["label"], check_records=0, ignore_errors=True)
        got = _batches(one)
        _same(got, _batches(two))
        # 6 records before the cut, 5 good ones around the garbage, 7 after.
        assert sum(b[0].shape[0] for b in got) == 6 + 5 + 7
    # Without ignore_errors: the first error of each path is the same.
    one, two = _both(names, args, 3, labels=["label"], check_records=0)
    e1, _ = _messages_and_rest(one)
    e2, _ = _messages_and_rest(two)
    assert e1[0] == e2[0]
    assert "block file" in e1[0][1] and "at byte" in e1[0][1]


def test_record_that_is_not_a_datarecord_named_and_only_it_skipped(tmp_path):
    bad = _write(tmp_path / "bad.block", bf.block([RECORDS[0], b"\x0b\x00\x01garbage", RECORDS[1]])
                 + bf.block(RECORDS[2:4]))
    good = _write(tmp_path / "good.block", bf.file_bytes(GOOD, 3))
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
    for batch_size in (2, 3):
        errors, batches = _messages_and_rest(data.training_dataset([bad, good], reader, batch_size,
                                                                   check_records=0))
        assert len(errors) == 1
        assert errors[0][0] is tf.errors.InvalidArgumentError
        assert ("record 1 of the block at byte 0 is not a Thrift-binary DataRecord" in errors[0][1]
                and bad in errors[0][1])
        a = np.concatenate([b[0][:, 0] for b in batches])
        np.testing.assert_array_equal(a, [0.25 * i for i in range(4)] + [0.25 * i for i in range(7)])


def test_checkpoint_after_a_bad_record_keeps_the_batch_in_progress(tmp_path):
    bad = _write(tmp_path / "bad.block", bf.block([RECORDS[0], b"\x0b\x00", RECORDS[1], RECORDS[2]]))
    good = _write(tmp_path / "good.block", bf.file_bytes(GOOD, 3))
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
    ds = data.training_dataset([bad, good], reader, 4, check_records=0)
    it = iter(ds)
    with pytest.raises(tf.errors.InvalidArgumentError):
        next(it)
    path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / "ck"))
    rest = _drain(it)
    a = np.concatenate([b[0][:, 0] for b in rest])
    np.testing.assert_array_equal(a, [0.0, 0.25, 0.5] + [0.25 * i for i in range(7)])
    it2 = iter(ds)
    tf.train.Checkpoint(iterator=it2).restore(path).assert_consumed()
    _same(_drain(it2), rest)


def test_bad_plan_is_refused(files):
    lib = bpr_ops._loader.load_library()
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match="plan"):
        ds = lib.block_format_feature_dataset(
            filenames=files["plain"], compression_type="", buffer_size=0, batch_size=4, drop_remainder=False,
            plan="GetBinaryFeatures\t3", output_types=[tf.int64], output_shapes=[[None]])
        tf.raw_ops.DatasetCardinality(input_dataset=ds)
    # output_types that are not the getters' outputs.
    with pytest.raises(tf.errors.InvalidArgumentError, match="output_types"):
        lib.block_format_feature_dataset(
            filenames=files["plain"], compression_type="", buffer_size=0, batch_size=4, drop_remainder=False,
            plan="DecodeDataRecord\t0\tkeep_features=l:\tkeep_codes=l:\tlabel_features=l:\tweight_features=l:\n"
                 "GetBatchSizeFromDataRecord\t1",
            output_types=[tf.float32], output_shapes=[[]])

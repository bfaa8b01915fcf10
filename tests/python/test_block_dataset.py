"""BlockFormatDatasetV2 / bpr_ops.data.BlockFormatDataset: files written by an
independent writer (protobuf + thriftpy2, block_files.py) read back record for
record, plain and gzip, local and ram://; checkpoints mid-block and mid-file;
interleave, shard, prefetch; a twml-style GraphDef; bad input as errors that
name the file, the offset and what was expected."""

from __future__ import annotations

import gzip
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

import block_files as bf
from bpr_ops import data
from bpr_ops._loader import load_library

RECORDS = [bf.data_record(i) for i in range(53)]


def _write(path: str, content: bytes) -> str:
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)
    return path


def _files(where, n_files=3, per_block=5, gzipped=False):
    """n_files files splitting RECORDS, in order; returns (names, records per file)."""
    parts = np.array_split(np.arange(len(RECORDS)), n_files)
    names, per_file = [], []
    base = f"ram://{uuid.uuid4().hex}" if where == "ram" else str(where)
    for k, idx in enumerate(parts):
        recs = [RECORDS[i] for i in idx]
        content = bf.file_bytes(recs, per_block)
        suffix = ".gz" if gzipped else ".block"
        names.append(_write(f"{base}/part-{k}{suffix}", bf.gz(content) if gzipped else content))
        per_file.append(recs)
    return names, per_file


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("where", ["local", "ram"])
def test_reads_independent_files_record_for_record(tmp_path, where, gzipped):
    names, _ = _files(tmp_path if where == "local" else "ram", gzipped=gzipped)
    got = [r.numpy() for r in data.BlockFormatDataset(names)]
    assert got == RECORDS
    # twml's explicit names, and a scalar filename
    compression = "gz" if gzipped else ""
    got = [r.numpy() for r in data.BlockFormatDataset(names, compression_type=compression, buffer_size=1000)]
    assert got == RECORDS
    first = [r.numpy() for r in data.BlockFormatDataset(names[0], compression_type=compression)]
    assert first == RECORDS[: len(first)] and len(first) == 18


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("where", ["local", "ram"])
def test_batched_source_gives_exactly_batchs_elements(tmp_path, where, gzipped):
    """batch_size= reads through our BlockFormatBatchDataset op and must give
    the elements .batch() gives on the record dataset: batch sizes that divide
    the 18/18/17-record files, that run across their ends, of one record, of
    all of them and more, with and without drop_remainder."""
    names, _ = _files(tmp_path if where == "local" else "ram", gzipped=gzipped)
    for b in (1, 4, 5, 17, 18, 19, 36, 53, 60):
        for drop in (False, True):
            ours = data.BlockFormatDataset(names, batch_size=b, drop_remainder=drop)
            ops = bf.dataset_ops(ours)
            assert "BlockFormatBatchDataset" in ops and "BatchDatasetV2" not in ops, ops
            theirs = data.BlockFormatDataset(names).batch(b, drop_remainder=drop)
            assert ours.element_spec == theirs.element_spec, (b, drop)
            got = [x.numpy().tolist() for x in ours]
            assert got == [x.numpy().tolist() for x in theirs], (b, drop)
            # and by the independent writer's records, not only by .batch()
            kept = len(RECORDS) - (len(RECORDS) % b if drop else 0)
            assert [r for x in got for r in x] == RECORDS[:kept], (b, drop)
            assert all(len(x) == b for x in got[:-1]) and (not got or 0 < len(got[-1]) <= b)
    # num_parallel_reads > 1: batches of the interleaved records, as .batch() makes them
    inter = data.BlockFormatDataset(names, num_parallel_reads=3, batch_size=4)
    assert [x.numpy().tolist() for x in inter] == [
        x.numpy().tolist() for x in data.BlockFormatDataset(names, num_parallel_reads=3).batch(4)]


def test_batched_source_arguments_are_checked(tmp_path):
    lib = load_library()
    p = _write(str(tmp_path / "a.block"), bf.file_bytes(RECORDS[:3], 2))
    for bad in (0, -1):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"BlockFormatBatchDataset: batch_size must be >= 1, got {bad}"):
            lib.block_format_batch_dataset(filenames=[p], compression_type="", buffer_size=0,
                                           batch_size=bad, drop_remainder=False)
        with pytest.raises(ValueError, match="batch_size must be None or an int >= 1"):
            data.BlockFormatDataset([p], batch_size=bad)
    with pytest.raises(ValueError, match="drop_remainder=True needs a batch_size"):
        data.BlockFormatDataset([p], drop_remainder=True)
    with pytest.raises(ValueError, match="batch_size must be None or an int >= 1"):
        data.BlockFormatDataset([p], batch_size=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="BlockFormatBatchDataset: unknown compression_type 'zip'"):
        lib.block_format_batch_dataset(filenames=[p], compression_type="zip", buffer_size=0,
                                       batch_size=2, drop_remainder=False)
    # a batch size far beyond the records: one batch of what there is, as .batch() (no
    # allocation of batch_size strings up front)
    huge = 1 << 40
    assert [x.numpy().tolist() for x in data.BlockFormatDataset([p], batch_size=huge)] == [RECORDS[:3]]
    assert list(data.BlockFormatDataset([p], batch_size=huge, drop_remainder=True)) == []
    assert data.BlockFormatDataset([p], batch_size=2, drop_remainder=True).element_spec.shape == [2]
    assert data.BlockFormatDataset([p], batch_size=2).element_spec.shape.as_list() == [None]


def test_op_interface_is_twmls():
    from tensorflow.python.framework import op_def_registry

    load_library()
    op = op_def_registry.get("BlockFormatDatasetV2")
    assert [(a.name, tf.as_dtype(a.type).name) for a in op.input_arg] == [
        ("filenames", "string"), ("compression_type", "string"), ("buffer_size", "int64")]
    assert [(a.name, tf.as_dtype(a.type).name) for a in op.output_arg] == [("handle", "variant")]
    assert op.is_stateful


def test_python_writer_output_parses_with_protobuf(tmp_path):
    p = str(tmp_path / "w.block")
    assert data.write_block_format(p, RECORDS, records_per_block=7) == len(RECORDS)
    raw = open(p, "rb").read()
    assert bf.parse_file(raw) == RECORDS
    assert raw == bf.file_bytes(RECORDS, 7)  # the same layout as protobuf's
    pg = str(tmp_path / "w.gz")
    data.write_block_format(pg, RECORDS[:10], records_per_block=3)
    assert bf.parse_file(gzip.decompress(open(pg, "rb").read())) == RECORDS[:10]
    with pytest.raises(ValueError, match="records_per_block must be an int >= 1"):
        data.write_block_format(p, RECORDS, records_per_block=0)


def test_compression_names_are_twmls(tmp_path):
    lib = load_library()
    for bad in ["zlib", "none", "gzip", "GZ", "AUTO"]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"unknown compression_type '{bad}'"):
            lib.block_format_dataset_v2(filenames=["x"], compression_type=bad, buffer_size=0)
        with pytest.raises(ValueError, match="compression_type must be one of"):
            data.BlockFormatDataset(["x"], compression_type=bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="buffer_size must be >= 0"):
        lib.block_format_dataset_v2(filenames=["x"], compression_type="", buffer_size=-1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"filenames\[0\] is empty"):
        lib.block_format_dataset_v2(filenames=[""], compression_type="", buffer_size=0)
    # auto: ".gz" is gzip, anything else plain; buffer 0 is the default, not "read nothing"
    plain = _write(str(tmp_path / "noext"), bf.file_bytes(RECORDS[:4], 2))
    gzf = _write(str(tmp_path / "x.gz"), bf.gz(bf.file_bytes(RECORDS[4:9], 2)))
    got = [r.numpy() for r in data.BlockFormatDataset([plain, gzf], buffer_size=0)]
    assert got == RECORDS[:9]


def _checkpoint_case(tmp_path, names, expected, k, batch_size=None):
    """k elements (records, or batches of batch_size), a checkpoint, the rest;
    a second iterator restored from it must give exactly the rest."""
    ds = data.BlockFormatDataset(names, batch_size=batch_size).prefetch(0)
    it = iter(ds)
    head = [next(it).numpy() for _ in range(k)]
    ckpt = tf.train.Checkpoint(iterator=it)
    path = ckpt.save(str(tmp_path / f"ckpt{k}"))
    rest = [r.numpy() for r in it]
    flat = (lambda xs: xs) if batch_size is None else (lambda xs: [r for x in xs for r in x.tolist()])
    assert flat(head) + flat(rest) == expected
    it2 = iter(ds)
    next(it2)  # somewhere else first: the restore must move it
    tf.train.Checkpoint(iterator=it2).restore(path).assert_consumed()
    assert flat([r.numpy() for r in it2]) == flat(rest), f"after {k} elements"


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_checkpoint_restores_at_the_exact_next_record(tmp_path, gzipped):
    names, per_file = _files(tmp_path, per_block=5, gzipped=gzipped)
    n0 = len(per_file[0])
    # mid-block, end of a block, mid-file (second block), end of a file, in
    # the second file, the last record, before the first
    for k in [0, 3, 5, 7, n0, n0 + 6, len(RECORDS) - 1, len(RECORDS)]:
        _checkpoint_case(tmp_path, names, RECORDS, k)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_batched_checkpoint_restores_at_the_exact_next_batch(tmp_path, gzipped):
    """BlockFormatBatchDataset: batches of 4 (blocks of 5: batches end mid-block)
    and of 7 (batches run across file ends, 18 records per file)."""
    names, _ = _files(tmp_path, per_block=5, gzipped=gzipped)
    for b in (4, 7):
        batches = -(-len(RECORDS) // b)
        for k in range(batches + 1):
            _checkpoint_case(tmp_path, names, RECORDS, k, batch_size=b)


def test_checkpoint_of_a_changed_file_is_an_error_not_a_skip(tmp_path):
    p = _write(str(tmp_path / "c.block"), bf.file_bytes(RECORDS[:10], 5))
    it = iter(data.BlockFormatDataset([p]))
    for _ in range(7):
        next(it)
    path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / "ck"))
    _write(p, bf.file_bytes(RECORDS[:3], 5))  # the file shrank
    it2 = iter(data.BlockFormatDataset([p]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="checkpoint expects the block at byte"):
        tf.train.Checkpoint(iterator=it2).restore(path)
        next(it2)


def test_interleave_shard_prefetch(tmp_path):
    names, per_file = _files(tmp_path, n_files=4, per_block=3)
    files = tf.data.Dataset.from_tensor_slices(names)
    got = []
    for i in range(2):
        shard = files.shard(2, i).interleave(
            lambda f: data.BlockFormatDataset(f), cycle_length=2, num_parallel_calls=2
        ).prefetch(4)
        got.extend(r.numpy() for r in shard)
    assert sorted(got) == sorted(RECORDS) and len(got) == len(RECORDS)
    # num_parallel_reads: deterministic interleave, one record of each file in turn
    inter = [r.numpy() for r in data.BlockFormatDataset(names, num_parallel_reads=4)]
    expected = [f[j] for j in range(max(map(len, per_file))) for f in per_file if j < len(f)]
    assert inter == expected
    # record-level shard of one file
    one = [r.numpy() for r in data.BlockFormatDataset(names).shard(3, 1)]
    assert one == RECORDS[1::3]


def test_twml_exported_graph_runs_unchanged(tmp_path):
    """A GraphDef as twml's data_record_input_fn leaves it: Const inputs, a
    BlockFormatDatasetV2 node, an IteratorV2 made and read in a v1 Session."""
    names, _ = _files(tmp_path, per_block=4, gzipped=True)
    g = tf.compat.v1.GraphDef()

    def const(name, value, dtype):
        n = g.node.add(name=name, op="Const")
        n.attr["dtype"].type = dtype.as_datatype_enum
        n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, dtype=dtype))

    const("filenames", names, tf.string)
    const("compression_type", "auto", tf.string)
    const("buffer_size", 1 << 20, tf.int64)
    ds = g.node.add(name="BlockFormatDatasetV2", op="BlockFormatDatasetV2",
                    input=["filenames", "compression_type", "buffer_size"])
    assert ds.op == "BlockFormatDatasetV2"
    it = g.node.add(name="Iterator", op="IteratorV2")
    it.attr["shared_name"].s = b""
    it.attr["container"].s = b""
    for n in (it,):
        n.attr["output_types"].list.type.append(tf.string.as_datatype_enum)
        n.attr["output_shapes"].list.shape.add()
    g.node.add(name="MakeIterator", op="MakeIterator", input=["BlockFormatDatasetV2", "Iterator"])
    nxt = g.node.add(name="IteratorGetNext", op="IteratorGetNext", input=["Iterator"])
    nxt.attr["output_types"].list.type.append(tf.string.as_datatype_enum)
    nxt.attr["output_shapes"].list.shape.add()
    load_library()
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(g, name="")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(graph.get_operation_by_name("MakeIterator"))
            out = graph.get_tensor_by_name("IteratorGetNext:0")
            got = []
            while True:
                try:
                    got.append(sess.run(out))
                except tf.errors.OutOfRangeError:
                    break
    assert got == RECORDS


# ---- bad input ----------------------------------------------------------

GOOD = bf.block(RECORDS[:2]) + bf.block(RECORDS[2:4])
N1 = len(bf.block(RECORDS[:2]))


def _size(b: bytes, size: int) -> bytes:
    return b[:16] + size.to_bytes(4, "little", signed=True) + b[20:]


def _over_long_varint():
    # version, then a record whose length varint has 11 bytes
    body = b"\x08\x01" + b"\x1a" + b"\x80" * 10 + b"\x00"
    return bf.MARKER + len(body).to_bytes(4, "little") + body


BAD = {
    "not block format": (b"PAR1 this is not a block file at all", "at byte 0: expected the 16-byte block marker"),
    "junk between blocks": (GOOD[:N1] + b"\x00" + GOOD[N1:], f"at byte {N1}: expected the 16-byte block marker"),
    "corrupt marker": (GOOD[:N1 + 3] + b"\x00" + GOOD[N1 + 4 :], f"at byte {N1}: expected the 16-byte block marker"),
    "truncated block": (GOOD[: N1 + 80], "the file ends inside record 0 of the block at byte"),
    "truncated marker": (GOOD[: N1 + 7], f"at byte {N1}: the file ends 7 bytes into a block marker"),
    "wrong version": (bf.block(RECORDS[:1], version=2), "at byte 20: block at byte 0 has version 2; expected version 1"),
    "no version": (bf.block(RECORDS[:1], version=None), "a record before the version"),
    "over-long varint": (_over_long_varint(), "at byte 23: record 0 (field 3) of the block at byte 0: a varint over 64 bits"),
    "block size larger than the file": (_size(GOOD[:N1], 1 << 30), "the file ends inside"),
    "block size 0": (_size(GOOD, 0), "at byte 16: block size 0: expected a positive"),
    "record size larger than the block": (
        bf.MARKER + (5).to_bytes(4, "little") + b"\x08\x01\x1a\x7f\x00",
        "record 0 (field 3) of the block at byte 0 has length 127, but its block (at byte 0) has 1 bytes left"),
    "record not a DataRecord": (bf.block([RECORDS[0], b"\x0b\x00\x01garbage"]),
                                "record 1 of the block at byte 0 is not a Thrift-binary DataRecord"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_an_error_naming_file_offset_and_expectation(tmp_path, case):
    content, expected = BAD[case]
    p = _write(str(tmp_path / "bad.block"), content)
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        list(data.BlockFormatDataset([p]))
    msg = str(e.value)
    assert f"BlockFormatDatasetV2: block file {p}: at byte " in msg, msg
    assert expected in msg, msg
    # the records before the damage were delivered, and nothing after
    got = []
    it = iter(data.BlockFormatDataset([p]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        while True:
            got.append(next(it).numpy())
    assert got == RECORDS[: len(got)]
    # Batched (BlockFormatBatchDataset): the same error under its name, after
    # the full batches before the damage; the records of the batch it cuts
    # short stay for the next call (test_block_errors.py).
    for b in (1, 3):
        it = iter(data.BlockFormatDataset([p], batch_size=b))
        batches = []
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            while True:
                batches.append(next(it).numpy().tolist())
        msg = str(e.value)
        assert f"BlockFormatBatchDataset: block file {p}: at byte " in msg and expected in msg, msg
        assert [r for x in batches for r in x] == got[: len(got) // b * b]


def test_missing_file_names_it(tmp_path):
    ok = _write(str(tmp_path / "ok.block"), GOOD)
    missing = str(tmp_path / "missing.block")
    it = iter(data.BlockFormatDataset([ok, missing]))
    assert [next(it).numpy() for _ in range(4)] == RECORDS[:4]
    with pytest.raises(tf.errors.NotFoundError, match=f"cannot open block file {missing} \\(file 1 of 2\\)"):
        next(it)


def test_corrupt_and_truncated_gzip_are_errors(tmp_path):
    z = bf.gz(GOOD * 20)
    truncated = _write(str(tmp_path / "t.gz"), z[: len(z) // 2])
    with pytest.raises(tf.errors.OpError) as e:
        list(data.BlockFormatDataset([truncated]))
    assert truncated in str(e.value), str(e.value)
    corrupt = bytearray(z)
    corrupt[len(z) // 2] ^= 0xFF
    corrupt[len(z) // 2 + 1] ^= 0xFF
    cp = _write(str(tmp_path / "c.gz"), bytes(corrupt))
    with pytest.raises(tf.errors.OpError) as e:
        list(data.BlockFormatDataset([cp]))
    assert cp in str(e.value), str(e.value)
    # a gzip file read as plain: the marker check says what it found
    gp = _write(str(tmp_path / "g.block"), z)
    with pytest.raises(tf.errors.InvalidArgumentError, match="found 1f 8b"):
        list(data.BlockFormatDataset([gp]))

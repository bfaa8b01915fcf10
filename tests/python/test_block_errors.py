"""Damaged block files followed by good ones (issue 36): the error comes once,
naming the file and the byte offset, and the iterator moves on, so
`ignore_errors()` delivers every good record and ends. Cuts at every kind of
position, plain and gzip, record by record and batched (`batch_size=`), and
training_dataset; checkpoints saved after an error restore the same rest; the
files the block reader is not meant for (gzip read as plain, TFRecord) are
named as what they look like.

Every loop is bounded: a call that errors returns, so the drains below count
calls. `ignore_errors()` retries inside one call, so those runs happen in a
child process under a timeout (which also sets TF_CPP_MIN_LOG_LEVEL=0, to
check that `log_warning=True` logs our message).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import block_files as bf
from bpr_ops import data, feature_id
from thrift_check import IDL

CHILD_TIMEOUT = 180  # seconds for all the ignore_errors() runs together (about 30 on a loaded 2-core machine)


def long_record(i: int) -> bytes:
    """A DataRecord (thriftpy2) of over 127 bytes, so its length varint in the
    block has two bytes to cut between; continuous a=i, label i%2."""
    rec = IDL.data.DataRecord(
        continuousFeatures={feature_id("a"): float(i), feature_id("label"): float(i % 2)},
        stringFeatures={feature_id("s"): "x" * 150},
    )
    buf = TMemoryBuffer()
    rec.write(TBinaryProtocol(buf))
    return buf.getvalue()


RECS = [long_record(i) for i in range(10)]  # the damaged file's: blocks of 4, 4, 2
GOOD = [long_record(100 + i) for i in range(7)]  # the good file after it
CONTENT = bf.file_bytes(RECS, 4)
N1 = len(bf.block(RECS[:4]))  # the second block's marker
BODY2 = N1 + 20  # its SerializedBlock message


def _cuts() -> dict[str, int]:
    at4 = CONTENT.index(RECS[4])  # record 0 of the second block
    assert len(RECS[4]) >= 128 and CONTENT[at4 - 3] == 0x1A, "a two-byte length varint before the record"
    class_at = CONTENT.index(bf.CLASS.encode(), BODY2)
    return {
        "first marker": 5,
        "marker": N1 + 7,
        "size": N1 + 18,
        "version": BODY2 + 1,  # after the version's tag (08), before its value
        "class name": class_at + 10,
        "record length varint": at4 - 1,
        "record bytes": CONTENT.index(RECS[5]) + 20,
        "last byte": len(CONTENT) - 1,
        "between blocks": N1,  # a file of whole blocks: no error at all
    }


CUTS = _cuts()


def _before(cut: int) -> list[bytes]:
    """The damaged file's records whose bytes all lie before the cut."""
    return [r for r in RECS if CONTENT.index(r) + len(r) <= cut]


def _write(path, content: bytes) -> str:
    with open(path, "wb") as f:
        f.write(content)
    return str(path)


def _case_files(tmp_path, name: str, cut: int, gzipped: bool) -> tuple[str, str]:
    tag = name.replace(" ", "_")
    if gzipped:
        bad = _write(tmp_path / f"{tag}.gz", bf.gz(CONTENT[:cut]))
        good = _write(tmp_path / f"good_{tag}.gz", bf.gz(bf.file_bytes(GOOD, 3)))
    else:
        bad = _write(tmp_path / f"{tag}.block", CONTENT[:cut])
        good = _write(tmp_path / f"good_{tag}.block", bf.file_bytes(GOOD, 3))
    return bad, good


def _drain(ds, cap: int = 200):
    """Every element and error of `ds`, in order: ("rec", value) or ("err",
    exception); fails if the end does not come within `cap` calls."""
    out = []
    it = iter(ds)
    for _ in range(cap):
        try:
            x = next(it)
        except StopIteration:
            return out
        except tf.errors.OpError as e:
            out.append(("err", e))
            continue
        out.append(("rec", x.numpy()))
    kinds = [k for k, _ in out]
    pytest.fail(f"no end after {cap} calls (errors: {kinds.count('err')}; last: {out[-1][1]!s:.300})")


def _records(items, batched: bool) -> list[bytes]:
    vals = [v for k, v in items if k == "rec"]
    return [r for b in vals for r in b.tolist()] if batched else vals


def _errors(items):
    return [v for k, v in items if k == "err"]


# ---- without ignore_errors(): the error once, then the next file ------------


@pytest.mark.parametrize("batch_size", [None, 3], ids=["records", "batch3"])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("where", sorted(CUTS))
def test_error_once_then_the_next_file(tmp_path, where, gzipped, batch_size):
    cut = CUTS[where]
    bad, good = _case_files(tmp_path, where, cut, gzipped)
    items = _drain(data.BlockFormatDataset([bad, good], batch_size=batch_size))
    before = _before(cut)
    errs = _errors(items)
    if where == "between blocks":
        assert errs == []
    else:
        assert len(errs) == 1, errs
        msg = str(errs[0])
        assert isinstance(errs[0], tf.errors.InvalidArgumentError), msg
        op = "BlockFormatBatchDataset" if batch_size else "BlockFormatDatasetV2"
        assert f"{op}: block file {bad}: at byte " in msg, msg
    batched = batch_size is not None
    assert _records(items, batched) == before + GOOD
    if errs:
        # What came before the error is what was read before the cut: the
        # records one by one, or the full batches of them (the rest of the
        # batch in progress comes after the error, completed by the next file).
        k = [i for i, (kind, _) in enumerate(items) if kind == "err"][0]
        head = _records(items[:k], batched)
        assert head == (before if not batched else before[: len(before) // 3 * 3])
    if batched:
        sizes = [len(v) for kind, v in items if kind == "rec"]
        assert all(s == 3 for s in sizes[:-1]) and 0 < sizes[-1] <= 3, sizes


def test_error_messages_say_what_was_cut(tmp_path):
    expect = {
        "first marker": "at byte 0: the file ends 5 bytes into a block marker",
        "marker": f"at byte {N1}: the file ends 7 bytes into a block marker",
        "size": f"the file ends inside the size of the block at byte {N1}: 4 bytes expected, 2 found",
        "version": f"the file ends inside SerializedBlock.version (field 1): the block at byte {N1}",
        "class name": "the file ends inside SerializedBlock.proto_class_name (field 2)",
        "record length varint": f"the file ends inside record 0 (field 3) of the block at byte {N1}",
        "record bytes": f"the file ends inside record 1 of the block at byte {N1}",
    }
    for where, text in expect.items():
        bad, good = _case_files(tmp_path, where, CUTS[where], False)
        errs = _errors(_drain(data.BlockFormatDataset([bad, good])))
        assert len(errs) == 1 and text in str(errs[0]), (where, str(errs[0]))


def test_a_record_that_is_not_a_datarecord_skips_that_record_only(tmp_path):
    """The block around it is sound, so the reader goes on with the next record."""
    garbage = b"\x0b\x00\x01garbage"
    bad = _write(tmp_path / "bad.block", bf.block([RECS[0], garbage, RECS[1]]) + bf.block(RECS[2:4]))
    good = _write(tmp_path / "good.block", bf.file_bytes(GOOD, 3))
    for batch_size in (None, 2, 3):
        items = _drain(data.BlockFormatDataset([bad, good], batch_size=batch_size))
        errs = _errors(items)
        assert len(errs) == 1 and "record 1 of the block at byte 0 is not a Thrift-binary DataRecord" in str(errs[0])
        assert _records(items, batch_size is not None) == RECS[:4] + GOOD, batch_size


def test_missing_file_is_an_error_once_then_the_next_file(tmp_path):
    """TFRecordDataset returns a missing file's NotFound on every call (so
    its ignore_errors() never ends); ours moves on, as after any error."""
    good = _write(tmp_path / "good.block", bf.file_bytes(GOOD, 3))
    missing = str(tmp_path / "missing.block")
    items = _drain(data.BlockFormatDataset([good, missing, good]))
    errs = _errors(items)
    assert len(errs) == 1 and isinstance(errs[0], tf.errors.NotFoundError)
    assert f"cannot open block file {missing} (file 1 of 3)" in str(errs[0])
    assert _records(items, False) == GOOD + GOOD


def test_truncated_gzip_stream_is_an_error_once_then_the_next_file(tmp_path):
    """The gzip stream itself cut (not a whole stream of cut content), at
    every byte, one file per cut, read in one dataset: per file some prefix of
    the records and one error naming it, then the good file. TensorFlow's
    ZlibInputStream read a stream cut in its header, its trailer or where the
    data ended with a whole block as a shorter file, without an error."""
    z = bf.gz(CONTENT)
    good = _write(tmp_path / "good.gz", bf.gz(bf.file_bytes(GOOD, 3)))
    cuts = list(range(1, len(z)))
    bads = [_write(tmp_path / f"t{cut}.gz", z[:cut]) for cut in cuts]
    cap = len(cuts) * (len(RECS) + 1) + len(GOOD) + 2
    items = _drain(data.BlockFormatDataset(bads + [good]), cap)
    errs = _errors(items)
    assert len(errs) == len(cuts), len(errs)
    segments, seg = [], []
    for kind, v in items:
        if kind == "err":
            segments.append(seg)
            seg = []
        else:
            seg.append(v)
    assert seg == GOOD
    for cut, bad, e, got in zip(cuts, bads, errs, segments):
        assert isinstance(e, tf.errors.DataLossError) and f"reading block file {bad} failed (gzip)" in str(e), (
            cut, str(e))
        assert got == RECS[: len(got)], cut
    assert "the gzip stream is cut short: the file ends inside a gzip member" in str(errs[-1]), str(errs[-1])
    # batched: the same records (the cut batches completed by what follows)
    items = _drain(data.BlockFormatDataset(bads + [good], batch_size=3), cap)
    assert len(_errors(items)) == len(cuts)
    assert _records(items, True) == [r for g in segments for r in g] + GOOD
    # whole members, concatenated: no error, every record
    bad = _write(tmp_path / "members.gz", bf.gz(CONTENT[:N1]) + bf.gz(CONTENT[N1:]))
    assert _drain(data.BlockFormatDataset([bad, good])) == [("rec", r) for r in RECS + GOOD]


def test_tfrecord_dataset_moves_on_after_a_damaged_file_too(tmp_path):
    """The behaviour the block dataset matches: TFRecordDataset raises a cut
    file's error once and goes on with the next file."""
    with tf.io.TFRecordWriter(str(tmp_path / "good.tfrecord")) as w:
        for r in GOOD:
            w.write(r)
    raw = (tmp_path / "good.tfrecord").read_bytes()
    bad = _write(tmp_path / "bad.tfrecord", raw[: 12 + 4 + len(GOOD[0]) + 12 + 30])
    items = _drain(tf.data.TFRecordDataset([bad, str(tmp_path / "good.tfrecord")]))
    assert len(_errors(items)) == 1 and isinstance(_errors(items)[0], tf.errors.DataLossError)
    assert _records(items, False) == GOOD[:1] + GOOD


# ---- checkpoints after an error ---------------------------------------------


@pytest.mark.parametrize("batch_size", [None, 3], ids=["records", "batch3"])
@pytest.mark.parametrize("case", ["record bytes", "not a DataRecord", "missing file"])
def test_checkpoint_after_an_error_restores_the_same_rest(tmp_path, case, batch_size):
    """The rest after the error, one by one or in batches of 3: the records
    read before the error and not yet delivered (the batch in progress is in
    the checkpoint), then what follows the damage."""
    good = _write(tmp_path / "good.block", bf.file_bytes(GOOD, 3))
    batched = batch_size is not None
    if case == "record bytes":  # records 0-4 read before the cut
        files = [_write(tmp_path / "bad.block", CONTENT[: CUTS[case]]), good]
        expected = (RECS[3:5] if batched else []) + GOOD
    elif case == "not a DataRecord":  # the file goes on after the bad record
        files = [_write(tmp_path / "bad.block", bf.block([RECS[0], b"\x0b\x00", RECS[1], RECS[2]])), good]
        expected = (RECS[:3] if batched else RECS[1:3]) + GOOD
    else:  # 7 records, then the missing file
        files = [good, str(tmp_path / "missing.block"), good]
        expected = (GOOD[6:] if batched else []) + GOOD
    ds = data.BlockFormatDataset(files, batch_size=batch_size).prefetch(0)
    it = iter(ds)
    for _ in range(100):
        try:
            next(it)
        except tf.errors.OpError:
            break
    else:
        pytest.fail("no error")
    path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / "ck"))
    rest = _drain_iterator(it)
    assert (rest if not batched else [r for b in rest for r in b]) == expected
    it2 = iter(ds)
    try:
        next(it2)  # somewhere else first: the restore must move it
    except tf.errors.OpError:
        pass
    tf.train.Checkpoint(iterator=it2).restore(path).assert_consumed()
    assert _drain_iterator(it2) == rest


def _drain_iterator(it, cap: int = 100):
    out = []
    for _ in range(cap):
        try:
            x = next(it)
        except StopIteration:
            return out
        except tf.errors.OpError as e:
            pytest.fail(f"a second error: {e}")
        out.append(x.numpy() if x.shape.rank == 0 else x.numpy().tolist())
    pytest.fail(f"no end after {cap} calls")


# ---- files that are not block files -------------------------------------------


def test_gzip_read_as_plain_says_so(tmp_path):
    z = bf.gz(CONTENT)
    for name, compression in (("g.block", "auto"), ("g.gz", ""), ("g", "auto")):
        p = _write(tmp_path / name, z)
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            list(data.BlockFormatDataset([p], compression_type=compression))
        msg = str(e.value)
        assert f"block file {p}: at byte 0: expected the 16-byte block marker" in msg, msg
        assert "found 1f 8b" in msg and "looks like a gzip file: pass compression_type='gz'" in msg, msg


def test_tfrecord_given_as_a_block_file_says_so(tmp_path):
    """TFRecord files from TensorFlow's writer (plain and gzip), read as block files."""
    for compression, name in (("", "r.tfrecord"), ("GZIP", "r.tfrecord.gz")):
        p = str(tmp_path / name)
        with tf.io.TFRecordWriter(p, options=compression) as w:
            for r in RECS[:3]:
                w.write(r)
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            list(data.BlockFormatDataset([p]))
        msg = str(e.value)
        assert f"block file {p}: at byte 0:" in msg, msg
        assert "looks like a TFRecord file, not a block-format file" in msg, msg
    # and a file that is neither keeps the plain message
    p = _write(tmp_path / "junk.block", b"PAR1 this is not a block file at all")
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        list(data.BlockFormatDataset([p]))
    assert "looks like" not in str(e.value) and "damaged here" in str(e.value)


# ---- ignore_errors(): in a child process under a timeout --------------------


def _child(spec_path: str) -> None:
    """Runs each case's dataset with ignore_errors(log_warning=True); prints
    one JSON line per finished case (so a hang names the case)."""
    import itertools

    import bpr_ops

    with open(spec_path) as f:
        cases = json.load(f)
    for case in cases:
        print(json.dumps({"start": case["id"]}), flush=True)
        if case["kind"] == "records":
            ds = data.BlockFormatDataset(case["files"], batch_size=case["batch_size"])
        else:
            reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"], output_mode="names")
            ds = data.training_dataset(case["files"], reader, batch_size=4, labels=["label"],
                                       shuffle_buffer=case.get("shuffle", 0), seed=1,
                                       ignore_errors=case.get("param", False),
                                       # the label check reads the files when the dataset is
                                       # made: without ignore_errors= it meets the damage there
                                       check_records=1024 if case.get("param") else 0)
        if not case.get("param"):
            ds = ds.ignore_errors(log_warning=True)
        got = list(itertools.islice(ds, 1000))
        if case["kind"] == "records":
            sizes = [1 if x.shape.rank == 0 else int(x.shape[0]) for x in got]
            flat = [x.numpy() for x in got] if case["batch_size"] is None else [r for x in got for r in x.numpy()]
            out = {"records": [r.hex() for r in flat], "sizes": sizes}
        else:
            out = {"a": [float(v) for x, _, _ in got for v in x["a"].numpy()],
                   "label": [float(v) for _, y, _ in got for v in y.numpy().ravel()]}
        print(json.dumps({"id": case["id"], **out}), flush=True)


@pytest.fixture(scope="module")
def ignored(tmp_path_factory):
    """The child's results by case id, and its stderr (the logged warnings)."""
    tmp = tmp_path_factory.mktemp("ignore_errors")
    cases, expected = [], {}
    for where, cut in CUTS.items():
        for gzipped in (False, True):
            bad, good = _case_files(tmp, where, cut, gzipped)
            for batch_size in (None, 3):
                cid = f"{where}/{'gzip' if gzipped else 'plain'}/{batch_size}"
                cases.append({"id": cid, "kind": "records", "files": [bad, good], "batch_size": batch_size})
                expected[cid] = (bad, _before(cut) + GOOD, where != "between blocks")
    # several damaged files in a row, then a good one
    bads = [_case_files(tmp, w, CUTS[w], False)[0] for w in ("size", "record bytes", "first marker")]
    good = _write(tmp / "good_last.block", bf.file_bytes(GOOD, 3))
    tfr = str(tmp / "x.tfrecord")
    with tf.io.TFRecordWriter(tfr) as w:
        w.write(RECS[0])
    gz_as_plain = _write(tmp / "gz_as_plain.block", bf.gz(CONTENT))
    files = bads + [tfr, gz_as_plain, str(tmp / "missing.block"), good]
    want = _before(CUTS["size"]) + _before(CUTS["record bytes"]) + GOOD
    for batch_size in (None, 1, 4, 100):
        cid = f"many/{batch_size}"
        cases.append({"id": cid, "kind": "records", "files": files, "batch_size": batch_size})
        expected[cid] = (None, want, True)
    # training_dataset: .ignore_errors() on its result, and ignore_errors=True
    bad, good = _case_files(tmp, "train", CUTS["record bytes"], False)
    for cid, extra in (("train/result", {}), ("train/param", {"param": True}),
                       ("train/param shuffled", {"param": True, "shuffle": 50})):
        cases.append({"id": cid, "kind": "training", "files": [bad, good], **extra})
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(cases))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    try:
        proc = subprocess.run([sys.executable, __file__, str(spec)], env=env, capture_output=True,
                              text=True, timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        last = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        pytest.fail(f"ignore_errors() did not end within {CHILD_TIMEOUT}s; last case started: {last[-1:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if "id" in r:
                results[r["id"]] = r
    return results, expected, proc.stderr


def test_ignore_errors_delivers_the_good_records_and_ends(ignored):
    results, expected, _ = ignored
    for cid, (_, want, _) in expected.items():
        assert cid in results, cid
        assert results[cid]["records"] == [r.hex() for r in want], cid
        batch = cid.rsplit("/", 1)[1]
        if batch not in ("None", "1"):
            b = int(batch)
            sizes = results[cid]["sizes"]
            # the batches of the good records, as .ignore_errors().batch(b) makes them
            assert sizes == [b] * (len(want) // b) + ([len(want) % b] if len(want) % b else []), (cid, sizes)


def test_ignore_errors_log_warning_names_file_and_offset(ignored):
    """ignore_errors(log_warning=True) logs each skipped error (TensorFlow's
    C++ log, shown at TF_CPP_MIN_LOG_LEVEL 0 or 1): our message, with the file."""
    _, expected, stderr = ignored
    for cid, (bad, _, has_error) in expected.items():
        if bad is None:
            continue
        logged = f"block file {bad}: at byte " in stderr
        assert logged == has_error, (cid, stderr[-2000:])
    assert "cannot open block file" in stderr and "looks like a TFRecord file" in stderr
    assert "looks like a gzip file" in stderr


def test_training_dataset_with_ignore_errors(ignored):
    """The damaged file's records before the cut, then the good file's, decoded
    (a = i, label = i % 2), whether errors are ignored on the result or by
    training_dataset(ignore_errors=True); shuffled: the same records."""
    results, _, _ = ignored
    want = [float(i) for i in range(5)] + [float(100 + i) for i in range(7)]
    assert _before(CUTS["record bytes"]) == RECS[:5]
    for cid in ("train/result", "train/param"):
        assert results[cid]["a"] == want, cid
        assert results[cid]["label"] == [a % 2 for a in want], cid
    assert sorted(results["train/param shuffled"]["a"]) == want


if __name__ == "__main__":
    _child(sys.argv[1])

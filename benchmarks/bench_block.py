"""Training input throughput (issue 27): block files of DataRecords ->
batches of dense features by name, against TFRecordDataset +
tf.io.parse_example of the same features as tf.train.Example on the same
disk, and against reading the same files' bytes raw.

The same values go into both formats (drawn once): the DataRecords are
written by thriftpy2 and framed by the test helper's independent block writer
(protobuf), the Examples by TensorFlow's own tf.train.Example. Each series is
a full pass over the files (after one warm pass, so the page cache holds
them), repeated --runs times; the table shows the median records per second.

usage: bench_block.py [--records 20000] [--features 16] [--batches 64,512,4096] [--runs 3] [--gzip]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "python"), str(ROOT / "tests" / "python")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from thriftpy2.protocol.binary import TBinaryProtocol  # noqa: E402
from thriftpy2.transport.memory import TMemoryBuffer  # noqa: E402

import block_files as bf  # noqa: E402
import bpr_ops  # noqa: E402
from bpr_ops import data  # noqa: E402
from thrift_check import IDL  # noqa: E402


def write_files(work: Path, n: int, f: int, gzipped: bool, shards: int = 4):
    names = [f"f{j}" for j in range(f)]
    ids = bpr_ops.feature_ids(names)
    values = np.random.default_rng(0).normal(size=(n, f)).astype(np.float32)
    blobs = []
    for row in values:
        rec = IDL.data.DataRecord(continuousFeatures={k: float(v) for k, v in zip(ids, row)})
        buf = TMemoryBuffer()
        rec.write(TBinaryProtocol(buf))
        blobs.append(buf.getvalue())
    block_files, tfrecord_files = [], []
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gzipped else "")
    for s in range(shards):
        part = slice(s * n // shards, (s + 1) * n // shards)
        content = bf.file_bytes(blobs[part], 100)
        p = work / (f"part-{s}.gz" if gzipped else f"part-{s}.block")
        p.write_bytes(bf.gz(content) if gzipped else content)
        block_files.append(str(p))
        t = work / f"part-{s}.tfrecord"
        with tf.io.TFRecordWriter(str(t), opts) as w:
            for row in values[part]:
                ex = tf.train.Example(features=tf.train.Features(feature={
                    name: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                    for name, v in zip(names, row)}))
                w.write(ex.SerializeToString())
        tfrecord_files.append(str(t))
    return names, block_files, tfrecord_files


def timed(ds) -> float:
    start = time.perf_counter()
    for _ in ds:
        pass
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--batches", default="64,512,4096")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp:
        names, blocks, tfrecords = write_files(Path(tmp), n, args.features, args.gzip)
        reader = bpr_ops.BatchPredictionRequestReader(continuous=names, output_mode="names")
        spec = {name: tf.io.FixedLenFeature([], tf.float32, default_value=0.0) for name in names}
        comp = "GZIP" if args.gzip else ""
        series = {
            "raw file read (tf.io.read_file of the block files)": lambda b: tf.data.Dataset.from_tensor_slices(blocks).map(tf.io.read_file),
            "block scan only (BlockFormatDataset)": lambda b: data.BlockFormatDataset(blocks).batch(b),
            "block files -> dense by name (training_dataset)": lambda b: data.training_dataset(blocks, reader, b),
            "TFRecordDataset + parse_example": lambda b: tf.data.TFRecordDataset(tfrecords, compression_type=comp)
            .batch(b).map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE),
        }
        print(f"{n} records, {args.features} float features, {'gzip' if args.gzip else 'plain'}; "
              f"records per second, median of {args.runs} passes")
        print(f"{'series':<52} " + " ".join(f"{'batch ' + b:>12}" for b in args.batches.split(",")))
        for label, make in series.items():
            cells = []
            for b in map(int, args.batches.split(",")):
                ds = make(b)
                timed(ds)  # warm: page cache, tracing
                t = statistics.median(timed(ds) for _ in range(args.runs))
                cells.append(f"{n / t:>12,.0f}")
            print(f"{label[:52]:<52} " + " ".join(cells))


if __name__ == "__main__":
    main()

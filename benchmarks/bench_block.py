"""Training input throughput (issue 27): block files of DataRecords ->
batches of dense features by name, against TFRecordDataset +
tf.io.parse_example of the same features as tf.train.Example on the same
disk, and against reading the same files' bytes raw.

The same values go into both formats (drawn once): the DataRecords are
written by thriftpy2 and framed by the test helper's independent block writer
(protobuf), the Examples by TensorFlow's own tf.train.Example. Before timing,
the first batch of both pipelines is checked equal, name by name.

Every series is a full pass over the files, consumed in graph mode by
`Dataset.reduce` (as `model.fit` does: no Python object per batch, which in
eager iteration costs more than the decode itself). Per batch size the series
are warmed once (page cache, tracing), then timed round by round, interleaved,
--runs rounds: the table shows median records per second (min..max over the
rounds) and the median of the rounds' block/TFRecord ratios.

200,000 records by default: a pass over 40,000 took 20-100 ms, where the
pipelines' start (threads, the first read of each file) moved the ratio by
up to 2x between rounds.

"block scan" is BlockFormatDataset(batch_size=batch): the batched source
the two-step path reads with, against the raw read of the same bytes.
"one-pass" is training_dataset (its default, BlockFormatFeatureDataset: each
record parsed once into the batch's tensors, issue 38), "two-step" the same
with one_pass=False (the batched source, then DecodeDataRecord and the
getters in a map). Two TFRecord layouts of the same values: F scalar
features by name, and one FixedLenFeature([F]) ("x"), parse_example's
fastest layout; ratios are one-pass / each, and one-pass / raw read.

usage: bench_block.py [--records 200000] [--features 16] [--batches 64,512,4096] [--runs 5]
                      [--compression plain,gzip] [--out benchmarks/results_block.json]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
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

SERIES = ("raw read", "block scan", "one-pass", "two-step", "TFRecord by name", "TFRecord [F]")


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
    block_files, tfrecord_files, vector_files = [], [], []
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gzipped else "")
    for s in range(shards):
        part = slice(s * n // shards, (s + 1) * n // shards)
        content = bf.file_bytes(blobs[part], 100)
        p = work / (f"part-{s}.gz" if gzipped else f"part-{s}.block")
        p.write_bytes(bf.gz(content) if gzipped else content)
        block_files.append(str(p))
        t = work / (f"part-{s}.tfrecord.gz" if gzipped else f"part-{s}.tfrecord")
        with tf.io.TFRecordWriter(str(t), opts) as w:
            for row in values[part]:
                ex = tf.train.Example(features=tf.train.Features(feature={
                    name: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                    for name, v in zip(names, row)}))
                w.write(ex.SerializeToString())
        tfrecord_files.append(str(t))
        v = work / (f"part-{s}.vec.tfrecord.gz" if gzipped else f"part-{s}.vec.tfrecord")
        with tf.io.TFRecordWriter(str(v), opts) as w:
            for row in values[part]:
                ex = tf.train.Example(features=tf.train.Features(feature={
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=[float(x) for x in row]))}))
                w.write(ex.SerializeToString())
        vector_files.append(str(v))
    return names, block_files, (tfrecord_files, vector_files)


def counter(ds):
    """A traced function that makes one full pass over `ds` inside TensorFlow
    (graph) and returns the number of elements: traced once, so a pass times
    the pipeline, not Python's tracing."""
    return tf.function(lambda: ds.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))


CPU = {}  # the last timed pass's process CPU seconds (all threads), by run


def timed(run) -> float:
    """Seconds for one call of a `counter`, with Python's garbage collector
    off, as timeit has it: a profile of the fastest pass showed 20% of its
    samples in gc_collect_main over the process's TensorFlow objects."""
    gc.collect()
    gc.disable()
    try:
        cpu = time.process_time()
        start = time.perf_counter()
        run().numpy()
        wall = time.perf_counter() - start
        # CPU seconds of the whole process: on a shared machine the wall
        # time moves with the load, the work done per record much less.
        CPU[run] = time.process_time() - cpu
        return wall
    finally:
        gc.enable()


def sequential() -> tf.data.Options:
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    return options


def pipelines(names, blocks, tfrecords, gzipped: bool, batch: int):
    reader = bpr_ops.BatchPredictionRequestReader(continuous=names, output_mode="names")
    spec = {name: tf.io.FixedLenFeature([], tf.float32, default_value=0.0) for name in names}
    vec_spec = {"x": tf.io.FixedLenFeature([len(names)], tf.float32)}
    tfrecords, vectors = tfrecords
    compression = "GZIP" if gzipped else ""
    return {
        # Every byte of the block files (decompressed when gzip), one element per file.
        # One file at a time: tf.data's map_parallelization would otherwise
        # read two files at once, and the floor is the one thread a source has.
        "raw read": tf.data.Dataset.from_tensor_slices(blocks).map(
            lambda p: tf.strings.length(
                tf.io.decode_compressed(tf.io.read_file(p), "GZIP") if gzipped else tf.io.read_file(p)))
        .with_options(sequential()),
        "block scan": data.BlockFormatDataset(blocks, batch_size=batch),
        "one-pass": data.training_dataset(blocks, reader, batch),
        "two-step": data.training_dataset(blocks, reader, batch, one_pass=False),
        "TFRecord by name": tf.data.TFRecordDataset(tfrecords, compression_type=compression)
        .batch(batch).map(lambda x: tf.io.parse_example(x, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE),
        "TFRecord [F]": tf.data.TFRecordDataset(vectors, compression_type=compression)
        .batch(batch).map(lambda x: tf.io.parse_example(x, vec_spec), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE),
    }


def check_same(names, ds):
    """Every pipeline gives the same numbers (else the comparison means nothing)."""
    ours = [next(iter(ds[k]))[0] for k in ("one-pass", "two-step")]
    theirs = next(iter(ds["TFRecord by name"]))
    vec = next(iter(ds["TFRecord [F]"]))["x"].numpy()
    for j, name in enumerate(names):
        for features in ours:
            np.testing.assert_array_equal(features[name].numpy(), theirs[name].numpy(), err_msg=name)
        np.testing.assert_array_equal(vec[:, j], theirs[name].numpy(), err_msg=name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--batches", default="64,512,4096")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compression", default="plain,gzip")
    ap.add_argument("--out", default=str(HERE / "results_block.json"))
    args = ap.parse_args()
    n = args.records
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    results = []
    for comp in args.compression.split(","):
        gzipped = comp == "gzip"
        with tempfile.TemporaryDirectory() as tmp:
            names, blocks, tfrecords = write_files(Path(tmp), n, args.features, gzipped)
            print(f"{n} records, {args.features} float features, {comp}; records per second, "
                  f"median (min..max) of {args.runs} interleaved rounds")
            for b in map(int, args.batches.split(",")):
                ds = pipelines(names, blocks, tfrecords, gzipped, b)
                check_same(names, ds)
                ds = {k: counter(d) for k, d in ds.items()}
                for d in ds.values():
                    timed(d)  # warm: page cache, tracing
                rates = {k: [] for k in ds}
                cpu_rates = {k: [] for k in ds}
                against = ("TFRecord by name", "TFRecord [F]", "two-step", "raw read")
                ratios = {k: [] for k in against}
                for _ in range(args.runs):
                    for k, d in ds.items():
                        rates[k].append(n / timed(d))
                        cpu_rates[k].append(n / CPU[d])
                    for k in against:
                        ratios[k].append(rates["one-pass"][-1] / rates[k][-1])
                row = {"compression": comp, "batch": b, "records": n, "features": args.features,
                       "records_per_s": rates, "records_per_cpu_s": cpu_rates, "one_pass_over": ratios}
                results.append(row)
                cells = "  ".join(
                    f"{k}: {statistics.median(v):,.0f} ({min(v):,.0f}..{max(v):,.0f})" for k, v in rates.items())
                over = "  ".join(
                    f"{k} {statistics.median(v):.2f} ({min(v):.2f}..{max(v):.2f})" for k, v in ratios.items())
                cpu_cells = "  ".join(f"{k}: {statistics.median(v):,.0f}" for k, v in cpu_rates.items())
                print(f"  batch {b}: {cells}\n    one-pass over: {over}\n    records per CPU second: {cpu_cells}",
                      flush=True)
    out = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "benchmarks/bench_block.py " + " ".join(sys.argv[1:]),
        "tensorflow": tf.__version__,
        "cores": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "runs": args.runs,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Graph-mode timings of sparse and hashed reads against tf.io.parse_example
(issue 35), one intra-op thread (per core).

The data: N records, each with a sparse binary feature of K strings and a
sparse continuous feature of K (name, value) pairs. What a TensorFlow user
does: N serialized `tf.train.Example`s read by `tf.io.parse_example` with
`VarLenFeature`s (the strings; the names and the values) into SparseTensors,
and, for hashed input, an int64 index list and a float value list read by a
`SparseFeature` of size 2**bits (keys hashed beforehand by the client). What a
twml model does: one Thrift `BatchPredictionRequest` of the same records
(written by thriftpy2) read by `BatchPredictionRequestReader` as SparseTensors
(`sparse_binary=`, `sparse_continuous=`), or hashed (`hashed=`, twml's
`[record, key & mask]` input, both features in one tensor).

Each series is n calls inside one tf.function `tf.while_loop`, timed by the
process's CPU time (`--wall`: wall-clock; with one intra-op and one inter-op
thread CPU time is the ops' work, a core's cost, which a loaded machine does
not inflate as it does wall-clock time), rounds
interleaved (each round runs the four series one after another), the median
per-call time reported per record, and per case the ratio parse_example time /
reader time: the median of the rounds' ratios and their min..max (the spread;
on a loaded machine the ratio of one round, both sides measured seconds apart,
is steadier than either time). Both sides' SparseTensors are checked equal
once, outside the timings. The load average is printed before and after.

usage: python benchmarks/bench_sparse.py [--rounds 7] [--quick] [--cases 1x32,64x32,...] [--wall] [--out FILE]
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# (records N, entries per sparse feature K)
CASES = [(1, 4), (1, 32), (64, 4), (64, 32), (1024, 4), (1024, 32), (16384, 4), (16384, 32)]
BITS = 20
SAMPLE_SECONDS = 0.2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds, cases 64x4 and 64x32")
    parser.add_argument("--cases", help="NxK,... (records x entries per sparse feature); default all of "
                        + ",".join(f"{n}x{k}" for n, k in CASES))
    parser.add_argument("--wall", action="store_true", help="time wall-clock instead of the process's CPU time")
    parser.add_argument("--out", type=Path, help="also write the medians as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT / "python"))
    import numpy as np
    import tensorflow as tf
    import thriftpy2
    from thriftpy2.utils import serialize

    import bpr_ops

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    idl = thriftpy2.load(str(ROOT / "thrift" / "prediction_service.thrift"),
                         module_name="bench_sparse_thrift", include_dirs=[str(ROOT / "thrift")])
    data_idl = idl.__thrift_meta__["includes"][0]
    rng = np.random.default_rng(0)
    tags_id, topics_id = bpr_ops.feature_ids(["user.tags", "user.topics"])
    rounds = 3 if args.quick else args.rounds
    clock = time.perf_counter if args.wall else time.process_time
    cases = [(64, 4), (64, 32)] if args.quick else CASES
    if args.cases:
        cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]

    def loop_of(fn):
        @tf.function(autograph=False)
        def loop(n, arg):
            first = tf.nest.flatten(fn(arg), expand_composites=True)

            def body(i, *carried):
                return (i + 1, *tf.nest.flatten(fn(arg), expand_composites=True))

            return tf.while_loop(
                lambda i, *_: i < n, body, (tf.constant(0), *first),
                shape_invariants=(tf.TensorShape([]), *[tf.TensorShape(None)] * len(first)),
                parallel_iterations=1,
            )[1:]

        return loop

    results = []
    print(f"TensorFlow {tf.__version__}, 1 intra-op thread, {rounds} interleaved rounds, "
          f"{'wall-clock' if args.wall else 'process CPU'} time, "
          f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores), started "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("medians in ns per record; ratio = parse_example time / reader time, median (min..max) of the rounds")
    print("| N | K | reader sparse | parse_example VarLen | sparse ratio | reader hashed "
          "| parse_example SparseFeature | hashed ratio |")
    print("|---:|---:|---:|---:|---|---:|---:|---|")
    for records, k in cases:
        # A set holds each string once: distinct per record (a repeat would be
        # dropped by the decoder and kept by parse_example).
        strings = [[f"tag_{j}_{rng.integers(1 << 16)}" for j in range(k)] for _ in range(records)]
        names = [[f"topic_{j}_{rng.integers(1 << 16)}" for j in range(k)] for _ in range(records)]
        values = rng.normal(size=(records, k)).astype(np.float32)
        request = tf.constant([serialize(idl.BatchPredictionRequest(individualFeaturesList=[
            data_idl.DataRecord(sparseBinaryFeatures={tags_id: strings[r]},
                                sparseContinuousFeatures={topics_id: dict(zip(names[r], map(float, values[r])))})
            for r in range(records)]))])
        # The client-side hashed keys of the Example form: the reader's own
        # keys for the same records, so both sides hold the same numbers.
        read_hashed = bpr_ops.BatchPredictionRequestReader(
            hashed={"sparse_binary": ["user.tags"], "sparse_continuous": ["user.topics"]}, hashed_bits=BITS)
        hashed = read_hashed(request)["hashed"]
        hashed_rows = [[] for _ in range(records)]
        for (r, key), v in zip(hashed.indices.numpy(), hashed.values.numpy()):
            hashed_rows[r].append((int(key), float(v)))

        def feature(**kw):
            return tf.train.Feature(**kw)

        examples = tf.constant([tf.train.Example(features=tf.train.Features(feature={
            "tags": feature(bytes_list=tf.train.BytesList(value=[s.encode() for s in strings[r]])),
            "topic_names": feature(bytes_list=tf.train.BytesList(value=[s.encode() for s in names[r]])),
            "topic_values": feature(float_list=tf.train.FloatList(value=values[r])),
            "idx": feature(int64_list=tf.train.Int64List(value=[key for key, _ in hashed_rows[r]])),
            "val": feature(float_list=tf.train.FloatList(value=[v for _, v in hashed_rows[r]])),
        })).SerializeToString() for r in range(records)])
        read_sparse = bpr_ops.BatchPredictionRequestReader(sparse_binary=["user.tags"],
                                                           sparse_continuous=["user.topics"])
        var_len = {"tags": tf.io.VarLenFeature(tf.string), "topic_names": tf.io.VarLenFeature(tf.string),
                   "topic_values": tf.io.VarLenFeature(tf.float32)}
        sparse_feature = {"hashed": tf.io.SparseFeature("idx", "val", tf.float32, 1 << BITS)}

        def ours_sparse(b):
            out = read_sparse(b)
            return (out["sparse_binary"]["user.tags"], out["sparse_continuous_names"]["user.topics"],
                    out["sparse_continuous"]["user.topics"])

        def parse_var_len(e):
            out = tf.io.parse_example(e, var_len)
            return out["tags"], out["topic_names"], out["topic_values"]

        def ours_hashed(b):
            return read_hashed(b)["hashed"]

        def parse_sparse_feature(e):
            return tf.io.parse_example(e, sparse_feature)["hashed"]

        # The same sparse tensors on both sides, checked once.
        for a, b in zip(ours_sparse(request), parse_var_len(examples)):
            if not (np.array_equal(a.indices, b.indices) and np.array_equal(a.values, b.values)
                    and np.array_equal(a.dense_shape, b.dense_shape)):
                sys.exit(f"N={records} K={k}: the reader and parse_example (VarLenFeature) disagree")
        def triples(sp):
            rows = np.concatenate([sp.indices.numpy().astype(np.float64), sp.values.numpy()[:, None]], axis=1)
            return rows[np.lexsort(rows.T[::-1])]

        a, b = ours_hashed(request), parse_sparse_feature(examples)
        if not (np.array_equal(triples(a), triples(b)) and np.array_equal(a.dense_shape, b.dense_shape)):
            sys.exit(f"N={records} K={k}: the hashed reader and parse_example (SparseFeature) disagree")
        series = {
            "reader sparse": (loop_of(ours_sparse), request),
            "parse_example VarLen": (loop_of(parse_var_len), examples),
            "reader hashed": (loop_of(ours_hashed), request),
            "parse_example SparseFeature": (loop_of(parse_sparse_feature), examples),
        }

        def sample(name, n):
            # The process's CPU time (one intra-op and one inter-op thread:
            # the op's own work): what a core pays, which a loaded machine
            # does not inflate as it does wall-clock time.
            fn, x = series[name]
            t0 = clock()
            fn(n, x)
            return (clock() - t0) / int(n)

        for name in series:
            sample(name, tf.constant(3))
        per_call = max(sample(name, tf.constant(10)) for name in series)
        n = tf.constant(max(5, min(20000, int(SAMPLE_SECONDS / max(per_call, 1e-7)))))
        samples = {name: [] for name in series}
        for _ in range(rounds):
            for name in series:
                samples[name].append(sample(name, n))
        med = {name: statistics.median(v) for name, v in samples.items()}
        ratios = {
            kind: [p / o for p, o in zip(samples[parse], samples[ours])]
            for kind, parse, ours in (("sparse", "parse_example VarLen", "reader sparse"),
                                      ("hashed", "parse_example SparseFeature", "reader hashed"))
        }
        results.append({"records": records, "entries": k, "median_s": med, "ratios": ratios})

        def ratio(kind):
            r = ratios[kind]
            return f"{statistics.median(r):.2f}x ({min(r):.2f}..{max(r):.2f})"

        ns = {name: f"{v / records * 1e9:,.0f}" for name, v in med.items()}
        print(f"| {records} | {k} | {ns['reader sparse']} | {ns['parse_example VarLen']} | {ratio('sparse')} "
              f"| {ns['reader hashed']} | {ns['parse_example SparseFeature']} | {ratio('hashed')} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        "tensorflow": tf.__version__, "bits": BITS, "results": results}, indent=2))


if __name__ == "__main__":
    main()

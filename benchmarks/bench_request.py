"""Graph-mode timings of the request side against tf.io.parse_example (issue 19).

What a TensorFlow user does for the same job: the serving input is N
serialized `tf.train.Example` protos with F float features, read with
`tf.io.parse_example` into F dense [N] tensors. What a twml model does: the
serving input is one serialized Thrift `BatchPredictionRequest` of N
DataRecords with the same F continuous features, decoded by
`DecodeBatchPredictionRequestV2` and read densely by
`GetContinuousGroupAsTensor` into one [N, F] tensor. The same values go into
both (drawn once per case); the request bytes are written by thriftpy2, the
protos by TensorFlow's own `tf.train.Example`, never by our encoder.

Also measured, without a TensorFlow counterpart: twml's sparse path
(`DecodeAndHashBatchPredictionRequestV2` + `GetKeysFromHashedDataRecord` +
`GetValuesFromHashedDataRecord`), and parse_example of ONE feature holding F
floats per record (its best case, a different encoding of the data).

Each series is N calls inside one tf.function `tf.while_loop` (as in
bench_graph.py), rounds interleaved in one process; the value is the median
per-call time, reported per record. The parent starts one child process per
(run, intra-op thread count) and prints medians and min..max over runs.

usage: bench_request.py [--runs 3] [--threads 1,2] [--quick] [--out FILE] [--cases NxF,...]
                        [--compare OLD_LIBRARY]

--compare runs every child twice per run, once with this checkout's library and once with
OLD_LIBRARY (another build of libbpr_ops.so, e.g. of main), alternating which goes first, and
prints both libraries' dense / parse_example ratios and dense GB/s per case (one op library per
process: two builds register the same op names). It writes no results file.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (records N, float features F)
CASES = [(1, 16), (64, 16), (64, 256), (1024, 16), (1024, 64), (1024, 256), (8192, 64)]
SAMPLE_SECONDS = 0.02


def child(threads, quick, cases=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT / "python"))
    import numpy as np
    import tensorflow as tf
    import thriftpy2
    from thriftpy2.utils import serialize

    import bpr_ops

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    lib = tf.load_op_library(str(bpr_ops.library_path()))
    idl = thriftpy2.load(str(ROOT / "thrift" / "prediction_service.thrift"),
                         module_name="bench_ps_thrift", include_dirs=[str(ROOT / "thrift")])
    data_idl = idl.__thrift_meta__["includes"][0]
    rng = np.random.default_rng(0)

    def loop_of(fn, n_out):
        @tf.function(autograph=False)
        def loop(n, arg):
            first = fn(arg)

            def body(i, *carried):
                return (i + 1, *fn(arg))

            return tf.while_loop(
                lambda i, *_: i < n, body, (tf.constant(0), *first),
                shape_invariants=(tf.TensorShape([]), *[tf.TensorShape(None)] * n_out),
                parallel_iterations=1,
            )[1:]

        return loop

    results = []
    for records, features in cases or CASES:
        names = [f"feature_{j}" for j in range(features)]
        ids = [int(i) for i in bpr_ops.feature_ids(names)]
        values = rng.normal(size=(records, features)).astype(np.float32)
        request = idl.BatchPredictionRequest(individualFeaturesList=[
            data_idl.DataRecord(continuousFeatures={ids[j]: float(values[r, j]) for j in range(features)})
            for r in range(records)
        ])
        request_bytes = tf.constant(serialize(request))
        examples = tf.constant([
            tf.train.Example(features=tf.train.Features(feature={
                names[j]: tf.train.Feature(float_list=tf.train.FloatList(value=[values[r, j]]))
                for j in range(features)})).SerializeToString()
            for r in range(records)
        ])
        examples_one = tf.constant([
            tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=values[r]))})).SerializeToString()
            for r in range(records)
        ])
        spec = {name: tf.io.FixedLenFeature([], tf.float32, default_value=0.0) for name in names}
        spec_one = {"x": tf.io.FixedLenFeature([features], tf.float32)}

        def ours(b):
            handle = lib.decode_batch_prediction_request_v2(
                b, keep_features=ids, keep_codes=ids, label_features=[])
            return (lib.get_continuous_group_as_tensor(handle, feature_ids=ids, default_value=0.0),)

        def ours_hashed(b):
            handle = lib.decode_and_hash_batch_prediction_request_v2(
                b, keep_features=ids, keep_codes=ids, label_features=[])
            return (lib.get_keys_from_hashed_data_record(handle),
                    lib.get_values_from_hashed_data_record(handle))

        def parse(e):
            out = tf.io.parse_example(e, spec)
            return tuple(out[name] for name in names)

        def parse_one(e):
            return (tf.io.parse_example(e, spec_one)["x"],)

        # Both read the same numbers: check it once, outside the timed loops.
        got = ours(request_bytes)[0].numpy()
        want = np.stack([t.numpy() for t in parse(examples)], axis=1)
        if not np.array_equal(got, want) or not np.array_equal(got, values):
            sys.exit(f"N={records} F={features}: the request decode and parse_example disagree")
        series = {
            "request dense": (loop_of(ours, 1), request_bytes),
            "parse_example": (loop_of(parse, features), examples),
            "request hashed": (loop_of(ours_hashed, 2), request_bytes),
            "parse_example 1 feature": (loop_of(parse_one, 1), examples_one),
        }

        def sample(name, n):
            fn, a = series[name]
            t0 = time.perf_counter()
            fn(n, a)
            return (time.perf_counter() - t0) / int(n)

        for name in series:
            sample(name, tf.constant(5))
        per_call = max(sample(name, tf.constant(20)) for name in series)
        n = tf.constant(max(10, min(20000, int(SAMPLE_SECONDS / max(per_call, 1e-7)))))
        rounds = 3 if quick else 9
        samples = {name: [] for name in series}
        for _ in range(rounds):
            for name in series:
                samples[name].append(sample(name, n))
        med = {name: statistics.median(v) for name, v in samples.items()}
        results.append({"records": records, "features": features, "request_bytes": len(request_bytes.numpy()),
                        "median_s": med, "ratio": med["request dense"] / med["parse_example"]})
        print(f"  [{threads} thread(s)] N={records:5d} F={features:3d}  "
              + "  ".join(f"{k} {v / records * 1e9:9.0f} ns/rec" for k, v in med.items())
              + f"  dense/parse {med['request dense'] / med['parse_example']:5.2f}", file=sys.stderr, flush=True)
    return {"threads": threads, "tensorflow": tf.__version__, "results": results}


def compare(args, threads):
    """This checkout's library and args.compare, alternating, one process each."""
    sys.path.insert(0, str(ROOT / "python"))
    from bpr_ops._loader import ENV_VAR

    libs = {"new": os.environ.get(ENV_VAR) or str(ROOT / "target" / "release" / "libbpr_ops.so"),
            "old": str(args.compare.resolve())}
    got = {(lib, t): [] for lib in libs for t in threads}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.runs):
        for t in threads:
            for lib in list(libs) if r % 2 == 0 else list(libs)[::-1]:
                print(f"run {r + 1}/{args.runs}, {t} intra-op thread(s), {lib} library", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, "--child", "--intra-op-threads", str(t), "--cases", args.cases] + (
                    ["--quick"] if args.quick else [])
                env = dict(os.environ, **{ENV_VAR: libs[lib]})
                out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env).stdout
                got[(lib, t)].append(json.loads(out)["results"])
    print(f"started {started}, {args.runs} processes per library and pool size; old = {libs['old']}")
    print("| N | F | threads | request bytes | dense / parse_example, old | new | dense GB/s, old | new |")
    print("|---:|---:|---:|---:|---|---|---:|---:|")
    for t in threads:
        for i, case in enumerate(got[("new", t)][0]):
            cells = []
            for stat in ("ratio", "gbs"):
                for lib in ("old", "new"):
                    v = [run[i]["ratio"] if stat == "ratio" else
                         run[i]["request_bytes"] / run[i]["median_s"]["request dense"] / 1e9 for run in got[(lib, t)]]
                    cells.append(f"{statistics.median(v):.2f} ({min(v):.2f}..{max(v):.2f})")
            print(f"| {case['records']} | {case['features']} | {t} | {case['request_bytes']:,} | " + " | ".join(cells) + " |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results_request.json")
    parser.add_argument("--cases", default="", help="NxF,... (default: all of CASES)")
    parser.add_argument("--compare", type=Path, help="another build of the library to run alongside")
    args = parser.parse_args()
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",") if c]
    if args.child:
        json.dump(child(args.intra_op_threads, args.quick, cases), sys.stdout)
        return
    threads = [int(t) for t in args.threads.split(",")]
    if args.compare:
        return compare(args, threads)
    runs = {t: [] for t in threads}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.runs):
        for t in threads if r % 2 == 0 else threads[::-1]:
            print(f"run {r + 1}/{args.runs}, {t} intra-op thread(s)", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--child", "--intra-op-threads", str(t)] + (["--quick"] if args.quick else [])
            runs[t].append(json.loads(subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout))
    args.out.write_text(json.dumps({"started": started, "cores": os.cpu_count(),
                                    "runs": {str(t): v for t, v in runs.items()}}, indent=2))
    # The table for BENCHMARKS.md, as benchmarks/report.py writes it there.
    sys.path.insert(0, str(HERE))
    from report import request_section

    print("\n".join(request_section()))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Graph-mode timings of the writer ops: where production runs them (issue 15).

A served SavedModel runs the op inside a graph, so this measures N calls of
the op inside one tf.function `tf.while_loop` (one iteration at a time, the
output carried as a loop variable so it is consumed and never pruned), and
the same loop around `tf.fill` of a uint8 tensor of the same output shape: an
op that allocates and writes the same bytes. Inputs are tf.function arguments,
not constants, so grappler cannot fold either op away.

For the tensor writer a third loop, `concat`, is TensorFlow's own copy of
the same inputs: each values tensor bitcast to uint8 and reshaped to [1, -1]
(both zero-copy), concatenated with zeros up to the op's N bytes by one
ConcatV2. It reads the same inputs and writes the same number of bytes as
the op, without the framing.

Per case, rounds alternate op / fill (/ concat) in one process; a sample is
one loop call divided by its N, and the series' value is the median sample.
The ratio op / fill is what the targets are about: absolute times move with
whatever else runs on the machine.

The intra-op pool size can only be set before TensorFlow starts, so the
parent process starts one child per (run, thread count), alternating thread
counts, and collects their results:

usage: bench_graph.py [--runs 5] [--threads 1,2] [--quick] [--out FILE]
       bench_graph.py --child --intra-op-threads N   (one run, JSON on stdout)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (label, kind, batch, k): continuous cases are float32 [B, K]; tensor cases
# are 4 x float32 [B, 16].
CASES = [
    ("continuous f32 B=1 K=1", "continuous", 1, 1),
    ("continuous f32 B=64 K=4", "continuous", 64, 4),
    ("continuous f32 B=1024 K=4", "continuous", 1024, 4),
    ("continuous f32 B=8192 K=16", "continuous", 8192, 16),
    ("continuous f32 B=65536 K=16", "continuous", 65536, 16),
    ("tensor 4 x f32 [B,16] B=64", "tensor", 64, 16),
    ("tensor 4 x f32 [B,16] B=1024", "tensor", 1024, 16),
    ("tensor 4 x f32 [B,16] B=16384", "tensor", 16384, 16),
]

# Seconds one sample (one loop call) should take: long enough that the
# function call's own cost (tens of us) is noise, short enough for many rounds.
SAMPLE_SECONDS = 0.02


def child(threads, quick, only=""):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(HERE.parent / "python"))
    import numpy as np
    import tensorflow as tf

    import bpr_ops

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    rng = np.random.default_rng(0)

    def loop_of(fn):
        """A tf.function calling fn(*args) n times in one while_loop.

        Every argument is a loop variable passed through unchanged (control
        flow v2 turns captured tensors into loop variables anyway): the op
        loop and the fill loop get the same arguments, so they carry the same
        loop variables and the loop's own cost is the same in both.
        """

        @tf.function(autograph=False)
        def loop(n, *args):
            first = fn(*args)

            def body(i, _, *carried):
                return (i + 1, fn(*carried), *carried)

            out = tf.while_loop(
                lambda i, *_: i < n,
                body,
                (tf.constant(0), first, *args),
                shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                                  *[a.shape for a in args]),
                # Iterations do not depend on each other: without this the
                # executor may run several at once on the inter-op pool.
                parallel_iterations=1,
            )[1]
            return out

        return loop

    # Every function takes (dims, value, pad, keys, *values): fill uses the
    # first two, concat the pad and the values, the ops the keys and values.
    def continuous_op(dims, value, pad, keys, values):
        return bpr_ops.batch_prediction_response_writer(keys, values)

    def tensor_op(dims, value, pad, keys, *values):
        return bpr_ops.batch_prediction_tensor_response_writer(keys, list(values))

    def fill(dims, value, *_):
        return tf.fill(dims, value)

    def concat(dims, value, pad, keys, *values):
        flat = [tf.reshape(tf.bitcast(v, tf.uint8), [1, -1]) for v in values]
        return tf.concat([*flat, pad], axis=1)

    loops = {"continuous": loop_of(continuous_op), "tensor": loop_of(tensor_op), "fill": loop_of(fill),
             "concat": loop_of(concat)}
    results = []
    for label, kind, batch, k in CASES:
        if only not in label:
            continue
        if kind == "continuous":
            keys = tf.constant(list(range(100, 100 + k)), tf.int64)
            args = (keys, tf.constant(rng.normal(size=(batch, k)).astype(np.float32)))
        else:
            keys = tf.constant([1, 2, 3, 4], tf.int64)
            args = (keys, *[tf.constant(rng.normal(size=(batch, k)).astype(np.float32)) for _ in range(4)])
        op_loop = loops[kind]
        unused = (tf.constant([1, 1], tf.int64), tf.constant(7, tf.uint8), tf.zeros([1, 0], tf.uint8))
        # The loop's bytes are the eager op's bytes (the loop really runs the op).
        want = (continuous_op if kind == "continuous" else tensor_op)(*unused, *args).numpy()
        got = op_loop(tf.constant(3), *unused, *args).numpy()
        if got.tobytes() != want.tobytes():
            sys.exit(f"{label}: graph-mode output differs from eager")
        size = want.shape[1]
        copied = sum(int(np.prod(v.shape)) * v.dtype.size for v in args[1:]) if kind == "tensor" else 0
        pad = tf.zeros([1, size - copied], tf.uint8)
        args = (tf.constant([1, size], tf.int64), tf.constant(7, tf.uint8), pad, *args)
        series = {"op": (op_loop, args), "fill": (loops["fill"], args)}
        if kind == "tensor":
            series["concat"] = (loops["concat"], args)
        for name in series:
            if name != "op" and series[name][0](tf.constant(3), *args).shape != want.shape:
                sys.exit(f"{label}: the {name} loop's output is not the op's shape")

        def sample(name, n):
            fn, a = series[name]
            t0 = time.perf_counter()
            fn(n, *a)
            return (time.perf_counter() - t0) / int(n)

        # Calibrate N on the op (the slower of the two), after a warm-up.
        for name in series:
            sample(name, tf.constant(10))
        per_call = sample("op", tf.constant(50))
        n = tf.constant(max(20, min(20000, int(SAMPLE_SECONDS / max(per_call, 1e-7)))))
        rounds = 5 if quick else 15
        samples = {name: [] for name in series}
        for _ in range(rounds):
            for name in series:  # interleaved: op, fill, op, fill, ...
                samples[name].append(sample(name, n))
        med = {name: statistics.median(v) for name, v in samples.items()}
        result = {
            "case": label, "kind": kind, "batch": batch, "bytes": int(size), "n": int(n),
            "rounds": rounds, "median_s": med, "ratio": med["op"] / med["fill"],
        }
        extra = ""
        if "concat" in med:
            result["concat_ratio"] = med["op"] / med["concat"]
            extra = f"  concat {med['concat']*1e6:9.2f} us  op/concat {result['concat_ratio']:5.2f}"
        results.append(result)
        print(f"  [{threads} thread(s)] {label:32s} {size:>11,d} B  op {med['op']*1e6:9.2f} us  "
              f"fill {med['fill']*1e6:9.2f} us  op/fill {med['op']/med['fill']:5.2f}{extra}",
              file=sys.stderr, flush=True)
    return {"threads": threads, "tensorflow": tf.__version__, "python": platform.python_version(),
            "results": results}


def machine():
    info = {"cores": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "?").strip()
        info["lscpu"] = {k: fields[k].strip() for k in ("Model name", "CPU(s)", "Thread(s) per core",
                                                         "L1d cache", "L2 cache", "L3 cache",
                                                         "Hypervisor vendor") if k in fields}
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = "?"
    return info


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="processes per thread count")
    parser.add_argument("--threads", default="1,2", help="intra-op pool sizes to measure")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--cases", default="", help="only the cases whose name contains this text")
    parser.add_argument("--out", type=Path, default=HERE / "results_graph.json")
    args = parser.parse_args()
    if args.child:
        json.dump(child(args.intra_op_threads, args.quick, args.cases), sys.stdout)
        return
    threads = [int(t) for t in args.threads.split(",")]
    runs = {t: [] for t in threads}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.runs):
        for t in threads if r % 2 == 0 else threads[::-1]:
            print(f"run {r + 1}/{args.runs}, {t} intra-op thread(s)", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--child", "--intra-op-threads", str(t)]
            if args.quick:
                cmd.append("--quick")
            if args.cases:
                cmd += ["--cases", args.cases]
            out = subprocess.run(cmd, capture_output=False, stdout=subprocess.PIPE, text=True, check=True).stdout
            runs[t].append(json.loads(out))
    first = runs[threads[0]][0]
    data = {
        "machine": {**machine(), "python": first["python"], "tensorflow": first["tensorflow"]},
        "started": started,
        "runs": {str(t): v for t, v in runs.items()},
    }
    args.out.write_text(json.dumps(data, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

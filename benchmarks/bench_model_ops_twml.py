"""twml's model ops in libbpr_ops.so against twml's own build of them and
against the plain TensorFlow way of doing the same, in graph mode
(tf.function), at 1, 64, 1024 and 16384 rows. Numbers, not a test.

    scripts/build_twml_ops.sh <the-algorithm checkout>      # once, ~/.cache/bpr_ops/twml-ops/libtwml_ops.so
    .venv/bin/python benchmarks/bench_model_ops_twml.py [--rounds 7] [--ops HashingDiscretizer,...]
        [--rows 1,64,1024,16384] [--twml PATH] [--json FILE] [--markdown]

Both libraries register the same op names (TensorFlow refuses a second
registration of a name in one process), so each side runs in its own worker
process: `ours` (libbpr_ops.so), `twml` (twml's build) and `plain` (no op
library). The parent builds nothing itself; it asks the three workers in turn,
one at a time, to time N calls of the same case (inputs made from one seed in
each worker, so they are equal), rotating the order every round, and prints per
call the median and min..max over the rounds, and the ratios twml/ours and
plain/ours (above 1: ours is faster). Before timing, each worker's outputs are
written to a file and the parent compares them: ours against twml's exactly
(except where twml leaves outputs uninitialised, said per case), ours against
the plain TF way where that computes the same thing.

Without twml's build (no --twml and none in the cache) it runs ours against
plain TF only, and says so. `floor` is a tf.function returning one identity of
its input: the per-call cost of the function call itself, which dominates at 1
row.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TWML = Path(os.environ.get("TWML_OPS_DIR", Path.home() / ".cache/bpr_ops/twml-ops")) / "libtwml_ops.so"
IMPLS = ("ours", "twml", "plain")

# The shape of the data every case is built from: a batch of `rows` records,
# FEATS sparse features each (the Earlybird light ranker reads a few dozen).
FEATS = 40
N_FEATURES, N_BIN, OUT_BITS = 1000, 20, 22


# --------------------------------------------------------------------------------------------- cases
# Each case(rows, np, tf, m, impl) returns (fn, args, check) or None when `impl` has no way to do it:
# fn is a tf.function called as fn(*args); `m` is the op module (ours or twml's; None for plain).
# check says how the parent compares outputs with ours: "exact", ("close", rtol) or a callable
# (name of a comparison in COMPARE) for the special cases.


def _rng(np, name, rows):
    return np.random.default_rng(zlib.crc32(f"{name}:{rows}".encode()))


def case_floor(rows, np, tf, m, impl):
    x = tf.constant(np.zeros(rows * FEATS, np.float32))
    return tf.function(lambda x: tf.identity(x)), (x,), "exact"


def _hashing_inputs(np, name, rows):
    rng = _rng(np, name, rows)
    fids = rng.choice(1 << 40, size=N_FEATURES, replace=False).astype(np.int64)
    bins = np.sort(rng.normal(size=(N_FEATURES, N_BIN)), axis=1).astype(np.float32)
    n = rows * FEATS
    # Nine in ten ids calibrated, the rest not (they keep their value, the id masked).
    ids = np.where(rng.uniform(size=n) < 0.9, rng.choice(fids, size=n), rng.integers(0, 1 << 40, size=n))
    vals = rng.normal(size=n).astype(np.float32)
    return fids, bins, ids.astype(np.int64), vals


def case_hashing(rows, np, tf, m, impl):
    fids, bins, ids, vals = _hashing_inputs(np, "hashing", rows)
    args = (tf.constant(ids), tf.constant(vals))
    if impl in ("ours", "twml"):
        proto = tf.make_tensor_proto(fids)
        flat = tf.constant(bins.reshape(-1))

        @tf.function
        def fn(ids, vals):
            # twml's layer passes cost_per_unit=500 and options=0.
            return m.hashing_discretizer(ids, vals, flat, feature_ids=proto, n_bin=N_BIN, output_bits=OUT_BITS,
                                         cost_per_unit=500, options=0)

        return fn, args, "exact"
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(fids, np.arange(N_FEATURES)), -1)
    bins_t = tf.constant(bins)
    c32 = 2654435761

    @tf.function
    def plain(ids, vals):
        row = table.lookup(ids)
        found = row >= 0
        b = tf.searchsorted(tf.gather(bins_t, tf.maximum(row, 0)), vals[:, None], side="left")[:, 0]
        # twml's 32-bit multiplicative hash, in wrapping uint64 arithmetic.
        h = tf.bitcast(ids, tf.uint64) * tf.constant(c32, tf.uint64) + tf.cast(b, tf.uint64)
        h = tf.bitwise.right_shift(h * tf.constant(c32, tf.uint64), tf.constant(32 - OUT_BITS, tf.uint64))
        h = tf.bitcast(tf.bitwise.bitwise_and(h, tf.constant((1 << OUT_BITS) - 1, tf.uint64)), tf.int64)
        keys = tf.where(found, h, tf.bitwise.bitwise_and(ids, (1 << OUT_BITS) - 1))
        return keys, tf.where(found, tf.ones_like(vals), vals)

    return plain, args, "exact"


def case_bpr_hashing(rows, np, tf, m, impl):
    """Our BprHashingDiscretizer: the calibration as an input (what the TF2 layer calls), not an attr."""
    if impl != "ours":
        return None
    import bpr_ops.discretizers as d

    fids, bins, ids, vals = _hashing_inputs(np, "hashing", rows)
    flat, fids_t = tf.constant(bins.reshape(-1)), tf.constant(fids)

    @tf.function
    def fn(ids, vals):
        return d.hashing_discretizer(ids, vals, flat, fids_t, n_bin=N_BIN, output_bits=OUT_BITS)

    return fn, (tf.constant(ids), tf.constant(vals)), "exact"


def case_percentile(rows, np, tf, m, impl):
    """PercentileDiscretizer (MDL and PercentileDiscretizerBinIndices are the same kernel in both builds)."""
    rng = _rng(np, "percentile", rows)
    bins = np.sort(rng.normal(size=(N_FEATURES, N_BIN)), axis=1).astype(np.float32)
    bin_ids = (np.arange(N_FEATURES * N_BIN) + 7).astype(np.int64)
    offsets = (np.arange(N_FEATURES) * N_BIN).astype(np.int64)
    n = rows * FEATS
    # Keys are the hashmap's indices; -1 (a feature not calibrated) for one in twenty.
    keys = np.where(rng.uniform(size=n) < 0.95, rng.integers(0, N_FEATURES, size=n), -1).astype(np.int64)
    vals = rng.normal(size=n).astype(np.float32)
    args = (tf.constant(keys), tf.constant(vals))
    if impl in ("ours", "twml"):
        t_ids, t_vals, t_off = tf.constant(bin_ids), tf.constant(bins.reshape(-1)), tf.constant(offsets)
        fn = tf.function(lambda k, v: m.percentile_discretizer(k, v, t_ids, t_vals, t_off))
        return fn, args, "percentile"
    bins_t, ids_t = tf.constant(bins), tf.constant(bin_ids.reshape(N_FEATURES, N_BIN))

    @tf.function
    def plain(k, v):
        kc = tf.maximum(k, 0)
        # The boundary at or below the value: twml's search without values on a boundary.
        j = tf.clip_by_value(tf.searchsorted(tf.gather(bins_t, kc), v[:, None], side="left")[:, 0] - 1, 0, N_BIN - 1)
        new = tf.gather_nd(ids_t, tf.stack([kc, tf.cast(j, tf.int64)], 1))
        miss = k < 0
        return tf.where(miss, k, new), tf.where(miss, v, tf.ones_like(v))

    return plain, args, "percentile"


def case_isotonic(rows, np, tf, m, impl):
    rng = _rng(np, "isotonic", rows)
    nb = 100
    xs = np.sort(rng.uniform(size=(1, nb)), axis=1).astype(np.float32)
    ys = np.sort(rng.uniform(size=(1, nb)), axis=1).astype(np.float32)
    inp = rng.uniform(size=(rows, 1)).astype(np.float32)
    xs_t, ys_t = tf.constant(xs), tf.constant(ys)
    args = (tf.constant(inp),)
    if impl in ("ours", "twml"):
        return tf.function(lambda x: m.isotonic_calibration(x, xs_t, ys_t)), args, "exact"

    @tf.function
    def plain(x):
        xt = tf.transpose(x)
        r = tf.clip_by_value(tf.searchsorted(xs_t, xt, side="right"), 1, nb - 1)
        x0, x1 = tf.gather(xs_t, r - 1, batch_dims=1), tf.gather(xs_t, r, batch_dims=1)
        y0, y1 = tf.gather(ys_t, r - 1, batch_dims=1), tf.gather(ys_t, r, batch_dims=1)
        t = tf.clip_by_value((xt - x0) / (x1 - x0), 0.0, 1.0)
        return tf.transpose(y0 + t * (y1 - y0))

    return plain, args, ("close", 1e-5)


def _matmul(rows, np, tf, m, impl, bits, width):
    rng = _rng(np, f"matmul{width}", rows)
    cols = np.sort(rng.integers(0, 1 << bits, size=(rows, FEATS)), axis=1)
    idx = np.stack([np.repeat(np.arange(rows), FEATS), cols.ravel()], 1).astype(np.int64)
    w = rng.normal(size=(1 << bits, width)).astype(np.float32)
    args = (tf.constant(idx), tf.ones([len(idx)]), tf.constant([rows, 1 << bits], tf.int64), tf.constant(w))
    if impl in ("ours", "twml"):
        return tf.function(lambda i, v, s, w: m.binary_sparse_tensor_dense_mat_mul(i, v, s, w)), args, ("close", 1e-5)
    fn = tf.function(lambda i, v, s, w: tf.sparse.sparse_dense_matmul(tf.SparseTensor(i, v, s), w))
    return fn, args, ("close", 1e-5)


def case_matmul1(rows, np, tf, m, impl):
    """FullSparse(1), as the Earlybird light ranker: 2^20 columns, width 1."""
    return _matmul(rows, np, tf, m, impl, 20, 1)


def case_matmul64(rows, np, tf, m, impl):
    """A hidden layer: 2^16 columns, width 64."""
    return _matmul(rows, np, tf, m, impl, 16, 64)


def case_max_norm(rows, np, tf, m, impl):
    rng = _rng(np, "maxnorm", rows)
    size = 1 << 16
    maxv = np.abs(rng.normal(size=size)).astype(np.float32)
    n = rows * FEATS
    args = (tf.constant(maxv), tf.constant(rng.integers(0, size, size=n)), tf.constant(rng.normal(size=n).astype(np.float32)))
    if impl in ("ours", "twml"):
        return tf.function(lambda mx, i, v: m.sparse_max_norm_inference(mx, i, v, epsilon=1e-5)), args, "exact"
    fn = tf.function(lambda mx, i, v: v / tf.maximum(tf.maximum(tf.gather(mx, i), tf.abs(v)), 1e-5))
    return fn, args, "exact"


def case_partition(rows, np, tf, m, impl):
    rng = _rng(np, "partition", rows)
    n, parts = rows * FEATS, 4
    idx = np.stack([np.repeat(np.arange(rows), FEATS), rng.integers(0, 1 << 20, size=n)], 1).astype(np.int64)
    args = (tf.constant(idx), tf.constant(rng.normal(size=n).astype(np.float32)))
    if impl in ("ours", "twml"):
        types = [tf.int64, tf.float32] * parts
        fn = tf.function(lambda i, v: m.partition_sparse_tensor_mod(i, v, num_partitions=parts, output_types=types))
        return fn, args, "exact"

    @tf.function
    def plain(i, v):
        pid = tf.cast(i[:, 1] % parts, tf.int32)
        new = tf.stack([i[:, 0], i[:, 1] // parts], 1)
        pi, pv = tf.dynamic_partition(new, pid, parts), tf.dynamic_partition(v, pid, parts)
        return [t for pair in zip(pi, pv) for t in pair]

    return plain, args, "exact"


def case_feature_mask(rows, np, tf, m, impl):
    rng = _rng(np, "mask", rows)
    keep_list = sorted(int(x) for x in rng.choice(1000, size=100, replace=False))
    args = (tf.constant(rng.integers(0, 1000, size=rows * FEATS)),)
    if impl in ("ours", "twml"):
        return tf.function(lambda k: m.feature_mask(k, list_keep=keep_list)), args, "exact"
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keep_list, tf.int64), tf.ones([100], tf.int64)), 0)
    return tf.function(lambda k: table.lookup(k) > 0), args, "exact"


def case_hashmap(rows, np, tf, m, impl):
    rng = _rng(np, "hashmap", rows)
    hk = rng.choice(1 << 40, size=N_FEATURES, replace=False).astype(np.int64)
    hv = np.arange(N_FEATURES, dtype=np.int64)
    n = rows * FEATS
    keys = np.where(rng.uniform(size=n) < 0.9, rng.choice(hk, size=n), rng.integers(0, 1 << 40, size=n))
    args = (tf.constant(keys.astype(np.int64)),)
    if impl in ("ours", "twml"):
        hk_t, hv_t = tf.constant(hk), tf.constant(hv)
        return tf.function(lambda k: m.hashmap(k, hk_t, hv_t)), args, "exact"
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(hk, hv), -1)

    @tf.function
    def plain(k):
        v = table.lookup(k)
        found = v >= 0
        return tf.where(found, v, k), tf.cast(found, tf.int8)

    return plain, args, "exact"


def case_compress(rows, np, tf, m, impl):
    rng = _rng(np, "compress", rows)
    ids = np.sort(rng.integers(0, rows, size=rows * FEATS)).astype(np.int32)
    args = (tf.constant(ids),)
    if impl in ("ours", "twml"):
        return tf.function(lambda x: m.compress_sample_ids(x)), args, "exact"
    return tf.function(lambda x: tf.math.bincount(x, minlength=x[-1] + 1, maxlength=x[-1] + 1)), args, "exact"


def case_decompress(rows, np, tf, m, impl):
    rng = _rng(np, "decompress", rows)
    args = (tf.constant(rng.integers(0, 2 * FEATS, size=rows).astype(np.int32)),)
    if impl in ("ours", "twml"):
        return tf.function(lambda x: m.decompress_sample_ids(x)), args, "exact"
    return tf.function(lambda x: tf.repeat(tf.range(tf.size(x)), x)), args, "exact"


def _fixed_inputs(np, tf, name, rows):
    rng = _rng(np, name, rows)
    lengths = rng.integers(0, 2 * FEATS, size=rows)
    lengths[-1] = max(lengths[-1], 1)  # the batch size is the last segment id + 1 for V1
    seg = np.repeat(np.arange(rows), lengths).astype(np.int64)
    vals = rng.integers(0, 1 << 30, size=len(seg)).astype(np.int64)
    return tf.constant(seg), tf.constant(vals), tf.constant(np.int64(-1))


def case_fixed_length(rows, np, tf, m, impl):
    args = _fixed_inputs(np, tf, "fixed", rows)
    if impl in ("ours", "twml"):
        return tf.function(lambda s, v, p: m.fixed_length_tensor(s, v, p, max_length=64)), args, "exact"

    @tf.function
    def plain(s, v, p):
        return tf.RaggedTensor.from_value_rowids(v, s).to_tensor(default_value=p, shape=[None, 64])

    return plain, args, "exact"


def case_fixed_length_v2(rows, np, tf, m, impl):
    s, v, p = _fixed_inputs(np, tf, "fixed", rows)
    args = (s, v, p, tf.constant(np.int64(rows)))
    if impl in ("ours", "twml"):
        return tf.function(lambda s, v, p, b: m.fixed_length_tensor_v2(s, v, p, b, max_length=64)), args, "exact"

    @tf.function
    def plain(s, v, p, b):
        return tf.RaggedTensor.from_value_rowids(v, s, nrows=b).to_tensor(default_value=p, shape=[None, 64])

    return plain, args, "exact"


def case_var_length(rows, np, tf, m, impl):
    args = (tf.constant(np.full(rows, rows * FEATS, np.int32)),)
    if impl in ("ours", "twml"):
        return tf.function(lambda x: m.var_length_reader(x)), args, "exact"
    return tf.function(lambda x: tf.ones(tf.stack([1, x[0]]), tf.int32)), args, "exact"


def case_extractor(rows, np, tf, m, impl):
    rng = _rng(np, "extractor", rows)
    n = rows * FEATS
    args = (tf.constant(rng.uniform(size=n) < 0.5), tf.constant(rng.integers(0, rows, size=n)),
            tf.constant(rng.integers(-(1 << 62), 1 << 62, size=n)), tf.constant(rng.normal(size=n).astype(np.float32)),
            tf.constant(rng.integers(0, 1 << 40, size=n)), tf.constant(rng.integers(0, 8, size=n).astype(np.int8)))
    if impl in ("ours", "twml"):
        return tf.function(lambda *a: m.feature_extractor(*a)), args, "exact"
    return tf.function(lambda mask, *a: [tf.boolean_mask(t, mask) for t in a]), args, "exact"


def case_substrings(rows, np, tf, m, impl):
    if impl == "plain":
        return None  # no plain TF op gives the sorted set of n-grams joined by ';'
    rng = _rng(np, "substrings", rows)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    words = [bytes(rng.choice(letters, size=rng.integers(3, 12))) for _ in range(rows)]
    args = (tf.constant(words),)
    return tf.function(lambda w: m.get_substrings(w, min_n=3, max_n=5)), args, "exact"


CASES = {
    "floor": case_floor,
    "HashingDiscretizer": case_hashing,
    "BprHashingDiscretizer": case_bpr_hashing,
    "PercentileDiscretizer": case_percentile,
    "IsotonicCalibration": case_isotonic,
    "BinarySparseTensorDenseMatMul": case_matmul1,
    "BinarySparseTensorDenseMatMul/64": case_matmul64,
    "SparseMaxNormInference": case_max_norm,
    "PartitionSparseTensorMod": case_partition,
    "FeatureMask": case_feature_mask,
    "Hashmap": case_hashmap,
    "CompressSampleIds": case_compress,
    "DecompressSampleIds": case_decompress,
    "FixedLengthTensor": case_fixed_length,
    "FixedLengthTensorV2": case_fixed_length_v2,
    "VarLengthReader": case_var_length,
    "FeatureExtractor": case_extractor,
    "GetSubstrings": case_substrings,
}

# ------------------------------------------------------------------------------------------- worker


def worker(impl, lib):
    import numpy as np
    import tensorflow as tf

    m = None
    if impl == "ours":
        sys.path.insert(0, str(ROOT / "python"))
        from bpr_ops._loader import load_library

        m = load_library()
    elif impl == "twml":
        m = tf.load_op_library(lib)
    out = sys.stdout
    sys.stdout = sys.stderr  # only replies on the real stdout
    current = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "prep":
                made = CASES[req["case"]](req["rows"], np, tf, m, impl)
                if made is None:
                    current, reply = None, {"none": True}
                else:
                    fn, args, check = made
                    res = fn(*args)
                    fn(*args)
                    t0 = time.perf_counter()
                    fn(*args)
                    one = time.perf_counter() - t0
                    flat = tf.nest.flatten(res)
                    np.savez(req["out"], *[t.numpy() for t in flat])
                    current = (fn, args)
                    reply = {"one": one, "check": check if isinstance(check, str) else list(check)}
            elif req["cmd"] == "time":
                fn, args = current
                reps = req["reps"]
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(reps):
                    fn(*args)
                reply = {"wall": (time.perf_counter() - t0) / reps, "cpu": (time.process_time() - c0) / reps}
            else:
                reply = {"error": f"unknown command {req['cmd']}"}
        except Exception as e:  # reported to the parent, which prints it for the case
            reply = {"error": f"{type(e).__name__}: {e}"[:500]}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class Worker:
    def __init__(self, impl, lib):
        self.impl = impl
        cmd = [sys.executable, __file__, "--worker", impl] + (["--twml", str(lib)] if lib else [])
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.impl} died (exit {self.p.wait()}) on {req}")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


# ----------------------------------------------------------------------------------------- compare


def compare(np, check, ours, other):
    """'' when `other` agrees with ours, else what differs."""
    if len(ours) != len(other):
        return f"{len(other)} outputs, ours {len(ours)}"
    for i, (a, b) in enumerate(zip(ours, other)):
        if a.shape != b.shape:
            return f"output {i}: shape {b.shape}, ours {a.shape}"
    if check == "percentile":
        # twml leaves new_keys uninitialised where the key is -1 (ours: -1): compare the others.
        ok = ours[0] != -1
        if not np.array_equal(ours[0][ok], other[0][ok]) or not np.array_equal(ours[1], other[1]):
            return f"{int((ours[0][ok] != other[0][ok]).sum())} keys differ"
        return ""
    for i, (a, b) in enumerate(zip(ours, other)):
        if check == "exact" or a.dtype.kind not in "fc":
            if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
                return f"output {i}: {int((a != b).sum())} of {a.size} differ"
        elif not np.allclose(a, b, rtol=check[1], atol=check[1], equal_nan=True):
            return f"output {i}: max difference {float(np.max(np.abs(a - b))):.3g}"
    return ""


def load_outputs(np, path):
    with np.load(path, allow_pickle=True) as z:  # GetSubstrings' strings are object arrays
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def fmt_us(xs):
    med = statistics.median(xs) * 1e6
    return f"{med:.1f}", f"{min(xs) * 1e6:.0f}..{max(xs) * 1e6:.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", default="1,64,1024,16384")
    parser.add_argument("--ops", default=",".join(CASES), help="comma-separated case names: " + ", ".join(CASES))
    parser.add_argument("--twml", default=None, help=f"twml's op library (default {DEFAULT_TWML})")
    parser.add_argument("--target-ms", type=float, default=25.0, help="time per measurement")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="what the table shows: the worker process's CPU time per call (all its threads; "
                        "steadier on a loaded machine) or wall-clock time; the JSON has both")
    parser.add_argument("--json", default=None, help="write every measurement here")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.twml)

    import numpy as np

    twml = Path(args.twml) if args.twml else DEFAULT_TWML
    impls = list(IMPLS)
    if not twml.is_file():
        print(f"twml's build not found at {twml} (scripts/build_twml_ops.sh makes it): ours against plain TF only")
        impls.remove("twml")
    ops = [o for o in args.ops.split(",") if o]
    unknown = [o for o in ops if o not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    rows_list = [int(r) for r in args.rows.split(",")]
    load = os.getloadavg()
    print(f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; "
          f"median of {args.rounds} interleaved rounds, ~{args.target_ms:.0f} ms each; {args.clock} time per call in us")
    workers = {i: Worker(i, twml if i == "twml" else None) for i in impls}
    results = []
    head = (f"{'op':34} {'rows':>6} {'ours':>9} {'spread':>11} {'twml':>9} {'spread':>11} {'plain':>9} {'spread':>11}"
            f" {'twml/ours':>9} {'plain/ours':>10}  agree")
    print(head)
    tmp = Path(tempfile.mkdtemp(prefix="bench_twml_"))
    try:
        for op in ops:
            for rows in rows_list:
                row = {"op": op, "rows": rows, "times": {}, "other": {}, "agree": {}, "error": {}}
                live, outs = {}, {}
                for impl, w in workers.items():
                    path = tmp / f"{impl}.npz"
                    rep = w.ask(cmd="prep", case=op, rows=rows, out=str(path))
                    if rep.get("none"):
                        continue
                    if "error" in rep:
                        row["error"][impl] = rep["error"]
                        continue
                    live[impl] = max(3, min(20000, int(args.target_ms / 1e3 / max(rep["one"], 1e-6))))
                    outs[impl] = (load_outputs(np, path), rep["check"])
                if "ours" in outs:
                    base = outs["ours"][0]
                    for impl, (o, check) in outs.items():
                        if impl != "ours":
                            check = check if isinstance(check, str) else tuple(check)
                            row["agree"][impl] = compare(np, check, base, o) or "same"
                order = list(live)
                for r in range(args.rounds):
                    k = r % len(order) if order else 0
                    for impl in order[k:] + order[:k]:
                        rep = workers[impl].ask(cmd="time", reps=live[impl])
                        if "error" in rep:
                            row["error"][impl] = rep["error"]
                            continue
                        row["times"].setdefault(impl, []).append(rep[args.clock])
                        row["other"].setdefault(impl, []).append(rep["cpu" if args.clock == "wall" else "wall"])
                results.append(row)
                cells, med = [], {}
                for impl in IMPLS:
                    xs = row["times"].get(impl)
                    if xs:
                        med[impl] = statistics.median(xs)
                        cells += list(fmt_us(xs))
                    else:
                        cells += ["error" if impl in row["error"] else "-", ""]
                ratio = [f"{med[i] / med['ours']:.2f}" if i in med and "ours" in med else "-" for i in ("twml", "plain")]
                agree = "; ".join(f"{i}: {a}" for i, a in row["agree"].items())
                print(f"{op:34} {rows:>6} {cells[0]:>9} {cells[1]:>11} {cells[2]:>9} {cells[3]:>11} {cells[4]:>9} "
                      f"{cells[5]:>11} {ratio[0]:>9} {ratio[1]:>10}  {agree}", flush=True)
                for impl, e in row["error"].items():
                    print(f"    {impl} failed: {e}")
    finally:
        for w in workers.values():
            w.close()
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_end": load, "rounds": args.rounds, "clock": args.clock, "results": results}, indent=1))
    if args.markdown:
        print()
        other = "wall" if args.clock == "cpu" else "cpu"
        print(f"| op | rows | ours us | twml us | plain TF us | twml/ours | plain/ours | {other}: twml/ours | "
              f"{other}: plain/ours |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in results:
            t = {i: statistics.median(x) * 1e6 for i, x in row["times"].items() if x}
            cell = {i: f"{t[i]:.1f} ({min(row['times'][i]) * 1e6:.0f}..{max(row['times'][i]) * 1e6:.0f})"
                    if i in t else "-" for i in IMPLS}
            ratio = [f"{t[i] / t['ours']:.2f}" if i in t and "ours" in t else "-" for i in ("twml", "plain")]
            u = {i: statistics.median(x) for i, x in row["other"].items() if x}
            ratio += [f"{u[i] / u['ours']:.2f}" if i in u and "ours" in u else "-" for i in ("twml", "plain")]
            print(f"| {row['op']} | {row['rows']} | {cell['ours']} | {cell['twml']} | {cell['plain']} | "
                  f"{ratio[0]} | {ratio[1]} | {ratio[2]} | {ratio[3]} |")
    bad = [(r["op"], r["rows"], i, a) for r in results for i, a in r["agree"].items() if a != "same"]
    for op, rows, impl, why in bad:
        print(f"DISAGREE {op} at {rows} rows: {impl} {why}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

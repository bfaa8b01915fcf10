"""Side-by-side timings of the writer ops (issue: performance).

For each case, in one TensorFlow process, eager calls, rounds interleaved:
  op        the bpr_ops writer
  fill      tf.fill of a uint8 tensor of the same output shape: an op that
            allocates and writes the same N bytes (at small N, the dispatch floor)
  apache    Apache Thrift (Python, generated code, C-accelerated fastbinary)
            building and serializing the same response from the same numpy data
  thriftpy2 thriftpy2 with its Cython binary protocol, same job
Every generic encoder's bytes are checked equal to the op's before timing.
Writes benchmarks/results.json; `benchmarks/report.py` makes the table and plot.

usage: bench_ops.py [--quick] [--out FILE] [--intra-op-threads N]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))
# Apache Thrift structs made from thrift/ at run time (no generated code committed).
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import thriftpy2  # noqa: E402
from thrift.protocol.TBinaryProtocol import TBinaryProtocolAccelerated  # noqa: E402
from thrift.transport.TTransport import TMemoryBuffer  # noqa: E402
from thriftpy2.protocol import TCyBinaryProtocolFactory  # noqa: E402
from thriftpy2.utils import serialize as tp2_serialize  # noqa: E402

import bpr_ops  # noqa: E402
import apache_thrift  # noqa: E402

_APACHE = apache_thrift.load()
DataRecord = _APACHE.data.DataRecord
BatchPredictionResponse = _APACHE.prediction_service.BatchPredictionResponse
DataType, GeneralTensor = _APACHE.tensor.DataType, _APACHE.tensor.GeneralTensor
RawTypedTensor, StringTensor = _APACHE.tensor.RawTypedTensor, _APACHE.tensor.StringTensor

TP2 = thriftpy2.load(
    str(HERE.parent / "thrift/prediction_service.thrift"),
    module_name="bench_prediction_service_thrift",
    include_dirs=[str(HERE.parent / "thrift")],
)
TP2_TENSOR = TP2.data.tensor


def apache_bytes(response) -> bytes:
    buf = TMemoryBuffer()
    response.write(TBinaryProtocolAccelerated(buf))
    return buf.getvalue()


# --- the cases: each gives keys, TF inputs, and the two generic encoders ------------

def continuous_case(batch, k, rng):
    values_np = rng.normal(size=(batch, k)).astype(np.float32)
    keys = list(range(100, 100 + k))
    keys_t, values = tf.constant(keys, tf.int64), tf.constant(values_np)

    def op():
        return bpr_ops.batch_prediction_response_writer(keys_t, values)

    def apache():
        rows = values_np.astype(np.float64).tolist()
        records = [DataRecord(continuousFeatures=dict(zip(keys, row))) for row in rows]
        return apache_bytes(BatchPredictionResponse(predictions=records))

    def thriftpy():
        rows = values_np.astype(np.float64).tolist()
        records = [TP2.data.DataRecord(continuousFeatures=dict(zip(keys, row))) for row in rows]
        return tp2_serialize(TP2.BatchPredictionResponse(predictions=records), TCyBinaryProtocolFactory())

    return f"continuous float32 B={batch} K={k}", batch, op, apache, thriftpy


def tensor_case(batch, rng, strings=False):
    arrays = [rng.normal(size=(batch, 16)).astype(np.float32) for _ in range(4)]
    if strings:
        words = [("w%06d" % i) * 2 for i in range(batch * 4)]  # 14-byte ASCII strings
        arrays[3] = np.array(words, dtype=object).reshape(batch, 4)
    keys = [1, 2, 3, 4]
    keys_t = tf.constant(keys, tf.int64)
    values = [tf.constant(a.astype(bytes) if a.dtype == object else a) for a in arrays]

    def op():
        return bpr_ops.batch_prediction_tensor_response_writer(keys_t, values)

    def general(mod, a, i):
        if a.dtype == object:
            st = mod.StringTensor(strings=list(a[i]), shape=[a.shape[1]])
            return mod.GeneralTensor(stringTensor=st)
        raw = mod.RawTypedTensor(dataType=0, content=a[i].tobytes(), shape=[a.shape[1]])
        return mod.GeneralTensor(rawTypedTensor=raw)

    class ApacheTypes:
        StringTensor, RawTypedTensor, GeneralTensor = StringTensor, RawTypedTensor, GeneralTensor

    def apache():
        records = [DataRecord(tensors={k: general(ApacheTypes, a, i) for k, a in zip(keys, arrays)})
                   for i in range(batch)]
        return apache_bytes(BatchPredictionResponse(predictions=records))

    def thriftpy():
        records = [TP2.data.DataRecord(tensors={k: general(TP2_TENSOR, a, i) for k, a in zip(keys, arrays)})
                   for i in range(batch)]
        return tp2_serialize(TP2.BatchPredictionResponse(predictions=records), TCyBinaryProtocolFactory())

    what = "4 x float32[B,16]" if not strings else "3 x float32[B,16] + string[B,4]"
    return f"tensor {what} B={batch}", batch, op, apache, thriftpy


assert DataType.FLOAT == 0


def timed(fn, repeat):
    """Seconds per call over `repeat` back-to-back calls (repeat > 1 for tiny calls)."""
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--intra-op-threads", type=int, default=0,
                        help="size of TensorFlow's intra-op pool (0: TensorFlow's default, one per core); "
                             "1 keeps the op's writing on one thread, to measure what sharding gains")
    args = parser.parse_args()
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    rng = np.random.default_rng(0)
    cases = [continuous_case(b, k, rng) for b, k in [(1, 1), (64, 4), (1024, 4), (8192, 16), (65536, 16)]]
    cases += [tensor_case(b, rng) for b in (64, 1024, 16384)]
    cases.append(tensor_case(4096, rng, strings=True))

    results = []
    for name, batch, op, apache, thriftpy in cases:
        out = op()
        n = int(out.shape[1])
        data = out.numpy().tobytes()
        for label, encoder in (("apache", apache), ("thriftpy2", thriftpy)):
            got = encoder()
            if got != data:
                sys.exit(f"{name}: {label} bytes differ from the op's ({len(got)} vs {len(data)} bytes)")
        dims, seven = tf.constant([1, n], tf.int64), tf.constant(7, tf.uint8)

        def fill():
            return tf.fill(dims, seven)

        series = {"op": op, "fill": fill, "apache": apache, "thriftpy2": thriftpy}
        # Calibrate: ~2 ms per sample for fast series, one call for slow ones.
        repeat = {s: max(1, int(0.002 / max(timed(f, 3), 1e-7))) for s, f in series.items()}
        slow = timed(apache, 1)
        rounds = 5 if args.quick else max(7, min(41, int(20 / max(slow, 1e-3))))
        samples = {s: [] for s in series}
        for _ in range(rounds):  # interleaved: every series sees the same machine state
            for s, f in series.items():
                samples[s].append(timed(f, repeat[s]))
        med = {s: statistics.median(v) for s, v in samples.items()}
        row = {"case": name, "batch": batch, "bytes": n, "rounds": rounds, "median_s": med}
        results.append(row)
        print(
            f"{name:45s} N={n:>10,d}  op {med['op']*1e6:9.1f} us ({n/med['op']/1e9:6.2f} GB/s)"
            f"  fill {med['fill']*1e6:9.1f} us  op/fill {med['op']/med['fill']:5.2f}"
            f"  apache/op {med['apache']/med['op']:7.1f}  thriftpy2/op {med['thriftpy2']/med['op']:7.1f}",
            flush=True,
        )
    machine = {
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The writer's share of a served request (issue 21).

What a user of a served model sees is not the op against tf.fill but the
request: this exports one small Keras MLP (64 features -> 256 relu -> K
sigmoid outputs) three times with the same weights, ending in

- `raw`: its float [B, K] output, no writer (what the request costs anyway),
- `continuous`: bpr_ops.BatchPredictionWriter(K keys),
- `tensor`: bpr_ops.BatchPredictionTensorWriter(one key) on the [B, K] scores,
- `reshape`: tf.reshape(scores, [1, -1]), two graph nodes (a Const and the
  Reshape, zero-copy) like the writers' two (the keys Const and the writer):
  what the executor charges for two extra nodes that do no work, the floor
  of any op appended to the model,

and serves each with bpr-host (target/release/bpr-host: the TensorFlow C API,
libbpr_ops.so loaded at run time, the SavedModel loaded once and its inputs
built once) in its `--repeat` mode: the three models run round by round in
turn in one process, so their times are measured interleaved. The machine is
shared and its load comes in bursts longer than a round, so rounds are short
and many, and the share is paired by round: the median over rounds of
(writer model - raw model) / writer model, both from the same round. One
process per (run, batch size), batch sizes alternating; the table gives the
median over the processes and min..max.

usage: bench_share.py [--runs 5] [--batches 1,64,1024] [--k 16] [--out FILE] [--ops LIBRARY]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODELS = ("raw", "continuous", "tensor", "reshape")
WRITERS = ("continuous", "tensor", "reshape")
# Session runs per model per round: a round is a few milliseconds at every
# batch size (about 40 us, 90 us and 0.5 ms per run here).
PER_ROUND = {1: 50, 64: 25, 1024: 5}


def export(work: Path, k: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT / "python"))
    import keras
    import tensorflow as tf

    import bpr_ops

    keras.utils.set_random_seed(21)
    features = keras.Input((64,), name="features")
    hidden = keras.layers.Dense(256, activation="relu")(features)
    scores = keras.layers.Dense(k, activation="sigmoid")(hidden)
    keys = list(range(1001, 1001 + k))
    models = {
        "raw": keras.Model(features, scores),
        "continuous": keras.Model(features, bpr_ops.BatchPredictionWriter(keys)(scores)),
        "tensor": keras.Model(features, bpr_ops.BatchPredictionTensorWriter([2001])([scores])),
        "reshape": keras.Model(features, keras.layers.Lambda(lambda x: tf.reshape(x, [1, -1]))(scores)),
    }
    for name, model in models.items():
        model.export(str(work / name), format="tf_saved_model", verbose=False)
    return tf.__version__, keras.__version__


def host_run(work: Path, batch: int, runs: int, rounds: int, ops: Path = None):
    release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    cmd = [str(release / "bpr-host"), "--ops", str(ops or release / "libbpr_ops.so")]
    for name in MODELS:
        cmd += ["--model", str(work / name)]
    cmd += ["--input", str(work / f"batch{batch}.npy"), "--repeat", str(runs), "--rounds", str(rounds)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"bpr-host failed: {done.stderr.strip()}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {name: line for name, line in zip(MODELS, lines)}


def build(env):
    for cmd in (["cargo", "build", "--release"], ["cargo", "build", "--release", "-p", "bpr-host"]):
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="processes per batch size")
    parser.add_argument("--batches", default="1,64,1024")
    parser.add_argument("--k", type=int, default=16, help="outputs of the model")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the runs per round")
    parser.add_argument("--out", type=Path, default=HERE / "results_share.json")
    parser.add_argument("--ops", type=Path, help="the op library bpr-host loads (default: the one built here)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    build({**os.environ, "PYTHON": sys.executable})
    import numpy as np

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {str(b): [] for b in batches}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tf_version, keras_version = export(work, args.k)
        rng = np.random.default_rng(0)
        for b in batches:
            np.save(work / f"batch{b}.npy", rng.normal(size=(b, 64)).astype(np.float32))
        for r in range(args.runs):
            for b in batches if r % 2 == 0 else batches[::-1]:
                per_round = max(1, int(PER_ROUND.get(b, 5) * args.scale))
                got = host_run(work, b, per_round * args.rounds, args.rounds, args.ops)
                raw = got["raw"]["median_us"]
                row = {name: got[name]["median_us"] for name in MODELS}
                rounds = {name: got[name]["round_us"] for name in MODELS}
                row["share"] = {
                    w: statistics.median((t - r) / t for t, r in zip(rounds[w], rounds["raw"]))
                    for w in WRITERS
                }
                row["rounds"] = rounds
                results[str(b)].append(row)
                print(f"run {r + 1}/{args.runs} B={b:5d}: raw {raw:9.1f} us  "
                      f"continuous {row['continuous']:9.1f} us ({row['share']['continuous']:+.2%})  "
                      f"tensor {row['tensor']:9.1f} us ({row['share']['tensor']:+.2%})  "
                      f"reshape ({row['share']['reshape']:+.2%})", file=sys.stderr, flush=True)
    data = {
        "started": started, "k": args.k, "python": platform.python_version(), "tensorflow": tf_version,
        "keras": keras_version, "cores": os.cpu_count(), "batches": results,
    }
    args.out.write_text(json.dumps(data, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    for b in batches:
        rows = results[str(b)]
        for w in WRITERS:
            shares = [row["share"][w] for row in rows]
            print(f"B={b:5d} {w:10s} raw {statistics.median(r['raw'] for r in rows):9.1f} us  "
                  f"with writer {statistics.median(r[w] for r in rows):9.1f} us  "
                  f"share {statistics.median(shares):+.2%} ({min(shares):+.2%}..{max(shares):+.2%})")


if __name__ == "__main__":
    main()

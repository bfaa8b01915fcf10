"""The-algorithm's Earlybird light ranker, rebuilt on TensorFlow 2 with bpr_ops.

twml's model (`.../timelines/scripts/models/earlybird/train.py`, `build_graph`):
hashed sparse features -> `twml.limit_bits` -> a `HashingDiscretizer` calibrated
on the training data by `HashingDiscretizerCalibrator` -> `twml.layers.full_sparse`
(output_size=1, binary values) -> sigmoid, trained with a weighted sigmoid
cross-entropy on one engagement label. Here, step by step:

1. block files of synthetic DataRecords with Earlybird's feature names (features.py);
2. one `bpr_ops.FeatureConfig` (the hashed features, the bits, the label and the
   weight) that training and serving both take;
3. the discretizer's bins fitted on the training files (continuous features only,
   as twml's calibration reads them);
4. `model.fit` on `bpr_ops.data.training_dataset`;
5. the per-request serving model (request bytes -> one BatchPredictionResponse per
   request) exported with `bpr_ops.export_for_serving`;
6. requests served by bpr-host (the TensorFlow C API, no Python), and the responses
   decoded by feature name.

    python examples/earlybird/earlybird.py [--records 200000] [--workdir DIR]

(`make earlybird` runs it; it needs `target/release/bpr-host`, which make builds.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bpr_ops  # noqa: E402
from bpr_ops import data  # noqa: E402
from bpr_ops.calibrators import HashingDiscretizerCalibrator  # noqa: E402

import features as F  # noqa: E402

# twml's Earlybird flags: --input_size_bits, --discretizer_num_bins,
# --discretizer_output_size_bits (values of the same order as its configs').
INPUT_BITS = 18
N_BIN = 8
OUTPUT_BITS = 22


def feature_config(**extra) -> bpr_ops.FeatureConfig:
    """Earlybird's features, hashed into [record, key & (2**INPUT_BITS - 1)] as
    twml's `limit_bits`, with its target label and example weight."""
    return bpr_ops.FeatureConfig(
        hashed={"binary": F.FLAGS, "continuous": F.COUNTS},
        hashed_bits=INPUT_BITS,
        labels=[F.TARGET],
        weights=[F.WEIGHT],
        **extra,
    )


def write_files(workdir: Path, records: int, seed: int = 1) -> tuple[list[str], list[str]]:
    """Training and evaluation block files (gzip, 1,000 records per block)."""
    per_file = max(1, records // 4)
    train, evaluate = [], []
    for i in range(5):
        path = workdir / f"earlybird-{i:02d}.gz"
        data.write_block_format(str(path), F.synthetic_records(per_file, seed + i), records_per_block=1000)
        (evaluate if i == 4 else train).append(str(path))
    return train, evaluate


def calibrate(train_files: list[str], batch_size: int) -> keras.layers.Layer:
    """The HashingDiscretizer, its bins fitted on the training files' continuous
    features (binary flags pass it unchanged, as twml's calibration left them)."""
    counts_only = bpr_ops.FeatureConfig(hashed={"continuous": F.COUNTS}, hashed_bits=INPUT_BITS,
                                        weights=[F.WEIGHT])
    batches = data.training_dataset(train_files, counts_only, batch_size=batch_size)
    calibrator = HashingDiscretizerCalibrator(n_bin=N_BIN, out_bits=OUTPUT_BITS)
    calibrator.fit(batches.map(lambda x, y, w: (x["hashed"], w)))
    return calibrator.to_layer(name="hashing_discretizer")


def build_model(discretizer) -> keras.Model:
    """Hashed sparse features -> HashingDiscretizer -> FullSparse(1, binary) -> sigmoid."""
    hashed = keras.Input((1 << INPUT_BITS,), sparse=True, name="hashed")
    discretized = discretizer(hashed)
    logits = bpr_ops.FullSparse(1, use_binary_values=True, name="full_sparse_1")(discretized)
    return keras.Model(hashed, keras.layers.Activation("sigmoid", name="output")(logits))


def serving_model(model: keras.Model) -> keras.Model:
    """Request bytes -> one BatchPredictionResponse per request, the score under
    F.PREDICTION (what consumers look up by name)."""
    requests = keras.Input((), dtype="string", name="requests")
    read = bpr_ops.BatchPredictionRequestReader(feature_config(), row_splits=True)(requests)
    scores = model(read["hashed"])
    responses = bpr_ops.BatchPredictionWriter([F.PREDICTION])(scores, row_splits=read["row_splits"])
    return keras.Model(requests, responses)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (the rank statistic), ties counted half."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for s in np.unique(scores):  # average ranks of ties
        at = scores == s
        ranks[at] = ranks[at].mean()
    pos = labels > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def serve(host: Path, library: Path, export_dir: Path, requests: list[bytes], workdir: Path) -> list[float]:
    """Each request through bpr-host; the responses decoded by name."""
    given, answered = workdir / "requests", workdir / "responses"
    given.mkdir(exist_ok=True)
    answered.mkdir(exist_ok=True)
    for i, r in enumerate(requests):
        (given / f"{i:05d}.bin").write_bytes(r)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([str(host), "--ops", str(library), "--model", str(export_dir), "--input", str(given),
                           "--output", str(answered)], capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"bpr-host failed ({done.returncode}):\n{done.stderr}")
    scores = []
    for path in sorted(answered.glob("response-*.bin")):
        for record in bpr_ops.decode_batch_prediction_response(path.read_bytes(), names=[F.PREDICTION]):
            scores.append(record[F.PREDICTION])
    return scores


def run(workdir: Path, records: int, epochs: int, batch_size: int, requests: int, release: Path,
        log=print) -> dict:
    keras.utils.set_random_seed(7)
    t0 = time.monotonic()
    train_files, eval_files = write_files(workdir, records)
    log(f"wrote {records} synthetic Earlybird records in {len(train_files) + len(eval_files)} block files")

    discretizer = calibrate(train_files, batch_size)
    log(f"calibrated the HashingDiscretizer: {len(discretizer.feature_ids)} continuous features, "
        f"{N_BIN + 1} boundaries each, {OUTPUT_BITS} output bits")

    model = build_model(discretizer)
    model.compile(keras.optimizers.Adam(0.05), keras.losses.BinaryCrossentropy(), weighted_metrics=[])
    train = data.training_dataset(train_files, feature_config(), batch_size=batch_size, shuffle_buffer=4096,
                                  seed=1)
    with warnings.catch_warnings():
        # Keras 3 warns that a tf.data input of unknown length "ran out of data" at each epoch's end
        # (it does not know the length in advance; every epoch still reads every batch), and that
        # fit's default shuffle=True does not apply to a dataset (training_dataset shuffles).
        warnings.filterwarnings("ignore", message=".*(ran out of data|shuffle=True).*")
        history = model.fit(train.map(lambda x, y, w: (x["hashed"], y, w)), epochs=epochs, verbose=0)
    log(f"model.fit: {epochs} epochs, weighted loss {history.history['loss'][0]:.4f} -> "
        f"{history.history['loss'][-1]:.4f}")

    evaluation = data.training_dataset(eval_files, feature_config(), batch_size=batch_size)
    ys, ps = [], []
    for x, y, _ in evaluation:
        ps.append(model.predict_on_batch(x["hashed"])[:, 0])
        ys.append(y.numpy()[:, 0])
    eval_auc = auc(np.concatenate(ys), np.concatenate(ps))
    log(f"evaluation ROC AUC on held-out records: {eval_auc:.3f}")

    export_dir = workdir / "exported"
    bpr_ops.export_for_serving(serving_model(model), export_dir)
    log(f"exported the per-request model to {export_dir} (signatures serving_default, navi)")

    # Requests of 1 to 8 candidate tweets each, as a timeline service would send them.
    rng = np.random.default_rng(11)
    candidates = F.synthetic_records(requests * 8, seed=99)
    sizes = rng.integers(1, 9, requests)
    batches, at = [], 0
    for n in sizes:
        batches.append(candidates[at:at + n])
        at += n
    wire = [bpr_ops.encode_batch_prediction_request(b) for b in batches]
    served = serve(release / "bpr-host", release / "libbpr_ops.so", export_dir, wire, workdir)

    # The same records through the trained model in Python: what bpr-host must give.
    config = feature_config()
    reader = bpr_ops.BatchPredictionRequestReader(config, row_splits=True)
    expected = model.predict(reader(tf.constant(wire))["hashed"], verbose=0)[:, 0]
    log(f"served {len(wire)} requests ({int(sizes.sum())} tweets) with bpr-host; first scores by name "
        f"'{F.PREDICTION}': {[round(s, 4) for s in served[:5]]}")
    log(f"done in {time.monotonic() - t0:.0f} s")
    return {"served": np.array(served, np.float32), "expected": expected, "auc": eval_auc,
            "loss": history.history["loss"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="synthetic records (4/5 train, 1/5 eval)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--requests", type=int, default=50, help="requests served by bpr-host")
    parser.add_argument("--workdir", type=Path, help="where files go (default: a temporary directory)")
    parser.add_argument("--release", type=Path, default=ROOT / "target" / "release",
                        help="where libbpr_ops.so and bpr-host are")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        out = run(workdir, args.records, args.epochs, args.batch_size, args.requests, args.release)
    diff = float(np.max(np.abs(out["served"] - out["expected"]))) if len(out["served"]) else float("nan")
    print(f"bpr-host's scores against model.predict's: max |difference| {diff:.2e}")
    if len(out["served"]) != len(out["expected"]) or not diff <= 1e-6:
        sys.exit("bpr-host's scores differ from model.predict's")


if __name__ == "__main__":
    main()

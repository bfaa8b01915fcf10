"""The main job, end to end: export Keras models whose last layer is a bpr_ops
writer, serve a batch through the Rust serving host (target/release/bpr-host:
the TensorFlow C API, the op library loaded at run time, no Python), and print
the decoded BatchPredictionResponse as a table."""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


@contextlib.contextmanager
def held_stderr():
    """TensorFlow writes start-up lines (absl's "All log messages before
    absl::InitializeLog()", the oneDNN note) straight to file descriptor 2,
    whatever TF_CPP_MIN_LOG_LEVEL says. The demo prints its own output only:
    fd 2 goes to a file meanwhile, shown only when something fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


with held_stderr():
    import keras
    import numpy as np

    import bpr_ops

# Feature names the consumers look these predictions up by: the layers write
# their twml feature ids (bpr_ops.feature_ids), what Feature.Continuous("p_click")
# finds on the JVM side.
NAMES = ["p_click", "p_like", "p_reply"]
EMBEDDING = "embedding"


def build_models():
    keras.utils.set_random_seed(7)
    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(features)
    scores = keras.layers.Dense(len(NAMES), activation="sigmoid")(hidden)
    continuous = keras.Model(features, bpr_ops.BatchPredictionWriter(NAMES)(scores))
    embedding = keras.layers.Dense(3)(hidden)
    tensors = keras.Model(features, bpr_ops.BatchPredictionTensorWriter([EMBEDDING])([embedding]))
    return continuous, tensors


def serve(model_dir: Path, batch: np.ndarray, work: Path) -> bytes:
    np.save(work / "batch.npy", batch)
    host = ROOT / "target" / "release" / "bpr-host"
    command = [str(host), "--ops", str(bpr_ops.library_path()), "--model", str(model_dir),
               "--input", str(work / "batch.npy"), "--output", str(work / "response.bin")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"serving {model_dir.name} through {host.name} failed: {done.stderr.strip()}")
    return (work / "response.bin").read_bytes()


def main():
    batch = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with held_stderr():
            continuous, tensors = build_models()
            for model, name in ((continuous, "continuous"), (tensors, "tensor")):
                model.export(str(work / name), format="tf_saved_model", verbose=False)
        print(f"exported 2 SavedModels; serving a batch of {len(batch)} through target/release/bpr-host")
        served = {name: serve(work / name, batch, work) for name in ("continuous", "tensor")}

    print("keys, by name: " + ", ".join(
        f"{name} = feature id {key}" for name, key in zip(NAMES + [EMBEDDING], bpr_ops.feature_ids(NAMES + [EMBEDDING]))
    ))

    # Decoded with the names: every key one of them hashes to shows as that name.
    data = served["continuous"]
    records = bpr_ops.decode_batch_prediction_response(data, names=NAMES)
    print(f"\nBatchPredictionWriter: {len(data)} bytes, {len(records)} records (continuousFeatures)")
    print("  ".join(f"{h:>10}" for h in ["record"] + NAMES))
    for i, record in enumerate(records):
        print("  ".join([f"{i:>10}"] + [f"{record[name]:>10.6f}" for name in NAMES]))

    data = served["tensor"]
    records = bpr_ops.decode_batch_prediction_response(data, names=[EMBEDDING])
    print(f"\nBatchPredictionTensorWriter: {len(data)} bytes, {len(records)} records (tensors)")
    print(f"{'record':>10}  {EMBEDDING}")
    for i, record in enumerate(records):
        row = record[EMBEDDING]
        print(f"{i:>10}  {row.dtype}{list(row.shape)} {np.array2string(row, precision=4)}")


if __name__ == "__main__":
    main()

"""The main job, end to end: export Keras models whose last layer is a bpr_ops
writer, serve a batch through the Rust serving host (target/release/bpr-host:
the TensorFlow C API, the op library loaded at run time, no Python), and print
the decoded BatchPredictionResponse as a table. Then the whole protocol: a
model whose serving input is the bytes of a Thrift BatchPredictionRequest
(read by BatchPredictionRequestReader) and whose output is the response."""

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


# The request model's features, as a prediction service's client names them.
REQUEST_FEATURES = ["user.age", "tweet.score", "tweet.is_video"]


def build_request_model():
    """Request bytes in (uint8: one BatchPredictionRequest), response bytes out."""
    keras.utils.set_random_seed(7)
    request = keras.Input((), dtype="uint8", name="request")
    read = bpr_ops.BatchPredictionRequestReader(continuous=REQUEST_FEATURES[:2], binary=REQUEST_FEATURES[2:])
    features = read(request)
    x = keras.layers.Concatenate()([features["continuous"], features["binary"]])
    scores = keras.layers.Dense(len(NAMES), activation="sigmoid")(keras.layers.Dense(8, activation="relu")(x))
    return keras.Model(request, bpr_ops.BatchPredictionWriter(NAMES)(scores))


def request_bytes() -> bytes:
    """What a client sends: three records and the features they share."""
    age, score, video = bpr_ops.feature_ids(REQUEST_FEATURES)
    records = [
        {"continuous": {score: 0.9}, "binary": [video]},
        {"continuous": {score: 0.1}},
        {"continuous": {score: 0.5, age: 61.0}},
    ]
    return bpr_ops.encode_batch_prediction_request(records, common={"continuous": {age: 23.0}})


def train_then_serve(work: Path):
    """Train on block files (twml's training data format), serve request bytes:
    one BatchPredictionRequestReader configures both, so the served model reads
    exactly the features it was trained on."""
    from bpr_ops import data

    rng = np.random.default_rng(1)
    records = [{"continuous": {"user.age": float(rng.integers(18, 70)), "tweet.score": float(rng.random()),
                               "clicked": float(rng.random() < 0.3)}, "binary": ["tweet.is_video"] if i % 3 else []}
               for i in range(256)]
    files = [str(work / "train-0.gz"), str(work / "train-1.gz")]
    data.write_block_format(files[0], records[:128], records_per_block=50)
    data.write_block_format(files[1], records[128:], records_per_block=50)
    read = bpr_ops.BatchPredictionRequestReader(continuous=REQUEST_FEATURES[:2], binary=REQUEST_FEATURES[2:])
    keras.utils.set_random_seed(7)
    inputs = {"continuous": keras.Input((2,), name="continuous"), "binary": keras.Input((1,), name="binary")}
    x = keras.layers.Concatenate()([inputs["continuous"] / 100.0, inputs["binary"]])
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(x)))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(data.training_dataset(files, read, batch_size=32, labels=["clicked"]), epochs=3, verbose=0)
    request = keras.Input((), dtype="uint8", name="request")
    serving = keras.Model(request, bpr_ops.BatchPredictionWriter(["p_click"])(model(read(request))))
    serving.export(str(work / "trained"), format="tf_saved_model", verbose=False)
    first = data.training_dataset(files, read, batch_size=3).take(1).map(lambda x, y, w: x)
    return len(records), bpr_ops.encode_batch_prediction_request(records[:3]), model.predict(first, verbose=0).ravel()


def serve(model_dir: Path, batch, work: Path) -> bytes:
    if isinstance(batch, bytes):
        (work / "request.bin").write_bytes(batch)
        given = work / "request.bin"
    else:
        np.save(work / "batch.npy", batch)
        given = work / "batch.npy"
    host = ROOT / "target" / "release" / "bpr-host"
    command = [str(host), "--ops", str(bpr_ops.library_path()), "--model", str(model_dir),
               "--input", str(given), "--output", str(work / "response.bin")]
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
            request_model = build_request_model()
            for model, name in ((continuous, "continuous"), (tensors, "tensor"), (request_model, "request")):
                model.export(str(work / name), format="tf_saved_model", verbose=False)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trained_on, trained_request, predicted = train_then_serve(work)
        print(f"exported 3 SavedModels; serving a batch of {len(batch)} through target/release/bpr-host")
        served = {name: serve(work / name, batch, work) for name in ("continuous", "tensor")}
        request = request_bytes()
        served["request"] = serve(work / "request", request, work)
        served["trained"] = serve(work / "trained", trained_request, work)

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

    data = served["request"]
    records = bpr_ops.decode_batch_prediction_response(data, names=NAMES)
    print(f"\nRequest bytes in, response bytes out: a {len(request)}-byte BatchPredictionRequest "
          f"({', '.join(REQUEST_FEATURES)}; user.age in commonFeatures) -> {len(data)} bytes, {len(records)} records")
    print("  ".join(f"{h:>10}" for h in ["record"] + NAMES))
    for i, record in enumerate(records):
        print("  ".join([f"{i:>10}"] + [f"{record[name]:>10.6f}" for name in NAMES]))

    records = bpr_ops.decode_batch_prediction_response(served["trained"], names=["p_click"])
    scores = np.array([r["p_click"] for r in records])
    print(f"\nTrained on {trained_on} records in block files (bpr_ops.data.training_dataset), served 3 of them "
          f"as request bytes: p_click {np.array2string(scores, precision=6)}, model.predict "
          f"{np.array2string(predicted, precision=6)}: "
          + ("the same" if np.allclose(scores, predicted, rtol=1e-6, atol=1e-7) else "DIFFERENT"))


if __name__ == "__main__":
    main()

"""Run by `make matrix` in a fresh venv where only the release wheel and one
TensorFlow are installed, from a directory outside the source tree: both ops
and the request reader through the installed package (and the library built for the running
TensorFlow minor), then the bpr-decode console script on their output. Prints
one JSON line of what ran (versions) for the table in docs/reference/install.md."""

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import bpr_ops


def main():
    package = Path(bpr_ops.__file__).parent
    assert "site-packages" in str(package), f"bpr_ops imported from {package}, not the installed wheel"
    major, minor = tf.__version__.split(".")[:2]
    library = bpr_ops.library_path()
    assert library == package / f"libbpr_ops.tf{major}_{minor}.so", library

    out = bpr_ops.batch_prediction_response_writer([1, 2], np.float32([[0.5, -1.0], [2.0, 4.0]]))
    assert bpr_ops.decode_batch_prediction_response(out) == [{1: 0.5, 2: -1.0}, {1: 2.0, 2: 4.0}]
    tensors = bpr_ops.batch_prediction_tensor_response_writer(
        [7, 8], [tf.constant([[1.5, 2.0], [3.0, -0.0]]), tf.constant([[b"a"], [b"\xff"]])]
    )
    decoded = bpr_ops.decode_batch_prediction_response(tensors)
    assert decoded[1][7].tolist() == [3.0, -0.0] and decoded[1][8].tolist() == [b"\xff"], decoded

    # The request side through the installed package: two records, one with its own
    # value of "a" and one falling back on the request's commonFeatures.
    request = bpr_ops.encode_batch_prediction_request(
        [{"continuous": {"a": 0.25}, "binary": ["b"]}, {"discrete": {"c": -3}}],
        common={"continuous": {"a": 7.5}},
    )
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"], binary=["b"], discrete=["c"])
    got = reader(tf.constant([request]))
    assert got["continuous"].numpy().tolist() == [[0.25], [7.5]], got
    assert got["binary"].numpy().tolist() == [[1.0], [0.0]], got
    assert got["discrete"].numpy().tolist() == [[0], [-3]], got

    with tempfile.TemporaryDirectory() as tmp:
        response = Path(tmp) / "response.npy"
        np.save(response, tensors.numpy())
        bpr_decode = Path(sys.executable).parent / "bpr-decode"
        done = subprocess.run([str(bpr_decode), str(response)], capture_output=True, text=True, cwd=tmp)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "(2 records)", done.stdout
        response.with_suffix(".bin").write_bytes(out.numpy().tobytes()[:-1])
        bad = subprocess.run([str(bpr_decode), str(response.with_suffix(".bin"))], capture_output=True, text=True)
        assert bad.returncode == 2 and "truncated response" in bad.stderr, bad

    print(json.dumps({"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                      "python": platform.python_version(), "library": library.name}))


if __name__ == "__main__":
    main()

"""twml's small tensor ops served outside Python: a SavedModel whose graph
runs FixedLengthTensor, Hashmap, FeatureMask, GetSubstrings and
CompressSampleIds before the response writer, run by bpr-host (the TensorFlow
C API, loading libbpr_ops.so at run time). The host's bytes equal Python's,
and the scores in them equal NumPy references written from twml's C++.

The model is a tf.Module with a tf.function signature (no Keras layers: these
ops have none; twml's models call them as ops).
"""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check
from bpr_ops import tensor_ops_model as ops
from test_model_tensors import ref_compress, ref_fixed_length, ref_substrings
from test_serving_host import built, host  # noqa: F401 (the fixture)

KEYS = [31, 32, 33]
TABLE = {3: 300, 5: 500, 8: 800}
KEEP = [5, 6]


class Model(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="segment_ids"),
                                  tf.TensorSpec([None], tf.int64, name="ids")])
    def serve(self, segment_ids, ids):
        fixed = ops.fixed_length_tensor(segment_ids, ids, tf.constant(-1, tf.int64), max_length=3)
        looked_up, found = ops.hashmap(fixed, list(TABLE), list(TABLE.values()))
        kept = tf.reshape(ops.feature_mask(fixed, KEEP), tf.shape(fixed))
        counts = ops.compress_sample_ids(segment_ids)
        subwords = ops.get_substrings(tf.strings.as_string(fixed), 1, 2)
        scores = tf.stack([
            tf.cast(looked_up[:, 0], tf.float32),
            tf.cast(found[:, 0], tf.float32) + tf.cast(kept[:, 0], tf.float32) + tf.cast(counts, tf.float32),
            tf.cast(tf.strings.length(subwords[:, 0]), tf.float32),
        ], axis=1)
        return {"result": bpr_ops.batch_prediction_response_writer(KEYS, scores)}


def expected_scores(segment_ids, ids):
    """The model's scores from twml's semantics, in NumPy and Python."""
    fixed, (b, _) = ref_fixed_length(segment_ids, ids.tolist(), -1, 3)
    counts = ref_compress(segment_ids.tolist())
    rows = []
    for r in range(b):
        first = fixed[r][0]
        rows.append([TABLE.get(first, first), float(first in TABLE) + float(first in KEEP) + counts[r],
                     len(ref_substrings(str(first).encode(), 1, 2))])
    return np.array(rows, np.float32)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tensor_ops_serving")
    segment_ids = np.array([0, 0, 1, 3, 3, 3, 3], np.int32)
    ids = np.array([3, 4, 5, 8, 2, 6, 7], np.int64)
    np.save(tmp / "segment_ids.npy", segment_ids)
    np.save(tmp / "ids.npy", ids)
    model = Model()
    tf.saved_model.save(model, str(tmp / "model"), signatures={"serving_default": model.serve})
    serve = tf.saved_model.load(str(tmp / "model")).signatures["serving_default"]
    python = thrift_check.to_bytes(serve(segment_ids=tf.constant(segment_ids), ids=tf.constant(ids))["result"])
    return tmp, python, expected_scores(segment_ids, ids)


def test_bpr_host_serves_the_small_tensor_ops_as_python_does(built, served, tmp_path):  # noqa: F811
    tmp, python, want = served
    run = host(built, "--model", tmp / "model", "--input", f"segment_ids={tmp / 'segment_ids.npy'}",
               "--input", f"ids={tmp / 'ids.npy'}", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    assert data == python
    records = thrift_check.decode(data).predictions
    got = np.array([[r.continuousFeatures[k] for k in KEYS] for r in records], np.float32)
    np.testing.assert_array_equal(got, want)
    # Row 2 is empty (no id 2): padding -1 passes through the table; count 0.
    assert got[2].tolist() == [-1.0, 0.0, float(len(ref_substrings(b"-1", 1, 2)))]


def test_bpr_host_reports_a_kernel_error_in_one_line(built, served, tmp_path):  # noqa: F811
    tmp, _, _ = served
    # Two segment ids, one value: twml read past the end of values.
    np.save(tmp_path / "segment_ids.npy", np.array([0, 1], np.int32))
    np.save(tmp_path / "one.npy", np.array([1], np.int64))
    run = host(built, "--model", tmp / "model", "--input", f"segment_ids={tmp_path / 'segment_ids.npy'}",
               "--input", f"ids={tmp_path / 'one.npy'}", "--output", tmp_path / "out.bin")
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpr-host: error: "), run.stderr
    assert "FixedLengthTensor: values must have one element per segment id; segment_ids has 2 elements, values 1" in lines[0]
    assert not (tmp_path / "out.bin").exists()

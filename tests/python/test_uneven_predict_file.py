"""model.predict's output with uneven batches, kept in a file for bpr-decode
(issue 29: `.npy` of it did not decode). predict returns a RaggedTensor then,
which np.save can only pickle; bpr-decode says what to save instead, and
decodes that: `np.savez(FILE, flat_values=..., row_splits=...)`. Every record
is checked against thriftpy2's reading of each response."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check

PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]


def bpr_decode(*args):
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    return subprocess.run([sys.executable, "-m", "bpr_ops", *map(str, args), "--format", "json"],
                          capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def uneven():
    inp = keras.Input((3,))
    scores = keras.layers.Dense(2, kernel_initializer="ones")(inp)
    model = keras.Model(inp, bpr_ops.BatchPredictionWriter([11, 12])(scores))
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    out = model.predict(x, batch_size=4, verbose=0)  # batches of 4, 4 and 2 records
    assert isinstance(out, tf.RaggedTensor)
    # Each row one response, read by thriftpy2.
    expected = []
    for row in out:
        expected += [r.continuousFeatures for r in
                     thrift_check.decode(row.numpy().astype(np.uint8).tobytes()).predictions]
    assert len(expected) == 10
    return out, expected


def test_the_readme_form_decodes_every_record(uneven, tmp_path):
    out, expected = uneven
    path = tmp_path / "out.npz"
    np.savez(path, flat_values=out.flat_values, row_splits=out.row_splits)
    done = bpr_decode(path)
    assert done.returncode == 0, done.stderr
    import json

    got = [{int(k): v for k, v in r.items()} for r in json.loads(done.stdout)]
    assert got == expected


def test_np_save_of_the_ragged_tensor_says_what_to_save(uneven, tmp_path):
    out, _ = uneven
    path = tmp_path / "out.npy"
    try:
        np.save(path, out)
    except Exception as e:  # noqa: BLE001 - whatever numpy makes of it, the advice is the same
        pytest.skip(f"np.save refuses a RaggedTensor here ({type(e).__name__}); nothing to decode")
    done = bpr_decode(path)
    assert done.returncode == 2
    assert "np.savez(FILE.npz, flat_values=out.flat_values, row_splits=out.row_splits)" in done.stderr, done.stderr


@pytest.mark.parametrize("splits, message", [
    ([0, 20, 10], "row_splits must start at 0, never decrease and end at the length of flat_values"),
    ([0, 5], "row_splits must start at 0, never decrease and end at the length of flat_values"),
])
def test_row_splits_that_do_not_cover_the_bytes_are_refused(uneven, tmp_path, splits, message):
    out, _ = uneven
    path = tmp_path / "bad.npz"
    np.savez(path, flat_values=out.flat_values[:20], row_splits=np.array(splits, np.int64))
    done = bpr_decode(path)
    assert done.returncode == 2
    assert message in done.stderr, done.stderr


def test_an_npz_of_other_arrays_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    done = bpr_decode(path)
    assert done.returncode == 2
    assert "holds ['weights']; expected flat_values and row_splits" in done.stderr, done.stderr

"""Resuming training where it stopped, input included (README, "Resuming
training"): Keras' fit() takes a Dataset, not an iterator, so the input's
position cannot be saved through it; the README's recipe is a loop of
train_on_batch over an iterator saved with the model and its optimizer in one
tf.train.Checkpoint. Stopped after k batches and restarted from the
checkpoint in fresh objects, it sees exactly the batches the uninterrupted
run saw after k, and ends with the same weights."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import block_files as bf
import bpr_ops
from bpr_ops import data

# tf.keras is tf_keras under TF_USE_LEGACY_KERAS=1 (the tf_keras test runs
# this module so in a new process), Keras 3 otherwise.
keras = tf.keras

N, BATCH = 60, 5


def _setup(files, ckpt_dir):
    """What a training script does on every start: input, model, checkpoint,
    restore of the latest one if any (the README's recipe)."""
    keras.utils.set_random_seed(1)  # also TensorFlow's global seed, which the shuffle's order depends on
    read = bpr_ops.BatchPredictionRequestReader(continuous=["a"])
    train = data.training_dataset(files, read, batch_size=BATCH, labels=["label"], shuffle_buffer=20, seed=5)
    inputs = {"continuous": keras.Input((1,), name="continuous")}
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs["continuous"] / 60.0))
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)  # its slots exist before the restore fills them
    it = iter(train)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, iterator=it)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=2)
    checkpoint.restore(manager.latest_checkpoint)
    return model, it, manager


def _train(model, it, manager, stop_after=None):
    seen = []
    for x, y, w in it:
        model.train_on_batch(x, y, sample_weight=w)
        seen.append(x["continuous"].numpy()[:, 0].tolist())
        manager.save(checkpoint_number=int(model.optimizer.iterations))
        if stop_after is not None and len(seen) == stop_after:
            break
    return seen


def check(tmp_path: Path, stops):
    path = str(tmp_path / "train.gz")
    with open(path, "wb") as f:
        f.write(bf.gz(bf.file_bytes([bf.data_record(i) for i in range(N)], 7)))

    model, it, manager = _setup([path], str(tmp_path / "whole"))
    whole = _train(model, it, manager)
    assert len(whole) == N // BATCH
    assert sorted(v for b in whole for v in b) == [float(i) for i in range(N)]
    assert [v for b in whole for v in b] != [float(i) for i in range(N)]  # shuffled: position is more than a count
    final = [v.numpy() for v in model.trainable_variables]

    for stop_after in stops:
        ckpt = str(tmp_path / f"stopped-{stop_after}")
        model, it, manager = _setup([path], ckpt)
        head = _train(model, it, manager, stop_after=stop_after)
        del model, it, manager  # the process "dies"; a new one starts from the checkpoint
        model, it, manager = _setup([path], ckpt)
        assert int(model.optimizer.iterations) == stop_after
        rest = _train(model, it, manager)
        assert head == whole[:stop_after], stop_after
        assert rest == whole[stop_after:], stop_after
        for got, want in zip(model.trainable_variables, final):
            np.testing.assert_array_equal(got.numpy(), want)


def test_resumed_training_sees_exactly_the_remaining_batches(tmp_path):
    check(tmp_path, [1, 5, 11])  # of 12 batches


@pytest.mark.skipif(importlib.util.find_spec("tf_keras") is None, reason="tf_keras is not installed")
def test_the_same_recipe_on_tf_keras(tmp_path):
    # This module (and block_files) from its directory, bpr_ops from where this process has it.
    path = [str(Path(__file__).resolve().parent), str(Path(bpr_ops.__file__).resolve().parents[1]),
            os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(path)}
    script = ("import sys, tensorflow as tf; from pathlib import Path; import test_resume_training as t; "
              "assert t.keras.__name__.startswith('tf_keras'), t.keras.__name__; t.check(Path(sys.argv[1]), [5])")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]

"""Resuming training where it stopped, input included (README, "Resuming
training"): Keras' fit() takes a Dataset, not an iterator, so the input's
position cannot be saved through it; the README's recipe is a loop of
train_on_batch over an iterator saved with the model and its optimizer in one
tf.train.Checkpoint. Stopped after k batches and restarted from the
checkpoint in fresh objects, it sees exactly the batches the uninterrupted
run saw after k, and ends with the same weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import block_files as bf
import bpr_ops
from bpr_ops import data

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


@pytest.mark.parametrize("stop_after", [1, 5, 11])
def test_resumed_training_sees_exactly_the_remaining_batches(tmp_path, stop_after):
    path = str(tmp_path / "train.gz")
    with open(path, "wb") as f:
        f.write(bf.gz(bf.file_bytes([bf.data_record(i) for i in range(N)], 7)))

    model, it, manager = _setup([path], str(tmp_path / "whole"))
    whole = _train(model, it, manager)
    assert len(whole) == N // BATCH
    assert sorted(v for b in whole for v in b) == [float(i) for i in range(N)]
    assert [v for b in whole for v in b] != [float(i) for i in range(N)]  # shuffled: position is more than a count
    final = [v.numpy() for v in model.trainable_variables]

    ckpt = str(tmp_path / "stopped")
    model, it, manager = _setup([path], ckpt)
    head = _train(model, it, manager, stop_after=stop_after)
    del model, it, manager  # the process "dies"; a new one starts from the checkpoint
    model, it, manager = _setup([path], ckpt)
    assert int(model.optimizer.iterations) == stop_after
    rest = _train(model, it, manager)
    assert head == whole[:stop_after]
    assert rest == whole[stop_after:]
    for got, want in zip(model.trainable_variables, final):
        np.testing.assert_array_equal(got.numpy(), want)

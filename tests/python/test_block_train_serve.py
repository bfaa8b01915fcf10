"""Train on block files, serve request bytes: a Keras model trained with
bpr_ops.data.training_dataset on block files (written by the independent
writer), exported with request bytes in (BatchPredictionRequestReader, the
same object that configured training) and a BatchPredictionWriter out, serves
a request built by thriftpy2 from the same records; the scores (decoded by
thriftpy2) are model.predict's on the training features."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import block_files as bf
import bpr_ops
from bpr_ops import data
from thrift_check import IDL, decode

N = 96
RECORDS = [bf.data_record(i) for i in range(N)]


def _request(records: list[bytes]) -> bytes:
    parsed = []
    for r in records:
        rec = IDL.data.DataRecord()
        rec.read(TBinaryProtocol(TMemoryBuffer(r)))
        parsed.append(rec)
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=parsed).write(TBinaryProtocol(buf))
    return buf.getvalue()


def test_train_on_block_files_then_serve_request_bytes(tmp_path):
    files = []
    for k in range(2):
        p = str(tmp_path / f"train-{k}.gz")
        with open(p, "wb") as f:
            f.write(bf.gz(bf.file_bytes(RECORDS[k * N // 2 : (k + 1) * N // 2], 10)))
        files.append(p)

    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a", "b"], binary=["flag"], default_value=-1.0)
    train = data.training_dataset(files, reader, batch_size=16, labels=["label"], weights=["weight"])

    # The labels and weights are the records' own (read by thriftpy2's writer's input).
    ys, ws, xs = [], [], []
    for x, y, w in train:
        xs.append(x)
        ys.append(y.numpy())
        ws.append(w.numpy())
    assert np.concatenate(ys).ravel().tolist() == [float(i % 2) for i in range(N)]
    assert np.concatenate(ws).tolist() == [float(1 + i % 3) for i in range(N)]
    cont = np.concatenate([x["continuous"].numpy() for x in xs])
    np.testing.assert_array_equal(cont[:, 0], np.arange(N, dtype=np.float32))
    np.testing.assert_array_equal(cont[:, 1], [i / 2 if i % 2 else -1.0 for i in range(N)])

    keras.utils.set_random_seed(7)
    inputs = {
        "continuous": keras.Input((2,), name="continuous"),
        "binary": keras.Input((1,), name="binary"),
    }
    h = keras.layers.Concatenate()([inputs["continuous"] / 100.0, inputs["binary"]])
    h = keras.layers.Dense(8, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2

    # Serving: request bytes in, response bytes out, the same reader object.
    request_in = keras.Input(shape=(), dtype="string", name="request")
    scores = model(reader(request_in))
    response = bpr_ops.BatchPredictionWriter(keys=["prediction"])(scores)
    serving = keras.Model(request_in, response)
    export = str(tmp_path / "serving")
    serving.export(export, format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(export)

    request = _request(RECORDS)
    out = loaded.serve(tf.constant([request]))
    served = decode(out.numpy().tobytes())
    pid = bpr_ops.feature_id("prediction")
    got = np.array([r.continuousFeatures[pid] for r in served.predictions], dtype=np.float64)

    expected = model.predict(data.training_dataset(files, reader, batch_size=16).map(lambda x, y, w: x),
                             verbose=0).ravel()
    assert got.shape == (N,)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    # and not trivially: the scores differ between records
    assert np.ptp(got) > 1e-4


def test_training_batches_are_those_of_batch(tmp_path, monkeypatch):
    """training_dataset decodes several small batches per call and cuts them
    (rebatch): the batches must still be exactly `.batch(batch_size,
    drop_remainder)`'s, records in order, the last partial one kept or
    dropped, also across decode chunks (made small here so that 96 records
    cross many)."""
    p = str(tmp_path / "train.block")
    with open(p, "wb") as f:
        f.write(bf.file_bytes(RECORDS, 10))
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"], output_mode="names")
    for chunk in (12, 1024):
        monkeypatch.setattr(data, "_DECODE_RECORDS", chunk)
        for batch, drop in [(1, False), (5, False), (5, True), (7, True), (16, False), (200, False), (200, True)]:
            got = list(data.training_dataset([p], reader, batch_size=batch, labels=["label"], drop_remainder=drop))
            sizes = [len(y) for _, y, _ in got]
            full, rest = divmod(N, batch)
            assert sizes == [batch] * full + ([rest] if rest and not drop else []), (chunk, batch, drop)
            a = np.concatenate([x["a"].numpy() for x, _, _ in got]) if got else np.zeros(0)
            np.testing.assert_array_equal(a, np.arange(sum(sizes), dtype=np.float32))
            labels = np.concatenate([y.numpy() for _, y, _ in got]).ravel() if got else np.zeros(0)
            assert labels.tolist() == [float(i % 2) for i in range(sum(sizes))]


def test_training_read_paths(tmp_path):
    """In file order the batches come from BlockFormatFeatureDataset (one
    pass per record, issue 38), or with one_pass=False batched from
    BlockFormatBatchDataset (no tf.data element per record); shuffling and num_parallel_reads read them
    one by one (BlockFormatDatasetV2). Every path gives every record once,
    shuffled ones in a seeded, reproducible order."""
    paths = []
    for k in range(3):
        p = str(tmp_path / f"part-{k}.block")
        with open(p, "wb") as f:
            f.write(bf.file_bytes(RECORDS[k::3], 10))
        paths.append(p)
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"], output_mode="names")

    def values(ds):
        return np.concatenate([x["a"].numpy() for x, _, _ in ds]).tolist()

    in_order = data.training_dataset(paths, reader, batch_size=8)
    ops = bf.dataset_ops(in_order)
    assert "BlockFormatFeatureDataset" in ops and "BlockFormatDatasetV2" not in ops, ops
    assert values(in_order) == [float(i) for k in range(3) for i in range(k, N, 3)]
    two_step = data.training_dataset(paths, reader, batch_size=8, one_pass=False)
    ops = bf.dataset_ops(two_step)
    assert "BlockFormatBatchDataset" in ops and "BlockFormatFeatureDataset" not in ops, ops
    assert values(two_step) == values(in_order)

    shuffled = data.training_dataset(paths, reader, batch_size=8, shuffle_buffer=50, seed=7)
    ops = bf.dataset_ops(shuffled)
    assert "BlockFormatDatasetV2" in ops and any(o.startswith("ShuffleDataset") for o in ops), ops
    once = values(shuffled)
    assert sorted(once) == [float(i) for i in range(N)] and once != sorted(once)
    assert values(data.training_dataset(paths, reader, batch_size=8, shuffle_buffer=50, seed=7)) == once

    inter = data.training_dataset(paths, reader, batch_size=8, num_parallel_reads=3)
    assert values(inter) == [float(i) for i in range(N)]  # one record of each file in turn


def test_training_iterator_checkpoint_resumes_at_the_next_batch(tmp_path):
    """A checkpoint of training_dataset's iterator (what BackupAndRestore
    saves), taken between batches, including inside a decode chunk (batch 5:
    1,020-record chunks cut by rebatch; 96 records in blocks of 10): restored
    in a fresh iterator, the batches that follow are exactly the rest."""
    p = str(tmp_path / "train.block")
    with open(p, "wb") as f:
        f.write(bf.file_bytes(RECORDS, 10))
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["a"], output_mode="names")
    for batch in (5, 32):
        ds = data.training_dataset([p], reader, batch_size=batch, labels=["label"])
        full = [x["a"].numpy().tolist() for x, _, _ in ds]
        for k in (1, 3, len(full) - 1):
            it = iter(ds)
            head = [next(it)[0]["a"].numpy().tolist() for _ in range(k)]
            path = tf.train.Checkpoint(iterator=it).save(str(tmp_path / f"ck-{batch}-{k}"))
            it2 = iter(ds)
            tf.train.Checkpoint(iterator=it2).restore(path).assert_consumed()
            rest = [x["a"].numpy().tolist() for x, _, _ in it2]
            assert head + rest == full, (batch, k)

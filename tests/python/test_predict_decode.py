"""model.predict over several batches (one response per batch) decoded to every
record, and int8 (quantized) outputs through a layer, judged by thriftpy2."""

import keras
import numpy as np
import tensorflow as tf

import bpr_ops
import thrift_check


def continuous_model(keys=(11, 12)):
    inp = keras.Input((3,))
    scores = keras.layers.Dense(len(keys), kernel_initializer="ones")(inp)
    return keras.Model(inp, bpr_ops.BatchPredictionWriter(list(keys))(scores))


def tensor_model():
    inp = keras.Input((4,))
    grid = keras.layers.Reshape((2, 2))(inp)
    return keras.Model(inp, bpr_ops.BatchPredictionTensorWriter([21, 22])([inp, grid]))


class PredictTest(tf.test.TestCase):
    def test_three_uneven_batches_decode_to_every_record(self):
        # Whole numbers: the sums are exact in float32, whatever the summation order.
        x = np.arange(30, dtype=np.float32).reshape(10, 3)
        out = continuous_model().predict(x, batch_size=4, verbose=0)  # batches of 4, 4, 2
        # What Keras 3 makes of [1, N_i] outputs of different lengths.
        self.assertIsInstance(out, tf.RaggedTensor)
        self.assertEqual(out.dtype, tf.int32)
        self.assertEqual(out.shape[0], 3)
        records = bpr_ops.decode_batch_prediction_response(out)
        self.assertEqual(records, [{11: s, 12: s} for s in x.sum(axis=1).tolist()])
        # Each row is one response, as thriftpy2 reads it.
        theirs = []
        for row in out:
            theirs += thrift_check.decode(row.numpy().astype(np.uint8).tobytes()).predictions
        self.assertEqual([r.continuousFeatures for r in theirs], records)

    def test_even_batches_decode_to_every_record(self):
        x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
        out = tensor_model().predict(x, batch_size=4, verbose=0)
        self.assertIsInstance(out, np.ndarray)  # equal lengths: an [M, N] array
        self.assertEqual(out.shape[0], 2)
        records = bpr_ops.decode_batch_prediction_response(out)
        self.assertLen(records, 8)
        for record, row in zip(records, x):
            self.assertAllEqual(record[21], row)
            self.assertAllEqual(record[22], row.reshape(2, 2))

    def test_lists_and_arrays_of_responses(self):
        a = bpr_ops.batch_prediction_response_writer([1], [[0.5], [1.5]])
        b = bpr_ops.batch_prediction_response_writer([1], [[2.5]])
        expected = [{1: 0.5}, {1: 1.5}, {1: 2.5}]
        for form in ([a, b], (a.numpy(), b.numpy().tobytes()), np.array([a.numpy().tobytes(), b.numpy().tobytes()], object)):
            self.assertEqual(bpr_ops.decode_batch_prediction_response(form), expected)
        with self.assertRaisesRegex(TypeError, "outside 0..255"):
            bpr_ops.decode_batch_prediction_response(np.array([[256, 0]], np.int32))
        with self.assertRaisesRegex(TypeError, r"data\[1\]: expected the op's uint8 output"):
            bpr_ops.decode_batch_prediction_response([a, 3.5])

    def test_int8_outputs_through_a_layer(self):
        inp = keras.Input((3,), dtype="int8")
        model = keras.Model(inp, bpr_ops.BatchPredictionTensorWriter([9])([inp]))
        x = np.array([[-128, -1, 0], [1, 64, 127]], np.int8)
        data = thrift_check.to_bytes(model(x))
        records = thrift_check.decode(data).predictions
        for record, row in zip(records, x):
            raw = record.tensors[9].rawTypedTensor
            self.assertEqual(raw.dataType, thrift_check.DataType.BYTE)
            self.assertEqual(raw.content, row.tobytes())  # one byte per element
            self.assertEqual(raw.shape, [3])
        ours = bpr_ops.decode_batch_prediction_response(data)
        self.assertEqual(ours[1][9].dtype, np.int8)
        self.assertAllEqual(np.stack([r[9] for r in ours]), x)


if __name__ == "__main__":
    tf.test.main()

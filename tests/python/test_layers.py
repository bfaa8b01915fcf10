"""The Keras layers: construction checks, config round trip, inside a model,
saved as .keras and as a SavedModel that a fresh process serves with only the
op library loaded."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import bpr_ops
import thrift_check



def continuous_model(keys=(11, 12, 13)):
    inp = keras.Input((4,), dtype="float64", name="features")
    scores = keras.layers.Dense(len(keys), dtype="float64", kernel_initializer="ones")(inp)
    return keras.Model(inp, bpr_ops.BatchPredictionWriter(list(keys))(scores))


def tensor_model(keys=(21, 22)):
    inp = keras.Input((4,), name="features")
    emb = keras.layers.Dense(3, kernel_initializer="ones")(inp)
    grid = keras.layers.Reshape((2, 2))(inp)
    return keras.Model(inp, bpr_ops.BatchPredictionTensorWriter(list(keys))([emb, grid]))


def serve_in_fresh_process(model_dir: Path, inputs: np.ndarray, tmp: Path) -> bytes:
    """Loads the SavedModel where nothing but TensorFlow and the op library is
    imported (as a model server does) and returns the response bytes. The
    library is the one this process tests (BPR_OPS_LIBRARY when set), never a
    build found elsewhere."""
    np.save(tmp / "inputs.npy", inputs)
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        tf.load_op_library({str(bpr_ops.library_path())!r})
        fn = tf.saved_model.load({str(model_dir)!r}).signatures["serving_default"]
        out, = fn(tf.constant(np.load({str(tmp / "inputs.npy")!r}))).values()
        open({str(tmp / "out.bin")!r}, "wb").write(out.numpy().tobytes())
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp)
    return (tmp / "out.bin").read_bytes()


class LayerTest(tf.test.TestCase):
    def test_keys_are_checked_at_construction(self):
        for layer in (bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter):
            with self.assertRaisesRegex(ValueError, "duplicate: key 3 appears at index 0 and index 2"):
                layer([3, 4, 3])
            with self.assertRaisesRegex(TypeError, "integer feature ids"):
                layer(["a"])
            with self.assertRaisesRegex(TypeError, "integer feature ids"):
                layer([1.5])
            with self.assertRaisesRegex(ValueError, "does not fit in int64"):
                layer([2**63])
        with self.assertRaisesRegex(ValueError, "keys is empty"):
            bpr_ops.BatchPredictionTensorWriter([])
        self.assertEqual(bpr_ops.BatchPredictionWriter(np.array([5, 6])).keys, [5, 6])

    def test_config_round_trip(self):
        for cls in (bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter):
            layer = cls([1, 2], name="writer")
            config = layer.get_config()
            self.assertEqual(config["keys"], [1, 2])
            clone = keras.layers.deserialize(keras.layers.serialize(layer))
            self.assertIsInstance(clone, cls)
            self.assertEqual(clone.keys, [1, 2])
            self.assertEqual(clone.name, "writer")
            self.assertEqual(clone.compute_output_shape((None, 2)), (1, None))

    def test_float64_predictions_are_not_autocast(self):
        # 0.1 is not a float32: autocasting would write 0.10000000149011612.
        out = bpr_ops.BatchPredictionWriter([1])(tf.constant([[0.1]], tf.float64))
        self.assertEqual(thrift_check.decode(thrift_check.to_bytes(out)).predictions[0].continuousFeatures, {1: 0.1})

    def test_continuous_layer_in_a_model(self):
        model = continuous_model()
        x = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
        out = model(x)
        self.assertEqual(out.dtype, tf.uint8)
        self.assertEqual(model.output.shape, (1, None))
        decoded = thrift_check.decode(thrift_check.to_bytes(out))
        expected = x.sum(axis=1)
        for record, total in zip(decoded.predictions, expected):
            self.assertEqual(record.continuousFeatures, {11: total, 12: total, 13: total})

    def test_tensor_layer_in_a_model(self):
        x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 0.5, 0.5, 0.0]], np.float32)
        decoded = bpr_ops.decode_batch_prediction_response(tensor_model()(x))
        np.testing.assert_array_equal(decoded[0][21], np.full([3], 6.0, np.float32))
        np.testing.assert_array_equal(decoded[1][22], x[1].reshape(2, 2))

    def test_keras_file_round_trip(self):
        tmp = Path(self.get_temp_dir())
        for model in (continuous_model(), tensor_model()):
            x = np.random.default_rng(0).normal(size=(5, 4))
            x = x.astype(model.inputs[0].dtype)
            model.save(tmp / "m.keras")
            loaded = keras.models.load_model(tmp / "m.keras")
            self.assertEqual(loaded(x).numpy().tobytes(), model(x).numpy().tobytes())

    def test_saved_model_served_in_a_fresh_process(self):
        tmp = Path(self.get_temp_dir())
        for i, model in enumerate((continuous_model(), tensor_model())):
            x = np.random.default_rng(i).normal(size=(6, 4)).astype(model.inputs[0].dtype)
            model_dir = tmp / f"saved_model_{i}"
            model.export(str(model_dir), format="tf_saved_model", verbose=False)
            served = serve_in_fresh_process(model_dir, x, tmp)
            self.assertEqual(served, model(x).numpy().tobytes())
            self.assertLen(thrift_check.decode(served).predictions, 6)


if __name__ == "__main__":
    tf.test.main()

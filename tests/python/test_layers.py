"""The Keras layers: construction checks, config round trip, inside a model,
saved as .keras and as a SavedModel that a fresh process serves with only the
op library loaded."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
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
            # A str is a feature name now (test_names_*); other types are not keys.
            with self.assertRaisesRegex(TypeError, "integer feature ids or feature names"):
                layer([None])
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

    def test_names_are_written_as_twmls_feature_ids(self):
        self.assertEqual(bpr_ops.BatchPredictionWriter(keys=["prediction"]).key_ids, [-5621645068071228725])
        names = ["prediction", "p_like", "recap.engagement.is_favorited"]
        x = np.float32([[0.25, 0.5, 0.75], [1.0, 2.0, 3.0]])
        out = bpr_ops.BatchPredictionWriter(keys=names)(x)
        for record in thrift_check.decode(thrift_check.to_bytes(out)).predictions:
            self.assertEqual(list(record.continuousFeatures), bpr_ops.feature_ids(names))
        self.assertEqual(list(thrift_check.decode(thrift_check.to_bytes(out)).predictions[0].continuousFeatures),
                         [-5621645068071228725, bpr_ops.feature_id("p_like"), 5572643959053003859])

        layer = bpr_ops.BatchPredictionTensorWriter(keys=[b"emb", 7])
        out = layer([tf.ones([2, 3]), tf.constant([[b"s"], [b"t"]])])
        self.assertEqual(layer.key_ids, [bpr_ops.feature_id("emb"), 7])
        for record in thrift_check.decode(thrift_check.to_bytes(out)).predictions:
            self.assertEqual(list(record.tensors), layer.key_ids)

    def test_names_and_ids_mixed(self):
        layer = bpr_ops.BatchPredictionWriter(keys=["prediction", 1002, np.int64(5)])
        self.assertEqual(layer.keys, ["prediction", 1002, 5])
        self.assertEqual(layer.key_ids, [-5621645068071228725, 1002, 5])
        out = layer(np.float32([[0.5, 1.0, 2.0]]))
        self.assertEqual(thrift_check.decode(thrift_check.to_bytes(out)).predictions[0].continuousFeatures,
                         {-5621645068071228725: 0.5, 1002: 1.0, 5: 2.0})

    def test_keys_with_one_id_are_an_error_naming_both(self):
        for layer in (bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter):
            with self.assertRaisesRegex(ValueError, r"keys\[0\] = 'p' and keys\[2\] = 'p' are both feature id"):
                layer(["p", 1, "p"])
            with self.assertRaisesRegex(
                ValueError, r"keys\[1\] = -5621645068071228725 and keys\[2\] = b'prediction' are both feature id"
            ):
                layer([3, -5621645068071228725, b"prediction"])
            with self.assertRaisesRegex(ValueError, r"keys\[1\] = b'a\\xff' is not valid UTF-8: .* byte offset 1"):
                layer(["ok", b"a\xff"])
            with self.assertRaisesRegex(TypeError, "keys must be a list"):
                layer("prediction")

    def test_config_keeps_names_and_from_config_hashes_them(self):
        for cls in (bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter):
            layer = cls(["prediction", b"p_like", 9], name="writer")
            self.assertEqual(layer.get_config()["keys"], ["prediction", "p_like", 9])
            clone = cls.from_config(layer.get_config())
            self.assertEqual(clone.key_ids, bpr_ops.feature_ids(["prediction", "p_like"]) + [9])
            clone = keras.layers.deserialize(keras.layers.serialize(layer))
            self.assertEqual(clone.key_ids, layer.key_ids)

    def test_keras_file_with_names_round_trip(self):
        tmp = Path(self.get_temp_dir())
        names = ["prediction", "p_like"]
        for model in (continuous_model(names + [13]), tensor_model(["emb", 22])):
            x = np.random.default_rng(1).normal(size=(3, 4)).astype(model.inputs[0].dtype)
            model.save(tmp / "named.keras")
            with zipfile.ZipFile(tmp / "named.keras") as archive:
                config = json.loads(archive.read("config.json"))
            writer = config["config"]["layers"][-1]
            self.assertEqual(writer["config"]["keys"], model.layers[-1].get_config()["keys"])
            self.assertIsInstance(writer["config"]["keys"][0], str)
            loaded = keras.models.load_model(tmp / "named.keras")
            self.assertEqual(loaded.layers[-1].key_ids, model.layers[-1].key_ids)
            self.assertEqual(loaded(x).numpy().tobytes(), model(x).numpy().tobytes())

    def test_saved_model_with_names_served_in_a_fresh_process(self):
        tmp = Path(self.get_temp_dir())
        for i, model in enumerate((continuous_model(["prediction", "p_like", 5]), tensor_model(["emb", "grid"]))):
            x = np.random.default_rng(i).normal(size=(4, 4)).astype(model.inputs[0].dtype)
            model_dir = tmp / f"named_{i}"
            model.export(str(model_dir), format="tf_saved_model", verbose=False)
            served = serve_in_fresh_process(model_dir, x, tmp)
            self.assertEqual(served, model(x).numpy().tobytes())
            records = thrift_check.decode(served).predictions
            field = "continuousFeatures" if i == 0 else "tensors"
            expected = bpr_ops.feature_ids(["prediction", "p_like"]) + [5] if i == 0 else bpr_ops.feature_ids(["emb", "grid"])
            self.assertEqual(list(getattr(records[0], field)), expected)


if __name__ == "__main__":
    tf.test.main()

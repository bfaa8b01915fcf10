"""The FeatureId op and bpr_ops.feature_id(s): twml's hash of a feature name.

Judged by an implementation we did not write: `mmh3` (PyPI) composed with
Python's own UTF-16 codec, on twml's vectors, random names (ASCII, dotted, `#`
forms, multi-byte and astral characters, 0 to 5,000 characters) and the `#`
edge cases. Invalid UTF-8 is an InvalidArgumentError naming the entry and the
byte offset in eager mode, in tf.function and in a loaded SavedModel; a
SavedModel hashing its keys in the graph serves the same bytes in a fresh
process as the layer given the names.
"""

import random

import mmh3
import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.python.framework import op_def_registry

import bpr_ops
import thrift_check
from test_layers import serve_in_fresh_process

LIB = bpr_ops.load_library()

VECTORS = {
    "a": -7591212652331886403,
    "prediction": -5621645068071228725,
    "recap.engagement.is_favorited": 5572643959053003859,
    "x#y": -7212464046583124290,
    "": 0,
}


def _h(data: bytes) -> bytes:
    return mmh3.hash_bytes(data, 0, x64arch=True)


def oracle(name: str) -> int:
    """twml's feature id from the issue's facts, on mmh3 and Python's codec."""
    k = name.find("#")
    if k > 0:
        digest = _h(_h(name[:k].encode("utf-16-le"))[:8] + name[k + 1 :].encode("utf-16-le"))
    else:
        digest = _h(name.encode("utf-16-le"))
    return int.from_bytes(digest[:8], "little", signed=True)


def op_ids(names) -> list[int]:
    """The op called directly, in eager mode (bpr_ops.feature_ids caches)."""
    return LIB.feature_id(feature_names=list(names)).numpy().tolist()


# Characters by UTF-8 width: ASCII, 2-byte, 3-byte (BMP, incl. U+FFFF), astral.
ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_.-:/ ",
    "éüßøñçÀĀſʼΩЖש\u07ff",
    "日本語中文한국\u0800\ufffd\uffff\ue000",
    "😀𝄞𐍈\U0001f9ff\U00010000\U0010ffff",
]


def random_name(rng: random.Random) -> str:
    length = rng.choice([0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 64, rng.randint(0, 300), rng.randint(0, 5000)])
    pool = "".join(rng.sample(ALPHABETS, rng.randint(1, 4)))
    chars = [rng.choice(pool) for _ in range(length)]
    form = rng.random()
    if chars and form < 0.3:  # `#` somewhere: first, last, twice, after a multi-byte char
        for _ in range(rng.choice([1, 1, 2])):
            chars.insert(rng.randint(0, len(chars)), "#")
    elif form < 0.45:  # dotted, as real feature names are
        chars = list(".".join("".join(chars[i : i + 6]) for i in range(0, len(chars), 6)))
    return "".join(chars)


def _utf8_invalid_cases():
    """(name bytes, byte offset, what it shows): each kind twml aborted on."""
    return [
        (b"\x80abc", 0, "0x80"),  # stray continuation byte
        (b"ab\xe2\x82", 2, "0xe2 0x82"),  # truncated 3-byte sequence
        (b"x\xed\xa0\x80", 1, "0xed"),  # encoded surrogate U+D800
        (b"\xf4\x90\x80\x80", 0, "0xf4"),  # U+110000, over U+10FFFF
        (b"\xc0\xaf", 0, "0xc0"),  # overlong '/'
        (b"pre\xff", 3, "0xff"),
        (b"a#\xfe", 2, "0xfe"),  # in the part after `#`
        (b"x" * 3000 + b"#" + b"y" * 3000 + b"\xc3", 6001, "0xc3"),  # long, truncated at the end
    ]


class FeatureIdTest(tf.test.TestCase):
    def test_twml_vectors(self):
        self.assertEqual(op_ids(VECTORS), list(VECTORS.values()))
        self.assertEqual([oracle(n) for n in VECTORS], list(VECTORS.values()))
        self.assertEqual(bpr_ops.feature_ids(list(VECTORS)), list(VECTORS.values()))
        self.assertEqual(bpr_ops.feature_id("prediction"), -5621645068071228725)
        self.assertEqual(bpr_ops.feature_id(b"prediction"), -5621645068071228725)
        self.assertEqual(bpr_ops.feature_ids([b"a", "a", bytearray(b"x#y")]), [VECTORS["a"]] * 2 + [VECTORS["x#y"]])

    def test_long_names_with_equal_ends_get_their_own_ids_in_one_process(self):
        # Issue 20: TF 2.21's eager kernel cache keyed FeatureId kernels by a
        # summary of the attr that keeps only a long name's ends, and gave a
        # later name an earlier name's id. Every way of hashing a name, many
        # such names in this one process, each against mmh3.
        names = [f"{'x' * 40}MIDDLE{i}{'z' * 40}" for i in range(40)] + ["y" * 100, "y" * 101, "y" * 102]
        names += [f"{'p' * 60}#{i}{'q' * 60}" for i in range(10)]
        want = [oracle(n) for n in names]
        self.assertEqual(len(set(want)), len(names))
        self.assertEqual([bpr_ops.feature_id(n) for n in names], want)
        self.assertEqual(bpr_ops.feature_ids(names), want)
        self.assertEqual([bpr_ops.feature_id(n.encode()) for n in names], want)
        for name, wanted in zip(names, want):
            layer = bpr_ops.BatchPredictionWriter(keys=[name])
            self.assertEqual(layer.key_ids, [wanted])
            record = thrift_check.decode(thrift_check.to_bytes(layer(np.float32([[0.5]])))).predictions[0]
            self.assertEqual(list(record.continuousFeatures), [wanted])
            restored = bpr_ops.BatchPredictionWriter.from_config(layer.get_config())
            self.assertEqual(restored.key_ids, [wanted])
            tensor_layer = bpr_ops.BatchPredictionTensorWriter(keys=[name])
            self.assertEqual(tensor_layer.key_ids, [wanted])
        fn = tf.function(lambda x: bpr_ops.batch_prediction_response_writer(names[:5], x))
        record = thrift_check.decode(thrift_check.to_bytes(fn(tf.ones([1, 5])))).predictions[0]
        self.assertEqual(list(record.continuousFeatures), want[:5])
        with tf.Graph().as_default():
            out = bpr_ops.batch_prediction_response_writer(names[5:10], tf.ones([1, 5]))
            with tf.compat.v1.Session() as session:
                record = thrift_check.decode(session.run(out).tobytes()).predictions[0]
        self.assertEqual(list(record.continuousFeatures), want[5:10])

    def test_random_names_match_the_mmh3_oracle(self):
        rng = random.Random(12)
        names = [random_name(rng) for _ in range(1500)]
        self.assertGreater(max(map(len, names)), 4000)
        self.assertTrue(any(n.startswith("#") for n in names) and any(n.endswith("#") for n in names))
        self.assertTrue(any(n.count("#") >= 2 for n in names))
        self.assertTrue(any(ord(c) > 0xFFFF for n in names for c in n))
        ours = op_ids(n.encode("utf-8") for n in names)
        for name, got in zip(names, ours):
            self.assertEqual(got, oracle(name), name[:80])
        self.assertEqual(bpr_ops.feature_ids(names), ours)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.text(st.characters(exclude_categories=["Cs"]), max_size=300), max_size=8))
    def test_any_text_matches_the_mmh3_oracle(self, names):
        self.assertEqual(op_ids(n.encode("utf-8") for n in names), [oracle(n) for n in names])

    def test_hash_edge_cases(self):
        cases = ["#", "##", "#a", "#a#b", "a#", "a##", "a##b", "a#b#c", "é#x", "日本#語", "𝄞#", "𝄞#𝄞",
                 "\x00", "a\x00#\x00", "#" * 5000, "a" * 5000 + "#"]
        self.assertEqual(op_ids(cases), [oracle(n) for n in cases])
        ids = dict(zip(cases, op_ids(cases)))
        # A leading `#` is an ordinary character, and only the first `#` splits.
        plain = lambda n: int.from_bytes(_h(n.encode("utf-16-le"))[:8], "little", signed=True)  # noqa: E731
        for name in ("#", "##", "#a", "#a#b"):
            self.assertEqual(ids[name], plain(name), name)
        for name in ("a#", "a##", "a##b", "é#x", "𝄞#"):
            self.assertNotEqual(ids[name], plain(name), name)

    def test_op_has_twmls_interface_and_a_static_shape(self):
        op = op_def_registry.get("FeatureId")
        self.assertEqual([a.name for a in op.input_arg], [])
        self.assertEqual([(a.name, a.type) for a in op.output_arg], [("output", tf.int64.as_datatype_enum)])
        self.assertEqual([(a.name, a.type) for a in op.attr], [("feature_names", "list(string)")])

        @tf.function
        def ids():
            return LIB.feature_id(feature_names=["prediction", "p_like", "x#y"]), LIB.feature_id(feature_names=[])

        three, none = ids.get_concrete_function().structured_outputs
        self.assertEqual(three.shape.as_list(), [3])
        self.assertEqual(none.shape.as_list(), [0])
        self.assertEqual(ids()[0].numpy().tolist(), [oracle("prediction"), oracle("p_like"), oracle("x#y")])

    def test_a_graph_def_as_twml_exported_it_runs(self):
        # A NodeDef written out by hand the way twml's exporter wrote it: op
        # FeatureId, attr feature_names, no shape information.
        graph_def = tf.compat.v1.GraphDef()
        node = graph_def.node.add(name="ids", op="FeatureId")
        node.attr["feature_names"].list.s.extend([b"prediction", b"x#y"])
        wrapped = tf.compat.v1.wrap_function(lambda: tf.graph_util.import_graph_def(graph_def, name=""), [])
        ids = wrapped.prune([], wrapped.graph.get_tensor_by_name("ids:0"))
        self.assertEqual(ids().numpy().tolist(), [VECTORS["prediction"], VECTORS["x#y"]])
        self.assertEqual(wrapped.graph.get_tensor_by_name("ids:0").shape.as_list(), [2])

    def test_names_are_hashed_to_ints_inside_graphs_too(self):
        # A layer made while a graph is being built still gets Python ints:
        # in a tf.function (init_scope lifts to eager) and in a TF1 graph
        # (a private session).
        @tf.function
        def make():
            layer = bpr_ops.BatchPredictionWriter(["graph.only.name"])
            self.assertEqual(layer.key_ids, [oracle("graph.only.name")])
            return tf.constant(0)

        make()
        with tf.Graph().as_default():
            self.assertFalse(tf.executing_eagerly())
            self.assertEqual(bpr_ops.feature_ids(["v1.graph.name", "a"]), [oracle("v1.graph.name"), VECTORS["a"]])

    def test_bad_types_are_type_errors(self):
        for bad in ([1], [None], "prediction"):
            with self.assertRaises(TypeError):
                bpr_ops.feature_ids(bad)
        with self.assertRaises(TypeError):
            bpr_ops.feature_id(5)

    def _assert_utf8_error(self, error, index, offset, shown):
        text = str(error)
        self.assertIn(f"feature_names[{index}] is not valid UTF-8", text)
        self.assertIn(f"{shown} at byte offset {offset}", text)

    def test_invalid_utf8_in_eager_mode(self):
        for name, offset, shown in _utf8_invalid_cases():
            with self.assertRaises(tf.errors.InvalidArgumentError) as ctx:
                LIB.feature_id(feature_names=[b"ok", b"fine", name])
            self._assert_utf8_error(ctx.exception, 2, offset, shown)
            with self.assertRaises(tf.errors.InvalidArgumentError) as ctx:
                bpr_ops.feature_ids([name])
            self._assert_utf8_error(ctx.exception, 0, offset, shown)
        # A str holding a lone surrogate has no UTF-8 form: the same error.
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "feature_names.0. is not valid UTF-8"):
            bpr_ops.feature_id("a\udc80")

    def test_invalid_utf8_in_tf_function(self):
        for name, offset, shown in _utf8_invalid_cases():
            fn = tf.function(lambda name=name: LIB.feature_id(feature_names=[name, b"ok"]))
            with self.assertRaises(tf.errors.InvalidArgumentError) as ctx:
                fn()
            self._assert_utf8_error(ctx.exception, 0, offset, shown)

    def test_invalid_utf8_in_a_loaded_saved_model(self):
        module = tf.Module()
        cases = _utf8_invalid_cases()
        def hashing(names):
            return tf.function(lambda: LIB.feature_id(feature_names=names), input_signature=[])

        for i, (name, _, _) in enumerate(cases):
            setattr(module, f"f{i}", hashing([b"ok", name]))
        module.good = hashing(["prediction"])
        path = self.get_temp_dir() + "/bad_names"
        tf.saved_model.save(module, path)
        loaded = tf.saved_model.load(path)
        self.assertEqual(loaded.good().numpy().tolist(), [VECTORS["prediction"]])
        for i, (_, offset, shown) in enumerate(cases):
            with self.assertRaises(tf.errors.InvalidArgumentError) as ctx:
                getattr(loaded, f"f{i}")()
            self._assert_utf8_error(ctx.exception, 1, offset, shown)

    def test_saved_model_with_ids_from_the_graph_served_in_a_fresh_process(self):
        names = ["prediction", "p_like", "recap.engagement.is_favorited"]

        class Model(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
            def serve(self, scores):
                keys = LIB.feature_id(feature_names=names)
                return {"response": LIB.batch_prediction_response_writer(keys=keys, values=scores)}

        tmp = self.get_temp_dir()
        path = f"{tmp}/ids_in_graph"
        model = Model()
        tf.saved_model.save(model, path, signatures={"serving_default": model.serve})
        x = np.random.default_rng(12).normal(size=(4, 3)).astype(np.float32)

        from pathlib import Path

        served = serve_in_fresh_process(Path(path), x, Path(tmp))
        layer = bpr_ops.BatchPredictionWriter(keys=names)
        self.assertEqual(served, thrift_check.to_bytes(layer(x)))
        records = thrift_check.decode(served).predictions
        self.assertEqual([list(r.continuousFeatures) for r in records], [[oracle(n) for n in names]] * 4)
        self.assertEqual(list(records[0].continuousFeatures), bpr_ops.feature_ids(names))

    def test_names_given_to_the_op_wrappers(self):
        out = bpr_ops.batch_prediction_response_writer(["prediction", 1002], [[0.25, 0.5]])
        record = thrift_check.decode(thrift_check.to_bytes(out)).predictions[0]
        self.assertEqual(record.continuousFeatures, {VECTORS["prediction"]: 0.25, 1002: 0.5})
        out = bpr_ops.batch_prediction_tensor_response_writer((b"a", "x#y"), [tf.ones([1, 2]), tf.zeros([1])])
        record = thrift_check.decode(thrift_check.to_bytes(out)).predictions[0]
        self.assertEqual(list(record.tensors), [VECTORS["a"], VECTORS["x#y"]])
        out = bpr_ops.batch_prediction_response_writer(np.array(["a", "prediction"]), [[1.0, 2.0]])
        self.assertEqual(bpr_ops.decode_batch_prediction_response(out), [{VECTORS["a"]: 1.0, VECTORS["prediction"]: 2.0}])
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"keys has a duplicate: keys\[0\] = 'a' and keys\[2\] = -7591212652331886403 are both feature id",
        ):
            bpr_ops.batch_prediction_response_writer(["a", 5, VECTORS["a"]], [[1.0, 2.0, 3.0]])

    def test_decode_with_names(self):
        out = bpr_ops.batch_prediction_response_writer(["prediction", 7, "p_like"], [[0.5, 1.5, 2.5]])
        self.assertEqual(
            bpr_ops.decode_batch_prediction_response(out, names=["p_like", "prediction", "unused"]),
            [{"prediction": 0.5, 7: 1.5, "p_like": 2.5}],
        )
        self.assertEqual(bpr_ops.decode_batch_prediction_response(out, names=[b"prediction"])[0]["prediction"], 0.5)
        with self.assertRaises(TypeError):
            bpr_ops.decode_batch_prediction_response(out, names="prediction")


if __name__ == "__main__":
    tf.test.main()

"""Mistakes the static shapes and dtypes already show are errors while the model
is built (Keras functional and subclassed models, tf.function tracing), raised
before the op is ever reached; bad Python inputs are one clear TypeError."""

import contextlib
import re
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import bpr_ops
from bpr_ops import ops

W, T = bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter
SUPPORTED = re.escape(
    "supported dtypes: tf.string, tf.int8, tf.uint8, tf.int32, tf.int64, tf.bool, tf.float16, "
    "tf.bfloat16, tf.float32 or tf.float64"
)
FLOATS = re.escape("tf.float16, tf.bfloat16, tf.float32 or tf.float64")


@contextlib.contextmanager
def op_never_reached(test):
    """Fails the test if the op library is asked for an op inside the block."""
    calls = []

    def load_library():
        calls.append(1)
        raise AssertionError("the op was reached: the mistake was not caught before the data flows")

    with mock.patch.object(ops, "load_library", load_library):
        yield
    test.assertEqual(calls, [], "the op was reached")


def functional(writer, *inputs, body=None):
    """Builds keras.Model(inputs, writer(body(inputs)))."""
    outs = body(*inputs) if body else (inputs[0] if len(inputs) == 1 else list(inputs))
    return keras.Model(inputs[0] if len(inputs) == 1 else list(inputs), writer(outs))


# (name, build a model, error class, regex on the message)
FUNCTIONAL_CASES = [
    (
        "columns_vs_keys",
        lambda: functional(W([1, 2], name="scores"), keras.Input((3,))),
        ValueError,
        r"BatchPredictionWriter 'scores' with keys \[1, 2\] got values float32 \[None,3\]: values has shape "
        r"\[None,3\] \(3 columns\) but keys has 2 entries; values must have shape \[batch, 2\], one column per key",
    ),
    (
        "dense_layer_width_vs_keys",
        lambda: functional(W([7, 8, 9], name="w"), keras.Input((4,)), body=keras.layers.Dense(2)),
        ValueError,
        r"'w' with keys \[7, 8, 9\] got values float32 \[None,2\]: values has shape \[None,2\] \(2 columns\) "
        r"but keys has 3 entries",
    ),
    (
        "rank_3",
        lambda: functional(W([1, 2], name="w"), keras.Input((3, 2))),
        ValueError,
        r"got values float32 \[None,3,2\]: values must have shape \[batch, 2\] \(rank 2\), got shape "
        r"\[None,3,2\] \(rank 3\)",
    ),
    (
        "rank_1_with_two_keys",
        lambda: functional(W([1, 2], name="w"), keras.Input(())),
        ValueError,
        r"values has rank-1 shape \[None\] but keys has 2 entries; a rank-1 values \(one score per example\) "
        r"needs exactly one key",
    ),
    (
        "int32_into_continuous",
        lambda: functional(W([1, 2], name="w"), keras.Input((2,), dtype="int32")),
        ValueError,
        rf"'w' with keys \[1, 2\] got values int32 \[None,2\]: values must be {FLOATS} \(one score per key\), "
        r"got int32; cast them first",
    ),
    (
        "tensor_writer_on_one_tensor",
        lambda: functional(T([1, 2], name="t"), keras.Input((3,))),
        ValueError,
        r"BatchPredictionTensorWriter 't' with keys \[1, 2\] got 1 values tensors \[float32 \[None,3\]\]: "
        r"keys has 2 entries but 1 values tensors were given; one values tensor per key is expected",
    ),
    (
        "tensor_writer_three_tensors_two_keys",
        lambda: functional(T([1, 2], name="t"), keras.Input((3,)), keras.Input((2,)), keras.Input((1,))),
        ValueError,
        r"keys has 2 entries but 3 values tensors were given",
    ),
    (
        "tensor_writer_scalar",
        lambda: functional(T([1, 2], name="t"), keras.Input((3,)), body=lambda x: [x, keras.ops.sum(x)]),
        ValueError,
        r"values\[1\] \(key 2, float32, shape \[\]\) is a scalar; every values tensor needs rank >= 1 with the "
        r"batch in dim 0",
    ),
    (
        "tensor_writer_batch_sizes",
        lambda: functional(T([1, 2], name="t"), keras.Input((3,), batch_size=2), keras.Input((4,), batch_size=3)),
        ValueError,
        r"values\[1\] \(key 2, float32, shape \[3,4\]\) has batch size 3 but values\[0\] \(key 1, float32, "
        r"shape \[2,3\]\) has batch size 2; all values tensors must share dim 0",
    ),
    (
        "tensor_writer_int16",
        lambda: functional(T([5], name="t"), keras.Input((3,), dtype="int16")),
        TypeError,
        rf"values\[0\] \(key 5, int16, shape \[None,3\]\) has dtype int16, which the tensor writer does not "
        rf"write; {SUPPORTED}",
    ),
    (
        "tensor_writer_dict",
        lambda: T([1, 2], name="t")({"a": keras.Input((3,)), "b": keras.Input((3,))}),
        TypeError,
        r"'t' with keys \[1, 2\]: values is a dict \(keys \['a', 'b'\]\); expected a list of dense tensors",
    ),
    (
        "continuous_sparse_input",
        lambda: functional(W([1, 2], name="w"), keras.Input((2,), sparse=True)),
        TypeError,
        r"values is a SparseTensor; .*tf\.sparse\.to_dense",
    ),
    (
        "continuous_ragged_input",
        lambda: functional(W([1, 2], name="w"), keras.Input((2,), ragged=True)),
        TypeError,
        r"values is a RaggedTensor; .*\.to_tensor\(\)",
    ),
]


class Subclassed(keras.Model):
    """A subclassed model ending in a writer layer."""

    def __init__(self, writer, width):
        super().__init__()
        self.dense = keras.layers.Dense(width)
        self.writer = writer

    def call(self, x):
        return self.writer(self.dense(x))


class ConstructionErrorTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(*FUNCTIONAL_CASES)
    def test_functional_model_fails_when_built(self, build, error, pattern):
        with op_never_reached(self):
            with self.assertRaisesRegex(error, pattern):
                build()

    def test_shape_and_dtype_errors_are_also_invalid_argument_errors(self):
        # The same class of error as the kernel raises at run time for the same mistake.
        with self.assertRaises(tf.errors.InvalidArgumentError):
            functional(W([1, 2]), keras.Input((3,)))
        for error in (ValueError, TypeError, tf.errors.InvalidArgumentError):
            with self.assertRaises(error):
                functional(T([1]), keras.Input((3,), dtype="complex64"))
        with self.assertRaises(tf.errors.InvalidArgumentError):  # eager: what TensorFlow raised before
            bpr_ops.batch_prediction_tensor_response_writer([1], [tf.zeros([2], tf.int16)])

    def test_subclassed_model_fails_when_called_symbolically_and_when_traced(self):
        pattern = r"values has shape \[None,3\] \(3 columns\) but keys has 2 entries"
        with op_never_reached(self):
            with self.assertRaisesRegex(ValueError, pattern):
                Subclassed(W([1, 2], name="w"), 3)(keras.Input((4,)))
            model = Subclassed(W([1, 2], name="w"), 3)
            with self.assertRaisesRegex(ValueError, pattern):
                tf.function(model).get_concrete_function(tf.TensorSpec([None, 4], tf.float32))
            model = Subclassed(T([1, 2], name="t"), 3)
            with self.assertRaisesRegex(ValueError, "keys has 2 entries but 1 values tensors were given"):
                tf.function(model).get_concrete_function(tf.TensorSpec([None, 4], tf.float32))

    def test_unknown_dims_pass_and_the_kernel_checks_them(self):
        model = functional(W([1, 2]), keras.Input((None,)))
        self.assertLen(bpr_ops.decode_batch_prediction_response(model(np.ones([3, 2], np.float32))), 3)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"values has shape \[3,5\] \(5 columns\)"):
            model(np.ones([3, 5], np.float32))
        tensor_model = functional(T([1, 2]), keras.Input((3,)), keras.Input((2,)))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "has batch size 4 but"):
            tensor_model([np.ones([3, 3], np.float32), np.ones([4, 2], np.float32)])

    def test_valid_models_build(self):
        functional(W([1]), keras.Input(()))
        functional(W([1, 2]), keras.Input((2,), dtype="float16"))
        functional(W([1, 2]), keras.Input((2,), dtype="bfloat16"))
        functional(T([1, 2, 3]), keras.Input((3,), dtype="int8"), keras.Input((2, 2), dtype="string"),
                   keras.Input(()))

    def test_wrappers_fail_when_traced(self):
        def trace(fn, *specs):
            return tf.function(fn).get_concrete_function(*specs)

        cont = lambda v: bpr_ops.batch_prediction_response_writer([1, 2], v)  # noqa: E731
        tens = lambda *vs: bpr_ops.batch_prediction_tensor_response_writer([1, 2], list(vs))  # noqa: E731
        cases = [
            (cont, [tf.TensorSpec([None, 3])], ValueError,
             r"BatchPredictionResponseWriter with keys \[1, 2\] got values float32 \[None,3\]: values has shape "
             r"\[None,3\] \(3 columns\) but keys has 2 entries"),
            (cont, [tf.TensorSpec([None, 2, 1])], ValueError, r"got shape \[None,2,1\] \(rank 3\)"),
            (cont, [tf.TensorSpec([None, 2], tf.int64)], TypeError, rf"values must be {FLOATS}"),
            (tens, [tf.TensorSpec([None, 2])], ValueError, "keys has 2 entries but 1 values tensors were given"),
            (tens, [tf.TensorSpec([2]), tf.TensorSpec([3, 4], tf.string)], ValueError,
             r"values\[1\] \(key 2, string, shape \[3,4\]\) has batch size 3 but values\[0\] \(key 1, float32, "
             r"shape \[2\]\) has batch size 2"),
            (tens, [tf.TensorSpec([None]), tf.TensorSpec([], tf.int32)], ValueError, r"values\[1\] .* is a scalar"),
            (tens, [tf.TensorSpec([None]), tf.TensorSpec([None], tf.uint16)], TypeError, SUPPORTED),
        ]
        for fn, specs, error, pattern in cases:
            with self.subTest(pattern=pattern), op_never_reached(self):
                with self.assertRaisesRegex(error, pattern):
                    trace(fn, *specs)


def _bad_inputs():
    ragged = tf.ragged.constant([[1.0], [2.0, 3.0]])
    sparse = tf.sparse.from_dense(tf.constant([[1.0, 0.0]]))
    return [
        ("dict", lambda: {"a": tf.ones([2, 1])}, r"values is a dict \(keys \['a'\]\); expected "),
        ("ragged", lambda: ragged, r"is a RaggedTensor; expected .* Make it dense first with \.to_tensor\(\)"),
        ("sparse", lambda: sparse, r"is a SparseTensor; expected .* Make it dense first with tf\.sparse\.to_dense"),
        ("none", lambda: None, r"values is None; expected "),
    ]


UNSUPPORTED = [tf.int16, tf.uint16, tf.uint32, tf.uint64, tf.complex64, tf.complex128]


class PythonInputErrorTest(tf.test.TestCase, parameterized.TestCase):
    @parameterized.product(mode=["eager", "layer", "function"])
    def test_dict_ragged_sparse_none(self, mode):
        for label, make, pattern in _bad_inputs():
            for writer in ("continuous", "tensor"):
                with self.subTest(label=label, writer=writer), op_never_reached(self):
                    value = make()
                    with self.assertRaisesRegex(TypeError, pattern):
                        self.call(writer, mode, value)

    def call(self, writer, mode, value):
        if mode == "layer":
            layer = W([1]) if writer == "continuous" else T([1])
            return layer(value)
        fn = bpr_ops.batch_prediction_response_writer if writer == "continuous" else (
            bpr_ops.batch_prediction_tensor_response_writer)
        if mode == "eager":
            return fn([1], value)
        if value is None or isinstance(value, dict):
            return tf.function(lambda: fn([1], value))()
        return tf.function(lambda v: fn([1], v))(value)

    def test_tensor_writer_elements_are_checked_too(self):
        ragged = tf.ragged.constant([[1.0], [2.0, 3.0]])
        with self.assertRaisesRegex(TypeError, r"values\[1\] is a RaggedTensor; .*\.to_tensor\(\)"):
            bpr_ops.batch_prediction_tensor_response_writer([1, 2], [tf.ones([2]), ragged])
        with self.assertRaisesRegex(TypeError, r"values\[0\], key 1 is None"):
            T([1, 2])([None, tf.ones([2])])

    @parameterized.parameters("eager", "function")
    def test_unsupported_dtypes_list_the_supported_ones(self, mode):
        for dtype in UNSUPPORTED:
            value = tf.zeros([2, 1], dtype)
            for fn, supported in (
                (bpr_ops.batch_prediction_tensor_response_writer, SUPPORTED),
                (bpr_ops.batch_prediction_response_writer, FLOATS),
            ):
                with self.subTest(dtype=dtype.name, fn=fn.__name__):
                    call = (lambda v: fn([1], v)) if mode == "eager" else tf.function(lambda v: fn([1], v))
                    with self.assertRaises(TypeError) as caught:
                        call(value)
                    message = str(caught.exception)
                    self.assertRegex(message, rf"has dtype {dtype.name}|got {dtype.name}")
                    self.assertRegex(message, supported)
                    # Not TensorFlow's text about the op's attr list.
                    self.assertNotIn("attr", message)

    def test_int32_into_the_continuous_wrapper(self):
        with self.assertRaisesRegex(TypeError, rf"values has dtype int32, .*supported dtypes: {FLOATS}"):
            bpr_ops.batch_prediction_response_writer([1], tf.constant([[1]]))
        with self.assertRaisesRegex(TypeError, rf"values must be {FLOATS}"):
            W([1])(tf.constant([[1]]))

    def test_eager_layer_checks_before_the_op(self):
        with op_never_reached(self):
            with self.assertRaisesRegex(ValueError, r"values has shape \[4,3\] \(3 columns\) but keys has 2"):
                W([1, 2])(tf.zeros([4, 3]))


if __name__ == "__main__":
    tf.test.main()

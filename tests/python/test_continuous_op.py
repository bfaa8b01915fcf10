"""BatchPredictionResponseWriter through TensorFlow: bytes against a spec oracle,
decoding with thriftpy2, every dtype, eager and tf.function, every error."""

import re
import struct

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import bpr_ops
import thrift_check

DTYPES = [tf.float32, tf.float64, tf.float16, tf.bfloat16]


def f64_bits(values: tf.Tensor) -> np.ndarray:
    """The double bit patterns the op must write for `values`, as uint64.

    Non-NaN values widen exactly (numpy's conversion; not tf.cast, which runs with
    denormals-are-zero set and turns subnormals into 0.0). NaNs keep sign and
    payload, moved to the top of the double mantissa (no quieting), per the
    wire-format doc.
    """
    if values.dtype == tf.float64:
        return values.numpy().view(np.uint64)
    narrow_type, sign_bit, payload_mask, shift = {
        tf.float32: (tf.uint32, 31, 0x7FFFFF, 29),
        tf.float16: (tf.uint16, 15, 0x3FF, 42),
        tf.bfloat16: (tf.uint16, 15, 0x7F, 45),
    }[values.dtype]
    narrow = tf.bitcast(values, narrow_type).numpy().astype(np.uint64)
    with np.errstate(invalid="ignore"):  # NaNs are replaced below
        wide = values.numpy().astype(np.float64).view(np.uint64).copy()
    nan = tf.math.is_nan(values).numpy()
    sign = (narrow >> np.uint64(sign_bit)) << np.uint64(63)
    payload = (narrow & np.uint64(payload_mask)) << np.uint64(shift)
    wide[nan] = (sign | np.uint64(0x7FF << 52) | payload)[nan]
    return wide


class ContinuousWriterTest(tf.test.TestCase, parameterized.TestCase):
    def write(self, keys, values, mode="eager"):
        if mode == "eager":
            return bpr_ops.batch_prediction_response_writer(keys, values)
        keys_t = tf.constant(np.asarray(keys, np.int64).reshape(np.shape(keys)))
        # "function": the rank is known when tracing (unknown dims), so the
        # wrapper checks it then; "function_unknown_rank": only the kernel can.
        rank = None if mode == "function_unknown_rank" else [None] * len(values.shape)
        spec = tf.TensorSpec(rank, values.dtype)
        fn = tf.function(lambda v: bpr_ops.batch_prediction_response_writer(keys_t, v), input_signature=[spec])
        return fn(values)

    def check(self, keys, values: tf.Tensor, mode="eager"):
        """Writes, then compares with the oracle bytes and the thriftpy2 decoding."""
        data = thrift_check.to_bytes(self.write(keys, values, mode))
        batch = values.shape[0] if values.shape.rank else 0
        rows = f64_bits(tf.reshape(values, [batch, len(keys)]))
        self.assertEqual(data, thrift_check.oracle_continuous(keys, rows))
        response = thrift_check.decode(data)
        self.assertLen(response.predictions, len(rows))
        for record, row in zip(response.predictions, rows):
            self.assertEqual(list(record.continuousFeatures), list(keys))
            got = [struct.unpack(">Q", struct.pack(">d", v))[0] for v in record.continuousFeatures.values()]
            self.assertEqual(got, [int(b) for b in row])
            self.assertIsNone(record.tensors)
        return data

    @parameterized.product(dtype=DTYPES, batch=[0, 1, 37], mode=["eager", "function"])
    def test_matches_oracle_and_thrift(self, dtype, batch, mode):
        keys = [3, -1, 2**62, 0]
        rng = np.random.default_rng(batch)
        values = tf.constant(rng.normal(size=(batch, len(keys))) * 100, dtype)
        self.check(keys, values, mode)

    def test_spec_example(self):
        out = bpr_ops.batch_prediction_response_writer([1], np.array([[0.5]], np.float32))
        self.assertEqual(
            thrift_check.to_bytes(out).hex(),
            "0f00010c000000010d00020a040000000100000000000000013fe00000000000000000",
        )

    # In "function" mode the kernel runs on TensorFlow's executor threads, which
    # set the FPU's denormals-are-zero mode: a widening done with floating-point
    # instructions wrote subnormals as 0.0 there (regression).
    @parameterized.product(dtype=DTYPES, mode=["eager", "function"])
    def test_special_values_kept_bit_for_bit(self, dtype, mode):
        np_dtype = {tf.float32: np.float32, tf.float64: np.float64, tf.float16: np.float16}.get(dtype)
        specials = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0]
        if np_dtype is not None:
            tiny = np.finfo(np_dtype).smallest_subnormal
            values = np.array([specials + [tiny, -tiny]], np_dtype)
            if np_dtype is np.float32:  # a signalling NaN with a payload
                values.view(np.uint32)[0, 0] = 0x7F800001
            tensor = tf.constant(values)
        else:
            tensor = tf.constant([specials + [1e-40, -1e-40]], tf.bfloat16)
        keys = list(range(tensor.shape[1]))
        self.check(keys, tensor, mode)

    @parameterized.parameters(DTYPES)
    def test_rank1_values_with_one_key(self, dtype):
        values = tf.constant([0.5, -2.0, 8.0], dtype)
        data = thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer([42], values))
        expected = bpr_ops.batch_prediction_response_writer([42], tf.reshape(values, [3, 1]))
        self.assertEqual(data, thrift_check.to_bytes(expected))
        self.assertEqual(
            [r.continuousFeatures for r in thrift_check.decode(data).predictions],
            [{42: 0.5}, {42: -2.0}, {42: 8.0}],
        )

    def test_keys_order_is_kept(self):
        keys = [9, 1, 5]
        data = self.check(keys, tf.constant([[1.0, 2.0, 3.0]]))
        self.assertEqual(list(bpr_ops.decode_batch_prediction_response(data)[0]), keys)

    def test_zero_keys(self):
        data = self.check([], tf.zeros([2, 0]))
        self.assertEqual(bpr_ops.decode_batch_prediction_response(data), [{}, {}])

    def test_large_output_written_on_the_intra_op_pool_is_exact(self):
        # 20000 x (10 + 16 * 16) bytes = 5.3 MB: over the 4 MiB threshold, so
        # the records are written in shards on TensorFlow's intra-op threads.
        keys = list(range(16))
        values = tf.random.normal([20000, 16], seed=3)
        self.check(keys, values)

    def test_identical_input_identical_bytes(self):
        keys = list(range(100, 0, -1))
        values = tf.random.normal([64, 100], seed=1)
        first = thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer(keys, values))
        for _ in range(5):
            self.assertEqual(first, thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer(keys, values)))

    def test_static_shape_is_one_row_of_bytes(self):
        fn = tf.function(
            lambda v: bpr_ops.batch_prediction_response_writer([1, 2], v),
            input_signature=[tf.TensorSpec([None, 2], tf.float32)],
        )
        out = fn.get_concrete_function().structured_outputs
        self.assertEqual(out.shape.as_list(), [1, None])
        self.assertEqual(out.dtype, tf.uint8)

    def test_keys_accept_lists_arrays_and_tensors(self):
        values = tf.constant([[1.0, 2.0]])
        expected = thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer([7, 8], values))
        for keys in (np.array([7, 8], np.int32), np.array([7, 8], np.uint16), tf.constant([7, 8]), (7, 8)):
            self.assertEqual(thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer(keys, values)), expected)
        with self.assertRaisesRegex(TypeError, "keys must be integers"):
            bpr_ops.batch_prediction_response_writer([1.5, 2.0], values)

    @parameterized.parameters("eager", "function", "function_unknown_rank")
    def test_errors(self, mode):
        def shape(dims):
            # Traced with a known rank, the error comes before the dims are known.
            return re.escape("[" + ",".join("None" if mode == "function" else str(d) for d in dims) + "]")

        cases = [
            ([1], tf.constant(1.0), r"values must have shape \[batch, 1\] \(rank 2\) or \[batch\], got shape \[\] \(rank 0\)"),
            ([1, 2], tf.zeros([2, 2, 3]), rf"values must have shape \[batch, 2\] \(rank 2\), got shape {shape([2, 2, 3])} \(rank 3\)"),
            ([1, 2, 3], tf.zeros([4, 2]), r"values has shape \[4,2\] \(2 columns\) but keys has 3 entries"),
            ([1, 2], tf.zeros([4]), rf"values has rank-1 shape {shape([4])} but keys has 2 entries"),
            ([[1, 2]], tf.zeros([1, 2]), r"keys must be a rank-1 tensor .*got shape \[1,2\] \(rank 2\)"),
            (5, tf.zeros([1, 1]), r"keys must be a rank-1 tensor .*got shape \[\] \(rank 0\)"),
            ([4, 7, 4], tf.zeros([1, 3]), r"keys has a duplicate: key 4 appears at index 0 and index 2"),
        ]
        for keys, values, pattern in cases:
            with self.subTest(keys=keys, shape=values.shape):
                with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
                    self.write(keys, values, mode)

    def test_batch_over_thrift_count_limit(self):
        # 2^31 records of zero keys: no memory, one count over the i32 limit.
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, r"a batch of 2147483648 records is over the Thrift list limit"
        ):
            bpr_ops.batch_prediction_response_writer([], tf.zeros([2**31, 0]))

    def test_unsupported_values_dtype_is_rejected(self):
        with self.assertRaises((TypeError, tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
            bpr_ops.batch_prediction_response_writer([1], tf.constant([[1]], tf.int32))


if __name__ == "__main__":
    tf.test.main()

"""BatchPredictionTensorResponseWriter through TensorFlow: every dtype and row
shape against a spec oracle and thriftpy2, mixed dtypes, non-UTF-8 strings,
every error."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import bpr_ops
import thrift_check

DataType = thrift_check.DataType

# dtype -> (Thrift DataType, numpy little-endian type of the written content)
RAW = {
    tf.float32: (DataType.FLOAT, "<f4"),
    tf.float64: (DataType.DOUBLE, "<f8"),
    tf.int32: (DataType.INT32, "<i4"),
    tf.int64: (DataType.INT64, "<i8"),
    tf.uint8: (DataType.UINT8, "u1"),
    tf.int8: (DataType.BYTE, "i1"),  # quantized outputs: one byte per element
    tf.bool: (DataType.BOOL, "?"),
    tf.float16: (DataType.FLOAT, "<f4"),
    tf.bfloat16: (DataType.FLOAT, "<f4"),
}
ALL_DTYPES = list(RAW) + [tf.string]
ROW_SHAPES = [[], [3], [2, 3], [0]]


def random_tensor(dtype, shape, rng):
    if dtype == tf.string:
        pool = [b"", b"a", b"caf\xc3\xa9", b"\xff\xfe\x00bin", b"x" * 300]
        flat = [pool[i] for i in rng.integers(0, len(pool), size=int(np.prod(shape)))]
        return tf.constant(np.array(flat, dtype=object).reshape(shape), tf.string)
    if dtype == tf.bool:
        return tf.constant(rng.integers(0, 2, size=shape).astype(bool))
    if dtype.is_integer:
        info = np.iinfo(dtype.as_numpy_dtype)
        return tf.constant(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype.as_numpy_dtype))
    return tf.cast(tf.constant(rng.normal(size=shape) * 1000), dtype)


def content_of(row: tf.Tensor) -> bytes:
    """The little-endian content the op must write for one row."""
    # numpy widens half and bfloat16 exactly (tf.cast would run with
    # denormals-are-zero set); these rows hold no NaNs.
    return np.ascontiguousarray(row.numpy()).astype(RAW[row.dtype][1]).tobytes()


def oracle_tensor(row: tf.Tensor) -> bytes:
    shape = row.shape.as_list()
    if row.dtype == tf.string:
        return thrift_check.oracle_string_tensor(list(np.asarray(row.numpy(), dtype=object).reshape(-1)), shape)
    return thrift_check.oracle_raw_tensor(RAW[row.dtype][0], content_of(row), shape)


class TensorWriterTest(tf.test.TestCase, parameterized.TestCase):
    def write(self, keys, values, mode="eager"):
        if mode == "eager":
            return bpr_ops.batch_prediction_tensor_response_writer(keys, values)
        specs = [tf.TensorSpec([None] * v.shape.rank, v.dtype) for v in values]
        fn = tf.function(lambda *vs: bpr_ops.batch_prediction_tensor_response_writer(keys, list(vs)),
                         input_signature=specs)
        return fn(*values)

    def check(self, keys, values, mode="eager", fn=None):
        out = fn(tf.constant(keys, tf.int64), *values) if fn else self.write(keys, values, mode)
        data = thrift_check.to_bytes(out)
        batch = values[0].shape[0]
        expected = thrift_check.oracle_tensor_response(
            keys, [[oracle_tensor(v[i]) for v in values] for i in range(batch)]
        )
        self.assertEqual(data, expected)
        records = thrift_check.decode(data).predictions
        self.assertLen(records, batch)
        for i, record in enumerate(records):
            self.assertIsNone(record.continuousFeatures)
            self.assertEqual(list(record.tensors), list(keys))
            for key, v in zip(keys, values):
                general = record.tensors[key]
                row = v[i]
                if v.dtype == tf.string:
                    self.assertIsNone(general.rawTypedTensor)
                    self.assertEqual(general.stringTensor.strings, list(np.asarray(row.numpy(), dtype=object).reshape(-1)))
                    self.assertEqual(general.stringTensor.shape, row.shape.as_list())
                else:
                    self.assertIsNone(general.stringTensor)
                    raw = general.rawTypedTensor
                    self.assertEqual(raw.dataType, RAW[v.dtype][0])
                    self.assertEqual(raw.shape, row.shape.as_list())
                    # Decoded back to the input row, compared in the input's dtype.
                    decoded = np.frombuffer(raw.content, RAW[v.dtype][1]).reshape(row.shape)
                    self.assertAllEqual(tf.cast(decoded, v.dtype), row)
        return data

    @parameterized.product(dtype=ALL_DTYPES, row_shape=ROW_SHAPES, batch=[0, 1, 6])
    def test_every_dtype_and_row_shape(self, dtype, row_shape, batch):
        rng = np.random.default_rng(batch * 7 + len(row_shape))
        self.check([123], [random_tensor(dtype, [batch] + row_shape, rng)])

    @parameterized.parameters("eager", "function")
    def test_mixed_dtypes_in_one_call(self, mode):
        rng = np.random.default_rng(5)
        shapes = [[4], [4, 2], [4, 3, 2], [4, 0], [4, 1], [4], [4, 2, 2], [4, 5], [4, 3], [4, 2]]
        values = [random_tensor(d, s, rng) for d, s in zip(ALL_DTYPES, shapes)]
        keys = [-(2**63), 2**63 - 1, 0, 17, -5, 99, 1 << 40, 3, 4, 8]
        data = self.check(keys, values, mode)
        ours = bpr_ops.decode_batch_prediction_response(data)
        for i in range(4):
            for key, v in zip(keys, values):
                self.assertEqual(ours[i][key].shape, tuple(v.shape[1:]))

    @parameterized.parameters(tf.string, tf.int64)
    def test_one_kernel_called_with_changing_keys_and_shapes_writes_what_a_fresh_one_does(self, second):
        # One concrete function, so one kernel instance and its plan cache for every call:
        # keys, batch sizes and row shapes change from call to call, errors come in between,
        # and each output must be the oracle's bytes (thriftpy2 decodes it too). A kernel's
        # dtypes are fixed by its graph node; the Rust tests change those (tests/plan_cache.rs).
        rng = np.random.default_rng(21)
        fn = tf.function(
            lambda k, a, b: bpr_ops.batch_prediction_tensor_response_writer(k, [a, b]),
            input_signature=[tf.TensorSpec([None], tf.int64), tf.TensorSpec(None, tf.float32),
                             tf.TensorSpec(None, second)],
        ).get_concrete_function()
        calls = [
            ([1, 2], [4, 16], [4, 2]),
            ([1, 2], [4, 16], [4, 2]),  # the same kind again: the cached frame
            ([1, 2], [9, 16], [9, 2]),  # another batch size
            ([3, 1], [9, 16], [9, 2]),  # other keys
            ([1, 3], [9, 16], [9, 2]),  # the same keys in another order
            ([1, 3], [9, 4, 4], [9, 2]),  # another row shape, same elements
            ([1, 3], [9, 2, 8], [9, 2]),
            ([1, 3], [5], [5, 3, 1]),  # rank 1 rows, and a string row of rank 2
            ([1, 3], [0, 5], [0, 1]),  # a batch of 0
            ([1, 3], [6, 0], [6, 1]),  # an empty row
            ([1, 3], [6, 40], [6, 1]),  # rows of 160 bytes (the AVX2 writer needs 32)
            ([1, 3], [6, 40], [6, 5]),  # and 40 (int64): the AVX2 writer's path
            ([1, 3], [6, 40], [6, 5]),
        ]
        bad = [([1, 3], [6, 40], [5, 1]), ([1, 1], [6, 40], [6, 1]), ([1], [6, 40], [6, 1])]
        for step in range(3):
            for keys, a, b in calls:
                values = [random_tensor(tf.float32, a, rng), random_tensor(second, b, rng)]
                self.check(keys, values, fn=fn)
            keys, a, b = bad[step]
            with self.assertRaises(tf.errors.InvalidArgumentError):
                fn(tf.constant(keys, tf.int64), random_tensor(tf.float32, a, rng), random_tensor(second, b, rng))

    def test_spec_example(self):
        out = bpr_ops.batch_prediction_tensor_response_writer([7], [tf.constant([[1, 2]], tf.int32)])
        example = (
            "0f 00 01 0c 00 00 00 01 0d 00 08 0a 0c 00 00 00 01 00 00 00 00 00 00 00 07 0c 00 01 08 00 01 00 00 00 02"
            " 0b 00 02 00 00 00 08 01 00 00 00 02 00 00 00 0f 00 03 0a 00 00 00 01 00 00 00 00 00 00 00 02 00 00 00 00"
        )
        self.assertEqual(thrift_check.to_bytes(out), bytes.fromhex(example))

    def test_non_utf8_strings_are_kept_byte_for_byte(self):
        strings = [[b"\xff", b"\x80\x81"], [b"\xc3(", b""]]
        data = self.check([1], [tf.constant(strings)])
        decoded = bpr_ops.decode_batch_prediction_response(data)
        self.assertEqual([list(r[1]) for r in decoded], strings)

    def test_half_and_bfloat16_widen_exactly_with_special_values(self):
        # (dtype, a NaN's bits, the float32 bits it must widen to: sign and payload kept, not quieted)
        for dtype, nan_bits, widened in ((tf.float16, 0x7C01, 0x7F802000), (tf.bfloat16, 0xFF81, 0xFF810000)):
            tiny = 6e-8 if dtype == tf.float16 else 1e-39  # subnormal in both
            exact = tf.cast(tf.constant([[np.inf, -np.inf, -0.0, 0.0, tiny]], tf.float32), dtype)
            nan = tf.bitcast(tf.constant([[nan_bits]], tf.uint16), dtype)
            values = tf.concat([exact, nan], axis=1)
            data = thrift_check.to_bytes(bpr_ops.batch_prediction_tensor_response_writer([1], [values]))
            raw = thrift_check.decode(data).predictions[0].tensors[1].rawTypedTensor
            bits = np.frombuffer(raw.content, "<u4")
            self.assertAllEqual(bits[:5], exact.numpy().astype(np.float32).view(np.uint32)[0])
            self.assertEqual(int(bits[5]), widened)

    def test_large_output_written_on_the_intra_op_pool_is_exact(self):
        # About 5 MB of fixed-size records: written in shards on TensorFlow's
        # intra-op threads. Every dtype, so every column filler runs sharded.
        rng = np.random.default_rng(11)
        dtypes = [d for d in ALL_DTYPES if d != tf.string]
        values = [random_tensor(d, [2000, 8, 8], rng) for d in dtypes]
        self.check(list(range(len(values))), values)

    def test_identical_input_identical_bytes(self):
        rng = np.random.default_rng(1)
        values = [random_tensor(d, [16, 3], rng) for d in (tf.string, tf.float32, tf.int64)]
        first = thrift_check.to_bytes(bpr_ops.batch_prediction_tensor_response_writer([3, 1, 2], values))
        for _ in range(3):
            again = bpr_ops.batch_prediction_tensor_response_writer([3, 1, 2], values)
            self.assertEqual(first, thrift_check.to_bytes(again))

    def test_static_shape_is_one_row_of_bytes(self):
        fn = tf.function(
            lambda a, b: bpr_ops.batch_prediction_tensor_response_writer([1, 2], [a, b]),
            input_signature=[tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.string)],
        )
        out = fn.get_concrete_function().structured_outputs
        self.assertEqual(out.shape.as_list(), [1, None])
        self.assertEqual(out.dtype, tf.uint8)

    @parameterized.parameters("eager", "function")
    def test_errors(self, mode):
        f = tf.zeros([2, 3])
        cases = [
            ([], [f], r"keys is empty \(shape \[0\]\)"),
            ([1, 2], [f], r"keys has 2 entries but 1 values tensors were given"),
            ([1, 2], [f, tf.zeros([3, 3])],
             r"values\[1\] \(key 2, float, shape \[3,3\]\) has batch size 3 but values\[0\] \(key 1, float, shape \[2,3\]\) has batch size 2"),
            ([1, 2], [f, tf.constant(1)], r"values\[1\] \(key 2, int32, shape \[\]\) is a scalar"),
            ([[1]], [f], r"keys must be a rank-1 tensor .*got shape \[1,1\] \(rank 2\)"),
            ([5, 6, 5], [f, f, f], r"keys has a duplicate: key 5 appears at index 0 and index 2"),
        ]
        for keys, values, pattern in cases:
            with self.subTest(pattern=pattern):
                with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
                    self.write(keys, values, mode)

    def test_zero_keys_and_zero_tensors(self):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, r"values is empty \(keys has shape \(0,\)\)"):
            bpr_ops.batch_prediction_tensor_response_writer([], [])

    def test_limits_are_checked_before_allocating(self):
        # Zero-element tensors whose rows or batch would be over the i32 limits.
        cases = [
            (tf.zeros([0, 2**31], tf.uint8), r"a row holds 2147483648 elements of 1 bytes, over the Thrift binary limit"),
            (tf.zeros([0, 2**29], tf.float32), r"a row holds 536870912 elements of 4 bytes, over the Thrift binary limit"),
            (tf.zeros([0, 2**29], tf.float16), r"a row holds 536870912 elements of 4 bytes"),  # counted widened to f32
            (tf.fill([0, 2**31], ""), r"a row holds 2147483648 strings, over the Thrift list limit"),
            (tf.zeros([2**31, 0]), r"a batch of 2147483648 records is over the Thrift list limit"),
        ]
        for values, pattern in cases:
            with self.subTest(pattern=pattern):
                with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
                    bpr_ops.batch_prediction_tensor_response_writer([1], [values])


if __name__ == "__main__":
    tf.test.main()

"""bpr_ops.decode_batch_prediction_response: agrees with thriftpy2 on our
output and rejects malformed bytes with DecodeError."""

import numpy as np
import tensorflow as tf

import bpr_ops
import thrift_check


class DecodeTest(tf.test.TestCase):
    def test_agrees_with_thriftpy2_on_continuous_records(self):
        values = np.random.default_rng(3).normal(size=(9, 3))
        out = bpr_ops.batch_prediction_response_writer([4, 5, 6], values)
        ours = bpr_ops.decode_batch_prediction_response(out)
        theirs = thrift_check.decode(thrift_check.to_bytes(out)).predictions
        self.assertEqual(ours, [r.continuousFeatures for r in theirs])
        self.assertEqual(ours, [dict(zip([4, 5, 6], row)) for row in values.tolist()])

    def test_accepts_bytes_arrays_and_tensors(self):
        out = bpr_ops.batch_prediction_response_writer([1], [[0.5]])
        expected = [{1: 0.5}]
        for form in (out, out.numpy(), out.numpy().tobytes(), bytearray(out.numpy().tobytes())):
            self.assertEqual(bpr_ops.decode_batch_prediction_response(form), expected)

    def test_malformed_input_raises_decode_error(self):
        data = thrift_check.to_bytes(bpr_ops.batch_prediction_response_writer([1, 2], [[0.5, 1.0]] * 3))
        for cut in (1, 2, 17, len(data) - 1):
            with self.assertRaisesRegex(bpr_ops.DecodeError, "truncated response"):
                bpr_ops.decode_batch_prediction_response(data[:-cut])
        with self.assertRaisesRegex(bpr_ops.DecodeError, "1 trailing bytes"):
            bpr_ops.decode_batch_prediction_response(data + b"\0")
        with self.assertRaisesRegex(bpr_ops.DecodeError, "negative count"):
            bpr_ops.decode_batch_prediction_response(b"\x0f\x00\x01\x0c\xff\xff\xff\xff\x00")
        with self.assertRaises(TypeError):
            bpr_ops.decode_batch_prediction_response(np.zeros(3, np.float32))


if __name__ == "__main__":
    tf.test.main()

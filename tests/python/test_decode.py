"""bpr_ops.decode_batch_prediction_response: agrees with thriftpy2 on our
output, decodes every DataRecord field of a response Apache's generated code
wrote, skips fields a newer schema added, and rejects malformed bytes with
DecodeError."""

from pathlib import Path

import numpy as np
import tensorflow as tf
from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory
from thrift.TSerialization import deserialize

import bpr_ops
import every_field
import thrift_check
from bpr_ops.decode import decode_responses


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


    def test_every_record_field_written_by_apache_generated_code(self):
        data = every_field.apache_bytes()
        every_field.assert_records_equal(self, bpr_ops.decode_batch_prediction_response(data), every_field.EXPECTED)
        by_field = bpr_ops.decode_batch_prediction_response(data, by_field=True)
        self.assertEqual(sorted(by_field[0]), sorted(bpr_ops.decode.RECORD_FIELDS.values()))
        self.assertEqual(by_field[0]["binaryFeatures"], {1: True, 2: True})
        self.assertEqual(by_field[1], {"continuousFeatures": {3: -1.0}})

    def test_unknown_fields_of_every_type_are_skipped(self):
        data = every_field.extended_bytes(Path(self.get_temp_dir()))
        plain = every_field.apache_bytes()
        self.assertGreater(len(data), len(plain) + 100)
        records, skipped = decode_responses(data)
        every_field.assert_records_equal(self, records, every_field.EXPECTED)
        self.assertEqual(
            set(skipped),
            {
                ("BatchPredictionResponse", 2, "map"),
                ("BatchPredictionResponse", 3, "struct"),
                ("RawTypedTensor", 4, "string"),
                ("RawTypedTensor", 5, "map"),
                *(("DataRecord", fid, t) for fid, t in [(20, "byte"), (21, "i16"), (22, "bool"), (23, "double"),
                                                        (24, "i32"), (25, "list"), (26, "set"), (27, "struct")]),
            },
        )
        self.assertEqual(skipped[("DataRecord", 25, "list")], 2)  # once per record
        # Apache's generated reader skips them too, and agrees with us on what it knows.
        theirs = deserialize(every_field.P.BatchPredictionResponse(), data, TBinaryProtocolFactory())
        self.assertEqual([r.continuousFeatures for r in theirs.predictions], [{3: 0.5, -4: float("inf")}, {3: -1.0}])
        self.assertEqual(theirs.predictions[0].tensors[9].rawTypedTensor.content, b"\x80\xff\x01")

    def test_a_key_under_two_fields(self):
        # Legal Thrift: the flat form cannot hold both, by_field can.
        data = thrift_check.IDL.BatchPredictionResponse(
            predictions=[thrift_check.IDL.data.DataRecord(continuousFeatures={3: 0.5}, discreteFeatures={3: 7})]
        )
        buf = thrift_check.TMemoryBuffer()
        data.write(thrift_check.TBinaryProtocol(buf))
        raw = buf.getvalue()
        with self.assertRaisesRegex(bpr_ops.DecodeError, "key 3 appears in both continuousFeatures and discreteFeatures.*by_field=True"):
            bpr_ops.decode_batch_prediction_response(raw)
        self.assertEqual(
            bpr_ops.decode_batch_prediction_response(raw, by_field=True),
            [{"continuousFeatures": {3: 0.5}, "discreteFeatures": {3: 7}}],
        )

    def test_every_truncation_and_corruption_is_a_decode_error(self):
        for data in (every_field.apache_bytes(), every_field.extended_bytes(Path(self.get_temp_dir()))):
            for cut in range(len(data)):
                with self.assertRaises(bpr_ops.DecodeError, msg=f"cut at {cut}"):
                    bpr_ops.decode_batch_prediction_response(data[:cut])
            # Any byte changed: decoded, or one DecodeError; never another exception.
            rng = np.random.default_rng(0)
            for _ in range(2000):
                bad = bytearray(data)
                bad[rng.integers(len(bad))] = rng.integers(256)
                try:
                    bpr_ops.decode_batch_prediction_response(bytes(bad))
                except bpr_ops.DecodeError:
                    pass

    def test_hostile_nesting_is_a_decode_error(self):
        # An unknown field of list<list<list<...>>> nested 100 deep.
        deep = b"\x0f\x00\x00\x00\x01" * 100  # list header: element type list, count 1
        data = b"\x0f\x00\x01\x0c\x00\x00\x00\x01" + b"\x0f\x00\x63" + deep
        with self.assertRaisesRegex(bpr_ops.DecodeError, "nested over 64 deep"):
            bpr_ops.decode_batch_prediction_response(data)


if __name__ == "__main__":
    tf.test.main()

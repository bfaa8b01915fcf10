"""BatchPredictionRequestReader: request bytes in, dense features by name out.
Requests are written by thriftpy2; expected values come from the records."""

import numpy as np
import pytest
import keras
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
import mmh3
import thrift_check

IDL = thrift_check.IDL


def fid(name: str) -> int:
    # twml's feature id of a name without '#': MurmurHash3 x64 128 of its UTF-16LE, first 8 bytes.
    return int.from_bytes(mmh3.hash_bytes(name.encode("utf-16-le"))[:8], "little", signed=True)


def request(records, common=None) -> bytes:
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


R = IDL.data.DataRecord
AGE, SCORE, VIDEO, LANG, COUNT = "user.age", "tweet.score", "tweet.is_video", "tweet.lang", "tweet.count"


def two_requests():
    a = request(
        [R(continuousFeatures={fid(SCORE): 0.5}, binaryFeatures={fid(VIDEO)}, stringFeatures={fid(LANG): "fr"}),
         R(continuousFeatures={fid(SCORE): 0.25, fid(AGE): 61.0})],
        common=R(continuousFeatures={fid(AGE): 23.0}, discreteFeatures={fid(COUNT): 7}),
    )
    b = request([R()])
    return a, b


def reader(**kw):
    return bpr_ops.BatchPredictionRequestReader(
        continuous=[AGE, SCORE], binary=[VIDEO], discrete=[COUNT], strings=[LANG], default_value=-1.0,
        default_discrete=-2, default_string="none", **kw)


def test_one_request_as_uint8_bytes():
    a, _ = two_requests()
    out = reader()(tf.constant(np.frombuffer(a, np.uint8)))
    np.testing.assert_array_equal(out["continuous"].numpy(), np.float32([[23.0, 0.5], [61.0, 0.25]]))
    np.testing.assert_array_equal(out["binary"].numpy(), np.float32([[1.0], [0.0]]))
    np.testing.assert_array_equal(out["discrete"].numpy(), np.int64([[7], [7]]))
    assert out["strings"].numpy().tolist() == [[b"fr"], [b"none"]]


def test_several_requests_as_strings_concatenate_their_records():
    a, b = two_requests()
    out = reader(output_mode="names")(tf.constant([a, b]))
    np.testing.assert_array_equal(out[AGE].numpy(), np.float32([23.0, 61.0, -1.0]))
    np.testing.assert_array_equal(out[COUNT].numpy(), np.int64([7, 7, -2]))


def test_saved_and_loaded_with_keras_and_served_as_a_savedmodel(tmp_path):
    a, b = two_requests()
    inp = keras.Input((), dtype="string")
    model = keras.Model(inp, reader()(inp)["continuous"])
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again(tf.constant([a, b])).numpy(), model(tf.constant([a, b])).numpy())
    assert again.layers[1].get_config()["continuous"] == [AGE, SCORE]
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    serve = tf.saved_model.load(str(tmp_path / "exported")).serve
    np.testing.assert_array_equal(serve(tf.constant([a, b])).numpy(), model(tf.constant([a, b])).numpy())


def test_mistakes_are_errors_when_the_layer_is_made():
    with pytest.raises(ValueError, match="already reads"):
        bpr_ops.BatchPredictionRequestReader(continuous=[AGE], binary=[AGE])
    with pytest.raises(ValueError, match="no features to read"):
        bpr_ops.BatchPredictionRequestReader()
    with pytest.raises(ValueError, match="output_mode"):
        bpr_ops.BatchPredictionRequestReader(continuous=[AGE], output_mode="rows")
    with pytest.raises(TypeError, match="reads request bytes"):
        bpr_ops.BatchPredictionRequestReader(continuous=[AGE])(keras.Input((3,), dtype="float32"))


def test_corrupt_bytes_name_the_op_and_the_offset():
    a, _ = two_requests()
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"DecodeBatchPredictionRequestV2: input_bytes\[0\] at byte"):
        reader()(tf.constant([a[:-3]]))

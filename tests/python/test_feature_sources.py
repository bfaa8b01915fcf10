"""Where a reader's values came from (issue 29): a misspelled name or a
feature sent as another kind than the model reads reads the default, the same
value as a feature the request simply lacks. GetFeatureSourcesFromDataRecord
and BatchPredictionRequestReader(sources=True) tell them apart: 1 the record,
2 its request's commonFeatures, 3 sent as another kind, 0 absent. Requests
are written by thriftpy2 (the IDL in thrift/), not by our encoder."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import block_files as bf
import bpr_ops
from bpr_ops import data
from bpr_ops.feature_ids import feature_id
from thrift_check import IDL
from test_tf_keras import fresh

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

R = IDL.data.DataRecord
LIB = bpr_ops.load_library()
DEFAULT, RECORD, COMMON, OTHER_KIND = 0, 1, 2, 3


def request(records, common=None) -> bytes:
    buf = TMemoryBuffer()
    IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


F = {name: feature_id(name) for name in ("score", "age", "count", "lang", "is_video", "unsent")}

# Record 0 has score itself; record 1 only through commonFeatures (age too);
# count is sent as discrete, lang as a string; nothing sends "unsent".
A = request(
    [R(continuousFeatures={F["score"]: 0.5}, discreteFeatures={F["count"]: 3}, binaryFeatures={F["is_video"]}),
     R(stringFeatures={F["lang"]: "fr"})],
    common=R(continuousFeatures={F["score"]: 9.0, F["age"]: 30.0}),
)
# A second request without commonFeatures, where count is sent as continuous.
B = request([R(continuousFeatures={F["count"]: 2.0})])


def reader(**kw):
    # "scroe" is the model author's typo for "score"; count is read as
    # continuous although the client sends it as discrete (request A).
    return bpr_ops.BatchPredictionRequestReader(
        continuous=["score", "scroe", "count", "unsent"], binary=["is_video"], strings=["lang"],
        default_value=-1.0, sources=True, **kw)


def test_codes_per_record_and_kind():
    out = reader()(tf.constant([A, B]))
    # The values: every default looks alike (-1.0)...
    np.testing.assert_array_equal(
        out["continuous"].numpy(), np.float32([[0.5, -1, -1, -1], [9.0, -1, -1, -1], [-1, -1, 2.0, -1]]))
    # ...the sources do not.
    sources = out["sources"]
    assert sorted(sources) == ["binary", "continuous", "strings"]
    assert sources["continuous"].dtype == tf.int8
    np.testing.assert_array_equal(sources["continuous"].numpy(), [
        [RECORD, DEFAULT, OTHER_KIND, DEFAULT],  # own score; the typo; count sent as discrete
        [COMMON, DEFAULT, DEFAULT, DEFAULT],     # score from commonFeatures only
        [DEFAULT, DEFAULT, RECORD, DEFAULT],     # request B: count as continuous
    ])
    np.testing.assert_array_equal(sources["binary"].numpy(), [[RECORD], [DEFAULT], [DEFAULT]])
    np.testing.assert_array_equal(sources["strings"].numpy(), [[DEFAULT], [RECORD], [DEFAULT]])


def test_names_mode_and_uint8_input():
    out = reader(output_mode="names")(tf.constant(np.frombuffer(A, np.uint8)))
    assert sorted(out["sources"]) == ["count", "is_video", "lang", "score", "scroe", "unsent"]
    got = {k: v.numpy().tolist() for k, v in out["sources"].items()}
    assert got == {"score": [RECORD, COMMON], "scroe": [DEFAULT, DEFAULT], "count": [OTHER_KIND, DEFAULT],
                   "unsent": [DEFAULT, DEFAULT], "is_video": [RECORD, DEFAULT], "lang": [DEFAULT, RECORD]}, got


def test_own_value_of_another_kind_then_common_value_of_the_kind_read():
    # The getter finds the common value: so does the source.
    req = request([R(discreteFeatures={F["score"]: 4})], common=R(continuousFeatures={F["score"]: 1.5}))
    out = bpr_ops.BatchPredictionRequestReader(continuous=["score"], sources=True)(tf.constant([req]))
    assert out["continuous"].numpy().tolist() == [[1.5]]
    assert out["sources"]["continuous"].numpy().tolist() == [[COMMON]]


def test_op_on_its_own_and_its_errors():
    handle = LIB.decode_batch_prediction_request_v2(
        input_bytes=tf.constant([A]), keep_features=[], keep_codes=[], label_features=[], weight_features=[])
    got = LIB.get_feature_sources_from_data_record(
        handle, feature_ids=[F["count"], F["count"], F["lang"]], feature_kinds=[3, 2, 4])
    assert got.dtype == tf.int8
    np.testing.assert_array_equal(got.numpy(), [[RECORD, OTHER_KIND, DEFAULT], [DEFAULT, DEFAULT, RECORD]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="attr feature_kinds has 7 at index 1; a kind is a DataRecord"):
        LIB.get_feature_sources_from_data_record(handle, feature_ids=[1, 2], feature_kinds=[2, 7])
    with pytest.raises(tf.errors.InvalidArgumentError, match="has 1 kinds, feature_ids has 2 ids"):
        LIB.get_feature_sources_from_data_record(handle, feature_ids=[1, 2], feature_kinds=[2])
    hashed = LIB.decode_and_hash_batch_prediction_request_v2(
        input_bytes=tf.constant([A]), keep_features=[], keep_codes=[], label_features=[], weight_features=[])
    with pytest.raises(tf.errors.InvalidArgumentError, match="makes a hashed DataRecord handle"):
        LIB.get_feature_sources_from_data_record(hashed, feature_ids=[1], feature_kinds=[2])


def test_layer_argument_errors():
    with pytest.raises(TypeError, match="sources must be True or False"):
        bpr_ops.BatchPredictionRequestReader(continuous=["a"], sources="yes")
    with pytest.raises(ValueError, match="'sources' and sources=True both want"):
        bpr_ops.BatchPredictionRequestReader(continuous=["sources"], sources=True, output_mode="names")
    with pytest.raises(ValueError, match="none were given"):
        bpr_ops.BatchPredictionRequestReader(tensors={"t": ("float32", [2])}, sources=True)


def test_keras_3_model_config_and_saving(tmp_path):
    inp = keras.Input(shape=(), dtype="string")
    layer = reader()
    out = layer(inp)
    assert out["sources"]["continuous"].shape == (None, 4) and out["sources"]["continuous"].dtype == "int8"
    assert layer.get_config()["sources"] is True
    assert "sources" not in bpr_ops.BatchPredictionRequestReader(continuous=["a"]).get_config()
    model = keras.Model(inp, out["sources"])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded(tf.constant([A, B]))["continuous"].numpy(),
                                  model(tf.constant([A, B]))["continuous"].numpy())
    assert loaded(tf.constant([A]))["continuous"].numpy().tolist() == [[RECORD, 0, OTHER_KIND, 0], [COMMON, 0, 0, 0]]


def test_training_dataset_reports_sources(tmp_path):
    # bf.data_record: "a" continuous in each record, "b" only in odd ones,
    # "d" discrete (read here as continuous).
    path = tmp_path / "train.gz"
    path.write_bytes(bf.gz(bf.file_bytes([bf.data_record(i) for i in range(4)], 2)))
    r = bpr_ops.BatchPredictionRequestReader(continuous=["a", "b", "d"], sources=True)
    (x, _, _), = list(data.training_dataset([str(path)], r, batch_size=4))
    np.testing.assert_array_equal(x["sources"]["continuous"].numpy(), [
        [RECORD, DEFAULT, OTHER_KIND], [RECORD, RECORD, OTHER_KIND],
        [RECORD, DEFAULT, OTHER_KIND], [RECORD, RECORD, OTHER_KIND]])


TF_KERAS = """
    import json, sys
    from pathlib import Path
    import bpr_ops
    import tensorflow as tf
    keras = tf.keras
    assert keras.__name__.startswith("tf_keras"), keras.__name__
    out = Path(sys.argv[1])
    request = keras.Input(shape=(), dtype=tf.string)
    got = bpr_ops.BatchPredictionRequestReader(continuous=["score", "count"], sources=True, name="r")(request)
    model = keras.Model(request, got["sources"])
    model.save(out / "m.keras")
    loaded = keras.models.load_model(out / "m.keras")
    print(json.dumps({"config": loaded.get_layer("r").get_config()["sources"],
                      "sources": loaded(tf.constant([bytes.fromhex(sys.argv[2])]))["continuous"].numpy().tolist()}))
"""


def test_tf_keras(tmp_path):
    pytest.importorskip("tf_keras")
    report = json.loads(fresh(TF_KERAS, tmp_path, A.hex()).strip().splitlines()[-1])
    assert report == {"config": True, "sources": [[RECORD, OTHER_KIND], [COMMON, DEFAULT]]}, report

"""Mistakes that used to pass silently surface (issue 29): a set of keys (its
order is hash-random, so the columns got keys in an order nobody chose) is
refused by the writer layers, the op wrappers and the request reader, with
what to pass instead."""

import pytest

import bpr_ops

UNORDERED = "which has no order, but keys[j] is the key of column j: pass a list or tuple in the order of the columns"


@pytest.mark.parametrize("keys", [{"prediction", "p_like"}, frozenset({1, 2})])
@pytest.mark.parametrize("layer", [bpr_ops.BatchPredictionWriter, bpr_ops.BatchPredictionTensorWriter])
def test_writer_layers_refuse_a_set_of_keys(layer, keys):
    with pytest.raises(TypeError) as e:
        layer(keys=keys)
    assert f"{layer.__name__}: keys is a {type(keys).__name__}, {UNORDERED}" in str(e.value), str(e.value)


def test_dict_keys_keep_their_order_and_are_accepted():
    columns = {"prediction": 0, "p_like": 1}
    assert bpr_ops.BatchPredictionWriter(keys=columns.keys()).keys == ["prediction", "p_like"]


@pytest.mark.parametrize("op", [bpr_ops.batch_prediction_response_writer,
                                bpr_ops.batch_prediction_tensor_response_writer])
def test_the_ops_refuse_a_set_of_keys(op):
    values = [[0.5, 0.25]] if op is bpr_ops.batch_prediction_response_writer else [[[0.5]], [[0.25]]]
    with pytest.raises(TypeError) as e:
        op({"prediction", 7}, values)
    assert f"keys is a set, {UNORDERED}" in str(e.value), str(e.value)


def test_the_request_reader_refuses_a_set_of_keys():
    with pytest.raises(TypeError) as e:
        bpr_ops.BatchPredictionRequestReader(continuous={"a", "b"})
    assert f"BatchPredictionRequestReader continuous: keys is a set, {UNORDERED}" in str(e.value), str(e.value)


@pytest.mark.parametrize("data", [
    b"hello, this is not a request",
    b'{"individualFeaturesList": []}',
    bpr_ops.encode_data_record({"binary": [7], "continuous": {1: 0.5}}),  # a DataRecord, not a request
    bpr_ops.encode_data_record({"continuous": {1: 0.5}}),
    b"",
])
def test_bytes_that_are_not_a_request_are_called_so(data):
    # Before issue 29: "field 25964 has Thrift type code 104, which is no type" and no more.
    import tensorflow as tf

    reader = bpr_ops.BatchPredictionRequestReader(continuous=[1])
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        reader(tf.constant([data]))
    assert "(these bytes do not start like a Thrift binary-protocol BatchPredictionRequest" in str(e.value), str(e.value)


def test_a_malformed_request_is_not_called_a_non_request():
    import tensorflow as tf

    request = bpr_ops.encode_batch_prediction_request([{"continuous": {1: 0.5}}])
    reader = bpr_ops.BatchPredictionRequestReader(continuous=[1])
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        reader(tf.constant([request[:-3]]))
    assert "individualFeaturesList[0]" in str(e.value) and "do not start like" not in str(e.value), str(e.value)

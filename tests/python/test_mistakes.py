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

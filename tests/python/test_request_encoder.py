"""Our pure-Python request encoder, judged by thriftpy2 decoding its bytes."""

from __future__ import annotations

import math
import random

import pytest
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

from bpr_ops.request import encode_batch_prediction_request, encode_data_record
from thrift_check import IDL


def parse(data: bytes, cls):
    buf = TMemoryBuffer(data)
    obj = cls()
    obj.read(TBinaryProtocol(buf, strict_decode=True))
    # TMemoryBuffer keeps its read position in _pos (thriftpy2 0.7).
    assert buf._pos == len(data), f"{len(data) - buf._pos} bytes left"
    return obj


def random_record(rng: random.Random) -> dict:
    def key():
        return rng.randrange(-(2**63), 2**63)

    def text():
        return "".join(rng.choice("ab\u00e9\u4e2d\U0001f600") for _ in range(rng.randrange(4)))

    return {
        "binary": list({key() for _ in range(rng.randrange(4))}),
        "continuous": {key(): rng.choice([rng.uniform(-1e6, 1e6), math.inf, -0.0]) for _ in range(rng.randrange(4))},
        "discrete": {key(): rng.randrange(-(2**63), 2**63) for _ in range(rng.randrange(4))},
        "string": {key(): text() for _ in range(rng.randrange(4))},
        "sparse_binary": {key(): list({text() for _ in range(rng.randrange(3))}) for _ in range(rng.randrange(3))},
        "sparse_continuous": {
            key(): {text(): rng.uniform(-5, 5) for _ in range(rng.randrange(3))} for _ in range(rng.randrange(3))
        },
    }


def check_record(parsed, record: dict) -> None:
    assert set(parsed.binaryFeatures) == set(record["binary"])
    assert parsed.continuousFeatures == record["continuous"]
    assert parsed.discreteFeatures == record["discrete"]
    assert parsed.stringFeatures == record["string"]
    assert {k: set(v) for k, v in parsed.sparseBinaryFeatures.items()} == {
        k: set(v) for k, v in record["sparse_binary"].items()
    }
    assert parsed.sparseContinuousFeatures == record["sparse_continuous"]


@pytest.mark.parametrize("seed", range(20))
def test_random_requests_round_trip_through_thriftpy2(seed):
    rng = random.Random(seed)
    records = [random_record(rng) for _ in range(rng.randrange(5))]
    common = random_record(rng) if seed % 2 else None
    parsed = parse(encode_batch_prediction_request(records, common), IDL.BatchPredictionRequest)
    assert len(parsed.individualFeaturesList) == len(records)
    for got, want in zip(parsed.individualFeaturesList, records):
        check_record(got, want)
    if common is None:
        assert parsed.commonFeatures is None
    else:
        check_record(parsed.commonFeatures, common)


def test_nan_survives():
    parsed = parse(encode_data_record({"continuous": {7: float("nan")}}), IDL.data.DataRecord)
    assert math.isnan(parsed.continuousFeatures[7])


def test_empty_record_and_request():
    assert encode_data_record({}) == b"\x00"
    parsed = parse(encode_batch_prediction_request([]), IDL.BatchPredictionRequest)
    assert parsed.individualFeaturesList == []


@pytest.mark.parametrize(
    "record, error",
    [
        ({"bogus": []}, ValueError),
        ({"binary": [2**63]}, ValueError),
        ({"binary": [1.5]}, TypeError),
        ({"discrete": {1: 1.5}}, TypeError),
        ({"string": {1: 3}}, TypeError),
        ({"continuous": {1: "x"}}, TypeError),
    ],
)
def test_bad_records_are_rejected(record, error):
    with pytest.raises(error):
        encode_data_record(record)


def test_name_keys_are_hashed_as_twml_does():
    import mmh3

    def twml_id(name):
        return int.from_bytes(mmh3.hash_bytes(name.encode("utf-16-le"), 0)[:8], "little", signed=True)

    request = parse(encode_batch_prediction_request(
        [{"continuous": {"age": 31.0, 7: 1.5}, "binary": ["is_new"]}], common={"string": {"country": "fr"}}),
        IDL.BatchPredictionRequest)
    (record,) = request.individualFeaturesList
    assert record.continuousFeatures == {twml_id("age"): 31.0, 7: 1.5}
    assert set(record.binaryFeatures) == {twml_id("is_new")}
    assert request.commonFeatures.stringFeatures == {twml_id("country"): "fr"}


# Issue 29: {"binary": "is_video"} encoded the characters i, s, _, ... as
# features, with no error; a str where a collection is meant is refused now,
# and so is a dict (or a str) where the list of records is meant.
@pytest.mark.parametrize(
    "records, message",
    [
        ([{"binary": "is_video"}], "binary: expected a list of feature keys, got the single str 'is_video', "
                                   "whose characters would each be encoded as a feature; write ['is_video']"),
        ([{"binary": b"is_video"}], "binary: expected a list of feature keys, got the single bytes"),
        ([{"sparse_binary": {"tags": "abc"}}], "sparse_binary['tags']: expected a list of str, got the single "
                                               "str 'abc'"),
        ([{"continuous": [("age", 1.0)]}], "continuous: expected {key: float} (a dict), got list"),
        ([{"sparse_continuous": {"x": [1.0]}}], "sparse_continuous['x']: expected {str: float} (a dict), got list"),
        ({"binary": ["is_video"]}, "records must be a list of records (dicts), got one dict: for a request of "
                                   "one record, write [record]"),
        ("is_video", "records must be a list of records (dicts), got str 'is_video'"),
    ],
)
def test_a_str_or_dict_where_a_collection_is_meant_is_refused(records, message):
    with pytest.raises(TypeError) as e:
        encode_batch_prediction_request(records)
    assert str(e.value).startswith(message), str(e.value)


def test_a_set_of_names_is_a_collection_of_features():
    # Binary features are a Thrift set: a Python set is fine there.
    request = parse(encode_batch_prediction_request([{"binary": {"is_video"}}]), IDL.BatchPredictionRequest)
    assert set(request.individualFeaturesList[0].binaryFeatures) == {bpr_ops_feature_id("is_video")}


def bpr_ops_feature_id(name):
    import mmh3

    return int.from_bytes(mmh3.hash_bytes(name.encode("utf-16-le"), 0)[:8], "little", signed=True)

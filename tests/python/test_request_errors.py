"""Bad bytes and bad attrs for the request-side ops: every one an
InvalidArgumentError naming the op, the element, the byte offset and what was
expected; never a crash, never an allocation the bytes do not justify.

Bytes are written by hand (request_model's struct.pack writer) so that wire
order, counts, types and offsets are exactly what each case says.
"""

from __future__ import annotations

import re
import resource
import time

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import request_model as m
from request_model import (
    BINARY, CONTINUOUS, DISCRETE, SPARSE_BINARY, SPARSE_CONTINUOUS, STRING,
    T_BOOL, T_BYTE, T_DOUBLE, T_I32, T_I64, T_LIST, T_MAP, T_SET, T_STRING, T_STRUCT,
    fhead, i32, i64, dbl, tstr,
)

LIB = bpr_ops.load_library()

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

DR_OPS = ["DecodeDataRecord", "DecodeAndHashDataRecord"]
BPR_V2_OPS = ["DecodeBatchPredictionRequestV2", "DecodeAndHashBatchPredictionRequestV2"]
BPR_V1_OPS = ["DecodeBatchPredictionRequest", "DecodeAndHashBatchPredictionRequest"]


def decode(op: str, x, keep=(), codes=(), labels=(), weights=(), mode=None):
    kw = dict(input_bytes=x, keep_features=list(keep), keep_codes=list(codes))
    if op not in BPR_V1_OPS:
        kw.update(label_features=list(labels), weight_features=list(weights))
    if mode is not None:
        kw["decode_mode"] = mode
    fn = {
        "DecodeDataRecord": LIB.decode_data_record,
        "DecodeAndHashDataRecord": LIB.decode_and_hash_data_record,
        "DecodeBatchPredictionRequestV2": LIB.decode_batch_prediction_request_v2,
        "DecodeAndHashBatchPredictionRequestV2": LIB.decode_and_hash_batch_prediction_request_v2,
        "DecodeBatchPredictionRequest": LIB.decode_batch_prediction_request,
        "DecodeAndHashBatchPredictionRequest": LIB.decode_and_hash_batch_prediction_request,
    }[op]
    return fn(**kw)


def core(err: Exception) -> str:
    """The kernel's own message, without TF's eager `{{function_node ...}}` prefix and `[Op:...]` suffix."""
    msg = err.message if hasattr(err, "message") else str(err)
    msg = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", msg)
    msg = re.sub(r"\s*\[Op:[^\]]*\].*$", "", msg, flags=re.S)
    return msg


def raises(fn) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn()
    return core(info.value)


WHERE = re.compile(r"^(\w+): input_bytes(\[(\d+)\])? at byte (\d+): (.+)$", re.S)


def decode_error(op, x, element=None, lo=None, hi=None, contains=(), **kw):
    """Decodes x with op, expects the error; checks op, element, offset range, and substrings."""
    msg = raises(lambda: decode(op, x, **kw))
    got = WHERE.match(msg)
    assert got, f"not '<Op>: input_bytes[...] at byte N: ...': {msg!r}"
    assert got.group(1) == op, msg
    if element is None:
        assert got.group(2) is None, f"uint8 input must say 'input_bytes at byte': {msg!r}"
    else:
        assert got.group(3) == str(element), msg
    offset = int(got.group(4))
    if lo is not None:
        assert lo <= offset <= hi, f"offset {offset} not in [{lo}, {hi}]: {msg!r}"
    for text in contains:
        assert text in msg, f"{text!r} not in {msg!r}"
    return msg, offset


def strings(messages):
    return tf.constant(np.array(messages, dtype=object), dtype=tf.string)


def uint8(data: bytes):
    return tf.constant(np.frombuffer(data, dtype=np.uint8), dtype=tf.uint8)


def bpr(records: list[bytes], common: bytes | None = None) -> bytes:
    out = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(len(records)) + b"".join(records)
    if common is not None:
        out += fhead(T_STRUCT, 2) + common
    return out + b"\x00"


GOOD_RECORD = m.encode_record([
    (BINARY, [1]), (CONTINUOUS, [(2, 0.5)]), (DISCRETE, [(3, 4)]), (STRING, [(4, "é")]),
    (SPARSE_BINARY, [(5, ["x"])]), (SPARSE_CONTINUOUS, [(6, [("n", 1.5)])]),
])
SMALL_RECORD = m.encode_record([(CONTINUOUS, [(2, 0.5)])])
GOOD_BPR = bpr([GOOD_RECORD, SMALL_RECORD], common=m.encode_record([(BINARY, [9]), (STRING, [(4, "c")])]))


def check_both_inputs(op, payload_for, contains=(), base=0, lo=None, hi=None):
    """payload_for: the bad message. Checked as element 2 of a string tensor and as uint8."""
    good = GOOD_RECORD if op in DR_OPS else GOOD_BPR
    bad = payload_for
    lo_, hi_ = (None, None) if lo is None else (base + lo, base + hi)
    decode_error(op, strings([good, good, bad]), element=2, lo=lo_, hi=hi_, contains=contains)
    decode_error(op, uint8(bad), element=None, lo=lo_, hi=hi_, contains=contains)


def in_record(field: bytes, op: str):
    """(message holding a DataRecord made of `field`, offset of the field in the message)."""
    rec = field + b"\x00"
    if op in DR_OPS:
        return rec, 0
    prefix = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(2) + SMALL_RECORD
    return prefix + rec + b"\x00", len(prefix)


ALL_DECODE_OPS = DR_OPS + BPR_V2_OPS + BPR_V1_OPS
STRING_OK_OPS = DR_OPS + BPR_V2_OPS


def sanity_check_good_messages():
    for op in ALL_DECODE_OPS:
        good = GOOD_RECORD if op in DR_OPS else GOOD_BPR
        decode(op, uint8(good))


def test_good_messages_decode():
    sanity_check_good_messages()


# --------------------------------------------------------------------------
# The example of the contract
# --------------------------------------------------------------------------


def test_contract_example_message():
    bad = m.encode_record([(BINARY, [1])])[:-1] + fhead(T_MAP, 2) + bytes([T_I64, T_STRING]) + i32(0) + b"\x00"
    msg, offset = decode_error(
        "DecodeDataRecord", strings([SMALL_RECORD, SMALL_RECORD, bad]), element=2, lo=16, hi=20,
        contains=["DataRecord.continuousFeatures (field 2) must be a map<i64, double>, found a map<i64, string>"],
    )


def test_path_names_the_record_index():
    bad_rec = fhead(T_MAP, 3) + bytes([T_I64, T_STRING]) + i32(0) + b"\x00"
    data = bpr([SMALL_RECORD, SMALL_RECORD, SMALL_RECORD, bad_rec])
    for op in BPR_V2_OPS:
        decode_error(op, strings([data]), element=0, contains=["individualFeaturesList[3].discreteFeatures (field 3)",
                                                                "map<i64, i64>"])
    bad_common = bpr([SMALL_RECORD], common=fhead(T_SET, 1) + bytes([T_I32]) + i32(0) + b"\x00")
    for op in BPR_V1_OPS:
        decode_error(op, uint8(bad_common), contains=["commonFeatures", "binaryFeatures (field 1)", "set<i64>"])


# --------------------------------------------------------------------------
# Truncation and trailing bytes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("op", ALL_DECODE_OPS)
def test_every_truncation_is_an_error(op):
    good = GOOD_RECORD if op in DR_OPS else GOOD_BPR
    decode(op, uint8(good))  # the whole message is fine
    for n in range(len(good)):
        prefix = good[:n]
        if op in STRING_OK_OPS:
            _, offset = decode_error(op, strings([good, prefix]), element=1)
            assert offset <= n, (n, offset)
        _, offset = decode_error(op, uint8(prefix))
        assert offset <= n, (n, offset)


@pytest.mark.parametrize("op", ALL_DECODE_OPS)
@pytest.mark.parametrize("extra", [b"\x00", b"\x01", b"\x08\x00\x01\x00\x00\x00\x05\x00", b"junk"])
def test_trailing_bytes_after_stop(op, extra):
    good = GOOD_RECORD if op in DR_OPS else GOOD_BPR
    if op in STRING_OK_OPS:
        decode_error(op, strings([good, good + extra]), element=1, lo=len(good), hi=len(good))
    decode_error(op, uint8(good + extra), lo=len(good), hi=len(good))


# --------------------------------------------------------------------------
# Wrong types
# --------------------------------------------------------------------------

# (field bytes, words the message must contain); each a known DataRecord field with a wrong type.
WRONG_FIELD_TYPES = [
    (fhead(T_I32, 1) + i32(3), ["binaryFeatures (field 1)", "set<i64>"]),
    (fhead(T_LIST, 1) + bytes([T_I64]) + i32(0), ["binaryFeatures (field 1)", "set<i64>"]),
    (fhead(T_SET, 1) + bytes([T_I32]) + i32(1) + i32(5), ["binaryFeatures (field 1)", "set<i64>"]),
    (fhead(T_SET, 1) + bytes([T_DOUBLE]) + i32(1) + dbl(5), ["binaryFeatures (field 1)", "set<i64>"]),
    (fhead(T_MAP, 2) + bytes([T_I64, T_I64]) + i32(1) + i64(1) + i64(2), ["continuousFeatures (field 2)", "map<i64, double>"]),
    (fhead(T_MAP, 2) + bytes([T_STRING, T_DOUBLE]) + i32(1) + tstr("a") + dbl(2), ["continuousFeatures (field 2)", "map<i64, double>"]),
    (fhead(T_MAP, 2) + bytes([T_I32, T_DOUBLE]) + i32(1) + i32(1) + dbl(2), ["continuousFeatures (field 2)"]),
    (fhead(T_LIST, 2) + bytes([T_DOUBLE]) + i32(0), ["continuousFeatures (field 2)"]),
    (fhead(T_MAP, 3) + bytes([T_I64, T_DOUBLE]) + i32(1) + i64(1) + dbl(2), ["discreteFeatures (field 3)", "map<i64, i64>"]),
    (fhead(T_MAP, 3) + bytes([T_I64, T_I32]) + i32(1) + i64(1) + i32(2), ["discreteFeatures (field 3)", "map<i64, i64>"]),
    (fhead(T_MAP, 4) + bytes([T_I64, T_I64]) + i32(1) + i64(1) + i64(2), ["stringFeatures (field 4)", "map<i64, string>"]),
    (fhead(T_STRING, 4) + tstr("x"), ["stringFeatures (field 4)"]),
    (fhead(T_MAP, 5) + bytes([T_I64, T_LIST]) + i32(1) + i64(1) + bytes([T_STRING]) + i32(0),
     ["sparseBinaryFeatures (field 5)", "map<i64, set<string>>"]),
    (fhead(T_MAP, 5) + bytes([T_I64, T_SET]) + i32(1) + i64(1) + bytes([T_I64]) + i32(1) + i64(3),
     ["sparseBinaryFeatures (field 5)", "set<string>"]),
    (fhead(T_MAP, 5) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + tstr("a"), ["sparseBinaryFeatures (field 5)"]),
    (fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(1) + i64(1) + bytes([T_STRING, T_I64]) + i32(1) + tstr("a") + i64(1),
     ["sparseContinuousFeatures (field 6)", "map<string, double>"]),
    (fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(1) + i64(1) + bytes([T_I64, T_DOUBLE]) + i32(1) + i64(1) + dbl(1),
     ["sparseContinuousFeatures (field 6)", "map<string, double>"]),
    (fhead(T_MAP, 6) + bytes([T_I64, T_SET]) + i32(0), ["sparseContinuousFeatures (field 6)"]),
    (fhead(T_MAP, 7) + bytes([T_I64, T_I64]) + i32(1) + i64(1) + i64(1), ["blobFeatures (field 7)"]),
    (fhead(T_LIST, 7) + bytes([T_STRING]) + i32(0), ["blobFeatures (field 7)"]),
    (fhead(T_MAP, 8) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + tstr("a"), ["tensors (field 8)"]),
    (fhead(T_I64, 9) + i64(1), ["sparseTensors (field 9)"]),
]


@pytest.mark.parametrize("case", range(len(WRONG_FIELD_TYPES)))
@pytest.mark.parametrize("op", ["DecodeDataRecord", "DecodeAndHashBatchPredictionRequestV2"])
def test_known_field_with_wrong_type(op, case):
    field, words = WRONG_FIELD_TYPES[case]
    data, base = in_record(field, op)
    check_both_inputs(op, data, contains=words + [" must be ", ", found "], base=base, lo=0, hi=len(field))


@pytest.mark.parametrize("op", BPR_V2_OPS + BPR_V1_OPS)
@pytest.mark.parametrize("data,words", [
    (fhead(T_SET, 1) + bytes([T_STRUCT]) + i32(0) + b"\x00", ["individualFeaturesList (field 1)"]),
    (fhead(T_LIST, 1) + bytes([T_I64]) + i32(1) + i64(1) + b"\x00", ["individualFeaturesList (field 1)"]),
    (fhead(T_MAP, 1) + bytes([T_I64, T_STRUCT]) + i32(0) + b"\x00", ["individualFeaturesList (field 1)"]),
    (fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(0) + fhead(T_I32, 2) + i32(1) + b"\x00", ["commonFeatures (field 2)"]),
    (fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(0) + fhead(T_LIST, 2) + bytes([T_STRUCT]) + i32(0) + b"\x00",
     ["commonFeatures (field 2)"]),
])
def test_request_field_with_wrong_type(op, data, words):
    if op in STRING_OK_OPS:
        decode_error(op, strings([GOOD_BPR, GOOD_BPR, data]), element=2, contains=words)
    decode_error(op, uint8(data), contains=words)


# --------------------------------------------------------------------------
# Counts
# --------------------------------------------------------------------------

NEGATIVE_COUNTS = [
    fhead(T_SET, 1) + bytes([T_I64]) + i32(-1),
    fhead(T_MAP, 2) + bytes([T_I64, T_DOUBLE]) + i32(-1),
    fhead(T_MAP, 3) + bytes([T_I64, T_I64]) + i32(-(2**31)),
    fhead(T_MAP, 4) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + i32(-1),  # string length
    fhead(T_MAP, 5) + bytes([T_I64, T_SET]) + i32(1) + i64(1) + bytes([T_STRING]) + i32(-5),
    fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(1) + i64(1) + bytes([T_STRING, T_DOUBLE]) + i32(-1),
    fhead(T_MAP, 7) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + i32(-1),
    fhead(T_LIST, 40) + bytes([T_I64]) + i32(-1),  # inside an unknown field
    fhead(T_STRING, 41) + i32(-3),
]

HUGE_COUNTS = [
    fhead(T_SET, 1) + bytes([T_I64]) + i32(2**31 - 1) + i64(1),
    fhead(T_MAP, 2) + bytes([T_I64, T_DOUBLE]) + i32(2**31 - 1) + i64(1) + dbl(1),
    fhead(T_MAP, 4) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + i32(2**31 - 1) + b"abc",
    fhead(T_MAP, 5) + bytes([T_I64, T_SET]) + i32(1) + i64(1) + bytes([T_STRING]) + i32(2**31 - 1) + i32(0),
    fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(2**31 - 1) + i64(1) + bytes([T_STRING, T_DOUBLE]) + i32(0),
    fhead(T_LIST, 40) + bytes([T_I64]) + i32(2**31 - 1),
    fhead(T_LIST, 40) + bytes([T_STRUCT]) + i32(2**31 - 1) + b"\x00\x00",  # struct: min 1 byte each
    fhead(T_LIST, 40) + bytes([T_BOOL]) + i32(2**31 - 1) + b"\x01",
    fhead(T_MAP, 40) + bytes([T_BYTE, T_BYTE]) + i32(2**31 - 1) + b"\x01\x02",
]


@pytest.mark.parametrize("case", range(len(NEGATIVE_COUNTS)))
@pytest.mark.parametrize("op", ["DecodeAndHashDataRecord", "DecodeBatchPredictionRequestV2"])
def test_negative_counts(op, case):
    field = NEGATIVE_COUNTS[case]
    data, base = in_record(field, op)
    check_both_inputs(op, data + b"\x00" * 8, base=base, lo=0, hi=len(field))


@pytest.mark.parametrize("op", ALL_DECODE_OPS)
def test_negative_record_count(op):
    if op in DR_OPS:
        return
    data = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(-1) + b"\x00" * 8
    decode_error(op, uint8(data), lo=0, hi=7)


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("case", range(len(HUGE_COUNTS)))
@pytest.mark.parametrize("op", ["DecodeDataRecord", "DecodeAndHashBatchPredictionRequest"])
def test_huge_counts_fail_fast_without_allocating(op, case):
    field = HUGE_COUNTS[case]
    data, base = in_record(field, op)
    before = _peak_rss_mb()
    start = time.perf_counter()
    decode_error(op, uint8(data), lo=base, hi=len(data))
    assert time.perf_counter() - start < 2.0
    assert _peak_rss_mb() - before < 256, "an allocation the bytes do not justify"


def test_huge_record_count_in_twenty_bytes():
    data = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(2**31 - 1) + b"\x00" * 12
    assert len(data) == 20
    before = _peak_rss_mb()
    for op in BPR_V2_OPS:
        decode_error(op, strings([data]), element=0)
    for op in BPR_V1_OPS:
        decode_error(op, uint8(data))
    assert _peak_rss_mb() - before < 256


# --------------------------------------------------------------------------
# Nesting, UTF-8, repeated fields
# --------------------------------------------------------------------------


def _nested_structs(depth: int) -> bytes:
    return fhead(T_STRUCT, 50) + fhead(T_STRUCT, 1) * (depth - 1) + b"\x00" * depth


def _nested_lists(depth: int) -> bytes:
    # list<list<...<list<i64>>...>> with one element per level
    return fhead(T_LIST, 51) + (bytes([T_LIST]) + i32(1)) * (depth - 1) + bytes([T_I64]) + i32(1) + i64(7)


@pytest.mark.parametrize("make", [_nested_structs, _nested_lists])
@pytest.mark.parametrize("depth", [100, 1000, 100000])
@pytest.mark.parametrize("op", ["DecodeDataRecord", "DecodeBatchPredictionRequestV2"])
def test_deep_nesting_in_unknown_field_is_an_error(op, depth, make):
    data, _ = in_record(make(depth), op)
    check_both_inputs(op, data)


@pytest.mark.parametrize("make", [_nested_structs, _nested_lists])
def test_shallow_nesting_in_unknown_field_is_skipped(make):
    data, _ = in_record(make(10), "DecodeDataRecord")
    h = decode("DecodeDataRecord", strings([data]))
    assert int(LIB.get_batch_size_from_data_record(h)) == 1


def test_deep_nesting_in_unknown_field_of_the_request():
    data = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(0) + _nested_structs(200) + b"\x00"
    for op in BPR_V1_OPS:
        decode_error(op, uint8(data))


BAD_UTF8 = [
    (b"\x80abc", 0),  # stray continuation byte
    (b"ab\xe2\x82", 2),  # truncated 3-byte sequence
    (b"x\xed\xa0\x80", 1),  # encoded surrogate U+D800
    (b"\xf4\x90\x80\x80", 0),  # over U+10FFFF
    (b"\xc0\xaf", 0),  # overlong '/'
    (b"pre\xff", 3),
]


def _utf8_cases(s: bytes):
    """(field, offset of the string's first byte in the field, kind) for each place a string must be UTF-8."""
    return [
        (fhead(T_MAP, 4) + bytes([T_I64, T_STRING]) + i32(1) + i64(1) + tstr(s), 3 + 1 + 1 + 4 + 8 + 4, "stringFeatures"),
        (fhead(T_MAP, 5) + bytes([T_I64, T_SET]) + i32(1) + i64(1) + bytes([T_STRING]) + i32(2) + tstr("ok") + tstr(s),
         3 + 2 + 4 + 8 + 1 + 4 + 6 + 4, "sparseBinaryFeatures"),
        (fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(1) + i64(1) + bytes([T_STRING, T_DOUBLE]) + i32(2)
         + tstr("ok") + dbl(1) + tstr(s) + dbl(2), 3 + 2 + 4 + 8 + 2 + 4 + 6 + 8 + 4, "sparseContinuousFeatures"),
    ]


@pytest.mark.parametrize("bad", range(len(BAD_UTF8)))
@pytest.mark.parametrize("where", range(3))
@pytest.mark.parametrize("op", ["DecodeDataRecord", "DecodeAndHashDataRecord", "DecodeBatchPredictionRequestV2",
                                "DecodeAndHashBatchPredictionRequest"])
def test_invalid_utf8_is_an_error_with_its_offset(op, where, bad):
    s, bad_at = BAD_UTF8[bad]
    field, start, name = _utf8_cases(s)[where]
    assert field[start:start + len(s)] == s
    data, base = in_record(field, op)
    # offset: the string's length prefix at the earliest, its bad byte at the latest
    lo, hi = base + start - 4, base + start + bad_at
    if op in STRING_OK_OPS:
        decode_error(op, strings([data]), element=0, lo=lo, hi=hi, contains=[name, "UTF-8"])
    decode_error(op, uint8(data), lo=lo, hi=hi, contains=[name, "UTF-8"])


def test_valid_utf8_edge_strings_decode():
    for s in ["\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ud7ff", "\ue000", "\x00"]:
        rec = [(STRING, [(1, s)]), (SPARSE_BINARY, [(2, [s])]), (SPARSE_CONTINUOUS, [(3, [(s, 1.0)])])]
        h = decode("DecodeDataRecord", strings([m.encode_record(rec)]), keep=[1, 2, 3], codes=[0, 0, 0])
        assert LIB.get_string_features(h)[2].numpy().tolist() == [s.encode()]
        assert LIB.get_sparse_binary_features(h)[2].numpy().tolist() == [s.encode()]
        assert LIB.get_sparse_continuous_features(h)[3].numpy().tolist() == [s.encode()]


@pytest.mark.parametrize("fid", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("op", ["DecodeDataRecord", "DecodeAndHashDataRecord", "DecodeBatchPredictionRequest",
                                "DecodeAndHashBatchPredictionRequestV2"])
def test_known_field_repeated_in_a_record(op, fid):
    if fid == 7:
        field = fhead(T_MAP, 7) + bytes([T_I64, T_STRING]) + i32(0)
    else:
        field = m.encode_field(fid, [])
    data, base = in_record(field + field, op)
    if op in STRING_OK_OPS:
        decode_error(op, strings([data]), element=0, lo=base + len(field), hi=base + 2 * len(field),
                     contains=["appears twice", m.NAMES.get(fid, "blobFeatures")])
    decode_error(op, uint8(data), lo=base + len(field), hi=base + 2 * len(field), contains=["appears twice"])


# --------------------------------------------------------------------------
# Handles of the wrong kind
# --------------------------------------------------------------------------

HASHED_GETTERS = [
    ("GetIdsFromHashedDataRecord", lambda h: LIB.get_ids_from_hashed_data_record(h)),
    ("GetUKeysFromHashedDataRecord", lambda h: LIB.get_u_keys_from_hashed_data_record(h)),
    ("GetKeysFromHashedDataRecord", lambda h: LIB.get_keys_from_hashed_data_record(h)),
    ("GetValuesFromHashedDataRecord", lambda h: LIB.get_values_from_hashed_data_record(h)),
    ("GetCodesFromHashedDataRecord", lambda h: LIB.get_codes_from_hashed_data_record(h)),
    ("GetTypesFromHashedDataRecord", lambda h: LIB.get_types_from_hashed_data_record(h)),
    ("GetBatchSizeFromHashedDataRecord", lambda h: LIB.get_batch_size_from_hashed_data_record(h)),
    ("GetTotalSizeFromHashedDataRecord", lambda h: LIB.get_total_size_from_hashed_data_record(h)),
    ("GetLabelsFromHashedDataRecord", lambda h: LIB.get_labels_from_hashed_data_record(h, default_label=0.0)),
    ("GetWeightsFromHashedDataRecord", lambda h: LIB.get_weights_from_hashed_data_record(h)),
]

DR_GETTERS = [
    ("GetBinaryFeatures", lambda h: LIB.get_binary_features(h)),
    ("GetContinuousFeatures", lambda h: LIB.get_continuous_features(h)),
    ("GetDiscreteFeatures", lambda h: LIB.get_discrete_features(h)),
    ("GetStringFeatures", lambda h: LIB.get_string_features(h)),
    ("GetSparseBinaryFeatures", lambda h: LIB.get_sparse_binary_features(h)),
    ("GetSparseContinuousFeatures", lambda h: LIB.get_sparse_continuous_features(h)),
    ("GetBatchSizeFromDataRecord", lambda h: LIB.get_batch_size_from_data_record(h)),
    ("GetLabelsFromDataRecord", lambda h: LIB.get_labels_from_data_record(h, default_label=0.0)),
    ("GetWeightsFromDataRecord", lambda h: LIB.get_weights_from_data_record(h)),
    ("GetBinaryAsTensor", lambda h: LIB.get_binary_as_tensor(h, feature_id=1, default_value=0.0)),
    ("GetContinuousAsTensor", lambda h: LIB.get_continuous_as_tensor(h, feature_id=1, default_value=0.0)),
    ("GetDiscreteAsTensor", lambda h: LIB.get_discrete_as_tensor(h, feature_id=1, default_value=0)),
    ("GetStringAsTensor", lambda h: LIB.get_string_as_tensor(h, feature_id=1, default_value="")),
    ("GetBinaryGroupAsTensor", lambda h: LIB.get_binary_group_as_tensor(h, feature_ids=[1], default_value=0.0)),
    ("GetContinuousGroupAsTensor", lambda h: LIB.get_continuous_group_as_tensor(h, feature_ids=[1], default_value=0.0)),
    ("GetDiscreteGroupAsTensor", lambda h: LIB.get_discrete_group_as_tensor(h, feature_ids=[1], default_value=0)),
    ("GetStringGroupAsTensor", lambda h: LIB.get_string_group_as_tensor(h, feature_ids=[1], default_value="")),
    ("GetSparseBinaryAsTensor", lambda h: LIB.get_sparse_binary_as_tensor(h, feature_id=1)),
    ("GetSparseContinuousAsTensor", lambda h: LIB.get_sparse_continuous_as_tensor(h, feature_id=1)),
    ("GetHashedFeaturesAsSparseTensor", lambda h: LIB.get_hashed_features_as_sparse_tensor(h, [1], [], [], [], [], [])),
    ("GetHashedFeaturesAsSparseTensorV2", lambda h: LIB.get_hashed_features_as_sparse_tensor_v2(
        h, [1], [], [], [], [], [], keep_features=[1], keep_codes=[0])),
    # Ours (issue 35): what BatchPredictionRequestReader reads sparse and hashed features with.
    ("GetSparseBinaryAsSparseTensor", lambda h: LIB.get_sparse_binary_as_sparse_tensor(h, feature_id=1)),
    ("GetSparseContinuousAsSparseTensor", lambda h: LIB.get_sparse_continuous_as_sparse_tensor(h, feature_id=1)),
    ("GetHashedFeaturesAsSortedSparseTensor", lambda h: LIB.get_hashed_features_as_sorted_sparse_tensor(
        h, [1], [], [], [], [], [], hashed_bits=18)),
]

DR_DECODERS = ["DecodeDataRecord", "DecodeBatchPredictionRequest", "DecodeBatchPredictionRequestV2"]
HASH_DECODERS = ["DecodeAndHashDataRecord", "DecodeAndHashBatchPredictionRequest",
                 "DecodeAndHashBatchPredictionRequestV2"]


def _handle(op):
    good = GOOD_RECORD if op in DR_OPS else GOOD_BPR
    return decode(op, uint8(good), keep=[1], codes=[0])


@pytest.mark.parametrize("getter", range(len(HASHED_GETTERS)))
def test_hashed_getter_given_a_data_record_handle(getter):
    name, fn = HASHED_GETTERS[getter]
    for op in DR_DECODERS:
        h = _handle(op)
        msg = raises(lambda: fn(h))
        assert msg.startswith(name + ":"), msg
        assert op in msg and "DecodeAndHashDataRecord" in msg, msg


@pytest.mark.parametrize("getter", range(len(DR_GETTERS)))
def test_data_record_getter_given_a_hashed_handle(getter):
    name, fn = DR_GETTERS[getter]
    for op in HASH_DECODERS:
        h = _handle(op)
        msg = raises(lambda: fn(h))
        assert msg.startswith(name + ":"), msg
        assert op in msg and "DecodeDataRecord" in msg, msg


# --------------------------------------------------------------------------
# Attrs, checked at kernel construction
# --------------------------------------------------------------------------


def _attr_error(fn, op, *words):
    msg = raises(fn)
    assert msg.startswith(op + ":"), msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"
    return msg


@pytest.mark.parametrize("op", ALL_DECODE_OPS)
def test_keep_lists_of_different_lengths(op):
    x = uint8(GOOD_RECORD if op in DR_OPS else GOOD_BPR)
    for keep, codes in [([1, 2], [0]), ([], [0]), ([1], [])]:
        msg = _attr_error(lambda: decode(op, x, keep=keep, codes=codes), op)
        assert "keep_codes" in msg or "keep_features" in msg, msg


@pytest.mark.parametrize("op", ALL_DECODE_OPS)
def test_repeated_keep_feature(op):
    x = uint8(GOOD_RECORD if op in DR_OPS else GOOD_BPR)
    decode(op, x, keep=[1, 2, 1], codes=[5, 6, 5])  # the same code: fine
    _attr_error(lambda: decode(op, x, keep=[1, 2, 1], codes=[5, 6, 7]), op, "keep_features", "index 0", "index 2")


@pytest.mark.parametrize("op", DR_OPS + BPR_V2_OPS)
def test_repeated_label_or_weight_feature(op):
    x = uint8(GOOD_RECORD if op in DR_OPS else GOOD_BPR)
    _attr_error(lambda: decode(op, x, labels=[1, 2, 1]), op, "label_features")
    _attr_error(lambda: decode(op, x, labels=[1], weights=[3, 3]), op, "weight_features")
    decode(op, x, labels=[1, 2], weights=[1, 2])  # a label may also be a weight


@pytest.mark.parametrize("op", ["DecodeAndHashBatchPredictionRequest", "DecodeAndHashDataRecord"] + BPR_V2_OPS)
@pytest.mark.parametrize("mode", [2, -1, 2**40])
def test_bad_decode_mode(op, mode):
    x = uint8(GOOD_RECORD if op in DR_OPS else GOOD_BPR)
    _attr_error(lambda: decode(op, x, mode=mode), op, "decode_mode")


def test_hashed_features_v2_attrs():
    h = _handle("DecodeDataRecord")
    name = "GetHashedFeaturesAsSparseTensorV2"
    f = LIB.get_hashed_features_as_sparse_tensor_v2
    _attr_error(lambda: f(h, [], [], [], [], [], [], keep_features=[1], keep_codes=[]), name)
    _attr_error(lambda: f(h, [], [], [], [], [], [], keep_features=[1, 1], keep_codes=[1, 2]), name, "keep_features")
    _attr_error(lambda: f(h, [], [], [], [], [], [], keep_features=[], keep_codes=[], decode_mode=3), name, "decode_mode")


@pytest.mark.parametrize("name,fn", [
    ("GetBinaryGroupAsTensor", lambda h: LIB.get_binary_group_as_tensor(h, feature_ids=[1, 2, 1], default_value=0.0)),
    ("GetContinuousGroupAsTensor",
     lambda h: LIB.get_continuous_group_as_tensor(h, feature_ids=[4, 4], default_value=0.0)),
    ("GetDiscreteGroupAsTensor", lambda h: LIB.get_discrete_group_as_tensor(h, feature_ids=[3, 3], default_value=0)),
    ("GetStringGroupAsTensor", lambda h: LIB.get_string_group_as_tensor(h, feature_ids=[0, 9, 0], default_value="")),
])
def test_repeated_group_feature_id(name, fn):
    _attr_error(lambda: fn(_handle("DecodeDataRecord")), name, "feature_ids")


# --------------------------------------------------------------------------
# Errors in every execution mode
# --------------------------------------------------------------------------


def test_errors_in_tf_function_and_tf1_session():
    bad = GOOD_BPR[:-3]

    @tf.function
    def f(x):
        return LIB.get_batch_size_from_data_record(decode("DecodeBatchPredictionRequestV2", x))

    msg = raises(lambda: f(strings([GOOD_BPR, bad])))
    assert "DecodeBatchPredictionRequestV2: input_bytes[1] at byte" in msg, msg
    assert int(f(strings([GOOD_BPR]))) == 2  # the function still works

    with tf.Graph().as_default() as g:
        x = tf.compat.v1.placeholder(tf.string, shape=[None])
        size = LIB.get_total_size_from_hashed_data_record(decode("DecodeAndHashBatchPredictionRequestV2", x,
                                                                 keep=[1], codes=[0]))
        bad_attr = LIB.get_total_size_from_hashed_data_record(decode("DecodeAndHashBatchPredictionRequestV2", x,
                                                                     keep=[1], codes=[0, 1]))
        with tf.compat.v1.Session(graph=g) as sess:
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"input_bytes\[0\] at byte"):
                sess.run(size, feed_dict={x: np.array([bad], dtype=object)})
            assert sess.run(size, feed_dict={x: np.array([GOOD_BPR], dtype=object)}) == 1
            with pytest.raises(tf.errors.InvalidArgumentError, match="keep_codes|keep_features"):
                sess.run(bad_attr, feed_dict={x: np.array([GOOD_BPR], dtype=object)})


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def test_many_bad_messages_do_not_leak_or_crash():
    # every error path freed what it had made: the resident memory stays flat
    big = m.encode_record([(STRING, [(i, "x" * 2000) for i in range(100)])])  # ~200 KB
    bads = [bpr([big] * 2 + [big[:-5]]), bpr([big]) + b"\x00", bpr([big[:-1] + b"\x0b\x00\x04" + i32(1) + b"\xff\x00"])]
    def run():
        for bad in bads:
            for op in ("DecodeAndHashBatchPredictionRequestV2", "DecodeBatchPredictionRequestV2"):
                with pytest.raises(tf.errors.InvalidArgumentError):
                    decode(op, strings([GOOD_BPR, bad]))
    for _ in range(20):
        run()
    before = _rss_mb()
    for _ in range(100):
        run()
    assert _rss_mb() - before < 40, "memory grew on error paths"
    sanity_check_good_messages()


def test_handles_are_freed_with_their_last_tensor():
    big = bpr([m.encode_record([(STRING, [(i, "y" * 2000) for i in range(100)])])] * 2)  # ~400 KB
    x = uint8(big)
    def run():
        for op in ("DecodeAndHashBatchPredictionRequest", "DecodeBatchPredictionRequest"):
            h = decode(op, tf.identity(x), keep=[1], codes=[0])
            if "Hash" in op:
                LIB.get_total_size_from_hashed_data_record(h)
            else:
                LIB.get_string_features(h)
    for _ in range(20):
        run()
    before = _rss_mb()
    for _ in range(150):
        run()
    assert _rss_mb() - before < 40, "handles (or the input bytes they hold) leak"

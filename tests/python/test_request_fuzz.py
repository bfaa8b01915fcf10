"""Differential fuzzing of the request decoders.

Valid hand-written requests are mutated (bytes flipped, inserted, deleted,
counts and type codes rewritten, chunks repeated). request_model's reference
parser (the contract's acceptance rules, written from the spec) decides each
mutant; the ops must agree: a rejected mutant is an InvalidArgumentError in the
contract's format (never a crash), an accepted one gives every getter's output
as the model says.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
import tensorflow as tf

import request_model as m
from test_request_errors import WHERE, core
from test_request_ops import LIB, Config, decode_dr_v2, decode_hash_v2, dr_expected, dr_getters, hashed_expected
from test_request_ops import hashed_getters, same_all, strings

TYPE_CODES = [0, 1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16, 0x7F, 0xFF]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.randrange(7)
        if op == 0:
            b[i] = rng.randrange(256)
        elif op == 1:
            b[i] = rng.choice(TYPE_CODES)
        elif op == 2:
            b.insert(i, rng.randrange(256))
        elif op == 3:
            del b[i]
        elif op == 4 and i + 4 <= len(b):
            b[i : i + 4] = struct.pack(">i", rng.choice([-1, 0, 1, 2, 3, 2**31 - 1, -(2**31)]))
        elif op == 5:
            j = min(len(b), i + rng.randrange(1, 20))
            b[j:j] = b[i:j]
        else:
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _run(x, c):
    return dr_getters(decode_dr_v2(x, c), c), hashed_getters(decode_hash_v2(x, c), c.default_label)


@pytest.mark.parametrize("seed", range(12))
def test_mutated_requests_agree_with_the_reference_parser(seed):
    rng = random.Random(9000 + seed)
    accepted = rejected = 0
    for trial in range(50):
        base = m.random_request(rng, dups=True, sc_nan=False, shuffle_fields=True, max_records=3)
        data = m.encode_request(base)
        mutant = mutate(rng, data)
        try:
            want = m.parse_request(mutant)
        except m.ParseError as e:
            want, why = None, e
        c = Config(rng)
        x = strings([data, mutant]) if trial % 2 else strings([mutant])
        element = 1 if trial % 2 else 0
        try:
            got = _run(x, c)
        except tf.errors.InvalidArgumentError as e:
            msg = core(e)
            where = WHERE.match(msg)
            assert where and where.group(1) in ("DecodeBatchPredictionRequestV2",
                                                "DecodeAndHashBatchPredictionRequestV2"), msg
            assert where.group(3) == str(element), msg
            assert want is None, f"ops rejected what the contract accepts: {mutant.hex()}\n{msg}"
            rejected += 1
            continue
        assert want is not None, f"ops accepted what the contract rejects ({why}): {mutant.hex()}"
        accepted += 1
        reqs = ([base] if trial % 2 else []) + [want]
        if m.has_f32_subnormal(reqs):
            continue  # see test_subnormal_float32_values_are_not_flushed_to_zero
        batch = m.flatten(reqs)
        same_all(got[0], dr_expected(batch, c))
        same_all(got[1], hashed_expected(batch, c))
    assert rejected > 0


@pytest.mark.parametrize("seed", range(6))
def test_mutated_data_records_agree_with_the_reference_parser(seed):
    rng = random.Random(9500 + seed)
    for trial in range(60):
        rec = m.random_record(rng, dups=True, sc_nan=False, shuffle_fields=True)
        mutant = mutate(rng, m.encode_record(rec))
        try:
            want = m.parse_data_record(mutant)
        except m.ParseError:
            want = None
        try:
            h = LIB.decode_data_record(input_bytes=strings([mutant]), keep_features=[1, 2, 3, 7], keep_codes=[0] * 4,
                                       label_features=[1001])
            hh = LIB.decode_and_hash_data_record(input_bytes=strings([mutant]), keep_features=[1, 2, 3, 7],
                                                 keep_codes=[0] * 4, label_features=[1001])
        except tf.errors.InvalidArgumentError as e:
            assert want is None, f"ops rejected what the contract accepts: {mutant.hex()}\n{core(e)}"
            assert WHERE.match(core(e)), core(e)
            continue
        assert want is not None, f"ops accepted what the contract rejects: {mutant.hex()}"
        if m.has_f32_subnormal([([want], None)]):
            continue
        batch = [(want, None)]
        ids, keys, vals = LIB.get_continuous_features(h)
        exp = m.features(batch, m.CONTINUOUS, [1, 2, 3, 7])
        np.testing.assert_array_equal(keys.numpy(), exp[1])
        np.testing.assert_array_equal(vals.numpy(), exp[2])
        exp = m.hashed(batch, [1, 2, 3, 7], [0] * 4, [1001])
        np.testing.assert_array_equal(LIB.get_keys_from_hashed_data_record(hh).numpy(), exp["keys"])
        np.testing.assert_array_equal(LIB.get_labels_from_hashed_data_record(hh, default_label=0.0).numpy(),
                                      exp["labels"])

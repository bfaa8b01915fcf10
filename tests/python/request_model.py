"""A pure-Python reference model of the request-side ops, and a wire writer.

Written from the contract (the README's request side section and the issue-19 brief),
not from the Rust. Nothing here imports bpr_ops: the writer is struct.pack over
the Thrift binary-protocol spec, the feature-id hash is mmh3 over Python's
UTF-16 codec, and thriftpy2 (code we did not write) builds a second kind of
request whose bytes the writer must reproduce exactly.

A record is a list of fields in WIRE order; a field is (field_id, entries):
  1 binary             [id, ...]
  2 continuous         [(id, float), ...]
  3 discrete           [(id, int), ...]
  4 string             [(id, str), ...]
  5 sparse binary      [(id, [str, ...]), ...]
  6 sparse continuous  [(id, [(str, float), ...]), ...]
or (RAW, bytes): an already-encoded field (unknown ids, fields 7-9) that the
model ignores. Entries keep their wire order and may repeat (duplicates).
A request is (records, common) with common a record or None.
"""

from __future__ import annotations

import math
import random
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

RAW = "raw"

# Thrift type codes.
T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64, T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST = (
    2, 3, 4, 6, 8, 10, 11, 12, 13, 14, 15,
)

BINARY, CONTINUOUS, DISCRETE, STRING, SPARSE_BINARY, SPARSE_CONTINUOUS = 1, 2, 3, 4, 5, 6
KINDS = (BINARY, CONTINUOUS, DISCRETE, STRING, SPARSE_BINARY, SPARSE_CONTINUOUS)
NAMES = {
    BINARY: "binaryFeatures",
    CONTINUOUS: "continuousFeatures",
    DISCRETE: "discreteFeatures",
    STRING: "stringFeatures",
    SPARSE_BINARY: "sparseBinaryFeatures",
    SPARSE_CONTINUOUS: "sparseContinuousFeatures",
}

# --------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------


def wrap64(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


def mix_discrete(fid: int, value: int) -> int:
    return wrap64(fid ^ wrap64(wrap64(17 + value) * 2654435761))


def string_hash32(s: str | bytes) -> int:
    data = s.encode("utf-8") if isinstance(s, str) else s
    h = 0
    for b in data:
        h = (31 * h + b) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def mix_string(fid: int, s: str | bytes) -> int:
    return wrap64(fid ^ string_hash32(s))


def feature_id(name: str) -> int:
    """twml's feature id of a name, computed with mmh3 (test_feature_id.py's oracle)."""
    from test_feature_id import oracle

    return oracle(name)


def f32(x: float) -> np.float32:
    with np.errstate(over="ignore"):
        return np.float32(x)


def isnan(x) -> bool:
    return isinstance(x, float) and math.isnan(x)


# --------------------------------------------------------------------------
# Wire writer (binary protocol, struct.pack)
# --------------------------------------------------------------------------


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def dbl(v):
    return struct.pack(">d", v)


def tstr(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return i32(len(b)) + b


def fhead(ttype: int, fid: int) -> bytes:
    return bytes([ttype]) + i16(fid)


def encode_field(fid: int, entries) -> bytes:
    if fid == BINARY:
        return fhead(T_SET, 1) + bytes([T_I64]) + i32(len(entries)) + b"".join(i64(k) for k in entries)
    if fid == CONTINUOUS:
        return fhead(T_MAP, 2) + bytes([T_I64, T_DOUBLE]) + i32(len(entries)) + b"".join(
            i64(k) + dbl(v) for k, v in entries
        )
    if fid == DISCRETE:
        return fhead(T_MAP, 3) + bytes([T_I64, T_I64]) + i32(len(entries)) + b"".join(
            i64(k) + i64(v) for k, v in entries
        )
    if fid == STRING:
        return fhead(T_MAP, 4) + bytes([T_I64, T_STRING]) + i32(len(entries)) + b"".join(
            i64(k) + tstr(v) for k, v in entries
        )
    if fid == SPARSE_BINARY:
        body = b"".join(
            i64(k) + bytes([T_STRING]) + i32(len(ss)) + b"".join(tstr(s) for s in ss) for k, ss in entries
        )
        return fhead(T_MAP, 5) + bytes([T_I64, T_SET]) + i32(len(entries)) + body
    if fid == SPARSE_CONTINUOUS:
        body = b"".join(
            i64(k) + bytes([T_STRING, T_DOUBLE]) + i32(len(m)) + b"".join(tstr(n) + dbl(v) for n, v in m)
            for k, m in entries
        )
        return fhead(T_MAP, 6) + bytes([T_I64, T_MAP]) + i32(len(entries)) + body
    raise ValueError(fid)


def encode_record(record) -> bytes:
    out = []
    for fid, entries in record:
        out.append(entries if fid == RAW else encode_field(fid, entries))
    return b"".join(out) + b"\x00"


def encode_request(request, extra: bytes = b"") -> bytes:
    """A BatchPredictionRequest: field 1 then (if any) field 2, then `extra` raw fields, STOP."""
    records, common = request
    out = fhead(T_LIST, 1) + bytes([T_STRUCT]) + i32(len(records)) + b"".join(encode_record(r) for r in records)
    if common is not None:
        out += fhead(T_STRUCT, 2) + encode_record(common)
    return out + extra + b"\x00"


# --------------------------------------------------------------------------
# thriftpy2
# --------------------------------------------------------------------------

_IDL = None


def idl():
    global _IDL
    if _IDL is None:
        import thriftpy2

        root = Path(__file__).resolve().parents[2]
        _IDL = thriftpy2.load(
            str(root / "thrift" / "prediction_service.thrift"),
            module_name="prediction_service_thrift",
            include_dirs=[str(root / "thrift")],
        )
    return _IDL


def thrift_bytes(obj) -> bytes:
    from thriftpy2.protocol.binary import TBinaryProtocol
    from thriftpy2.transport.memory import TMemoryBuffer

    buf = TMemoryBuffer()
    obj.write(TBinaryProtocol(buf))
    return buf.getvalue()


def thrift_record(record):
    """(thriftpy2 DataRecord, the model record in the order thriftpy2 writes it).

    thriftpy2 writes fields by id, maps in dict order and sets by iterating the
    set object: the model record is read off the very objects passed."""
    IDL = idl()
    kw = {}
    for fid, entries in record:
        if fid == BINARY:
            kw["binaryFeatures"] = set(entries)
        elif fid == CONTINUOUS:
            kw["continuousFeatures"] = dict(entries)
        elif fid == DISCRETE:
            kw["discreteFeatures"] = dict(entries)
        elif fid == STRING:
            kw["stringFeatures"] = dict(entries)
        elif fid == SPARSE_BINARY:
            kw["sparseBinaryFeatures"] = {k: set(ss) for k, ss in entries}
        elif fid == SPARSE_CONTINUOUS:
            kw["sparseContinuousFeatures"] = {k: dict(m) for k, m in entries}
    obj = IDL.data.DataRecord(**kw)
    model = []
    for fid in KINDS:
        value = kw.get(NAMES[fid])
        if value is None:
            continue
        if fid == BINARY:
            model.append((fid, list(value)))
        elif fid == SPARSE_BINARY:
            model.append((fid, [(k, list(ss)) for k, ss in value.items()]))
        elif fid == SPARSE_CONTINUOUS:
            model.append((fid, [(k, list(m.items())) for k, m in value.items()]))
        else:
            model.append((fid, list(value.items())))
    return obj, model


def thrift_request(request):
    """(bytes written by thriftpy2, the model request in thriftpy2's wire order)."""
    records, common = request
    objs, models = zip(*[thrift_record(r) for r in records]) if records else ((), ())
    cobj, cmodel = thrift_record(common) if common is not None else (None, None)
    obj = idl().BatchPredictionRequest(individualFeaturesList=list(objs), commonFeatures=cobj)
    return thrift_bytes(obj), (list(models), cmodel)


def thrift_data_record(record):
    obj, model = thrift_record(record)
    return thrift_bytes(obj), model


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def fields_of(record, kind):
    """All entries of `kind`, in wire order (a kind appears at most once in a valid record)."""
    out = []
    for fid, entries in record or ():
        if fid == kind:
            out.extend(entries)
    return out


def _dedupe_map(entries):
    d = OrderedDict()
    for k, v in entries:
        d[k] = v  # a repeated key keeps its first position, takes the last value
    return list(d.items())


def _dedupe_set(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def stored(record, kind, sc_nan_absent=True):
    """The DataRecord handle's view of one kind of one record: duplicates
    resolved (map: last value at the first position; set: first), NaN
    continuous values absent: never stored, so a NaN does not replace an
    earlier value of its key (the ops' reading of "not stored")."""
    entries = fields_of(record, kind)
    if kind == BINARY:
        return _dedupe_set(entries)
    if kind == CONTINUOUS:
        return _dedupe_map([(k, v) for k, v in entries if not isnan(v)])
    entries = _dedupe_map(entries)
    if kind == SPARSE_BINARY:
        return [(k, _dedupe_set(ss)) for k, ss in entries]
    if kind == SPARSE_CONTINUOUS:
        out = []
        for k, m in entries:
            if sc_nan_absent:
                m = [(n, v) for n, v in m if not isnan(v)]
            out.append((k, _dedupe_map(m)))
        return out
    return entries


def flatten(requests):
    """[(record, common)] of all requests' records in order."""
    return [(r, common) for records, common in requests for r in records]


def _label_value(record, fid):
    """1.0 if binary, the value if continuous (non-NaN), else None."""
    if fid in fields_of(record, BINARY):
        return np.float32(1.0)
    value = None
    for k, v in fields_of(record, CONTINUOUS):
        if k == fid and not isnan(v):
            value = f32(v)
    return value


def _weight_value(record, fid):
    value = None
    for k, v in fields_of(record, CONTINUOUS):
        if k == fid and not isnan(v):
            value = f32(v)
    return value


def labels(batch, label_features, default_label):
    out = np.full((len(batch), len(label_features)), f32(default_label), dtype=np.float32)
    for i, (rec, common) in enumerate(batch):
        for j, fid in enumerate(label_features):
            v = _label_value(rec, fid)
            if v is None and common is not None:
                v = _label_value(common, fid)
            if v is not None:
                out[i, j] = v
    return out


def weights(batch, weight_features):
    out = np.zeros((len(batch), len(weight_features)), dtype=np.float32)
    for i, (rec, common) in enumerate(batch):
        for j, fid in enumerate(weight_features):
            v = _weight_value(rec, fid)
            if v is None and common is not None:
                v = _weight_value(common, fid)
            if v is not None:
                out[i, j] = v
    return out


def _hashed_entry_rows(kind, fid, value, decode_mode, sc_key):
    """(key, value) rows of one wire entry, in the hashed handle's rules."""
    if kind == BINARY:
        return [(fid, np.float32(1))]
    if kind == CONTINUOUS:
        return [] if isnan(value) else [(fid, f32(value))]
    if kind == DISCRETE:
        return [(mix_discrete(fid, value), np.float32(1))]
    if kind == STRING:
        return [(mix_string(fid, value), np.float32(1))]
    if kind == SPARSE_BINARY:
        return [(mix_string(fid, s), np.float32(1)) for s in value]
    if kind == SPARSE_CONTINUOUS:
        rows = []
        for name, v in value:
            if isnan(v):
                continue
            if sc_key == "feature_id" or (sc_key == "mode" and decode_mode == 0):
                key = feature_id(name)
            else:
                key = mix_string(fid, name)
            rows.append((key, f32(v)))
        return rows
    raise ValueError(kind)


def hashed(batch, keep_features, keep_codes, label_features=(), weight_features=(), decode_mode=0,
           default_label=0.0):
    """Every output of the hashed getters for a DecodeAndHash* handle."""
    codes = dict(zip(keep_features, keep_codes))
    ids, ukeys, keys, values, out_codes, types = [], [], [], [], [], []
    for i, (rec, common) in enumerate(batch):
        for src in (common, rec):
            for kind, entries in src or ():
                if kind == RAW:
                    continue
                for entry in entries:
                    fid = entry if kind == BINARY else entry[0]
                    if fid not in codes:
                        continue
                    value = None if kind == BINARY else entry[1]
                    for key, v in _hashed_entry_rows(kind, fid, value, decode_mode, "mode"):
                        ids.append(i)
                        ukeys.append(fid)
                        keys.append(key)
                        values.append(v)
                        out_codes.append(codes[fid])
                        types.append(kind)
    return {
        "ids": np.array(ids, dtype=np.int64),
        "ukeys": np.array(ukeys, dtype=np.int64),
        "keys": np.array(keys, dtype=np.int64),
        "values": np.array(values, dtype=np.float32),
        "codes": np.array(out_codes, dtype=np.int64),
        "types": np.array(types, dtype=np.int8),
        "batch_size": np.int64(len(batch)),
        "total_size": np.int64(len(ids)),
        "labels": labels(batch, list(label_features), default_label),
        "weights": weights(batch, list(weight_features)),
    }


def _strs(xs):
    return np.array([x.encode("utf-8") if isinstance(x, str) else x for x in xs], dtype=object)


def features(batch, kind, keep_features, sc_nan_absent=True):
    """Get<Kind>Features of a DataRecord handle, as the op's output tuple."""
    keep = set(keep_features)
    ids, keys, vals, names = [], [], [], []
    for i, (rec, common) in enumerate(batch):
        for src in (common, rec):
            if src is None:
                continue
            for entry in stored(src, kind, sc_nan_absent):
                fid = entry if kind == BINARY else entry[0]
                if fid not in keep:
                    continue
                if kind == BINARY:
                    ids.append(i), keys.append(fid), vals.append(1.0)
                elif kind == CONTINUOUS:
                    ids.append(i), keys.append(fid), vals.append(f32(entry[1]))
                elif kind == DISCRETE:
                    ids.append(i), keys.append(fid), vals.append(entry[1])
                elif kind == STRING:
                    ids.append(i), keys.append(fid), names.append(entry[1]), vals.append(1.0)
                elif kind == SPARSE_BINARY:
                    for s in entry[1]:
                        ids.append(i), keys.append(fid), names.append(s), vals.append(1.0)
                elif kind == SPARSE_CONTINUOUS:
                    for n, v in entry[1]:
                        ids.append(i), keys.append(fid), names.append(n), vals.append(f32(v))
    ids = np.array(ids, dtype=np.int64)
    keys = np.array(keys, dtype=np.int64)
    if kind == DISCRETE:
        return ids, keys, np.array(vals, dtype=np.int64)
    if kind in (BINARY, CONTINUOUS):
        return ids, keys, np.array(vals, dtype=np.float32)
    if kind in (STRING, SPARSE_BINARY):
        return ids, keys, _strs(names), np.array(vals, dtype=np.float32)
    return ids, keys, np.array(vals, dtype=np.float32), _strs(names)


def _own_or_common(rec, common, kind, fid, sc_nan_absent=True):
    for src in (rec, common):
        if src is None:
            continue
        for entry in stored(src, kind, sc_nan_absent):
            if kind == BINARY:
                if entry == fid:
                    return 1.0
            elif entry[0] == fid:
                return entry[1]
    return None


def as_tensor(batch, kind, fid, default):
    out = []
    for rec, common in batch:
        v = _own_or_common(rec, common, kind, fid)
        out.append(default if v is None else v)
    if kind == DISCRETE:
        return np.array(out, dtype=np.int64)
    if kind == STRING:
        return _strs(out)
    return np.array([f32(v) for v in out], dtype=np.float32)


def group_as_tensor(batch, kind, fids, default):
    cols = [as_tensor(batch, kind, f, default) for f in fids]
    dtype = {DISCRETE: np.int64, STRING: object}.get(kind, np.float32)
    if not fids:
        return np.zeros((len(batch), 0), dtype=dtype)
    return np.stack(cols, axis=1).astype(dtype)


def sparse_as_tensor(batch, kind, fid, sc_nan_absent=True):
    ids, names, vals = [], [], []
    for i, (rec, common) in enumerate(batch):
        for src in (common, rec):
            if src is None:
                continue
            for k, v in stored(src, kind, sc_nan_absent):
                if k != fid:
                    continue
                if kind == SPARSE_BINARY:
                    for s in v:
                        ids.append(i), names.append(s)
                else:
                    for n, x in v:
                        ids.append(i), names.append(n), vals.append(f32(x))
    ids = np.array(ids, dtype=np.int64)
    keys = np.full(len(ids), fid, dtype=np.int64)
    if kind == SPARSE_BINARY:
        return ids, keys, _strs(names)
    return ids, keys, _strs(names), np.array(vals, dtype=np.float32)


def hashed_features_as_sparse(batch, kind_lists, keep_features, sc_key, decode_mode=0, sc_nan_absent=True):
    """GetHashedFeaturesAsSparseTensor{,V2} of a DataRecord handle.

    kind_lists: six lists (binary ... sparse continuous); keep_features: the
    decode op's (V1) or the getter's own (V2); sc_key: "mix" (V1) or "mode" (V2)."""
    keep = set(keep_features)
    allowed = {kind: set(lst) & keep for kind, lst in zip(KINDS, kind_lists)}
    ids, keys, vals = [], [], []
    for i, (rec, common) in enumerate(batch):
        for src in (common, rec):
            if src is None:
                continue
            for kind in KINDS:
                for entry in stored(src, kind, sc_nan_absent):
                    fid = entry if kind == BINARY else entry[0]
                    if fid not in allowed[kind]:
                        continue
                    value = None if kind == BINARY else entry[1]
                    for key, v in _hashed_entry_rows(kind, fid, value, decode_mode, sc_key):
                        ids.append(i), keys.append(key), vals.append(v)
    return np.array(ids, dtype=np.int64), np.array(keys, dtype=np.int64), np.array(vals, dtype=np.float32)


# --------------------------------------------------------------------------
# Random requests
# --------------------------------------------------------------------------

POOL = [1, 2, 3, 7, -5, 2**63 - 1, -(2**63), 123456789012345, -7591212652331886403]
LABEL_IDS = [1001, 1002, -1003]
WEIGHT_IDS = [2001, 2002]
TEXT = ["", "a", "b", "ab", "é", "日本", "😀", "x#y", "prediction", "Ω\u07ff\uffff", "\U0010ffff", "a b"]
# (float32-subnormal results are tested on their own: test_request_ops.py)
DOUBLES = [0.0, -0.0, 1.0, -2.5, 0.1, 5e-324, 1e-300, 3.4e38, 3.4028235677973366e38, 1e39, -1e300, math.inf, -math.inf, 0.3333333333333333,
           123456.789]
DISCRETES = [0, 1, -1, -17, 16, 2**63 - 1, -(2**63), 2**31, -(2**31) - 1]


def _double(rng, nan_p):
    if rng.random() < nan_p:
        return math.nan
    if rng.random() < 0.5:
        return rng.choice(DOUBLES)
    return rng.uniform(-1e3, 1e3)


def _text(rng):
    if rng.random() < 0.6:
        return rng.choice(TEXT)
    return "".join(rng.choice("aé中😀#.") for _ in range(rng.randrange(6)))


def random_record(rng: random.Random, dups: bool, nan_p=0.15, sc_nan=True, shuffle_fields=False):
    """A random record. With dups, ids repeat inside a map/set (hand-written bytes only).

    Kept unambiguous: a label id is never both binary and continuous in one
    record, and a label/weight id never repeats in one continuous map."""
    def pick(pool, n):
        if dups:
            return [rng.choice(pool) for _ in range(n)]
        return rng.sample(pool, min(n, len(pool)))

    record = []
    kinds = [k for k in KINDS if rng.random() < 0.65]
    bin_ids = pick(POOL + LABEL_IDS, rng.randrange(5))
    for kind in kinds:
        if kind == BINARY:
            record.append((kind, bin_ids))
        elif kind == CONTINUOUS:
            ids = pick(POOL, rng.randrange(5))
            special = [f for f in LABEL_IDS if f not in bin_ids and rng.random() < 0.4]
            special += [f for f in WEIGHT_IDS if rng.random() < 0.4]
            ids = ids + special
            rng.shuffle(ids)
            record.append((kind, [(f, _double(rng, nan_p)) for f in ids]))
        elif kind == DISCRETE:
            record.append((kind, [(f, rng.choice(DISCRETES) if rng.random() < 0.5 else rng.randrange(-(2**63), 2**63))
                                  for f in pick(POOL, rng.randrange(5))]))
        elif kind == STRING:
            record.append((kind, [(f, _text(rng)) for f in pick(POOL, rng.randrange(5))]))
        elif kind == SPARSE_BINARY:
            entries = []
            for f in pick(POOL, rng.randrange(4)):
                ss = [_text(rng) for _ in range(rng.randrange(4))]
                if not dups:
                    ss = _dedupe_set(ss)
                entries.append((f, ss))
            record.append((kind, entries))
        elif kind == SPARSE_CONTINUOUS:
            entries = []
            for f in pick(POOL, rng.randrange(4)):
                names = [_text(rng) for _ in range(rng.randrange(4))]
                if not dups:
                    names = _dedupe_set(names)
                entries.append((f, [(n, _double(rng, nan_p if sc_nan else 0)) for n in names]))
            record.append((kind, entries))
    if shuffle_fields:
        rng.shuffle(record)
    return record


def random_request(rng, dups, sc_nan=True, shuffle_fields=False, common_p=0.7, max_records=4):
    n = rng.randrange(max_records + 1)
    records = [random_record(rng, dups, sc_nan=sc_nan, shuffle_fields=shuffle_fields) for _ in range(n)]
    common = random_record(rng, dups, sc_nan=sc_nan, shuffle_fields=shuffle_fields) if rng.random() < common_p else None
    return records, common


def random_keep(rng):
    pool = POOL + LABEL_IDS + WEIGHT_IDS + [424242]
    keep = rng.sample(pool, rng.randrange(len(pool) + 1))
    codes = [rng.randrange(-(2**63), 2**63) if rng.random() < 0.3 else rng.randrange(100) for _ in keep]
    if keep and rng.random() < 0.3:  # a repeated id with the same code is fine
        j = rng.randrange(len(keep))
        keep.append(keep[j])
        codes.append(codes[j])
    return keep, codes


# --------------------------------------------------------------------------
# A reference parser (for differential fuzzing): the contract's acceptance rules
# --------------------------------------------------------------------------


class ParseError(Exception):
    def __init__(self, offset, what):
        super().__init__(f"at byte {offset}: {what}")
        self.offset = offset


VALID_TYPES = {T_BOOL, T_BYTE, T_DOUBLE, T_I16, T_I32, T_I64, T_STRING, T_STRUCT, T_MAP, T_SET, T_LIST}
FIXED = {T_BOOL: 1, T_BYTE: 1, T_DOUBLE: 8, T_I16: 2, T_I32: 4, T_I64: 8}
# field id -> (field type, element types): set/list (etype,), map (ktype, vtype[, inner...])
DR_FIELDS = {
    1: (T_SET, T_I64),
    2: (T_MAP, T_I64, T_DOUBLE),
    3: (T_MAP, T_I64, T_I64),
    4: (T_MAP, T_I64, T_STRING),
    5: (T_MAP, T_I64, T_SET),
    6: (T_MAP, T_I64, T_MAP),
    7: (T_MAP, T_I64, T_STRING),
}


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ParseError(self.pos, f"{n} bytes past the end")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self):
        return self.take(1)[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def dbl(self):
        return struct.unpack(">d", self.take(8))[0]

    def count(self, min_size):
        at = self.pos
        n = self.i32()
        if n < 0 or n * min_size > len(self.data) - self.pos:
            raise ParseError(at, f"bad count {n}")
        return n

    def utf8(self):
        n = self.count(1)
        at = self.pos
        raw = self.take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParseError(at + e.start, "invalid UTF-8")

    def elem_type(self, want=None):
        at = self.pos
        t = self.byte()
        if t not in VALID_TYPES or (want is not None and t != want):
            raise ParseError(at, f"element type {t}")
        return t

    def skip(self, t, depth):
        if depth > 64:
            raise ParseError(self.pos, "too deep")
        if t in FIXED:
            self.take(FIXED[t])
        elif t == T_STRING:
            self.take(self.count(1))
        elif t == T_STRUCT:
            while True:
                ft = self.byte()
                if ft == 0:
                    return
                if ft not in VALID_TYPES:
                    raise ParseError(self.pos - 1, f"field type {ft}")
                self.i16()
                self.skip(ft, depth + 1)
        elif t == T_MAP:
            # element types are not checked when there are no elements (as stock Thrift skips)
            k, v = self.byte(), self.byte()
            for _ in range(self.count(2)):
                self.skip(k, depth + 1)
                self.skip(v, depth + 1)
        elif t in (T_SET, T_LIST):
            e = self.byte()
            for _ in range(self.count(1)):
                self.skip(e, depth + 1)
        else:
            raise ParseError(self.pos, f"type {t}")


def _read_record(r: Reader):
    record, seen = [], set()
    while True:
        at = r.pos
        ft = r.byte()
        if ft == 0:
            return record
        fid = r.i16()
        if fid in (8, 9):
            raise ParseError(at, "fields 8-9 are not fuzzed")
        if fid not in DR_FIELDS:
            if ft not in VALID_TYPES:
                raise ParseError(at, f"field type {ft}")
            r.skip(ft, 1)
            continue
        if fid in seen:
            raise ParseError(at, "appears twice")
        seen.add(fid)
        spec = DR_FIELDS[fid]
        if ft != spec[0]:
            raise ParseError(at, "wrong field type")
        if fid == 1:
            r.elem_type(T_I64)
            record.append((1, [r.i64() for _ in range(r.count(8))]))
            continue
        r.elem_type(spec[1])
        r.elem_type(spec[2])
        if fid == 2:
            entries = [(r.i64(), r.dbl()) for _ in range(r.count(16))]
        elif fid == 3:
            entries = [(r.i64(), r.i64()) for _ in range(r.count(16))]
        elif fid == 4:
            entries = [(r.i64(), r.utf8()) for _ in range(r.count(12))]
        elif fid == 5:
            entries = []
            for _ in range(r.count(13)):
                k = r.i64()
                r.elem_type(T_STRING)
                entries.append((k, [r.utf8() for _ in range(r.count(4))]))
        elif fid == 6:
            entries = []
            for _ in range(r.count(14)):
                k = r.i64()
                r.elem_type(T_STRING)
                r.elem_type(T_DOUBLE)
                entries.append((k, [(r.utf8(), r.dbl()) for _ in range(r.count(12))]))
        else:  # 7: blobs, not UTF-8 checked, not modelled
            for _ in range(r.count(12)):
                r.i64()
                r.take(r.count(1))
            continue
        record.append((fid, entries))


def _finish(r: Reader, value):
    if r.pos != len(r.data):
        raise ParseError(r.pos, "trailing bytes")
    return value


def parse_data_record(data: bytes):
    r = Reader(data)
    return _finish(r, _read_record(r))


def parse_request(data: bytes):
    """(records, common) or ParseError. Field 1 is required (thrift/prediction_service.thrift)."""
    r = Reader(data)
    records, common, seen = [], None, set()
    while True:
        at = r.pos
        ft = r.byte()
        if ft == 0:
            break
        fid = r.i16()
        if fid not in (1, 2):
            if ft not in VALID_TYPES:
                raise ParseError(at, f"field type {ft}")
            r.skip(ft, 1)
            continue
        if fid in seen:
            raise ParseError(at, "appears twice")
        seen.add(fid)
        if fid == 1:
            if ft != T_LIST:
                raise ParseError(at, "wrong field type")
            r.elem_type(T_STRUCT)
            records = [_read_record(r) for _ in range(r.count(1))]
        else:
            if ft != T_STRUCT:
                raise ParseError(at, "wrong field type")
            common = _read_record(r)
    if 1 not in seen:
        raise ParseError(r.pos - 1, "required field 1 missing")
    return _finish(r, (records, common))


def has_f32_subnormal(requests) -> bool:
    """Any continuous value whose float32 is subnormal (TF's FTZ, a known issue)."""
    tiny = np.finfo(np.float32).tiny
    for records, common in requests:
        for rec in list(records) + ([common] if common else []):
            vals = [v for _, v in fields_of(rec, CONTINUOUS)]
            vals += [v for _, mm in fields_of(rec, SPARSE_CONTINUOUS) for _, v in mm]
            for v in vals:
                x = abs(f32(v))
                if 0 < x < tiny:
                    return True
    return False

"""Sparse kinds and twml's hashed input in BatchPredictionRequestReader and
data.training_dataset (issue 35), one FeatureConfig for both.

Requests and records are written by thriftpy2 (thrift/), block files by
block_files.py (protobuf). Expected sparse tensors are built in Python from
the records put in; the hashed mode is compared with a hand-wired graph of
twml's hashed ops (DecodeAndHash* and the Get*FromHashedDataRecord getters,
another decoder than the DataRecord handle the reader reads) with
`twml.limit_bits` done in NumPy, and its keys of binary, continuous and
discrete features with twml's C++ arithmetic written here in NumPy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
from block_files import file_bytes
from bpr_ops import data
from thrift_check import IDL, serialize as ser

fid = bpr_ops.feature_id
BITS = 12
KINDS = {"binary": 1, "continuous": 2, "discrete": 3, "strings": 4, "sparse_binary": 5, "sparse_continuous": 6}
HASHED = {
    "binary": ["u.flag"],
    "continuous": ["u.age"],
    "discrete": ["u.lang"],
    "strings": ["u.country"],
    "sparse_binary": ["u.tags"],
    "sparse_continuous": ["u.topics"],
}


def record(i: int):
    """Record i (thriftpy2): every kind, some features on some records only.
    Sets are given as lists so that their wire order is known."""
    r = IDL.data.DataRecord(
        continuousFeatures={fid("u.age"): 20.0 + i, fid("label"): float(i % 2)},
        discreteFeatures={fid("u.lang"): i % 3 - 1},
        sparseBinaryFeatures={fid("u.tags"): [f"t{j}" for j in range(i % 3)], fid("seen"): ["x"]},
        sparseContinuousFeatures={fid("u.topics"): {f"topic{j}": 0.5 * j - i for j in range(i % 4)},
                                  fid("u.kw"): {"k": float(i), "kk": -1.0}},
    )
    if i % 2 == 0:
        r.binaryFeatures = [fid("u.flag")]
        r.stringFeatures = {fid("u.country"): f"c{i}"}
        r.continuousFeatures[fid("weight")] = 2.0
    if not r.sparseContinuousFeatures[fid("u.topics")]:
        del r.sparseContinuousFeatures[fid("u.topics")]
    if not r.sparseBinaryFeatures[fid("u.tags")]:
        del r.sparseBinaryFeatures[fid("u.tags")]
    return r


RECORDS = [record(i) for i in range(7)]
COMMON = IDL.data.DataRecord(sparseBinaryFeatures={fid("u.tags"): ["common"]},
                             continuousFeatures={fid("u.score"): 0.25})


def request_bytes(records, common=None) -> bytes:
    return ser(IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common))


def own(rec, kind: str, key: str):
    """The entries of feature `key` of `kind` in a thriftpy2 record: a list
    (sparse binary) or a list of (name, value) (sparse continuous)."""
    field = {"sparse_binary": "sparseBinaryFeatures", "sparse_continuous": "sparseContinuousFeatures"}[kind]
    got = (getattr(rec, field) or {}).get(fid(key))
    if got is None:
        return []
    return list(got.items()) if kind == "sparse_continuous" else list(got)


def expected_sparse(records, kind, key, common=None):
    """(indices, values, dense_shape) of a sparse feature: per record its
    request's common entries, then its own, at columns 0, 1, ... `common`:
    one common record for all, or a list of one per record (None: none)."""
    commons = common if isinstance(common, list) else [common] * len(records)
    indices, values = [], []
    width = 0
    for b, (rec, com) in enumerate(zip(records, commons)):
        entries = (own(com, kind, key) if com else []) + own(rec, kind, key)
        width = max(width, len(entries))
        for j, e in enumerate(entries):
            indices.append([b, j])
            values.append(e)
    return np.array(indices, np.int64).reshape(-1, 2), values, [len(records), width]


def check_sparse(sp, records, kind, key, common=None, names=None):
    indices, values, shape = expected_sparse(records, kind, key, common)
    assert isinstance(sp, tf.SparseTensor)
    np.testing.assert_array_equal(sp.indices.numpy(), indices)
    np.testing.assert_array_equal(sp.dense_shape.numpy(), shape)
    if kind == "sparse_binary":
        assert [v.decode() for v in sp.values.numpy()] == values
    else:
        np.testing.assert_array_equal(sp.values.numpy(), np.array([v for _, v in values], np.float32))
        assert [v.decode() for v in names.values.numpy()] == [n for n, _ in values]
        np.testing.assert_array_equal(names.indices.numpy(), indices)


def hashed_reference(raw, hashed: dict, bits: int, from_records: bool):
    """twml's hashed input by hand: DecodeAndHash{BatchPredictionRequestV2,
    DataRecord} keeping the hashed ids, rows whose type is the kind the
    config gives their id, keys limited to `bits` in NumPy. (ids, keys,
    values, types)."""
    lib = bpr_ops.load_library()
    ids = [fid(k) for keys in hashed.values() for k in keys]
    kind_of = {fid(k): KINDS[kind] for kind, keys in hashed.items() for k in keys}
    decode = lib.decode_and_hash_data_record if from_records else lib.decode_and_hash_batch_prediction_request_v2
    h = decode(input_bytes=raw, keep_features=ids, keep_codes=[0] * len(ids), label_features=[],
               weight_features=[], decode_mode=0)
    rows = {name: getattr(lib, f"get_{name}_from_hashed_data_record")(h).numpy()
            for name in ("ids", "u_keys", "keys", "values", "types")}
    keep = np.array([kind_of[u] == t for u, t in zip(rows["u_keys"], rows["types"])], bool)
    keys = np.bitwise_and(rows["keys"][keep], np.int64((1 << bits) - 1))
    return rows["ids"][keep], keys, rows["values"][keep], rows["types"][keep]


def sorted_rows(*columns):
    rows = np.stack([np.asarray(c).astype(np.float64) for c in columns], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def check_hashed(out, raw, from_records, n_records):
    """The reader's hashed tensors are twml's rows (record, limited key,
    value, type), in row-major order (entries at one index in any order)."""
    ids, keys, values, types = hashed_reference(raw, HASHED, BITS, from_records)
    assert len(ids) > 0 and len(set(types)) == 6
    sp, kinds = out["hashed"], out["hashed_kinds"]
    got = sp.indices.numpy()
    order = np.lexsort((got[:, 1], got[:, 0]))
    np.testing.assert_array_equal(order, np.arange(len(got)))
    np.testing.assert_array_equal(kinds.indices.numpy(), got)
    np.testing.assert_array_equal(sorted_rows(got[:, 0], got[:, 1], sp.values.numpy(), kinds.values.numpy()),
                                  sorted_rows(ids, keys, values, types))
    np.testing.assert_array_equal(sp.dense_shape.numpy(), [n_records, 1 << BITS])


CONFIG = bpr_ops.FeatureConfig(
    continuous=["u.score"],
    sparse_binary=["seen"],
    sparse_continuous=["u.kw"],
    hashed=HASHED,
    hashed_bits=BITS,
    labels=["label"],
    weights=["weight"],
)


def test_sparse_kinds_from_a_request():
    read = bpr_ops.BatchPredictionRequestReader(sparse_binary=["u.tags", "seen"], sparse_continuous=["u.topics"],
                                                sources=True)
    out = read(tf.constant([request_bytes(RECORDS[:4], COMMON), request_bytes(RECORDS[4:])]))
    # The first request's records have its common tags first; the second's do not.
    check_sparse(out["sparse_binary"]["u.tags"], RECORDS, "sparse_binary", "u.tags", [COMMON] * 4 + [None] * 3)
    check_sparse(out["sparse_binary"]["seen"], RECORDS, "sparse_binary", "seen")
    check_sparse(out["sparse_continuous"]["u.topics"], RECORDS, "sparse_continuous", "u.topics",
                 names=out["sparse_continuous_names"]["u.topics"])
    # sources: 1 the record has it, 2 only its request's commonFeatures, 0 neither.
    src = out["sources"]["sparse_binary"].numpy()
    assert src.shape == (7, 2)
    want_src = [1 if own(r, "sparse_binary", "u.tags") else (2 if i < 4 else 0) for i, r in enumerate(RECORDS)]
    np.testing.assert_array_equal(src[:, 0], want_src)
    np.testing.assert_array_equal(src[:, 1], [1] * 7)


def test_sparse_kinds_names_mode_and_a_wrong_kind():
    read = bpr_ops.BatchPredictionRequestReader(continuous=["u.age"], sparse_binary=["u.lang"],
                                                output_mode="names", sources=True)
    out = read(tf.constant([request_bytes(RECORDS)]))
    assert set(out) == {"u.age", "sparse_binary", "sources"}
    # u.lang is sent as discrete: no sparse binary entries, and sources says 3.
    assert out["sparse_binary"]["u.lang"].values.shape == (0,)
    np.testing.assert_array_equal(out["sparse_binary"]["u.lang"].dense_shape.numpy(), [7, 0])
    np.testing.assert_array_equal(out["sources"]["u.lang"].numpy(), [3] * 7)


def test_hashed_from_request_and_from_block_files(tmp_path):
    read = bpr_ops.BatchPredictionRequestReader(CONFIG)
    raw = request_bytes(RECORDS, COMMON)
    served = read(tf.constant([raw]))
    check_hashed(served, tf.constant([raw]), from_records=False, n_records=7)

    path = tmp_path / "train.bin"
    path.write_bytes(file_bytes([ser(r) for r in RECORDS], per_block=3))
    train = data.training_dataset([str(path)], CONFIG, batch_size=7)
    (x, y, w), = list(train)
    serialized = tf.constant([ser(r) for r in RECORDS])
    check_hashed(x, serialized, from_records=True, n_records=7)
    # Records without commonFeatures: the same as the request without it.
    plain = read(tf.constant([request_bytes(RECORDS)]))
    for key in ("hashed", "hashed_kinds"):
        np.testing.assert_array_equal(x[key].indices.numpy(), plain[key].indices.numpy())
        np.testing.assert_array_equal(x[key].values.numpy(), plain[key].values.numpy())
    check_sparse(x["sparse_binary"]["seen"], RECORDS, "sparse_binary", "seen")
    check_sparse(x["sparse_continuous"]["u.kw"], RECORDS, "sparse_continuous", "u.kw",
                 names=x["sparse_continuous_names"]["u.kw"])
    np.testing.assert_array_equal(y.numpy()[:, 0], [i % 2 for i in range(7)])
    np.testing.assert_array_equal(w.numpy(), [2.0 if i % 2 == 0 else 0.0 for i in range(7)])


@pytest.mark.parametrize("bits", [BITS, 40])  # 40: above 31 bits the reader sorts another way
def test_hashed_keys_follow_twml_arithmetic(bits):
    """Binary and continuous keys are the feature id, a discrete key is
    id ^ ((17 + value) * 2654435761) (twml's mixing, int64 wrap-around), then
    the low bits (negative keys keep their low bits)."""
    recs = [IDL.data.DataRecord(binaryFeatures=[fid("u.flag")], continuousFeatures={fid("u.age"): 3.5},
                                discreteFeatures={fid("u.lang"): v}) for v in (-20, 0, 7)]
    recs[1].binaryFeatures.append(fid("u.other"))  # more than one entry per kind, in a row
    read = bpr_ops.BatchPredictionRequestReader(
        hashed={"binary": ["u.flag", "u.other"], "continuous": ["u.age"], "discrete": ["u.lang"]}, hashed_bits=bits)
    sp = read(tf.constant([request_bytes(recs)]))["hashed"]
    mask = (1 << bits) - 1
    want = []
    for b, v in enumerate((-20, 0, 7)):
        mixed = (fid("u.lang") ^ ((17 + v) * 2654435761)) & ((1 << 64) - 1)
        want += [[b, fid("u.flag") & mask, 1.0], [b, fid("u.age") & mask, 3.5], [b, mixed & mask, 1.0]]
        if b == 1:
            want.append([b, fid("u.other") & mask, 1.0])
    want = np.array(want)
    got = sp.indices.numpy()
    np.testing.assert_array_equal(np.lexsort((got[:, 1], got[:, 0])), np.arange(len(got)))
    np.testing.assert_array_equal(sp.dense_shape.numpy(), [3, 1 << bits])
    np.testing.assert_array_equal(sorted_rows(got[:, 0], got[:, 1], sp.values.numpy()),
                                  sorted_rows(want[:, 0], want[:, 1], want[:, 2]))


def test_keras3_model_serves_what_it_trains_on(tmp_path):
    path = tmp_path / "train.gz"
    data.write_block_format(str(path), [ser(r) for r in RECORDS], records_per_block=2)
    read = bpr_ops.BatchPredictionRequestReader(CONFIG)
    train = data.training_dataset([str(path)], CONFIG, batch_size=3)
    hashed_in = keras.Input((1 << BITS,), sparse=True, name="hashed")
    model = keras.Model(hashed_in, keras.layers.Dense(1, kernel_initializer="ones")(hashed_in))
    batches = list(train.map(lambda x, y, w: (x["hashed"], y, w)))
    assert [int(b[0].dense_shape[0]) for b in batches] == [3, 3, 1]
    trained = np.concatenate([model(b[0]).numpy() for b in batches])
    request = keras.Input((), dtype="string", name="request")
    serving = keras.Model(request, model(read(request)["hashed"]))
    served = serving(tf.constant([request_bytes(RECORDS)])).numpy()
    np.testing.assert_allclose(served, trained, rtol=1e-6)
    # The sum of each record's hashed values (kernel of ones), by hand.
    ids, _, values, _ = hashed_reference(tf.constant([request_bytes(RECORDS)]), HASHED, BITS, False)
    np.testing.assert_allclose(served[:, 0], np.bincount(ids, values, minlength=7), rtol=1e-6)
    # The layer's config round-trips: a saved model rebuilds the same reader.
    again = bpr_ops.BatchPredictionRequestReader.from_config(read.get_config())
    assert again.get_config() == read.get_config()
    serving.save(tmp_path / "serving.keras")
    loaded = keras.models.load_model(tmp_path / "serving.keras")
    np.testing.assert_allclose(loaded(tf.constant([request_bytes(RECORDS)])).numpy(), served, rtol=1e-6)


def test_misspelled_label_or_weight_is_an_error(tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(file_bytes([ser(r) for r in RECORDS], per_block=4))
    read = bpr_ops.BatchPredictionRequestReader(continuous=["u.age"])
    with pytest.raises(ValueError, match=r"label 'label.clik' \(feature id -?\d+\) is in none of them"):
        data.training_dataset([str(path)], read, batch_size=2, labels=["label.clik"])
    with pytest.raises(ValueError, match=r"weight 'meta.wieght'.*is in none of them"):
        data.training_dataset([str(path)], read, batch_size=2, labels=["label"], weights=["meta.wieght"])
    # A label sent as discrete is not read as a label.
    with pytest.raises(ValueError, match=r"label 'u.lang'.*sent only as another kind"):
        data.training_dataset([str(path)], read, batch_size=2, labels=["u.lang"])
    # A weight on some records only is fine (the others weigh 0); no check with check_records=0.
    data.training_dataset([str(path)], read, batch_size=2, labels=["label"], weights=["weight"])
    (_, y, _), = list(data.training_dataset([str(path)], read, batch_size=7, labels=["label.clik"],
                                            check_records=0))
    np.testing.assert_array_equal(y.numpy(), np.zeros([7, 1]))
    # The config's labels are checked the same way.
    bad = bpr_ops.FeatureConfig(continuous=["u.age"], labels=["label.clik"])
    with pytest.raises(ValueError, match="label.clik"):
        data.training_dataset([str(path)], bad, batch_size=2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(hashed={"discrete": ["d"]}), ValueError, "hashed_bits"),
        (dict(hashed={"discrete": ["d"]}, hashed_bits=63), ValueError, "from 1 to 62"),
        (dict(continuous=["a"], hashed_bits=10), ValueError, "without hashed features"),
        (dict(hashed={"dense": ["d"]}, hashed_bits=10), ValueError, "kind 'dense'"),
        (dict(continuous=["d"], hashed={"discrete": ["d"]}, hashed_bits=10), ValueError, "each feature is read once"),
        (dict(sparse_binary=["d"], sparse_continuous=["d"]), ValueError, "each feature is read once"),
        (dict(hashed={"discrete": ["d"]}, hashed_bits=10, decode_mode=2), ValueError, "decode_mode"),
        (dict(continuous=["a"], sparse_bianry=["b"]), TypeError, "sparse_bianry"),
    ],
)
def test_config_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        bpr_ops.FeatureConfig(**kwargs)
    with pytest.raises((error, TypeError, ValueError), match=match):
        bpr_ops.BatchPredictionRequestReader(**kwargs)


def test_feature_config_round_trips():
    again = bpr_ops.FeatureConfig(**CONFIG.get_config())
    assert again == CONFIG
    read = bpr_ops.BatchPredictionRequestReader(CONFIG, name="read")
    assert read.get_config()["hashed"] == HASHED
    assert read.get_config()["hashed_bits"] == BITS


TF_KERAS = """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import bpr_ops
    import tf_keras as keras
    from bpr_ops import data
    assert bpr_ops.BatchPredictionRequestReader.__module__ == "bpr_ops.tf_keras_layers"
    config = bpr_ops.FeatureConfig(**json.loads(sys.argv[1]))
    request = keras.Input(shape=(), dtype=tf.string, name="request")
    out = bpr_ops.BatchPredictionRequestReader(config, name="reader")(request)
    score = keras.layers.Dense(1, kernel_initializer="ones", name="dense")(out["hashed"])
    model = keras.Model(request, {"score": score, "tags": out["sparse_binary"]["seen"]})
    model.save(sys.argv[3] + "/model.keras")
    loaded = keras.models.load_model(sys.argv[3] + "/model.keras")
    raw = tf.constant([bytes.fromhex(sys.argv[2])])
    got = loaded(raw)
    trained = [x["hashed"] for x, _, _ in data.training_dataset([sys.argv[4]], config, batch_size=4)]
    print(json.dumps({"served": got["score"].numpy()[:, 0].tolist(),
                      "train_scores": np.concatenate([loaded.get_layer("dense")(h).numpy()[:, 0]
                                                      for h in trained]).tolist(),
                      "tags": [v.decode() for v in got["tags"].values.numpy()]}))
"""


@pytest.mark.skipif(__import__("importlib").util.find_spec("tf_keras") is None, reason="tf_keras is not installed")
def test_tf_keras_reader_takes_the_config(tmp_path):
    import json

    from test_tf_keras import fresh

    path = tmp_path / "train.bin"
    path.write_bytes(file_bytes([ser(r) for r in RECORDS], per_block=3))
    raw = request_bytes(RECORDS)
    report = json.loads(fresh(TF_KERAS, json.dumps(CONFIG.get_config()), raw.hex(), tmp_path, path)
                        .strip().splitlines()[-1])
    ids, _, values, _ = hashed_reference(tf.constant([raw]), HASHED, BITS, False)
    np.testing.assert_allclose(report["served"], np.bincount(ids, values, minlength=7), rtol=1e-6)
    np.testing.assert_allclose(report["train_scores"], report["served"], rtol=1e-6)
    assert report["tags"] == ["x"] * 7


def test_hashed_sources_and_names_mode():
    """sources reports hashed features per key: 1 the record has it, 2 its
    request's commonFeatures only, 3 sent as another kind (not read), 0 absent."""
    hashed = {"continuous": ["u.score", "u.lang"], "sparse_binary": ["u.tags"]}
    raw = tf.constant([request_bytes(RECORDS[:3], COMMON)])
    kinds = bpr_ops.BatchPredictionRequestReader(hashed=hashed, hashed_bits=BITS, sources=True)(raw)
    tags = [1 if own(r, "sparse_binary", "u.tags") else 2 for r in RECORDS[:3]]
    np.testing.assert_array_equal(kinds["sources"]["hashed"].numpy(), [[2, 3, t] for t in tags])
    # u.lang (sent as discrete) adds no entry; u.score (common, continuous) one per record.
    score = fid("u.score") & ((1 << BITS) - 1)
    got = kinds["hashed"].indices.numpy()
    assert [tuple(i) for i in got if i[1] == score] == [(0, score), (1, score), (2, score)]
    assert kinds["hashed_kinds"].values.numpy().tolist().count(2) == 3
    names = bpr_ops.BatchPredictionRequestReader(hashed=hashed, hashed_bits=BITS, sources=True,
                                                 output_mode="names")(raw)
    assert set(names) == {"hashed", "hashed_kinds", "sources"}
    assert set(names["sources"]) == {"u.score", "u.lang", "u.tags"}
    np.testing.assert_array_equal(names["sources"]["u.lang"].numpy(), [3, 3, 3])
    with pytest.raises(ValueError, match="a feature named 'hashed' and the hashed features"):
        bpr_ops.BatchPredictionRequestReader(continuous=["hashed"], hashed={"discrete": ["d"]}, hashed_bits=BITS,
                                             output_mode="names")


def test_named_arguments_beside_a_config_reach_the_layer():
    # Regression: row_splits=True (and every other named argument) given beside a
    # FeatureConfig was silently dropped, so read["row_splits"] was a KeyError.
    config = bpr_ops.FeatureConfig(continuous=["user.age"], binary=["user.new"], labels=["label.click"])
    read = bpr_ops.BatchPredictionRequestReader(config, row_splits=True, sources=True)
    assert read.row_splits and read.sources
    request = bpr_ops.encode_batch_prediction_request([{"continuous": {"user.age": 3.0}}])
    out = read(tf.constant([request, request]))
    assert out["row_splits"].numpy().tolist() == [0, 1, 2]
    with pytest.raises(TypeError, match="given both"):
        bpr_ops.BatchPredictionRequestReader(config, binary=["user.new"])

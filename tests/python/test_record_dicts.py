"""Record dicts, what encode_data_record, encode_batch_prediction_request and
data.write_block_format take: "strings" (BatchPredictionRequestReader's name
for the kind) and "string" are one kind, decoded by thriftpy2 the same;
both in one record, or an unknown kind, is an error naming them; the training guide's
"Record dicts" section (docs/guides/training.md) documents every kind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tensorflow as tf
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
from bpr_ops import data, request
from thrift_check import IDL

ROOT = Path(__file__).resolve().parents[2]


def _parse(record_bytes: bytes):
    buf = TMemoryBuffer(record_bytes)
    rec = IDL.data.DataRecord()
    rec.read(TBinaryProtocol(buf, decode_response=False, strict_decode=True))
    assert buf._pos == len(record_bytes)
    return rec


@pytest.mark.parametrize("kind", ["string", "strings"])
def test_string_and_strings_are_one_kind(kind):
    rec = _parse(bpr_ops.encode_data_record({kind: {"s": "v1", 7: "é"}, "continuous": {"a": 0.5}}))
    assert rec.stringFeatures == {bpr_ops.feature_id("s"): b"v1", 7: "é".encode()}
    assert rec.continuousFeatures == {bpr_ops.feature_id("a"): 0.5}


def test_both_names_in_one_record_is_an_error():
    with pytest.raises(ValueError, match=r"both 'string' and 'strings'.*give one"):
        bpr_ops.encode_data_record({"string": {"s": "a"}, "strings": {"t": "b"}})


@pytest.mark.parametrize("kind, hint", [("sparse_tensor", "sparse_tensors"), ("strng", "string"),
                                        ("continous", "continuous")])
def test_an_unknown_kind_is_named_with_the_nearest(kind, hint):
    with pytest.raises(ValueError, match=rf"unknown feature kind\(s\) '{kind}' \(did you mean '{hint}'\?\)"):
        bpr_ops.encode_data_record({kind: {}})


def test_strings_reach_the_reader_from_requests_and_block_files(tmp_path):
    records = [{"strings": {"s": f"v{i}"}} for i in range(3)] + [{"string": {"s": "w"}}, {}]
    read = bpr_ops.BatchPredictionRequestReader(strings=["s"], default_string="none")
    want = [[b"v0"], [b"v1"], [b"v2"], [b"w"], [b"none"]]
    served = read(tf.constant([bpr_ops.encode_batch_prediction_request(records)]))
    assert served["strings"].numpy().tolist() == want
    path = str(tmp_path / "train.gz")
    assert data.write_block_format(path, records) == len(records)
    (x, _, _), = data.training_dataset([path], read, batch_size=8)
    assert x["strings"].numpy().tolist() == want


def test_readme_documents_every_kind():
    guide = (ROOT / "docs" / "guides" / "training.md").read_text()
    section = re.search(r"\n## Record dicts.*?(?=\n## )", guide, re.S)
    assert section, "docs/guides/training.md has no '## Record dicts' section"
    for kind in (*request._KINDS, *request._ALIASES):
        assert f'`"{kind}"' in section.group(0), kind

"""The list of every op (docs/reference/ops.md, once README's "## Every op in
libbpr_ops.so") is exactly the ops libbpr_ops.so registers, each row's interface exactly its OpDef (inputs,
attrs, outputs with their types), so the list cannot rot. The ops come from
the library's own OpList (TF_GetOpList), not from a list kept here."""

from __future__ import annotations

import re

from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api
from tensorflow.python.framework import dtypes

import bpr_ops
from thrift_check import ROOT

PAGE = ROOT / "docs" / "reference" / "ops.md"
TITLE = "# Every op in libbpr_ops.so"


def registered() -> dict:
    """{op name: OpDef} of what the library registers."""
    ops = op_def_pb2.OpList()
    ops.ParseFromString(c_api.TF_GetOpList(c_api.TF_LoadLibrary(str(bpr_ops.library_path()))))
    return {op.name: op for op in ops.op}


def interface(op) -> str:
    """An OpDef as the op table's interface cell writes it."""
    def arg(a):
        if a.type_attr or a.type_list_attr:
            t = a.type_attr or a.type_list_attr
        else:
            t = dtypes.as_dtype(a.type).name
        return f"`{a.name}: {t}`"

    parts = []
    for label, items in (("in", [arg(a) for a in op.input_arg]), ("attrs", [f"`{a.name}: {a.type}`" for a in op.attr]),
                         ("out", [arg(a) for a in op.output_arg])):
        if items:
            parts.append(f"{label} " + ", ".join(items))
    return "; ".join(parts)


def readme_rows() -> dict:
    text = PAGE.read_text()
    assert text.startswith(TITLE + "\n"), f"{PAGE} does not start with {TITLE!r}"
    body = text
    rows = {}
    for line in body.splitlines():
        m = re.match(r"^\| `(\w+)` \| (\w+) \| (.*?) \| ", line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} listed twice"
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_readme_lists_exactly_the_registered_ops_with_their_interfaces():
    ops, rows = registered(), readme_rows()
    assert sorted(set(ops) - set(rows)) == [], "registered but not in docs/reference/ops.md"
    assert sorted(set(rows) - set(ops)) == [], "in docs/reference/ops.md but not registered"
    for name, op in ops.items():
        assert rows[name][1] == interface(op), name


def test_every_twml_op_is_marked_as_twmls():
    from twml_interfaces import TWML_OPS, TWML_TENSOR_OPS

    rows = readme_rows()
    ours = {n for n, (origin, _) in rows.items() if origin == "bpr_ops"}
    assert ours == {"GetRequestSplitsFromDataRecord", "GetRequestSplitsFromHashedDataRecord",
                    "BatchPredictionResponsesWriter", "BatchPredictionTensorResponsesWriter",
                    "GetFeatureSourcesFromDataRecord", "BlockFormatBatchDataset", "BlockFormatFeatureDataset",
                    "BprHashingDiscretizer", "BprPercentileDiscretizer", "GetSparseBinaryAsSparseTensor",
                    "GetSparseContinuousAsSparseTensor", "GetHashedFeaturesAsSortedSparseTensor"}
    assert {origin for origin, _ in rows.values()} == {"twml", "bpr_ops"}
    assert len(TWML_OPS) == 37
    assert set(TWML_OPS) | set(TWML_TENSOR_OPS) <= {n for n, (origin, _) in rows.items() if origin == "twml"}
    from twml_discretize_interfaces import TWML_DISCRETIZE_OPS

    assert set(TWML_DISCRETIZE_OPS) <= {n for n, (origin, _) in rows.items() if origin == "twml"}
    # twml's: writers, FeatureId, request readers, tensor getters, the record writer, the block
    # dataset, then its model ops (issue 37): discretizers, 9 small tensor ops, 6 sparse ones.
    assert len(rows) - len(ours) == 2 + 1 + 37 + 8 + 1 + 1 + len(TWML_DISCRETIZE_OPS) + 9 + 6

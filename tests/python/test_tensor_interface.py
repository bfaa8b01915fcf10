"""twml's tensor getters and DataRecordTensorWriter have twml's registered
interface in libbpr_ops.so: names, attrs (types, defaults, order), inputs and
outputs, judged against twml's REGISTER_OP text (twml_interfaces.py)."""

import re

import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import op_def_registry

import bpr_ops
from twml_interfaces import TWML_TENSOR_OPS

DTYPES = {
    "uint8": types_pb2.DT_UINT8,
    "string": types_pb2.DT_STRING,
    "int64": types_pb2.DT_INT64,
    "int32": types_pb2.DT_INT32,
    "float": types_pb2.DT_FLOAT,
    "double": types_pb2.DT_DOUBLE,
    "bool": types_pb2.DT_BOOL,
    "resource": types_pb2.DT_RESOURCE,
}


@pytest.fixture(scope="module")
def registry():
    tf.load_op_library(str(bpr_ops.library_path()))
    return op_def_registry


def test_all_nine_are_registered(registry):
    assert len(TWML_TENSOR_OPS) == 9
    missing = [n for n in TWML_TENSOR_OPS if registry.get(n) is None]
    assert missing == []


@pytest.mark.parametrize("name", sorted(TWML_TENSOR_OPS))
def test_interface_is_twmls(registry, name):
    op = registry.get(name)
    spec = TWML_TENSOR_OPS[name]
    for args, kind in ((op.input_arg, "input"), (op.output_arg, "output")):
        want = [s for k, s in spec if k == kind]
        assert [a.name for a in args] == [w.split(":")[0] for w in want]
        for a, w in zip(args, want):
            t = w.split(":")[1].strip()
            if t in DTYPES:
                assert a.type == DTYPES[t], f"{name}.{a.name}"
            else:
                assert a.type_list_attr == t or a.type_attr == t, f"{name}.{a.name}"
    attrs = [s for k, s in spec if k == "attr"]
    # Same attrs in the same order (TensorFlow keeps registration order).
    assert [a.name for a in op.attr] == [w.split(":")[0] for w in attrs]
    for a, w in zip(op.attr, attrs):
        attr_name, attr_type, default = re.fullmatch(r"(\w+): ([^=]+?)(?: = (.*))?", w).groups()
        if attr_type.startswith("list({"):
            assert a.type == "list(type)"
            allowed = sorted(a.allowed_values.list.type)
            assert allowed == sorted(DTYPES[t.strip()] for t in attr_type[6:-2].split(","))
            continue
        assert a.type == attr_type, f"{name}.{attr_name}"
        assert default is None and not a.HasField("default_value"), f"{name}.{attr_name}"

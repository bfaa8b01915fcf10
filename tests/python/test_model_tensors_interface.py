"""twml's nine small tensor ops have twml's registered interface in
libbpr_ops.so: names, attrs (types, allowed dtypes, defaults, order), inputs
and outputs, judged against twml's REGISTER_OP text (twml_tensors_interfaces.py).
"""

import re

import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import op_def_registry

import bpr_ops
from twml_tensors_interfaces import TWML_SMALL_TENSOR_OPS

DTYPES = {
    "string": types_pb2.DT_STRING,
    "int8": types_pb2.DT_INT8,
    "int32": types_pb2.DT_INT32,
    "int64": types_pb2.DT_INT64,
    "float": types_pb2.DT_FLOAT,
    "double": types_pb2.DT_DOUBLE,
    "bool": types_pb2.DT_BOOL,
}


@pytest.fixture(scope="module")
def registry():
    tf.load_op_library(str(bpr_ops.library_path()))
    return op_def_registry


def test_all_nine_are_registered(registry):
    assert len(TWML_SMALL_TENSOR_OPS) == 9
    assert [n for n in TWML_SMALL_TENSOR_OPS if registry.get(n) is None] == []


@pytest.mark.parametrize("name", sorted(TWML_SMALL_TENSOR_OPS))
def test_interface_is_twmls(registry, name):
    op = registry.get(name)
    spec = TWML_SMALL_TENSOR_OPS[name]
    for args, kind in ((op.input_arg, "input"), (op.output_arg, "output")):
        want = [s for k, s in spec if k == kind]
        assert [a.name for a in args] == [w.split(":")[0] for w in want]
        for a, w in zip(args, want):
            t = w.split(":")[1].strip()
            if t in DTYPES:
                assert (a.type, a.type_attr) == (DTYPES[t], ""), f"{name}.{a.name}"
            else:
                assert (a.type_attr, a.type) == (t, types_pb2.DT_INVALID), f"{name}.{a.name}"
            assert not a.is_ref and not a.number_attr and not a.type_list_attr
    attrs = [s for k, s in spec if k == "attr"]
    # Same attrs in the same order (TensorFlow keeps registration order).
    assert [a.name for a in op.attr] == [w.split(":")[0] for w in attrs]
    for a, w in zip(op.attr, attrs):
        attr_name, attr_type, default = re.fullmatch(r"(\w+): ([^=]+?)(?: = (.*))?", w).groups()
        if attr_type.startswith("{"):
            assert a.type == "type", f"{name}.{attr_name}"
            allowed = [DTYPES[t.strip()] for t in attr_type[1:-1].split(",")]
            assert sorted(a.allowed_values.list.type) == sorted(allowed), f"{name}.{attr_name}"
        else:
            assert a.type == attr_type, f"{name}.{attr_name}"
            assert not a.HasField("allowed_values")
        if default is None:
            assert not a.HasField("default_value"), f"{name}.{attr_name}"
        else:
            assert default.startswith("DT_")
            assert a.default_value.type == types_pb2.DataType.Value(default), f"{name}.{attr_name}"
        assert not a.has_minimum, f"{name}.{attr_name}"

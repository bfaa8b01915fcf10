"""One check of a registered OpDef against twml's REGISTER_OP text (the
twml_*_interfaces.py tables: op name -> [(kind, spec)] in registration
order), for every test of twml's model ops' interfaces: names, input and
output types (Ref inputs too), attrs in order with their types, allowed
dtypes, defaults and minimums."""

import re

from tensorflow.core.framework import types_pb2

DTYPES = {
    "uint8": types_pb2.DT_UINT8,
    "int8": types_pb2.DT_INT8,
    "int32": types_pb2.DT_INT32,
    "int64": types_pb2.DT_INT64,
    "float": types_pb2.DT_FLOAT,
    "double": types_pb2.DT_DOUBLE,
    "bool": types_pb2.DT_BOOL,
    "string": types_pb2.DT_STRING,
    "complex64": types_pb2.DT_COMPLEX64,
    "complex128": types_pb2.DT_COMPLEX128,
    "resource": types_pb2.DT_RESOURCE,
}
_ATTR = re.compile(r"(\w+): ([^=]+?)(?: = (.*))?")


def _dtypes(listed: str):
    return sorted(DTYPES[t.strip()] for t in listed.split(","))


def _check_arg(op, arg, spec):
    name, typ = (s.strip() for s in spec.split(":"))
    assert arg.name == name, op
    ref = typ.startswith("Ref(")
    assert arg.is_ref == ref, f"{op}.{name}"
    typ = typ[4:-1] if ref else typ
    assert not arg.number_attr, f"{op}.{name}"
    if typ in DTYPES:
        assert (arg.type, arg.type_attr, arg.type_list_attr) == (DTYPES[typ], "", ""), f"{op}.{name}"
    else:
        # Exactly one of the two names the attr.
        assert arg.type == types_pb2.DT_INVALID, f"{op}.{name}"
        assert sorted([arg.type_attr, arg.type_list_attr]) == ["", typ], f"{op}.{name}"


def _check_attr(op, attr, spec):
    name, typ, default = _ATTR.fullmatch(spec).groups()
    where = f"{op}.{name}"
    assert attr.name == name, op
    allowed = sorted(attr.allowed_values.list.type)
    if typ.startswith("{"):
        assert attr.type == "type" and allowed == _dtypes(typ[1:-1]), where
    elif typ.startswith("list({"):
        assert attr.type == "list(type)" and allowed == _dtypes(typ[6:-2]), where
    else:
        assert attr.type == typ and not attr.HasField("allowed_values"), where
    if default is None:
        assert not attr.HasField("default_value"), where
    elif default.startswith("DT_"):
        assert attr.default_value.type == types_pb2.DataType.Value(default), where
    elif default in ("true", "false"):
        assert attr.default_value.WhichOneof("value") == "b", where
        assert attr.default_value.b == (default == "true"), where
    elif default == "{ dtype: DT_INT64 }":
        assert attr.default_value.tensor.dtype == types_pb2.DT_INT64, where
        assert list(attr.default_value.tensor.tensor_shape.dim) == [], where
    else:
        assert attr.default_value.i == int(default), where
    # TensorFlow gives a list(type) attr behind an input or output a minimum
    # of 1 (twml's text names none; its registration got the same).
    want_min = (True, 1) if typ.startswith("list({") else (False, 0)
    assert (attr.has_minimum, attr.minimum) == want_min, where


def check_opdef(name, op, spec):
    """Asserts that OpDef `op` is twml's `spec` for op `name`."""
    assert op is not None, f"{name} is not registered"
    for args, kind in ((op.input_arg, "input"), (op.output_arg, "output")):
        want = [s for k, s in spec if k == kind]
        assert [a.name for a in args] == [w.split(":")[0].strip() for w in want], f"{name} {kind}s"
        for arg, w in zip(args, want):
            _check_arg(name, arg, w)
    want = [s for k, s in spec if k == "attr"]
    # Same attrs in the same order (TensorFlow keeps registration order).
    assert [a.name for a in op.attr] == [_ATTR.fullmatch(w).group(1) for w in want], f"{name} attrs"
    for attr, w in zip(op.attr, want):
        _check_attr(name, attr, w)

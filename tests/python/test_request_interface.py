"""Every request-side op has twml's registered interface: a graph exported
with twml's ops finds the same op names, attrs (types and defaults), inputs
and outputs in libbpr_ops.so. Judged against twml's own REGISTER_OP text
(twml_interfaces.py), not against our registrations."""

import re
import unittest

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.python.framework import op_def_registry

import bpr_ops
from twml_interfaces import TWML_OPS

DTYPES = {
    "uint8": types_pb2.DT_UINT8,
    "string": types_pb2.DT_STRING,
    "int64": types_pb2.DT_INT64,
    "float": types_pb2.DT_FLOAT,
    "int8": types_pb2.DT_INT8,
    "resource": types_pb2.DT_RESOURCE,
}


def _default(attr_def):
    if not attr_def.HasField("default_value"):
        return None
    v = attr_def.default_value
    kind = v.WhichOneof("value")
    if kind == "list":
        return list(v.list.i)
    return getattr(v, kind)


class RequestInterfaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        tf.load_op_library(str(bpr_ops.library_path()))
        cls.ops = {name: op_def_registry.get(name) for name in TWML_OPS}
        cls.ops = {name: op for name, op in cls.ops.items() if op is not None}

    def test_all_37_ops_are_registered(self):
        self.assertEqual(len(TWML_OPS), 37)
        missing = sorted(set(TWML_OPS) - set(self.ops))
        self.assertEqual(missing, [])

    def test_each_op_has_twmls_inputs_outputs_and_attrs(self):
        for name, spec in TWML_OPS.items():
            with self.subTest(op=name):
                op = self.ops[name]
                inputs = [s for k, s in spec if k == "input"]
                outputs = [s for k, s in spec if k == "output"]
                attrs = [s for k, s in spec if k == "attr"]
                for args, want in ((op.input_arg, inputs), (op.output_arg, outputs)):
                    self.assertEqual([a.name for a in args], [w.split(":")[0] for w in want])
                    for a, w in zip(args, want):
                        t = w.split(":")[1].strip()
                        if t in DTYPES:
                            self.assertEqual(a.type, DTYPES[t], f"{name}.{a.name}")
                        else:
                            self.assertEqual(a.type_attr, t, f"{name}.{a.name}")
                self.assertEqual(
                    sorted(a.name for a in op.attr), sorted(w.split(":")[0] for w in attrs)
                )
                by_name = {a.name: a for a in op.attr}
                for w in attrs:
                    m = re.fullmatch(r"(\w+): ([^=]+?)(?: = (.*))?", w)
                    attr_name, attr_type, default = m.groups()
                    a = by_name[attr_name]
                    if attr_type.startswith("{"):
                        self.assertEqual(a.type, "type")
                        allowed = sorted(a.allowed_values.list.type)
                        want = sorted(DTYPES[t.strip()] for t in attr_type[1:-1].split(","))
                        self.assertEqual(allowed, want, f"{name}.{attr_name}")
                        continue
                    self.assertEqual(a.type, attr_type, f"{name}.{attr_name}")
                    if default is None:
                        self.assertIsNone(_default(a), f"{name}.{attr_name} has no default in twml")
                    else:
                        self.assertEqual(_default(a), eval(default), f"{name}.{attr_name}")


if __name__ == "__main__":
    unittest.main()

"""The request ops' attrs have one source: their registrations
(cpp_shim/request_ops.cc). The kernel passes every attr an op's OpDef declares
to Rust (bpr_request_op_new), which reads them by name and refuses an attr it
does not read or one it needs and was not given. This test takes each op's
OpDef from TensorFlow's registry and calls bpr_request_op_new through ctypes
the way the kernel does: the declared attrs must be accepted, and dropping any
one of them, or adding one, must be refused naming it. A drift on either side
(an attr added, renamed or dropped in a registration or in the reader) fails
here, at the op, before any graph runs it."""

import ctypes
import unittest

import tensorflow as tf
from tensorflow.python.framework import op_def_registry

import bpr_ops
from twml_interfaces import TWML_OPS, TWML_TENSOR_OPS

# The request ops: twml's 37 readers and 8 tensor getters (the writers and
# FeatureId are not ops of the request reader).
REQUEST_OPS = [n for n in {**TWML_OPS, **TWML_TENSOR_OPS} if n.startswith(("Decode", "Get"))]

ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_INT_LIST, ATTR_BOOL = 1, 2, 3, 4, 5


class Bytes(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Attr(ctypes.Structure):  # bpr_attr, cpp_shim/include/bpr_ops.h
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("kind", ctypes.c_int32),
        ("int_value", ctypes.c_int64),
        ("float_value", ctypes.c_float),
        ("string_value", Bytes),
        ("list", ctypes.POINTER(ctypes.c_int64)),
        ("list_len", ctypes.c_size_t),
    ]


SEVEN = (ctypes.c_int64 * 1)(7)


def attr(name, tf_type):
    """A value of the declared type that every op accepts (1 for ints; one
    id, 7, in every list: keep_codes then has keep_features' length)."""
    a = Attr(name=name.encode())
    if tf_type == "int":
        a.kind, a.int_value = ATTR_INT, 1  # a valid decode_mode, feature id and dtype_size
    elif tf_type == "float":
        a.kind = ATTR_FLOAT
    elif tf_type == "string":
        a.kind = ATTR_STRING
    elif tf_type == "bool":
        a.kind = ATTR_BOOL
    elif tf_type == "list(int)":
        a.kind, a.list, a.list_len = ATTR_INT_LIST, SEVEN, 1
    else:
        raise AssertionError(f"{name}: a {tf_type} attr, which the request kernels do not pass")
    return a


class RequestAttrsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        path = str(bpr_ops.library_path())
        tf.load_op_library(path)
        cls.lib = ctypes.CDLL(path)
        cls.lib.bpr_request_op_new.restype = ctypes.c_int32
        cls.lib.bpr_request_op_new.argtypes = [
            ctypes.c_char_p, ctypes.POINTER(Attr), ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t,
        ]
        cls.lib.bpr_request_op_free.argtypes = [ctypes.c_void_p]

    def new(self, op, attrs):
        arr = (Attr * max(len(attrs), 1))(*attrs)
        out = ctypes.c_void_p()
        msg = ctypes.create_string_buffer(2048)
        status = self.lib.bpr_request_op_new(op.encode(), arr, len(attrs), ctypes.byref(out),
                                             msg, len(msg))
        if status == 0:
            self.lib.bpr_request_op_free(out)
        return status, msg.value.decode()

    def test_the_45_request_ops_are_checked(self):
        self.assertEqual(len(REQUEST_OPS), 45)

    def test_each_op_reads_exactly_what_its_registration_declares(self):
        for op in REQUEST_OPS:
            op_def = op_def_registry.get(op)
            declared = [(a.name, a.type) for a in op_def.attr if a.type != "type"]
            with self.subTest(op=op):
                attrs = [attr(n, t) for n, t in declared]
                status, msg = self.new(op, attrs)
                self.assertEqual(status, 0, f"{op} refused its declared attrs: {msg}")
                for i, (name, _) in enumerate(declared):
                    status, msg = self.new(op, attrs[:i] + attrs[i + 1:])
                    self.assertEqual(status, 1, f"{op} without {name}")
                    self.assertIn(f"attr {name}", msg)
                    self.assertIn("was not given", msg)
                status, msg = self.new(op, attrs + [attr("keep_everything", "int")])
                self.assertEqual(status, 1, f"{op} with an undeclared attr")
                self.assertIn("keep_everything", msg)
                self.assertIn("does not read", msg)

    def test_an_op_rust_does_not_know_is_refused(self):
        status, msg = self.new("BatchPredictionResponseWriter", [])
        self.assertEqual(status, 1)
        self.assertIn("is not a request-side op", msg)


if __name__ == "__main__":
    unittest.main()

"""twml's nine small tensor ops have twml's registered interface in
libbpr_ops.so: names, attrs (types, allowed dtypes, defaults, order), inputs
and outputs, judged against twml's REGISTER_OP text (twml_tensors_interfaces.py).
"""

import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

import bpr_ops
from twml_opdef import check_opdef
from twml_tensors_interfaces import TWML_SMALL_TENSOR_OPS

@pytest.fixture(scope="module")
def registry():
    tf.load_op_library(str(bpr_ops.library_path()))
    return op_def_registry


def test_all_nine_are_registered(registry):
    assert len(TWML_SMALL_TENSOR_OPS) == 9
    assert [n for n in TWML_SMALL_TENSOR_OPS if registry.get(n) is None] == []


@pytest.mark.parametrize("name", sorted(TWML_SMALL_TENSOR_OPS))
def test_interface_is_twmls(registry, name):
    check_opdef(name, registry.get(name), TWML_SMALL_TENSOR_OPS[name])

"""twml's registered interfaces of its six sparse model ops, as data.

Copied from the REGISTER_OP calls of twitter/the-algorithm,
twml/libtwml/src/ops/: binary_sparse_dense_matmul.cpp,
sparse_normalization.cpp and partition_sparse_tensor.cpp, in registration
order. Facts, not code: test_model_sparse.py compares the OpDefs our library
registers against these (names, types, Ref, defaults, allowed types, order).
"""

# op name -> [(kind, spec)] in registration order; kind is input, output or attr.
TWML_SPARSE_OPS = {
    "BinarySparseTensorDenseMatMul": [
        ("input", "a_indices: Tindices"),
        ("input", "a_values: T"),
        ("input", "a_shape: int64"),
        ("input", "b: T"),
        ("output", "product: T"),
        ("attr", "T: type"),
        ("attr", "Tindices: {int32,int64} = DT_INT64"),
        ("attr", "adjoint_a: bool = false"),
        ("attr", "adjoint_b: bool = false"),
    ],
    "SparseMaxNorm": [
        ("attr", "epsilon: float"),
        ("input", "max_values: Ref(float)"),
        ("input", "indices: int64"),
        ("input", "values: float"),
        ("input", "is_training: bool"),
        ("output", "updated_max_values: Ref(float)"),
        ("output", "normalized_values: float"),
    ],
    "SparseBatchNorm": [
        ("attr", "input_size: int"),
        ("attr", "epsilon: float"),
        ("input", "means: Ref(float)"),
        ("input", "variances: Ref(float)"),
        ("input", "indices: int64"),
        ("input", "values: float"),
        ("input", "is_training: bool"),
        ("output", "updated_means: Ref(float)"),
        ("output", "updated_vars: Ref(float)"),
        ("output", "normalized_values: float"),
    ],
    "SparseMaxNormInference": [
        ("attr", "epsilon: float"),
        ("input", "max_values: float"),
        ("input", "indices: int64"),
        ("input", "values: float"),
        ("output", "normalized_values: float"),
    ],
    "SparseMaxNormTraining": [
        ("attr", "epsilon: float"),
        ("input", "max_values: float"),
        ("input", "indices: int64"),
        ("input", "values: float"),
        ("output", "updated_max_values: float"),
        ("output", "normalized_values: float"),
    ],
    "PartitionSparseTensorMod": [
        ("attr", "T: {float, double}"),
        ("input", "indices: int64"),
        ("input", "values: T"),
        ("output", "result: output_types"),
        ("attr", "num_partitions: int"),
        ("attr", "output_types: list({int64, float, double})"),
    ],
}

# The kernels twml registered: op -> [(T, Tindices)] (None where the op has no such attr).
TWML_SPARSE_KERNELS = {
    "BinarySparseTensorDenseMatMul": [
        (t, i) for t in ("float", "double", "int32", "complex64", "complex128") for i in ("int64", "int32")
    ],
    "PartitionSparseTensorMod": [("float", None), ("double", None)],
}

"""twml's sparse model ops and layers: FullSparse (a sparse x dense product,
with binary values through twml's BinarySparseTensorDenseMatMul), SparseMaxNorm,
Partition and Stitch, on Keras 3 and (bpr_ops.tf_keras_layers) tf_keras.

The op wrappers here take TF2 forms: a tf.SparseTensor in, tensors out. Old
graphs that call twml's ops directly (the Ref(float) `SparseMaxNorm` and
`SparseBatchNorm` in a v1 Session) run on the registered ops unchanged.

Importing this module registers the gradient of BinarySparseTensorDenseMatMul
(twml registered none, so its layer used the op only at inference): with it a
FullSparse with binary values trains with model.fit on the same op it serves
with.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from ._loader import load_library

_MATMUL = "BinarySparseTensorDenseMatMul"


def _lib():
    return load_library()


@tf.RegisterGradient(_MATMUL)
def _binary_matmul_grad(op, grad):
    """d(A' B')/dB' = A'^H G with A's values taken as 1 (real), so B's gradient
    is the op itself with adjoint_a flipped (and the adjoint of that with
    adjoint_b). A's values are not read by the op: they get no gradient."""
    a_indices, a_values, a_shape, _ = op.inputs
    adjoint_a = op.get_attr("adjoint_a")
    b_grad = _lib().binary_sparse_tensor_dense_mat_mul(
        a_indices, a_values, a_shape, grad, adjoint_a=not adjoint_a, adjoint_b=False
    )
    if op.get_attr("adjoint_b"):
        b_grad = tf.linalg.adjoint(b_grad)
    return [None, None, None, b_grad]


def binary_sparse_dense_matmul(sp_a: tf.SparseTensor, b, adjoint_a=False, adjoint_b=False, name=None):
    """`sp_a * b` with every value of `sp_a` taken as 1 (twml's binary
    features): each entry (m, k) of A adds row k of B to row m. `b` is dense
    [k, n]; float32/float64/int32/complex. Differentiable in `b`."""
    if not isinstance(sp_a, tf.SparseTensor):
        raise TypeError(f"{_MATMUL}: sp_a must be a tf.SparseTensor, got {type(sp_a).__name__}")
    b = tf.convert_to_tensor(b)
    values = sp_a.values if sp_a.values.dtype == b.dtype else tf.cast(sp_a.values, b.dtype)
    return _lib().binary_sparse_tensor_dense_mat_mul(
        sp_a.indices, values, sp_a.dense_shape, b, adjoint_a=adjoint_a, adjoint_b=adjoint_b, name=name
    )


def sparse_max_norm_inference(max_values, indices, values, epsilon=1e-5, name=None):
    """values[i] / max(max(max_values[indices[i]], |values[i]|), epsilon)."""
    return _lib().sparse_max_norm_inference(max_values, indices, values, epsilon=epsilon, name=name)


def sparse_max_norm_training(max_values, indices, values, epsilon=1e-5, name=None):
    """(updated_max_values, normalized_values): the maxima updated value by
    value, each value normalised by its feature's maximum so far."""
    return _lib().sparse_max_norm_training(max_values, indices, values, epsilon=epsilon, name=name)


def partition_sparse_tensor_mod(indices, values, num_partitions: int, name=None):
    """[(indices_p, values_p) for p in range(num_partitions)]: row (id, key) of
    `indices` [n, 2] goes to partition key mod num_partitions as (id, key div
    num_partitions), in input order (twml's PartitionSparseTensorMod)."""
    if not isinstance(num_partitions, int) or isinstance(num_partitions, bool) or num_partitions <= 0:
        raise ValueError(f"PartitionSparseTensorMod: num_partitions must be a positive int, got {num_partitions!r}")
    values = tf.convert_to_tensor(values)
    out = _lib().partition_sparse_tensor_mod(
        indices, values, num_partitions=num_partitions, output_types=[tf.int64, values.dtype] * num_partitions,
        name=name,
    )
    return [(out[2 * p], out[2 * p + 1]) for p in range(num_partitions)]


# ---- layers ------------------------------------------------------------------


def _static_width(shape, where: str, what: str) -> int:
    shape = tuple(shape) if shape is not None else None
    if shape is None or len(shape) != 2:
        raise ValueError(f"{where}: {what} must be a 2-D sparse tensor [batch, input_size], got shape {shape}")
    width = shape[1]
    if width is None:
        raise ValueError(
            f"{where}: {what} has shape {shape}: its input_size (the second dim) must be known when the "
            "layer is built (e.g. keras.Input(shape=(2**bits,), sparse=True))"
        )
    return int(width)


def _partition_sizes(size: int, parts: int) -> list[int]:
    """tf.fixed_size_partitioner's split: the first size % parts get one more."""
    base, extra = divmod(size, parts)
    return [base + (1 if p < extra else 0) for p in range(parts)]


class _FullSparse:
    """outputs = activation(inputs . weight + bias), `inputs` a tf.SparseTensor
    [batch, input_size] (or a list of them, summed), weight [input_size,
    output_size] (twml's FullSparse).

    Args:
      output_size: positive int, the output's width.
      activation: a Keras activation (name or callable), or None.
      use_binary_values: take every value of the input as 1: the product is
        twml's BinarySparseTensorDenseMatMul (which trains: its gradient is
        registered). False: tf.sparse.sparse_dense_matmul with the values. A
        list of bools (one per input) when called on a list.
      weight_initializer: default zeros (twml's).
      bias_initializer: default the constant 1 / output_size (twml's).
      weight_regularizer, bias_regularizer: Keras regularizers, or None.
      num_partitions: None, or a positive int: the weight is made of that many
        variables (weight/part_0, ...), split along `partition_axis` as
        tf.fixed_size_partitioner split twml's.
      partition_axis: 0 (rows) or 1 (columns).

    Not taken from twml's: use_sparse_grads, use_compression and
    use_binary_sparse_dense_matmul (the binary op is always used for binary
    values, in training too).
    """

    def __init__(
        self,
        output_size,
        activation=None,
        use_binary_values=False,
        weight_initializer=None,
        bias_initializer=None,
        weight_regularizer=None,
        bias_regularizer=None,
        num_partitions=None,
        partition_axis=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        km = self._keras
        where = f"{type(self).__name__} '{self.name}'"
        if isinstance(output_size, bool) or not isinstance(output_size, int) or output_size <= 0:
            raise ValueError(f"{where}: output_size must be a positive int, got {output_size!r}")
        if partition_axis not in (0, 1) or isinstance(partition_axis, bool):
            raise ValueError(f"{where}: partition_axis must be 0 or 1, got {partition_axis!r}")
        if num_partitions is not None and (
            isinstance(num_partitions, bool) or not isinstance(num_partitions, int) or num_partitions <= 0
        ):
            raise ValueError(f"{where}: num_partitions must be None or a positive int, got {num_partitions!r}")
        if isinstance(use_binary_values, (list, tuple)):
            if not all(isinstance(b, bool) for b in use_binary_values):
                raise ValueError(f"{where}: use_binary_values must be a bool or a list of bools, got {use_binary_values!r}")
            use_binary_values = list(use_binary_values)
        elif not isinstance(use_binary_values, bool):
            raise ValueError(f"{where}: use_binary_values must be a bool or a list of bools, got {use_binary_values!r}")
        self.output_size = output_size
        self.activation = km.activations.get(activation)
        self.use_binary_values = use_binary_values
        self.weight_initializer = km.initializers.get(weight_initializer or "zeros")
        self.bias_initializer = km.initializers.get(
            bias_initializer if bias_initializer is not None else km.initializers.Constant(1.0 / output_size)
        )
        self.weight_regularizer = km.regularizers.get(weight_regularizer)
        self.bias_regularizer = km.regularizers.get(bias_regularizer)
        self.num_partitions = num_partitions
        self.partition_axis = partition_axis

    def _where(self):
        return f"{type(self).__name__} '{self.name}'"

    def _input_shapes(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
            return [tuple(s) for s in input_shape]
        if isinstance(input_shape, (list, tuple)) and input_shape and hasattr(input_shape[0], "as_list"):
            return [tuple(s.as_list()) for s in input_shape]
        if hasattr(input_shape, "as_list"):
            return [tuple(input_shape.as_list())]
        return [tuple(input_shape)]

    def build(self, input_shape):
        shapes = self._input_shapes(input_shape)
        where = self._where()
        widths = [_static_width(s, where, f"input {i}" if len(shapes) > 1 else "the input") for i, s in enumerate(shapes)]
        if len(set(widths)) != 1:
            raise ValueError(f"{where}: every input must have the same input_size, got shapes {shapes}")
        if isinstance(self.use_binary_values, list) and len(self.use_binary_values) != len(shapes):
            raise ValueError(
                f"{where}: use_binary_values has {len(self.use_binary_values)} entries for {len(shapes)} inputs"
            )
        in_size = widths[0]
        dtype = tf.as_dtype(self.dtype if isinstance(self.dtype, str) else getattr(self.dtype, "name", self.dtype))
        parts = self.num_partitions or 1
        split_dim, other = (in_size, self.output_size) if self.partition_axis == 0 else (self.output_size, in_size)
        requested = math.ceil(split_dim / parts) * other * dtype.size
        if requested >= 2**31:
            # twml's limit (protobuf's 2GB per tensor), kept: a model that
            # moves keeps its partitioning.
            raise ValueError(
                f"{where}: a weight partition of {requested} bytes ([{in_size}, {self.output_size}] {dtype.name} "
                f"over {parts} partition(s)) is not below 2GB: pass a larger num_partitions, or reduce "
                "output_size or the input's bits"
            )
        self.bias = self.add_weight(
            name="bias", shape=(self.output_size,), initializer=self.bias_initializer,
            regularizer=self.bias_regularizer, trainable=True,
        )
        if self.num_partitions is None:
            self.weights_parts = [
                self.add_weight(
                    name="weight", shape=(in_size, self.output_size), initializer=self.weight_initializer,
                    regularizer=self.weight_regularizer, trainable=True,
                )
            ]
        else:
            self.weights_parts = []
            for p, size in enumerate(_partition_sizes(split_dim, parts)):
                shape = (size, other) if self.partition_axis == 0 else (other, size)
                self.weights_parts.append(
                    self.add_weight(
                        name=f"weight_part_{p}", shape=shape, initializer=self.weight_initializer,
                        regularizer=self.weight_regularizer, trainable=True,
                    )
                )
        self.input_size = in_size
        self.built = True

    def _weight(self):
        if len(self.weights_parts) == 1:
            return tf.convert_to_tensor(self.weights_parts[0])
        return tf.concat([tf.convert_to_tensor(w) for w in self.weights_parts], axis=self.partition_axis)

    def _one(self, sp, binary, weight, i):
        where = self._where()
        if not isinstance(sp, tf.SparseTensor):
            raise TypeError(
                f"{where}: input {i} must be a tf.SparseTensor [batch, {self.input_size}], got {type(sp).__name__}"
            )
        if sp.shape.rank is not None and sp.shape.rank != 2:
            raise ValueError(f"{where}: input {i} must be 2-D [batch, {self.input_size}], got shape {sp.shape}")
        if binary:
            return binary_sparse_dense_matmul(sp, weight)
        values = sp.values if sp.values.dtype == weight.dtype else tf.cast(sp.values, weight.dtype)
        return tf.sparse.sparse_dense_matmul(tf.SparseTensor(sp.indices, values, sp.dense_shape), weight)

    def call(self, inputs):
        weight = self._weight()
        if isinstance(inputs, (list, tuple)):
            binary = self.use_binary_values
            if not isinstance(binary, list):
                binary = [binary] * len(inputs)
            outputs = tf.add_n([self._one(sp, b, weight, i) for i, (sp, b) in enumerate(zip(inputs, binary))])
        else:
            if isinstance(self.use_binary_values, list):
                raise ValueError(
                    f"{self._where()}: use_binary_values is a list ({self.use_binary_values}) but the layer "
                    "was called on one tensor"
                )
            outputs = self._one(inputs, self.use_binary_values, weight, 0)
        outputs = tf.nn.bias_add(outputs, tf.convert_to_tensor(self.bias))
        return self.activation(outputs) if self.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        shapes = self._input_shapes(input_shape)
        return (shapes[0][0], self.output_size)

    def get_config(self):
        km = self._keras
        return {
            **super().get_config(),
            "output_size": self.output_size,
            "activation": km.activations.serialize(self.activation) if self.activation is not None else None,
            "use_binary_values": self.use_binary_values,
            "weight_initializer": km.initializers.serialize(self.weight_initializer),
            "bias_initializer": km.initializers.serialize(self.bias_initializer),
            "weight_regularizer": km.regularizers.serialize(self.weight_regularizer) if self.weight_regularizer else None,
            "bias_regularizer": km.regularizers.serialize(self.bias_regularizer) if self.bias_regularizer else None,
            "num_partitions": self.num_partitions,
            "partition_axis": self.partition_axis,
        }


class _SparseMaxNorm:
    """Max-normalises a tf.SparseTensor [batch, input_size] per column (twml's
    SparseMaxNorm): values / max(max_x[col], |value|, epsilon), plus a learned
    bias_x[col]; returns a tf.SparseTensor with the same indices.

    max_x (non-trainable, [input_size]) is updated with the batch's absolute
    values when `is_training` is True and the layer runs in training (Keras's
    `training=True`, as in model.fit); otherwise it is only read. The
    normalised values carry no gradient (twml's stop_gradient); bias_x learns.

    Args:
      max_x_initializer: default zeros. bias_x_initializer: default zeros.
      is_training: whether the maxima learn. epsilon: the smallest maximum.
      use_bias: add bias_x.
    """

    def __init__(self, max_x_initializer=None, bias_x_initializer=None, is_training=True, epsilon=1e-5,
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        km = self._keras
        where = f"{type(self).__name__} '{self.name}'"
        if not isinstance(is_training, bool):
            raise ValueError(f"{where}: is_training must be a bool, got {is_training!r}")
        if not isinstance(use_bias, bool):
            raise ValueError(f"{where}: use_bias must be a bool, got {use_bias!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
            raise ValueError(f"{where}: epsilon must be a non-negative number, got {epsilon!r}")
        self.max_x_initializer = km.initializers.get(max_x_initializer or "zeros")
        self.bias_x_initializer = km.initializers.get(bias_x_initializer or "zeros")
        self.is_training = is_training
        self.epsilon = float(epsilon)
        self.use_bias = use_bias

    def build(self, input_shape):
        shape = tuple(input_shape.as_list()) if hasattr(input_shape, "as_list") else tuple(input_shape)
        width = _static_width(shape, f"{type(self).__name__} '{self.name}'", "the input")
        self.max_x = self.add_weight(name="max_x", shape=(width,), initializer=self.max_x_initializer,
                                     trainable=False, dtype="float32")
        self.bias_x = None
        if self.use_bias:
            self.bias_x = self.add_weight(name="bias_x", shape=(width,), initializer=self.bias_x_initializer,
                                          trainable=True, dtype="float32")
        self.built = True

    def call(self, inputs, training=None):
        if not isinstance(inputs, tf.SparseTensor):
            raise TypeError(f"{type(self).__name__} '{self.name}': the input must be a tf.SparseTensor, got "
                            f"{type(inputs).__name__}")
        cols = inputs.indices[:, 1]
        values = tf.cast(inputs.values, tf.float32)
        max_x = tf.convert_to_tensor(self.max_x)
        if self.is_training and training:
            updated, normalized = sparse_max_norm_training(max_x, cols, values, self.epsilon)
            self.max_x.assign(updated)
        else:
            normalized = sparse_max_norm_inference(max_x, cols, values, self.epsilon)
        normalized = tf.stop_gradient(normalized)
        if self.bias_x is not None:
            normalized = normalized + tf.gather(tf.convert_to_tensor(self.bias_x), cols)
        out = tf.SparseTensor(inputs.indices, normalized, inputs.dense_shape)
        # The input's static shape, which the next layer's build needs (tf_keras
        # traces with a dense_shape tensor of unknown value).
        out.set_shape(inputs.shape)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        km = self._keras
        return {
            **super().get_config(),
            "max_x_initializer": km.initializers.serialize(self.max_x_initializer),
            "bias_x_initializer": km.initializers.serialize(self.bias_x_initializer),
            "is_training": self.is_training,
            "epsilon": self.epsilon,
            "use_bias": self.use_bias,
        }


class _Partition:
    """twml's Partition: call(partition_ids, input_vals, input_keys) ->
    [vals_parts, keys_parts, indices_parts], each a list of `partitions`
    tensors (tf.dynamic_partition; indices are positions in the input)."""

    def __init__(self, partitions=2, **kwargs):
        super().__init__(**kwargs)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions <= 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': partitions must be a positive int, got {partitions!r}")
        self.partitions = partitions

    def call(self, partition_ids, input_vals, input_keys):
        ids = tf.cast(partition_ids, tf.int32)
        return [
            tf.dynamic_partition(input_vals, ids, self.partitions),
            tf.dynamic_partition(input_keys, ids, self.partitions),
            tf.dynamic_partition(tf.range(tf.shape(ids)[0]), ids, self.partitions),
        ]

    def get_config(self):
        return {**super().get_config(), "partitions": self.partitions}


class _Stitch:
    """twml's Stitch: call(partitioned_vals, partitioned_keys,
    partitioned_indices) -> [vals, keys], Partition's inverse
    (tf.dynamic_stitch)."""

    def call(self, partitioned_vals, partitioned_keys, partitioned_indices):
        indices = [tf.cast(i, tf.int32) for i in partitioned_indices]
        return [tf.dynamic_stitch(indices, partitioned_vals), tf.dynamic_stitch(indices, partitioned_keys)]


def sparse_layers(keras_module, module: str) -> dict:
    """{name: class} of the sparse layers on `keras_module` (keras or
    tf_keras), registered with it as "bpr_ops>Name"."""
    register = keras_module.saving.register_keras_serializable(package="bpr_ops")
    made = {}
    for name, logic in (
        ("FullSparse", _FullSparse),
        ("SparseMaxNorm", _SparseMaxNorm),
        ("Partition", _Partition),
        ("Stitch", _Stitch),
    ):
        cls = type(name, (logic, keras_module.layers.Layer),
                   {"__doc__": logic.__doc__, "__module__": module, "_keras": keras_module})
        cls.__qualname__ = name
        made[name] = register(cls)
    return made


_KERAS_3 = sparse_layers(keras, __name__)
FullSparse = _KERAS_3["FullSparse"]
SparseMaxNorm = _KERAS_3["SparseMaxNorm"]
Partition = _KERAS_3["Partition"]
Stitch = _KERAS_3["Stitch"]

"""twml's discretizers and isotonic calibration: op wrappers and layers.

The ops (`HashingDiscretizer`, `PercentileDiscretizerV2`, `MDL`,
`IsotonicCalibration`) have twml's registered interfaces, so graphs twml
exported run unchanged. twml's `HashingDiscretizer` and
`PercentileDiscretizerV2` take their calibration as tensor attrs, which TF2's
eager mode rejects; the layers run `BprHashingDiscretizer` and
`BprPercentileDiscretizer` (ours: the same kernels, the calibration as
inputs), which work eagerly, in tf.function, in model.fit and in exports.

The layers are Keras 3 classes; `discretizer_layers(keras_module, module)`
makes the same classes on tf_keras (bpr_ops.tf_keras_layers), one body of
code for both.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ._loader import load_library

# twml.constants.HashingDiscretizerOptions.
SEARCH_LOWER_BOUND = 0
SEARCH_LINEAR = 1
SEARCH_UPPER_BOUND = 2
HASH_32BIT = 0
HASH_64BIT = 4

# Outputs of [batch, 1 << out_bits] must fit int64.
_MAX_OUT_BITS = 62


def _ops():
    return load_library()


def hashing_discretizer(input_ids, input_vals, bin_vals, feature_ids, n_bin, output_bits,
                        options=0, name=None):
    """twml's hashing discretizer, eager or in a graph: feature_ids is an
    input (int64 [F]) here. Returns (new_keys int64 [N], new_vals [N])."""
    return _ops().bpr_hashing_discretizer(
        input_ids=input_ids, input_vals=input_vals, bin_vals=bin_vals,
        feature_ids=tf.convert_to_tensor(feature_ids, tf.int64), n_bin=n_bin,
        output_bits=output_bits, options=options, name=name)


def twml_hashing_discretizer(input_ids, input_vals, bin_vals, feature_ids, n_bin, output_bits,
                             cost_per_unit=500, options=0, name=None):
    """twml's op as registered (feature_ids a tensor attr): graphs only
    (tf.function, tf.compat.v1); for old graphs and comparisons."""
    return _ops().hashing_discretizer(
        input_ids=input_ids, input_vals=input_vals, bin_vals=bin_vals,
        feature_ids=tf.make_tensor_proto(np.asarray(feature_ids, dtype=np.int64)), n_bin=n_bin,
        output_bits=output_bits, cost_per_unit=cost_per_unit, options=options, name=name)


def isotonic_calibration(inputs, xs, ys, name=None):
    """twml's isotonic calibration: inputs [batch, labels], xs and ys
    [labels, bins]; each column interpolated on its row of (xs, ys)."""
    return _ops().isotonic_calibration(input=inputs, xs=xs, ys=ys, name=name)


@tf.RegisterGradient("IsotonicCalibration")
def _isotonic_gradient(op, grad):
    """The slope of the segment each input falls in (0 outside xs), so that a
    model with an Isotonic layer trains. xs and ys get no gradient: they are
    the calibration, fitted by IsotonicCalibrator, not by training."""
    inputs, xs, ys = op.inputs
    bins = tf.shape(xs)[1]
    # Column j searched in row j of xs: [labels, batch].
    right = tf.searchsorted(xs, tf.transpose(inputs), side="right")
    inside = (right > 0) & (right < bins)
    right = tf.clip_by_value(right, 1, tf.maximum(bins - 1, 1))
    left = right - 1
    x0, x1 = tf.gather(xs, left, batch_dims=1), tf.gather(xs, right, batch_dims=1)
    y0, y1 = tf.gather(ys, left, batch_dims=1), tf.gather(ys, right, batch_dims=1)
    slope = tf.math.divide_no_nan(y1 - y0, x1 - x0)
    slope = tf.where(inside, slope, tf.zeros_like(slope))
    return grad * tf.transpose(slope), None, None


def percentile_discretizer(input_ids, input_vals, bin_ids, bin_vals, feature_offsets, feature_ids,
                           feature_indices, output_bits, name=None):
    """twml's PercentileDiscretizerV2, eager or in a graph: feature_ids and
    feature_indices (int64 [K]) are inputs here (BprPercentileDiscretizer).
    Returns (new_keys int64 [N], new_vals [N])."""
    return _ops().bpr_percentile_discretizer(
        input_ids=input_ids, input_vals=input_vals, bin_ids=bin_ids, bin_vals=bin_vals,
        feature_offsets=feature_offsets, feature_ids=tf.convert_to_tensor(feature_ids, tf.int64),
        feature_indices=tf.convert_to_tensor(feature_indices, tf.int64), output_bits=output_bits,
        name=name)


def twml_percentile_discretizer_v2(input_ids, input_vals, bin_ids, bin_vals, feature_offsets, output_bits,
                                   feature_ids, feature_indices, start_compute=0, end_compute=-1,
                                   cost_per_unit=100, name=None):
    """twml's PercentileDiscretizerV2 as registered (feature_ids and
    feature_indices tensor attrs): graphs only (tf.function, tf.compat.v1);
    for old graphs and comparisons. start_compute and end_compute are
    ignored, as twml's kernel ignored them."""
    return _ops().percentile_discretizer_v2(
        input_ids=input_ids, input_vals=input_vals, bin_ids=bin_ids, bin_vals=bin_vals,
        feature_offsets=feature_offsets,
        start_compute=tf.constant(start_compute, tf.int64), end_compute=tf.constant(end_compute, tf.int64),
        output_bits=output_bits,
        feature_ids=tf.make_tensor_proto(np.asarray(feature_ids, dtype=np.int64)),
        feature_indices=tf.make_tensor_proto(np.asarray(feature_indices, dtype=np.int64)),
        cost_per_unit=cost_per_unit, name=name)


def mdl(keys, vals, bin_ids, bin_vals, feature_offsets, name=None):
    """twml's MDL op: keys are feature indices (-1 passes the value through)."""
    return _ops().mdl(keys=keys, vals=vals, bin_ids=bin_ids, bin_vals=bin_vals,
                      feature_offsets=feature_offsets, name=name)


def _int(value, what, where, low=None, high=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {what} must be an int, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{where}: {what} must be in [{low}, {high}], got {value}")
    return value


class _HashingDiscretizer:
    """Discretizes the values of calibrated features of a sparse tensor, as
    twml's HashingDiscretizer: a value of feature F (its column) in bin b
    becomes value 1 in column hash(F, b); other features keep their value,
    their column masked to out_bits. The output is a tf.SparseTensor
    [batch, 1 << out_bits] with the input's rows. A dense input [batch,
    input_size] is read as sparse: its zeros are absent features. Usually made by
    `bpr_ops.calibrators.HashingDiscretizerCalibrator.to_layer()`.

    Args:
      feature_ids: the calibrated feature ids (int64 [F]).
      bin_vals: F * n_bin bin boundaries, feature_ids[i]'s at
        bin_vals[i * n_bin:(i + 1) * n_bin] (ascending).
      n_bin: boundaries per feature (n_bin + 1 bins).
      out_bits: output columns are < 1 << out_bits (1 to 62).
      options: twml's search | hash bits (SEARCH_* | HASH_* here); 0 is
        twml's default (lower bound, 32-bit hash).
    """

    def __init__(self, feature_ids, bin_vals, n_bin, out_bits, options=0, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        self.n_bin = _int(n_bin, "n_bin", where, 1)
        self.out_bits = _int(out_bits, "out_bits", where, 1, _MAX_OUT_BITS)
        self.options = _int(options, "options", where, 0, (1 << 31) - 1)
        ids = np.asarray(feature_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"{where}: feature_ids must be a vector of ints, got shape "
                             f"{ids.shape} of {ids.dtype}")
        bins = np.asarray(bin_vals, dtype=np.float64)
        if bins.ndim != 1 or bins.size != ids.size * self.n_bin:
            raise ValueError(
                f"{where}: bin_vals must be a vector of n_bin ({self.n_bin}) x {ids.size} feature_ids "
                f"= {ids.size * self.n_bin} boundaries, got shape {bins.shape}")
        self.feature_ids = ids.astype(np.int64)
        self.bin_vals = bins

    def _where(self):
        return f"{type(self).__name__} '{self.name}'"

    def _check(self, inputs):
        if not isinstance(inputs, tf.SparseTensor):
            inputs = tf.convert_to_tensor(inputs)
        rank = inputs.shape.rank
        if rank is not None and rank != 2:
            raise ValueError(f"{self._where()}: expects a rank-2 sparse tensor [batch, input_size], "
                             f"got shape {inputs.shape}")
        if inputs.dtype not in (tf.float32, tf.float64):
            raise ValueError(f"{self._where()}: values must be float32 or float64, got {inputs.dtype.name}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 << self.out_bits)

    def call(self, inputs):
        self._check(inputs)
        if not isinstance(inputs, tf.SparseTensor):
            # A dense [batch, input_size] input: its zeros are absent features
            # (Keras traces exports of sparse inputs with dense specs).
            inputs = tf.sparse.from_dense(inputs)
        rows, keys = inputs.indices[:, 0], inputs.indices[:, 1]
        vals = inputs.values
        if self.feature_ids.size:
            keys, vals = hashing_discretizer(
                keys, vals, tf.constant(self.bin_vals, vals.dtype), tf.constant(self.feature_ids),
                n_bin=self.n_bin, output_bits=self.out_bits, options=self.options)
        else:
            # twml's layer skips the op then and limits bits in Python (64-bit).
            keys = tf.bitwise.bitwise_and(keys, tf.constant((1 << self.out_bits) - 1, tf.int64))
        shape = tf.stack([inputs.dense_shape[0], tf.constant(1 << self.out_bits, tf.int64)])
        return tf.SparseTensor(tf.stack([rows, keys], axis=1), vals, shape)

    def get_config(self):
        return {**super().get_config(), "feature_ids": self.feature_ids.tolist(),
                "bin_vals": self.bin_vals.tolist(), "n_bin": self.n_bin, "out_bits": self.out_bits,
                "options": self.options}


class _Isotonic:
    """twml's Isotonic layer: calibrates [batch, n_unit] scores (usually a
    model's last unit), each column interpolated linearly on its row of
    (xs_input, ys_input), clamped at the ends. Usually made by
    `bpr_ops.calibrators.IsotonicCalibrator.to_layer()`. Trains: the gradient
    is the slope of each input's segment (the calibration is fixed).

    Args:
      n_unit: columns of the input.
      n_bin: points per column.
      xs_input, ys_input: [n_unit, n_bin]; xs ascending, no NaN.
    """

    def __init__(self, n_unit, n_bin, xs_input, ys_input, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        where = f"{type(self).__name__} '{self.name}'"
        self.n_unit = _int(n_unit, "n_unit", where, 1)
        self.n_bin = _int(n_bin, "n_bin", where, 1)
        want = (self.n_unit, self.n_bin)
        xs = np.asarray(xs_input, dtype=np.float64)
        ys = np.asarray(ys_input, dtype=np.float64)
        for what, a in (("xs_input", xs), ("ys_input", ys)):
            if a.shape != want:
                raise ValueError(f"{where}: {what} must have shape [n_unit, n_bin] = {list(want)}, "
                                 f"got {list(a.shape)}")
        if np.isnan(xs).any():
            at = tuple(int(i) for i in np.argwhere(np.isnan(xs))[0])
            raise ValueError(f"{where}: xs_input{list(at)} is NaN; bin boundaries must be numbers")
        self.xs_input, self.ys_input = xs, ys

    def build(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != 2 or (shape[1] is not None and shape[1] != self.n_unit):
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs [batch, n_unit = "
                             f"{self.n_unit}], got shape {list(shape)}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, inputs):
        dtype = inputs.dtype if inputs.dtype in (tf.float32, tf.float64) else tf.float32
        inputs = tf.cast(inputs, dtype)
        return isotonic_calibration(inputs, tf.constant(self.xs_input, dtype), tf.constant(self.ys_input, dtype))

    def get_config(self):
        return {**super().get_config(), "n_unit": self.n_unit, "n_bin": self.n_bin,
                "xs_input": self.xs_input.tolist(), "ys_input": self.ys_input.tolist()}


# twml's PercentileDiscretizerV2 computes 1 << output_bits in a 32-bit int.
_MAX_PERCENTILE_OUT_BITS = 30


def _sparse_parts(layer, inputs):
    """(rows, keys, vals, batch) of a rank-2 sparse (or dense: zeros absent)
    float input, with the layer named in mistakes."""
    layer._check(inputs)
    if not isinstance(inputs, tf.SparseTensor):
        inputs = tf.sparse.from_dense(inputs)
    return inputs.indices[:, 0], inputs.indices[:, 1], inputs.values, inputs.dense_shape[0]


class _PercentileCalibration:
    """The calibration twml's PercentileDiscretizer and MDL layers take,
    checked at construction (twml's layers checked nothing and read out of
    bounds or hung on a mistake)."""

    _max_out_bits = _MAX_OUT_BITS

    def __init__(self, n_feature, n_bin, out_bits, bin_values=None, hash_keys=None, hash_values=None,
                 bin_ids=None, feature_offsets=None, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        where = self._where()
        self.n_feature = _int(n_feature, "n_feature", where, 0)
        self.n_bin = _int(n_bin, "n_bin", where, 1)
        self.out_bits = _int(out_bits, "out_bits", where, 1, self._max_out_bits)
        size = self.n_feature * (self.n_bin + 1)
        parts = {}
        for what, value, length, kind in (
                ("bin_values", bin_values, size, np.float64), ("bin_ids", bin_ids, size, np.int64),
                ("hash_keys", hash_keys, self.n_feature, np.int64),
                ("hash_values", hash_values, self.n_feature, np.int64),
                ("feature_offsets", feature_offsets, self.n_feature, np.int64)):
            if value is None:
                if length:
                    raise ValueError(f"{where}: {what} is required (twml's layer read uninitialised memory "
                                     "without it); a calibrator's to_layer() gives every argument")
                value = np.zeros(0, kind)
            a = np.asarray(value)
            if a.shape != (length,):
                raise ValueError(f"{where}: {what} must be a vector of {length} "
                                 f"({'n_feature x (n_bin + 1)' if length == size else 'n_feature'}, "
                                 f"n_feature={self.n_feature}, n_bin={self.n_bin}), got shape {list(a.shape)}")
            if kind is np.int64 and a.size and not np.all(a == np.round(a)):
                raise ValueError(f"{where}: {what} must hold integers, got {a.dtype}")
            parts[what] = a.astype(kind)
        if np.isnan(parts["bin_values"]).any():
            at = int(np.flatnonzero(np.isnan(parts["bin_values"]))[0])
            raise ValueError(f"{where}: bin_values[{at}] is NaN; bin boundaries must be numbers "
                             "(twml's search never ends on a NaN boundary)")
        offsets = parts["feature_offsets"]
        ends = np.append(offsets[1:], size)
        bad = np.flatnonzero((offsets < 0) | (offsets >= ends))
        if bad.size:
            k = int(bad[0])
            raise ValueError(f"{where}: feature_offsets[{k}] = {offsets[k]} starts a run of bins ending at "
                             f"{ends[k]}; runs must be non-empty and inside the {size} bins (ascending from 0)")
        values = parts["hash_values"]
        if values.size and (values.min() < 0 or values.max() >= self.n_feature):
            raise ValueError(f"{where}: hash_values must be feature indices in [0, n_feature = {self.n_feature}), "
                             f"got values in [{values.min()}, {values.max()}]")
        keys = parts["hash_keys"]
        if np.unique(keys).size != keys.size:
            raise ValueError(f"{where}: hash_keys must be distinct (one index per feature id)")
        if (1 << self.out_bits) <= size:
            raise ValueError(f"{where}: the discretizer makes up to {size} new ids but out_bits={self.out_bits} "
                             f"allows {1 << self.out_bits}; raise out_bits (twml's calibrator check)")
        self.bin_values, self.bin_ids = parts["bin_values"], parts["bin_ids"]
        self.hash_keys, self.hash_values, self.feature_offsets = keys, values, offsets

    def _where(self):
        return f"{type(self).__name__} '{self.name}'"

    _check = _HashingDiscretizer._check

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 << self.out_bits)

    def _output(self, rows, keys, vals, batch):
        shape = tf.stack([batch, tf.constant(1 << self.out_bits, tf.int64)])
        return tf.SparseTensor(tf.stack([rows, keys], axis=1), vals, shape)

    def get_config(self):
        return {**super().get_config(), "n_feature": self.n_feature, "n_bin": self.n_bin,
                "out_bits": self.out_bits, "bin_values": self.bin_values.tolist(),
                "hash_keys": self.hash_keys.tolist(), "hash_values": self.hash_values.tolist(),
                "bin_ids": self.bin_ids.tolist(), "feature_offsets": self.feature_offsets.tolist()}


class _PercentileDiscretizer(_PercentileCalibration):
    """twml's PercentileDiscretizer layer: a value of a calibrated feature
    (its column F in hash_keys, at index k = hash_values[.]) becomes value 1
    in column bin_ids[j], j the boundary of bin_values[feature_offsets[k]:...]
    twml's search stops at; other features keep their value, their column
    F % ((1 << out_bits) - len(bin_ids)) + len(bin_ids) (twml's unsigned
    modulo: a negative column wraps as an unsigned 64-bit number). The output
    is a tf.SparseTensor [batch, 1 << out_bits] with the input's rows; a dense
    input [batch, input_size] is read as sparse (its zeros are absent).
    Usually made by `bpr_ops.calibrators.PercentileDiscretizerCalibrator.to_layer()`.

    Args (twml's):
      n_feature, n_bin: the calibration's size: bin_values and bin_ids hold
        n_feature x (n_bin + 1) entries, hash_keys, hash_values and
        feature_offsets n_feature.
      out_bits: output columns are < 1 << out_bits (1 to 30: twml's op
        computes 1 << out_bits in a 32-bit int).
      bin_values, bin_ids, hash_keys, hash_values, feature_offsets: the
        calibration (twml's names).
      num_parts, cost_per_unit: kept in the config; twml's layer did not use
        num_parts, and our kernel shards by itself.
    call(inputs, keep_inputs=False): keep_inputs adds the inputs, their
    columns F mod ((1 << out_bits) - n_feature x (n_bin + 1)) + that size,
    to the output (twml's option; uncalibrated values end up doubled, as in twml).
    """

    _max_out_bits = _MAX_PERCENTILE_OUT_BITS

    def __init__(self, n_feature, n_bin, out_bits, bin_values=None, hash_keys=None, hash_values=None,
                 bin_ids=None, feature_offsets=None, num_parts=1, cost_per_unit=100, **kwargs):
        super().__init__(n_feature, n_bin, out_bits, bin_values, hash_keys, hash_values, bin_ids,
                         feature_offsets, **kwargs)
        self.num_parts = _int(num_parts, "num_parts", self._where(), 1)
        self.cost_per_unit = _int(cost_per_unit, "cost_per_unit", self._where(), 0)

    def call(self, inputs, keep_inputs=False):
        rows, keys, vals, batch = _sparse_parts(self, inputs)
        if self.n_feature == 0:
            # twml's layer skips the op then and limits bits in Python.
            new_keys = tf.bitwise.bitwise_and(keys, tf.constant((1 << self.out_bits) - 1, tf.int64))
            return self._output(rows, new_keys, vals, batch)
        new_keys, new_vals = percentile_discretizer(
            keys, vals, tf.constant(self.bin_ids), tf.constant(self.bin_values, vals.dtype),
            tf.constant(self.feature_offsets), tf.constant(self.hash_keys), tf.constant(self.hash_values),
            output_bits=self.out_bits)
        output = self._output(rows, new_keys, new_vals, batch)
        if not keep_inputs:
            return output
        size = self.n_feature * (self.n_bin + 1)
        kept = tf.math.floormod(keys, tf.constant((1 << self.out_bits) - size, tf.int64)) + size
        both = tf.sparse.add(tf.sparse.reorder(self._output(rows, kept, vals, batch)), tf.sparse.reorder(output))
        return tf.SparseTensor(both.indices, both.values, output.dense_shape)

    def get_config(self):
        return {**super().get_config(), "num_parts": self.num_parts, "cost_per_unit": self.cost_per_unit}


class _MDL(_PercentileCalibration):
    """twml's MDL layer: the same calibration and output as
    PercentileDiscretizer, through twml's MDL op, except that an uncalibrated
    column F becomes F mod ((1 << out_bits) - len(bin_ids)) + len(bin_ids)
    with TensorFlow's floor modulo (a negative column stays in range), as
    twml's MDL layer computes it. Usually made by
    `bpr_ops.calibrators.MDLCalibrator.to_layer()`.

    Args (twml's): n_feature, n_bin, out_bits (1 to 62), bin_values, hash_keys,
    hash_values, bin_ids, feature_offsets, as PercentileDiscretizer's.
    """

    def __init__(self, n_feature, n_bin, out_bits, bin_values=None, hash_keys=None, hash_values=None,
                 bin_ids=None, feature_offsets=None, **kwargs):
        super().__init__(n_feature, n_bin, out_bits, bin_values, hash_keys, hash_values, bin_ids,
                         feature_offsets, **kwargs)
        # hash_keys sorted once: the lookup is a searchsorted on constants
        # (twml's layer used a lookup table; this needs no table resource).
        order = np.argsort(self.hash_keys, kind="stable")
        self._sorted_keys, self._sorted_values = self.hash_keys[order], self.hash_values[order]

    def call(self, inputs):
        rows, keys, vals, batch = _sparse_parts(self, inputs)
        size = self.bin_ids.size
        outside = tf.math.floormod(keys, tf.constant((1 << self.out_bits) - size, tf.int64)) + size
        if self.n_feature == 0:
            return self._output(rows, outside, vals, batch)
        sorted_keys = tf.constant(self._sorted_keys)
        at = tf.minimum(tf.searchsorted(sorted_keys, keys, out_type=tf.int64), self.n_feature - 1)
        found = tf.equal(tf.gather(sorted_keys, at), keys)
        index = tf.where(found, tf.gather(tf.constant(self._sorted_values), at), tf.constant(-1, tf.int64))
        mdl_keys, mdl_vals = mdl(index, vals, tf.constant(self.bin_ids), tf.constant(self.bin_values, vals.dtype),
                                 tf.constant(self.feature_offsets))
        return self._output(rows, tf.where(found, mdl_keys, outside), mdl_vals, batch)


def discretizer_layers(keras_module, module: str) -> dict:
    """{name: class} of the discretizer layers on `keras_module` (keras or
    tf_keras), registered with it as "bpr_ops>Name"."""
    register = keras_module.saving.register_keras_serializable(package="bpr_ops")
    made = {}
    for name, logic in (("HashingDiscretizer", _HashingDiscretizer), ("Isotonic", _Isotonic),
                        ("PercentileDiscretizer", _PercentileDiscretizer), ("MDL", _MDL)):
        cls = type(name, (logic, keras_module.layers.Layer), {"__doc__": logic.__doc__, "__module__": module})
        cls.__qualname__ = name
        made[name] = register(cls)
    return made


_KERAS_3 = discretizer_layers(keras, __name__)
HashingDiscretizer = _KERAS_3["HashingDiscretizer"]
Isotonic = _KERAS_3["Isotonic"]
PercentileDiscretizer = _KERAS_3["PercentileDiscretizer"]
MDL = _KERAS_3["MDL"]

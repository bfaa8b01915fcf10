"""BatchPredictionRequestReader: a Keras layer that turns request bytes (the
serving input of a model) into dense feature tensors, on the request-side ops
DecodeBatchPredictionRequestV2 and Get*GroupAsTensor. A Keras 3 layer here;
`request_reader_layer(tf_keras, ...)` makes the same on tf_keras (Keras 2)."""

from __future__ import annotations

import keras
import tensorflow as tf

from ._keys import config_keys, resolve_keys
from ._loader import load_library

# The layer's kinds: (argument, getter op wrapper, output dtype).
_KINDS = (
    ("continuous", "get_continuous_group_as_tensor", "float32"),
    ("binary", "get_binary_group_as_tensor", "float32"),
    ("discrete", "get_discrete_group_as_tensor", "int64"),
    ("strings", "get_string_group_as_tensor", "string"),
)
_MODES = ("kinds", "names")
# Each kind's DataRecord field id: GetFeatureSourcesFromDataRecord's feature_kinds.
_KIND_CODES = {"binary": 1, "continuous": 2, "discrete": 3, "strings": 4}


class _RequestReader:
    """Reads Thrift BatchPredictionRequests into dense [B, F] tensors, one per
    kind of feature, B being the number of records of all requests together.

    Called on a tf.string tensor (a scalar or [N]: one request per element,
    their records concatenated in order) or a uint8 tensor (all its bytes are
    one request). A record's value of a feature is its own, else its request's
    commonFeatures' one, else the default.

    Args:
      continuous: feature keys (names or int64 ids) read as float32 values.
      binary: keys read as 1.0 where the record has the binary feature, else 0.0.
      discrete: keys read as int64 values.
      strings: keys of string features, read as tf.string values.
      default_value: float for an absent continuous feature.
      default_discrete: int for an absent discrete feature.
      default_string: str for an absent string feature.
      tensors: {key: (dtype, shape)}: tensor features (the records' `tensors`
        map, read with GetTensorsWithMissingMaskFromDataRecord), each a dense
        [B, *shape] tensor of dtype (float32, float64, int32, int64, uint8,
        int8 or bool) under out["tensors"][key], zeros where a record (and its
        commonFeatures) lacks it, with out["tensors_found"][key] a bool [B]
        mask. A tensor of another dtype or shape is an InvalidArgumentError.
      sparse_tensors: {key: (dtype, dense_shape)}: sparse tensor features (the
        records' `sparseTensors` map of COOSparseTensors, read with
        GetSparseTensorsFromDataRecord), each one tf.SparseTensor of dense
        shape [B, *dense_shape] under out["sparse_tensors"][key], the record's
        index prepended to each value's indices; a record (and its
        commonFeatures) lacking it adds no values. dtype as for tensors. A
        sparse tensor of another dtype or dense shape is an InvalidArgumentError.
      output_mode: "kinds" (default): {"continuous": [B, F_c], "binary": [B, F_b],
        "discrete": [B, F_d], "strings": [B, F_s]}, for the kinds given, columns
        in the order given. "names": {key: [B]}, one tensor per key (a name, or
        str(id) for an int id).
      row_splits: also out["row_splits"], int64 [R + 1]: request r's records
        are rows row_splits[r]..row_splits[r + 1] (the writers' row_splits).
      sources: also out["sources"], int8, saying where each value came from:
        1 the record, 2 its request's commonFeatures, 0 absent (the default),
        3 absent as the kind read but sent as another kind (the default too).
        A misspelled name is 0 in every record; a feature the client sends as
        discrete but the model reads as continuous is 3. "kinds" mode:
        {kind: [B, F_kind]}, columns as the values'; "names" mode: {key: [B]}.
        Tensor features have out["tensors_found"] instead.

    A key given twice (in one kind or in two), no key at all, or a bad key is
    an error here, when the layer is made.
    """

    def __init__(
        self,
        continuous=(),
        binary=(),
        discrete=(),
        strings=(),
        default_value=0.0,
        default_discrete=0,
        default_string="",
        output_mode="kinds",
        tensors=None,
        sparse_tensors=None,
        row_splits=False,
        sources=False,
        **kwargs,
    ):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        where = type(self).__name__
        if output_mode not in _MODES:
            raise ValueError(f"{where}: output_mode must be one of {_MODES}, got {output_mode!r}")
        self.output_mode = output_mode
        if not isinstance(row_splits, bool):
            raise TypeError(f"{where}: row_splits must be True or False, got {row_splits!r}")
        self.row_splits = row_splits
        if not isinstance(sources, bool):
            raise TypeError(f"{where}: sources must be True or False, got {sources!r}")
        self.sources = sources
        self.default_value = float(default_value)
        if isinstance(default_discrete, bool) or not isinstance(default_discrete, int):
            raise TypeError(f"{where}: default_discrete must be an int, got {default_discrete!r}")
        self.default_discrete = int(default_discrete)
        if not isinstance(default_string, (str, bytes)):
            raise TypeError(f"{where}: default_string must be a str, got {default_string!r}")
        self.default_string = default_string
        given = {"continuous": continuous, "binary": binary, "discrete": discrete, "strings": strings}
        self._ids: dict[str, list[int]] = {}
        self._given: dict[str, list] = {}
        seen: dict[int, str] = {}
        for kind, keys in given.items():
            if isinstance(keys, (str, bytes)):
                keys = [keys]
            ids, as_given = resolve_keys(keys, f"{where} {kind}")
            for key_id, key in zip(ids, as_given):
                if key_id in seen:
                    raise ValueError(
                        f"{where}: {key!r} in {kind} is feature id {key_id}, which {seen[key_id]} "
                        "already reads; each feature is read once"
                    )
                seen[key_id] = f"{kind} ({key!r})"
            if ids:
                self._ids[kind] = ids
                self._given[kind] = as_given
        self._tensors = _tensor_specs(tensors, where, seen, "tensors")
        self._sparse_tensors = _tensor_specs(sparse_tensors, where, seen, "sparse_tensors")
        if not self._ids and not self._tensors and not self._sparse_tensors:
            raise ValueError(
                f"{where}: no features to read; give continuous, binary, discrete, strings, tensors "
                "or sparse_tensors keys"
            )
        for extra, wanted in (("row_splits", row_splits), ("sources", sources)):
            if wanted and output_mode == "names":
                clash = [k for kind in self._ids for k in self._names(kind) if k == extra]
                if clash:
                    raise ValueError(
                        f"{where}: a feature named {extra!r} and {extra}=True both want the output "
                        f"{extra!r}; use output_mode='kinds'"
                    )
        if sources and not self._ids:
            raise ValueError(
                f"{where}: sources=True reports the continuous, binary, discrete and strings features, "
                "and none were given (tensor features have out['tensors_found'])"
            )

    def _names(self, kind: str) -> list[str]:
        return [k if isinstance(k, str) else str(k) for k in config_keys(self._given[kind])]

    def compute_output_spec(self, inputs):
        dtype = getattr(inputs, "dtype", None)
        if dtype is not None and str(dtype) not in ("string", "uint8", "tf.string", "tf.uint8"):
            raise TypeError(
                f"{type(self).__name__} '{self.name}' reads request bytes: a string or uint8 tensor, "
                f"got {dtype}"
            )
        out = {}
        for kind, _, out_dtype in _KINDS:
            if kind not in self._ids:
                continue
            if self.output_mode == "kinds":
                out[kind] = keras.KerasTensor((None, len(self._ids[kind])), dtype=out_dtype)
            else:
                for name in self._names(kind):
                    out[name] = keras.KerasTensor((None,), dtype=out_dtype)
        if self._tensors:
            out["tensors"] = {
                k: keras.KerasTensor((None, *shape), dtype=dtype) for k, (_, dtype, shape) in self._tensors.items()
            }
            out["tensors_found"] = {k: keras.KerasTensor((None,), dtype="bool") for k in self._tensors}
        if self._sparse_tensors:
            out["sparse_tensors"] = {
                k: keras.KerasTensor((None, *shape), dtype=dtype, sparse=True)
                for k, (_, dtype, shape) in self._sparse_tensors.items()
            }
        if self.row_splits:
            out["row_splits"] = keras.KerasTensor((None,), dtype="int64")
        if self.sources:
            out["sources"] = self._per_column(
                lambda kind: keras.KerasTensor((None, len(self._ids[kind])), dtype="int8"),
                lambda kind, j, columns: keras.KerasTensor((None,), dtype="int8"),
            )
        return out

    def _per_column(self, whole, column):
        """{kind: whole(kind)} in "kinds" mode, {name: column(kind, j, whole)}
        in "names" mode, for the kinds this layer reads."""
        out = {}
        for kind, _, _ in _KINDS:
            if kind not in self._ids:
                continue
            columns = whole(kind)
            if self.output_mode == "kinds":
                out[kind] = columns
            else:
                for j, name in enumerate(self._names(kind)):
                    out[name] = column(kind, j, columns)
        return out

    def call(self, inputs):
        inputs = tf.convert_to_tensor(inputs)
        if inputs.dtype not in (tf.string, tf.uint8):
            raise TypeError(
                f"{type(self).__name__} '{self.name}' reads request bytes: a string or uint8 tensor, "
                f"got {inputs.dtype.name}"
            )
        lib = load_library()
        keep = self._keep()
        handle = lib.decode_batch_prediction_request_v2(
            input_bytes=inputs,
            keep_features=keep,
            keep_codes=[0] * len(keep),
            label_features=[],
            weight_features=[],
        )
        return self._features(lib, handle)

    def _keep(self) -> list[int]:
        """The feature ids every decode op this layer makes keeps."""
        return [i for kind, _, _ in _KINDS for i in self._ids.get(kind, [])]

    def _features(self, lib, handle):
        """The layer's outputs from a DataRecord handle (of a request, or of
        DataRecords: bpr_ops.data's training input reads features here too)."""
        defaults = {
            "continuous": self.default_value,
            "binary": 0.0,
            "discrete": self.default_discrete,
            "strings": self.default_string,
        }
        out = {}
        for kind, getter, _ in _KINDS:
            if kind not in self._ids:
                continue
            values = getattr(lib, getter)(handle, feature_ids=self._ids[kind], default_value=defaults[kind])
            if self.output_mode == "kinds":
                out[kind] = values
            else:
                # One Unpack op for the F columns, not one strided slice per
                # feature: F slice ops cost more than the decode (issue 27).
                names = self._names(kind)
                for name, column in zip(names, tf.unstack(values, num=len(names), axis=1)):
                    out[name] = column
        if self._tensors:
            out["tensors"], out["tensors_found"] = {}, {}
            for key, (fid, dtype, shape) in self._tensors.items():
                out["tensors"][key], out["tensors_found"][key] = _read_tensor(lib, handle, key, fid, dtype, shape)
        if self._sparse_tensors:
            out["sparse_tensors"] = {
                key: _read_sparse_tensor(lib, handle, key, fid, dtype, shape)
                for key, (fid, dtype, shape) in self._sparse_tensors.items()
            }
        if self.row_splits:
            out["row_splits"] = lib.get_request_splits_from_data_record(handle)
        if self.sources:
            # One op for every kind: one pass over the records.
            kinds = [kind for kind, _, _ in _KINDS if kind in self._ids]
            ids = [i for kind in kinds for i in self._ids[kind]]
            codes = [_KIND_CODES[kind] for kind in kinds for _ in self._ids[kind]]
            sources = lib.get_feature_sources_from_data_record(handle, feature_ids=ids, feature_kinds=codes)
            starts, at = {}, 0
            for kind in kinds:
                starts[kind] = at
                at += len(self._ids[kind])
            out["sources"] = self._per_column(
                lambda kind: sources[:, starts[kind]:starts[kind] + len(self._ids[kind])],
                lambda kind, j, columns: columns[:, j],
            )
        return out

    def get_config(self):
        config = super().get_config()
        for kind, _, _ in _KINDS:
            config[kind] = config_keys(self._given.get(kind, []))
        default_string = self.default_string
        if isinstance(default_string, bytes):
            default_string = default_string.decode("utf-8", "surrogateescape")
        config.update(
            default_value=self.default_value,
            default_discrete=self.default_discrete,
            default_string=default_string,
            output_mode=self.output_mode,
        )
        if self._tensors:
            config["tensors"] = {k: (dtype, list(shape)) for k, (_, dtype, shape) in self._tensors.items()}
        if self._sparse_tensors:
            config["sparse_tensors"] = {
                k: (dtype, list(shape)) for k, (_, dtype, shape) in self._sparse_tensors.items()
            }
        if self.row_splits:
            # Only when set: a config without it loads in older versions.
            config["row_splits"] = True
        if self.sources:
            config["sources"] = True
        return config


# Element types a tensor feature may be declared with, and the name the
# tensor getters give each in out_type.
_TENSOR_DTYPES = ("float32", "float64", "int32", "int64", "uint8", "int8", "bool")


def _tensor_specs(tensors, where: str, seen: dict, arg: str) -> dict:
    """{key: (feature id, dtype name, shape tuple)}, checked; `arg` is the
    argument's name (tensors or sparse_tensors)."""
    if tensors is None:
        return {}
    if not isinstance(tensors, dict):
        raise TypeError(f"{where}: {arg} must be a dict {{key: (dtype, shape)}}, got {type(tensors).__name__}")
    out = {}
    for key, spec in tensors.items():
        try:
            dtype, shape = spec
            dtype = tf.as_dtype(dtype).name
            shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: {arg}[{key!r}] must be (dtype, shape), e.g. (tf.float32, [64]); got {spec!r}") from None
        if dtype not in _TENSOR_DTYPES:
            raise TypeError(f"{where}: {arg}[{key!r}] has dtype {dtype}; supported: {', '.join(_TENSOR_DTYPES)}")
        if any(d < 0 for d in shape):
            raise ValueError(f"{where}: {arg}[{key!r}] has shape {list(shape)}; dimensions must be >= 0")
        if arg == "sparse_tensors" and not shape:
            raise ValueError(f"{where}: {arg}[{key!r}] has shape []; a sparse tensor has rank 1 or more")
        (fid,), _ = resolve_keys([key], f"{where} {arg}")
        if fid in seen:
            raise ValueError(f"{where}: {key!r} in {arg} is feature id {fid}, which {seen[fid]} already reads; each feature is read once")
        seen[fid] = f"{arg} ({key!r})"
        out[key] = (fid, dtype, shape)
    return out


def _decode_values(output, out_type, out_endian, dtype: str, message: list):
    """The elements of a getter's `output` bytes (each element of it decoded
    along a new last axis) as `dtype`, after checking out_type / out_endian
    say so; `message` (strings and tensors) is the error when they do not.
    "Unknown type" (no record has the feature: zeros or no bytes) passes."""
    tf_dtype = tf.as_dtype(dtype)
    raw_dtype = tf.uint8 if tf_dtype == tf.bool else tf_dtype
    same = tf.equal(out_type, dtype)
    little = tf.logical_or(tf.logical_and(same, tf.equal(out_endian, 0)), tf.equal(out_type, "Unknown type"))
    big = tf.logical_and(same, tf.equal(out_endian, 1))
    branches = [
        (little, lambda: tf.io.decode_raw(output, raw_dtype, little_endian=True)),
        (big, lambda: tf.io.decode_raw(output, raw_dtype, little_endian=False)),
    ]
    ok = tf.logical_or(little, big)
    if tf_dtype == tf.float32:
        # floatTensor: a list of doubles on the wire (twml reads it as float64).
        wide = tf.logical_and(tf.equal(out_type, "float64"), tf.equal(out_endian, 1))
        branches.append((wide, lambda: tf.cast(tf.io.decode_raw(output, tf.float64, little_endian=False), tf.float32)))
        ok = tf.logical_or(ok, wide)
    check = tf.debugging.Assert(ok, message)
    with tf.control_dependencies([check]):
        flat = tf.case(branches, default=branches[0][1], exclusive=False)
    if tf_dtype == tf.bool:
        flat = tf.not_equal(flat, 0)
    return flat


def _read_tensor(lib, handle, key, fid: int, dtype: str, shape: tuple):
    """A declared tensor feature as [B, *shape] and its found mask [B]."""
    raw_size = 1 if dtype == "bool" else tf.as_dtype(dtype).size
    r = lib.get_tensors_with_missing_mask_from_data_record(
        handle, assert_shape=True, feature_id=fid, default_shape=list(shape), dtype_size=raw_size
    )
    flat = _decode_values(
        r.output, r.out_type, r.out_endian, dtype,
        [f"BatchPredictionRequestReader: tensor {key!r} (feature id {fid}) is declared {dtype} {list(shape)}; "
         "the request sends a tensor of type", r.out_type],
    )
    return tf.reshape(flat, [-1, *shape]), r.is_found


def _read_sparse_tensor(lib, handle, key, fid: int, dtype: str, shape: tuple) -> tf.SparseTensor:
    """A declared sparse tensor feature as one tf.SparseTensor [B, *shape].

    GetSparseTensorsFromDataRecord gives, for the records that have the
    feature (in record order), each value's record (`ids`), all values' bytes
    and each record's indices, row-major [rank, n_r] (big-endian int64), one
    record after another; the getter has already checked every record's
    indices against its denseShape and that all records share one denseShape
    and element type. Here: that shape and type are the declared ones, and
    the indices become TF's [T, 1 + rank] with the record index first."""
    rank = len(shape)
    r = lib.get_sparse_tensors_from_data_record(handle, feature_id=fid)
    ids = r.ids
    # The getter's output names the endianness field differently per handle
    # kind (twml's names); by position it is the last.
    values_type, endian = r[4], r[5]
    first = tf.cond(tf.size(ids) > 0, lambda: ids[0], lambda: tf.constant(-1, tf.int64))
    where = f"BatchPredictionRequestReader: sparse tensor {key!r} (feature id {fid}) is declared {dtype} {list(shape)}"
    values = tf.reshape(
        _decode_values(r.values, values_type, endian, dtype,
                       [tf.strings.format(where + "; record {} sends values of type {}", (first, values_type))]),
        [-1],
    )
    got = r.dense_shape[1:]
    declared = tf.constant(shape, tf.int64)
    same_shape = tf.logical_and(
        tf.equal(tf.size(got), rank),
        tf.reduce_all(tf.equal(tf.concat([got, tf.zeros([rank], tf.int64)], 0)[:rank], declared)),
    )
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(tf.size(ids), 0), same_shape),
        [tf.strings.format(where + "; record {} has denseShape {}", (first, got))],
    )
    with tf.control_dependencies([check]):
        batch = r.dense_shape[0]
        flat = tf.reshape(tf.io.decode_raw(r.indices, tf.int64, little_endian=False), [-1])
    # Per value k of record ids[k]: that record's value count n and first
    # value s; its index along dimension d is flat[rank * s + d * n + (k - s)].
    counts = tf.math.unsorted_segment_sum(tf.ones_like(ids), ids, batch)
    starts = tf.cumsum(counts, exclusive=True)
    n = tf.gather(counts, ids)[:, None]
    s = tf.gather(starts, ids)[:, None]
    k = tf.range(tf.size(ids, out_type=tf.int64), dtype=tf.int64)[:, None]
    d = tf.range(rank, dtype=tf.int64)[None, :]
    indices = tf.gather(flat, rank * s + d * n + (k - s))
    sparse = tf.SparseTensor(
        tf.concat([ids[:, None], tf.reshape(indices, [-1, rank])], axis=1),
        values,
        tf.concat([[batch], declared], 0),
    )
    # Records' values keep the order the record gave them; TF's sparse ops
    # want row-major order.
    return tf.sparse.reorder(sparse)


def request_reader_layer(keras_module, module: str):
    """The BatchPredictionRequestReader class on `keras_module` (keras or
    tf_keras), registered with it as "bpr_ops>BatchPredictionRequestReader"."""
    cls = type("BatchPredictionRequestReader", (_RequestReader, keras_module.layers.Layer),
               {"__doc__": _RequestReader.__doc__, "__module__": module})
    cls.__qualname__ = cls.__name__
    return keras_module.saving.register_keras_serializable(package="bpr_ops")(cls)


BatchPredictionRequestReader = request_reader_layer(keras, __name__)

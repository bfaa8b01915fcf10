"""BatchPredictionRequestReader: a Keras layer that turns request bytes (the
serving input of a model) into feature tensors (dense, sparse, or hashed into
twml's sparse input), on the request-side ops DecodeBatchPredictionRequestV2,
Get*GroupAsTensor, GetSparse*AsTensor and GetHashedFeaturesAsSparseTensorV2.
A Keras 3 layer here; `request_reader_layer(tf_keras, ...)` makes the same on
tf_keras (Keras 2)."""

from __future__ import annotations

import inspect
import keras
import tensorflow as tf

from ._keys import config_keys, resolve_keys
from ._loader import load_library
from .feature_config import KIND_CODES, SPARSE_KINDS, FeatureConfig, as_key_list, check_hashed

# The layer's kinds: (argument, getter op wrapper, output dtype).
_KINDS = (
    ("continuous", "get_continuous_group_as_tensor", "float32"),
    ("binary", "get_binary_group_as_tensor", "float32"),
    ("discrete", "get_discrete_group_as_tensor", "int64"),
    ("strings", "get_string_group_as_tensor", "string"),
)
_MODES = ("kinds", "names")
# Each kind's DataRecord field id: GetFeatureSourcesFromDataRecord's feature_kinds.
_KIND_CODES = KIND_CODES
# Outputs that features named alike would clash with in "names" mode, and
# what makes each.
_WANTS = {
    "hashed": "the hashed features",
    "hashed_kinds": "the hashed features",
    "sparse_binary": "the sparse binary features",
    "sparse_continuous": "the sparse continuous features",
    "sparse_continuous_names": "the sparse continuous features",
}
# The sparse kinds: (argument, getter op wrapper).
_SPARSE = (("sparse_binary", "get_sparse_binary_as_tensor"), ("sparse_continuous", "get_sparse_continuous_as_tensor"))
# GetHashedFeaturesAsSparseTensorV2's keep list attr of each kind.
_HASHED_ATTRS = {
    "binary": "binary_keep_features",
    "continuous": "continuous_keep_features",
    "discrete": "discrete_keep_features",
    "strings": "string_keep_features",
    "sparse_binary": "sparse_binary_keep_features",
    "sparse_continuous": "sparse_continuous_keep_features",
}


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
        int8 or bool) under `out["tensors"][key]`, zeros where a record (and its
        commonFeatures) lacks it, with `out["tensors_found"][key]` a bool [B]
        mask. A tensor of another dtype or shape is an InvalidArgumentError.
      sparse_tensors: {key: (dtype, dense_shape)}: sparse tensor features (the
        records' `sparseTensors` map of COOSparseTensors, read with
        GetSparseTensorsFromDataRecord), each one tf.SparseTensor of dense
        shape [B, *dense_shape] under `out["sparse_tensors"][key]`, the record's
        index prepended to each value's indices; a record (and its
        commonFeatures) lacking it adds no values. dtype as for tensors. A
        sparse tensor of another dtype or dense shape is an InvalidArgumentError.
      sparse_binary: keys of sparse binary features (a set of strings per
        record), each one tf.SparseTensor of strings [B, N] under
        `out["sparse_binary"][key]` (N the most strings a record has): row b
        holds record b's strings at columns 0, 1, ... (its request's
        commonFeatures' strings, then its own, in wire order), as
        tf.io.parse_example gives a VarLenFeature.
      sparse_continuous: keys of sparse continuous features (a map string ->
        double per record): the values as tf.SparseTensor float32 [B, N]
        under `out["sparse_continuous"][key]` and their names, the same
        indices, as strings under `out["sparse_continuous_names"][key]`.
      hashed: {kind: keys} (kinds: binary, continuous, discrete, strings,
        sparse_binary, sparse_continuous): features read as twml's hashed
        sparse input (GetHashedFeaturesAsSparseTensorV2, what twml's
        HashedDataRecord / get_sparse_parse_fn gave models): one
        tf.SparseTensor float32 [B, 2**hashed_bits] under out["hashed"], a
        value per feature entry at [record, key & (2**hashed_bits - 1)]
        (twml.limit_bits on the int64 key), rows per record its request's
        commonFeatures' then its own, kinds in the order above, wire order
        within a kind, then sorted row-major by a stable sort (tf.data and
        most sparse ops need that order). out["hashed_kinds"]: the same
        indices, each entry's kind as twml's types gave it (int8 DataRecord
        field id, 1 binary ... 6 sparse continuous). Keys that collide are
        separate entries at one index (sparse_dense_matmul, as under twml's
        full_sparse, sums them). An entry sent as another kind than the one
        given here is not read (sources shows it as 3).
      hashed_bits: with hashed, the bits each key keeps (1..62).
      decode_mode: with hashed, a sparse continuous entry's key: 0 (twml's
        default) the feature id of its name, 1 the id mixed with the name.
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
        Sparse kinds and hashed features are reported too: {"sparse_binary":
        [B, F], ..., "hashed": [B, F_hashed]} in "kinds" mode (hashed columns
        kind by kind in the order of `hashed`'s kinds above), {key: [B]} in
        "names" mode; 1 means the record has the feature (its values are then
        the common ones and its own), 2 only its request's commonFeatures.
        Tensor features have out["tensors_found"] instead.

    The first argument may be a bpr_ops.FeatureConfig instead: its reader
    arguments (the training input takes the same config).

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
        sparse_binary=(),
        sparse_continuous=(),
        hashed=None,
        hashed_bits=None,
        decode_mode=0,
        **kwargs,
    ):
        if isinstance(continuous, FeatureConfig):
            config_args = continuous.reader_args()
            # The reader's own named arguments given beside the config (e.g.
            # row_splits=True for the per-request signature) count as given:
            # they must reach the layer, not fall back to the config's defaults.
            named = dict(binary=binary, discrete=discrete, strings=strings, default_value=default_value,
                         default_discrete=default_discrete, default_string=default_string,
                         output_mode=output_mode, tensors=tensors, sparse_tensors=sparse_tensors,
                         row_splits=row_splits, sources=sources, sparse_binary=sparse_binary,
                         sparse_continuous=sparse_continuous, hashed=hashed, hashed_bits=hashed_bits,
                         decode_mode=decode_mode)
            defaults = inspect.signature(_RequestReader.__init__).parameters
            kwargs = {**{k: v for k, v in named.items() if not _same(v, defaults[k].default)}, **kwargs}
            clash = [k for k in config_args if k in kwargs]
            if clash:
                raise TypeError(f"{type(self).__name__}: {clash[0]!r} is given both in the FeatureConfig and "
                                "as an argument; give it once")
            self.__init__(**config_args, **kwargs)
            return
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
        given = {"continuous": continuous, "binary": binary, "discrete": discrete, "strings": strings,
                 "sparse_binary": sparse_binary, "sparse_continuous": sparse_continuous}
        hashed, self.hashed_bits, self.decode_mode = check_hashed(hashed, hashed_bits, decode_mode, where)
        self._ids: dict[str, list[int]] = {}
        self._given: dict[str, list] = {}
        # Hashed features by kind, as _ids / _given.
        self._hashed_ids: dict[str, list[int]] = {}
        self._hashed_given: dict[str, list] = {}
        seen: dict[int, str] = {}
        groups = [(kind, kind, keys, self._ids, self._given) for kind, keys in given.items()]
        groups += [(f"hashed[{kind!r}]", kind, keys, self._hashed_ids, self._hashed_given)
                   for kind, keys in hashed.items()]
        for label, kind, keys, ids_of, given_of in groups:
            keys = as_key_list(keys, f"{where} {label}")
            ids, as_given = resolve_keys(keys, f"{where} {label}") if keys else ([], [])
            for key_id, key in zip(ids, as_given):
                if key_id in seen:
                    raise ValueError(
                        f"{where}: {key!r} in {label} is feature id {key_id}, which {seen[key_id]} "
                        "already reads; each feature is read once"
                    )
                seen[key_id] = f"{label} ({key!r})"
            if ids:
                ids_of[kind] = ids
                given_of[kind] = as_given
        self._tensors = _tensor_specs(tensors, where, seen, "tensors")
        self._sparse_tensors = _tensor_specs(sparse_tensors, where, seen, "sparse_tensors")
        if not self._ids and not self._hashed_ids and not self._tensors and not self._sparse_tensors:
            raise ValueError(
                f"{where}: no features to read; give continuous, binary, discrete, strings, sparse_binary, "
                "sparse_continuous, hashed, tensors or sparse_tensors keys"
            )
        extras = (("row_splits", row_splits), ("sources", sources), ("hashed", bool(self._hashed_ids)),
                  ("hashed_kinds", bool(self._hashed_ids)),
                  ("sparse_binary", "sparse_binary" in self._ids),
                  ("sparse_continuous", "sparse_continuous" in self._ids),
                  ("sparse_continuous_names", "sparse_continuous" in self._ids))
        for extra, wanted in extras:
            if wanted and output_mode == "names":
                clash = [k for kind in self._ids if kind not in SPARSE_KINDS for k in self._names(kind)
                         if k == extra]
                if clash:
                    raise ValueError(
                        f"{where}: a feature named {extra!r} and {_WANTS.get(extra, extra + '=True')} both "
                        f"want the output {extra!r}; use output_mode='kinds'"
                    )
        if sources and not self._ids and not self._hashed_ids:
            raise ValueError(
                f"{where}: sources=True reports the continuous, binary, discrete, strings, sparse and hashed "
                "features, and none were given (tensor features have out['tensors_found'])"
            )
        if sources and output_mode == "names":
            names = [n for group in self._source_groups() for n in group[3]]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{where}: sources in output_mode='names' are keyed by name, and {twice[0]!r} "
                                 "names two features; use output_mode='kinds'")

    def _names(self, kind: str, given=None) -> list[str]:
        given = self._given if given is None else given
        return [k if isinstance(k, str) else str(k) for k in config_keys(given[kind])]

    def _source_groups(self) -> list:
        """[(group, ids, kind codes, names)]: what sources reports, in
        order: the dense kinds, the sparse kinds, then the hashed features."""
        out = []
        for kind in (*(k for k, _, _ in _KINDS), *SPARSE_KINDS):
            if kind in self._ids:
                ids = self._ids[kind]
                out.append((kind, ids, [_KIND_CODES[kind]] * len(ids), self._names(kind)))
        if self._hashed_ids:
            ids, codes, names = [], [], []
            for kind, kind_ids in self._hashed_ids.items():
                ids += kind_ids
                codes += [_KIND_CODES[kind]] * len(kind_ids)
                names += self._names(kind, self._hashed_given)
            out.append(("hashed", ids, codes, names))
        return out

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
        for kind, _ in _SPARSE:
            if kind not in self._ids:
                continue
            dtype = "string" if kind == "sparse_binary" else "float32"
            out[kind] = {k: keras.KerasTensor((None, None), dtype=dtype, sparse=True) for k in self._given[kind]}
            if kind == "sparse_continuous":
                out["sparse_continuous_names"] = {
                    k: keras.KerasTensor((None, None), dtype="string", sparse=True) for k in self._given[kind]
                }
        if self._hashed_ids:
            out["hashed"] = keras.KerasTensor((None, 1 << self.hashed_bits), dtype="float32", sparse=True)
            out["hashed_kinds"] = keras.KerasTensor((None, 1 << self.hashed_bits), dtype="int8", sparse=True)
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
                lambda group, n: keras.KerasTensor((None, n), dtype="int8"),
                lambda group, j, columns: keras.KerasTensor((None,), dtype="int8"),
            )
        return out

    def _per_column(self, whole, column):
        """{group: whole(group, n)} in "kinds" mode, {name: column(group, j,
        whole)} in "names" mode, for the groups sources reports."""
        out = {}
        for group, ids, _, names in self._source_groups():
            columns = whole(group, len(ids))
            if self.output_mode == "kinds":
                out[group] = columns
            else:
                for j, name in enumerate(names):
                    out[name] = column(group, j, columns)
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
        return [i for ids in (*self._ids.values(), *self._hashed_ids.values()) for i in ids]

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
        for kind, getter in _SPARSE:
            if kind not in self._ids:
                continue
            out[kind] = {}
            if kind == "sparse_continuous":
                out["sparse_continuous_names"] = {}
            for key, fid in zip(self._given[kind], self._ids[kind]):
                rows = getattr(lib, getter)(handle, feature_id=fid)
                indices, dense_shape = _record_positions(rows.ids, lib.get_batch_size_from_data_record(handle))
                if kind == "sparse_binary":
                    out[kind][key] = tf.SparseTensor(indices, rows.names, dense_shape)
                else:
                    out[kind][key] = tf.SparseTensor(indices, rows.values, dense_shape)
                    out["sparse_continuous_names"][key] = tf.SparseTensor(indices, rows.names, dense_shape)
        if self._hashed_ids:
            out["hashed"], out["hashed_kinds"] = self._hashed(lib, handle)
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
            groups = self._source_groups()
            ids = [i for g in groups for i in g[1]]
            codes = [c for g in groups for c in g[2]]
            sources = lib.get_feature_sources_from_data_record(handle, feature_ids=ids, feature_kinds=codes)
            starts, at = {}, 0
            for group, group_ids, _, _ in groups:
                starts[group] = at
                at += len(group_ids)
            out["sources"] = self._per_column(
                lambda group, n: sources[:, starts[group]:starts[group] + n],
                lambda group, j, columns: columns[:, j],
            )
        return out

    def _hashed(self, lib, handle) -> tuple[tf.SparseTensor, tf.SparseTensor]:
        """twml's hashed sparse input of the hashed features: [record,
        key & mask] -> value, dense shape [B, 2**hashed_bits], and the same
        indices -> each entry's kind (its DataRecord field id, int8)."""
        keep = self._keep()
        ids, keys, values, kinds = [], [], [], []
        # One getter call per kind: its rows carry no kind, and the kind is
        # what twml's hashed reader gave besides keys and values (types).
        for kind, kind_ids in self._hashed_ids.items():
            lists = {attr: (kind_ids if k == kind else []) for k, attr in _HASHED_ATTRS.items()}
            rows = lib.get_hashed_features_as_sparse_tensor_v2(
                handle, keep_features=keep, keep_codes=[0] * len(keep), decode_mode=self.decode_mode, **lists
            )
            ids.append(rows.ids)
            keys.append(rows.keys)
            values.append(rows.values)
            kinds.append(tf.fill(tf.shape(rows.ids), tf.constant(_KIND_CODES[kind], tf.int8)))
        ids, keys, values, kinds = (t[0] if len(t) == 1 else tf.concat(t, 0) for t in (ids, keys, values, kinds))
        # twml.limit_bits: the low bits of the int64 key (a negative key keeps
        # its low bits, as `&` on two's complement does).
        keys = tf.bitwise.bitwise_and(keys, tf.constant((1 << self.hashed_bits) - 1, tf.int64))
        # Row-major order, which tf.data (to batch or pass the tensor on) and
        # most sparse ops require (twml's tensor was in row order, which only
        # its own sparse matmul accepted). Stable sorts, so entries at one
        # index keep the getters' order: the same in every run. The sort is
        # most of this method's cost: with up to 31 bits, one sort of
        # record << bits | key (exact below 2**32 records), else two.
        if self.hashed_bits <= 31:
            order = tf.argsort(tf.bitwise.bitwise_or(tf.bitwise.left_shift(ids, self.hashed_bits), keys), stable=True)
        else:
            order = tf.argsort(keys, stable=True)
            order = tf.gather(order, tf.argsort(tf.gather(ids, order), stable=True))
        indices = tf.stack([tf.gather(ids, order), tf.gather(keys, order)], axis=1)
        shape = tf.stack([lib.get_batch_size_from_data_record(handle), tf.constant(1 << self.hashed_bits, tf.int64)])
        return (tf.SparseTensor(indices, tf.gather(values, order), shape),
                tf.SparseTensor(indices, tf.gather(kinds, order), shape))

    def get_config(self):
        config = super().get_config()
        for kind, _, _ in _KINDS:
            config[kind] = config_keys(self._given.get(kind, []))
        # The newer arguments only when used: such a config loads in older versions.
        for kind in SPARSE_KINDS:
            if kind in self._given:
                config[kind] = config_keys(self._given[kind])
        if self._hashed_ids:
            config["hashed"] = {kind: config_keys(keys) for kind, keys in self._hashed_given.items()}
            config["hashed_bits"] = self.hashed_bits
            config["decode_mode"] = self.decode_mode
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


def _record_positions(ids, batch):
    """(indices [T, 2], dense_shape [2]) of rows whose records are `ids`
    (nondecreasing, as the row getters give them): row k is at
    [ids[k], its place among its record's rows]; the dense shape is [batch,
    the most rows a record has]."""
    counts = tf.math.unsorted_segment_sum(tf.ones_like(ids), ids, batch)
    starts = tf.cumsum(counts, exclusive=True)
    position = tf.range(tf.size(ids, out_type=tf.int64), dtype=tf.int64) - tf.gather(starts, ids)
    width = tf.reduce_max(tf.concat([counts, tf.zeros([1], tf.int64)], 0))
    return tf.stack([ids, position], axis=1), tf.stack([batch, width])


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


def _same(value, default) -> bool:
    """Whether an argument was left at its default (a default's identity or
    an equal value of the same type: `()` and `[]` are not the same)."""
    return value is default or (type(value) is type(default) and value == default)

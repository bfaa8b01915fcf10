"""FeatureConfig: one feature configuration (which features, of which kinds,
read densely, as sparse tensors or hashed into twml's sparse input, and the
labels and weights to train on) that both the serving reader layer and the
training input take, so the two cannot drift apart. Pure Python: it imports
no TensorFlow, so a config can be written where TensorFlow is not installed.

    config = bpr_ops.FeatureConfig(continuous=["user.age"], hashed={"discrete": ["tweet.lang"]},
                                   hashed_bits=18, labels=["label.click"])
    read = bpr_ops.BatchPredictionRequestReader(config)        # serving
    train = data.training_dataset(files, config, batch_size=64)  # training
"""

from __future__ import annotations

from ._keys import NAME_TYPES, check_ordered, config_keys, resolve_keys

#: Every kind a feature can be read as, and its DataRecord field id (what
#: GetFeatureSourcesFromDataRecord's feature_kinds and the hashed getters'
#: types call a kind).
KIND_CODES = {
    "binary": 1,
    "continuous": 2,
    "discrete": 3,
    "strings": 4,
    "sparse_binary": 5,
    "sparse_continuous": 6,
}
DENSE_KINDS = ("continuous", "binary", "discrete", "strings")
SPARSE_KINDS = ("sparse_binary", "sparse_continuous")
#: Bits a hashed key may be limited to: the dense shape 2**bits must fit in int64.
MAX_HASHED_BITS = 62

# The reader's arguments a FeatureConfig carries (labels and weights are for
# training only).
_READER_ARGS = (
    *DENSE_KINDS,
    *SPARSE_KINDS,
    "hashed",
    "hashed_bits",
    "decode_mode",
    "default_value",
    "default_discrete",
    "default_string",
    "output_mode",
    "tensors",
    "sparse_tensors",
    "row_splits",
    "sources",
)


def as_key_list(keys, where: str) -> list:
    """A kind's keys as a list (one name alone is a list of one)."""
    if isinstance(keys, NAME_TYPES):
        return [keys]
    if keys is None:
        return []
    # A set has no order, and the order of the keys is the order of columns.
    check_ordered(keys, f"{where}: ")
    try:
        return list(keys)
    except TypeError:
        raise TypeError(f"{where}: keys must be a list of feature names or int ids, got {keys!r}") from None


def check_hashed(hashed, hashed_bits, decode_mode, where: str) -> tuple[dict, int | None, int]:
    """({kind: keys}, bits, decode_mode) for twml's hashed input, checked.

    hashed: None or {kind: keys}, kind one of KIND_CODES. hashed_bits: the
    number of low bits of each hashed key kept (twml.limit_bits), 1..62,
    required with hashed and refused without it."""
    if hashed is None or hashed == {}:
        if hashed_bits is not None:
            raise ValueError(f"{where}: hashed_bits={hashed_bits!r} without hashed features; "
                             "give hashed={kind: [keys]} too")
        return {}, None, 0
    if not isinstance(hashed, dict):
        raise TypeError(f"{where}: hashed must be a dict {{kind: [keys]}} (kinds: {', '.join(KIND_CODES)}), "
                        f"got {type(hashed).__name__}")
    bad = [k for k in hashed if k not in KIND_CODES]
    if bad:
        raise ValueError(f"{where}: hashed has kind {bad[0]!r}; kinds are {', '.join(KIND_CODES)}")
    if isinstance(hashed_bits, bool) or not isinstance(hashed_bits, int) or not 1 <= hashed_bits <= MAX_HASHED_BITS:
        raise ValueError(
            f"{where}: hashed features need hashed_bits, an int from 1 to {MAX_HASHED_BITS} (the keys are "
            f"limited to that many low bits as twml.limit_bits does, the dense shape is [B, 2**bits]), "
            f"got {hashed_bits!r}"
        )
    if decode_mode not in (0, 1) or isinstance(decode_mode, bool):
        raise ValueError(f"{where}: decode_mode must be 0 (a sparse continuous key is the feature id of "
                         f"its name, twml's default) or 1 (the feature id mixed with the name), got {decode_mode!r}")
    out = {kind: as_key_list(hashed[kind], f"{where} hashed[{kind!r}]") for kind in KIND_CODES if kind in hashed}
    return {k: v for k, v in out.items() if v}, hashed_bits, decode_mode


class FeatureConfig:
    """One feature configuration for serving and training.

    Takes BatchPredictionRequestReader's arguments (continuous, binary,
    discrete, strings, sparse_binary, sparse_continuous, hashed, hashed_bits,
    decode_mode, defaults, output_mode, tensors, sparse_tensors, row_splits,
    sources) and the training targets:
      labels: label feature keys, read by `data.training_dataset` as float32 [B, L].
      weights: weight feature keys; the sample weight is their product.

    `BatchPredictionRequestReader(config)` is the serving input layer,
    `data.training_dataset(files, config, batch_size)` the training input;
    both read the same features through the same code. Keys are resolved
    here: a bad key, or one feature in two places, is an error now.
    """

    def __init__(self, continuous=(), binary=(), discrete=(), strings=(), sparse_binary=(),
                 sparse_continuous=(), hashed=None, hashed_bits=None, decode_mode=0, labels=(), weights=(),
                 **reader_args):
        where = "FeatureConfig"
        unknown = [k for k in reader_args if k not in _READER_ARGS]
        if unknown:
            raise TypeError(f"{where}: unknown argument {unknown[0]!r}; it takes {', '.join(_READER_ARGS)}, "
                            "labels and weights")
        given = dict(continuous=continuous, binary=binary, discrete=discrete, strings=strings,
                     sparse_binary=sparse_binary, sparse_continuous=sparse_continuous)
        self._kinds = {kind: as_key_list(keys, f"{where} {kind}") for kind, keys in given.items()}
        self._hashed, self._hashed_bits, self._decode_mode = check_hashed(hashed, hashed_bits, decode_mode, where)
        seen: dict[int, str] = {}
        groups = [(kind, keys) for kind, keys in self._kinds.items()]
        groups += [(f"hashed[{kind!r}]", keys) for kind, keys in self._hashed.items()]
        for group, keys in groups:
            ids, as_given = resolve_keys(keys, f"{where} {group}") if keys else ([], [])
            for key_id, key in zip(ids, as_given):
                if key_id in seen:
                    raise ValueError(f"{where}: {key!r} in {group} is feature id {key_id}, which "
                                     f"{seen[key_id]} already reads; each feature is read once")
                seen[key_id] = f"{group} ({key!r})"
        self._labels = as_key_list(labels, f"{where} labels")
        self._weights = as_key_list(weights, f"{where} weights")
        if self._labels:
            resolve_keys(self._labels, f"{where} labels")
        if self._weights:
            resolve_keys(self._weights, f"{where} weights")
        self._reader_args = dict(reader_args)

    @property
    def labels(self) -> list:
        return list(self._labels)

    @property
    def weights(self) -> list:
        return list(self._weights)

    def reader_args(self) -> dict:
        """The BatchPredictionRequestReader arguments of this config."""
        out = {kind: list(keys) for kind, keys in self._kinds.items() if keys}
        if self._hashed:
            out.update(hashed={k: list(v) for k, v in self._hashed.items()}, hashed_bits=self._hashed_bits,
                       decode_mode=self._decode_mode)
        out.update(self._reader_args)
        return out

    def get_config(self) -> dict:
        """The arguments: FeatureConfig(**config.get_config()) is the same
        config (JSON-able when its tensors' dtypes are given as names)."""
        out = {k: (config_keys(v) if isinstance(v, list) else v) for k, v in self.reader_args().items()}
        if "hashed" in out:
            out["hashed"] = {k: config_keys(v) for k, v in out["hashed"].items()}
        if self._labels:
            out["labels"] = config_keys(self._labels)
        if self._weights:
            out["weights"] = config_keys(self._weights)
        return out

    def __eq__(self, other):
        return isinstance(other, FeatureConfig) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"FeatureConfig({args})"

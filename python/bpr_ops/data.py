"""Training data: twml's block-format files as a tf.data source, a writer of
such files, and a training input that decodes features exactly as the serving
layer `BatchPredictionRequestReader` does.

    import bpr_ops
    from bpr_ops import data

    data.write_block_format("train.gz", records)          # dicts or DataRecord bytes
    ds = data.BlockFormatDataset(["train.gz"])            # tf.string DataRecords
    reader = bpr_ops.BatchPredictionRequestReader(continuous=["age", "score"])
    train = data.training_dataset(["train.gz"], reader, batch_size=64, labels=["clicked"])
    model.fit(train)                                      # (features, labels, weights)

The same `reader` object (or its config) is the serving model's input layer:
training and serving read the same feature ids, defaults, kinds and order
through the same getter ops.
"""

from __future__ import annotations

import gzip
import io
import struct
from typing import NamedTuple

import tensorflow as tf
from tensorflow.python.data.ops import dataset_ops

from ._keys import resolve_keys
from ._loader import load_library
from ._request_layer import BatchPredictionRequestReader, _RequestReader
from .feature_config import FeatureConfig

__all__ = [
    "BlockFormatDataset",
    "DEFAULT_BUFFER_SIZE",
    "training_dataset",
    "write_block_format",
]

#: gzip input and output buffer bytes (TensorFlow's TFRecordDataset default).
DEFAULT_BUFFER_SIZE = 256 << 10

# training_dataset decodes at least this many records per call (a multiple of
# the batch size), then cuts the batches.
_DECODE_RECORDS = 1024

_COMPRESSIONS = ("", "gz", "auto")


def _check_compression(compression_type, where: str) -> str:
    if compression_type is None:
        return ""
    if compression_type not in _COMPRESSIONS:
        raise ValueError(
            f"{where}: compression_type must be one of {_COMPRESSIONS} (twml's names: \"\" plain, "
            f"\"gz\" gzip, \"auto\" gzip for names ending in .gz), got {compression_type!r}"
        )
    return compression_type


class _BlockFormatDatasetV2(dataset_ops.DatasetSource):
    """The op BlockFormatDatasetV2 as a tf.data.Dataset (one op, files in order)."""

    def __init__(self, filenames, compression_type, buffer_size):
        self._filenames = filenames
        self._compression_type = compression_type
        self._buffer_size = buffer_size
        variant = load_library().block_format_dataset_v2(
            filenames=filenames, compression_type=compression_type, buffer_size=buffer_size
        )
        super().__init__(variant)

    @property
    def element_spec(self):
        return tf.TensorSpec([], tf.string)


class _BlockFormatBatchDataset(dataset_ops.DatasetSource):
    """The op BlockFormatBatchDataset (ours): BlockFormatDatasetV2's records
    as `.batch(batch_size, drop_remainder)` would give them, one op."""

    def __init__(self, filenames, compression_type, buffer_size, batch_size: int, drop_remainder: bool):
        self._batch_size = batch_size
        self._drop_remainder = drop_remainder
        variant = load_library().block_format_batch_dataset(
            filenames=filenames,
            compression_type=compression_type,
            buffer_size=buffer_size,
            batch_size=tf.constant(batch_size, tf.int64),
            drop_remainder=tf.constant(drop_remainder, tf.bool),
        )
        super().__init__(variant)

    @property
    def element_spec(self):
        return tf.TensorSpec([self._batch_size if self._drop_remainder else None], tf.string)


def BlockFormatDataset(  # noqa: N802 (a Dataset constructor, named like tf.data's)
    filenames,
    compression_type: str = "auto",
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    num_parallel_reads: int | None = None,
    batch_size: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A tf.data.Dataset of the records (serialized DataRecords, tf.string
    scalars) of Elephant-Bird block files, in file order.

    Args:
      filenames: a file name or a list (or string tensor, scalar or vector) of
        them; any scheme TensorFlow reads (local, ram://, gs://, ...).
      compression_type: "" (plain), "gz" (gzip) or "auto" (gzip for names
        ending in ".gz", plain otherwise).
      buffer_size: gzip input and output buffer bytes (0: the default).
      num_parallel_reads: None reads the files one after the other (one
        BlockFormatDatasetV2 op, as twml did); n > 1 interleaves n files at a
        time, deterministically (cycle n, block 1).
      batch_size: None gives one record (a tf.string scalar) per element. An
        int gives string vectors of batch_size records, exactly the elements
        of `.batch(batch_size, drop_remainder)` on the unbatched dataset
        (after an error: of `.ignore_errors().batch(...)`, see Errors); read
        in file order they come from one op (BlockFormatBatchDataset) without
        a tf.data element per record, which is most of the cost of reading
        small records one by one.
      drop_remainder: with batch_size, drop a last batch of fewer records.

    Errors: a damaged file is an error naming the file, the byte offset and
    what was expected, raised once; the next element comes from the next
    file (the reader cannot resynchronise inside a damaged file, so the rest
    of it is skipped), as TFRecordDataset does. A file that cannot be opened
    is likewise an error once, then the next file. A record that is not a
    DataRecord (in a sound block) is an error for that record alone. So
    `.ignore_errors()` skips damaged files and ends; with
    `.ignore_errors(log_warning=True)` TensorFlow logs each skipped error
    (file and byte offset) as a C++ warning, shown at TF_CPP_MIN_LOG_LEVEL 0
    or 1. With batch_size (in file order), the records read before an error
    stay in the batch being made, which the next call completes: the
    elements of `.ignore_errors().batch(batch_size)` on the records, no good
    record lost. With num_parallel_reads > 1 the batches come from
    `.batch()` after the interleave, and `.ignore_errors()` on them loses the
    batch an error cuts short, as it does for any `.batch()`.
    """
    where = "BlockFormatDataset"
    compression_type = _check_compression(compression_type, where)
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0:
        raise ValueError(f"{where}: buffer_size must be an int >= 0, got {buffer_size!r}")
    if isinstance(filenames, (str, bytes)):
        filenames = [filenames]
    filenames = tf.convert_to_tensor(filenames, dtype=tf.string, name="filenames")
    if filenames.shape.rank is not None and filenames.shape.rank > 1:
        raise ValueError(f"{where}: filenames must be a scalar or a vector, got shape {filenames.shape}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"{where}: batch_size must be None or an int >= 1, got {batch_size!r}")
    if not isinstance(drop_remainder, bool):
        raise ValueError(f"{where}: drop_remainder must be a bool, got {drop_remainder!r}")
    if drop_remainder and batch_size is None:
        raise ValueError(f"{where}: drop_remainder=True needs a batch_size")
    if num_parallel_reads is not None and (isinstance(num_parallel_reads, bool) or not isinstance(
            num_parallel_reads, int) or num_parallel_reads < 1):
        raise ValueError(f"{where}: num_parallel_reads must be None or an int >= 1, got {num_parallel_reads!r}")
    compression = tf.constant(compression_type, tf.string)
    buffer = tf.constant(buffer_size, tf.int64)
    if num_parallel_reads is None or num_parallel_reads == 1:
        if batch_size is not None:
            return _BlockFormatBatchDataset(filenames, compression, buffer, batch_size, drop_remainder)
        return _BlockFormatDatasetV2(filenames, compression, buffer)
    files = tf.data.Dataset.from_tensor_slices(tf.reshape(filenames, [-1]))
    # Interleaved records from n files: batches are made after the
    # interleave, so they hold the records .batch() would (per-file batches
    # interleaved would not).
    records = files.interleave(
        lambda f: _BlockFormatDatasetV2(f, compression, buffer),
        cycle_length=num_parallel_reads,
        block_length=1,
        num_parallel_calls=num_parallel_reads,
        deterministic=True,
    )
    if batch_size is None:
        return records
    return records.batch(batch_size, drop_remainder=drop_remainder)


# ---- writing --------------------------------------------------------------

_MARKER = bytes.fromhex("29d8d50658cd4c29b2bc57992171bdff")
_CLASS = b"com.twitter.ml.api.DataRecord"


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _block(records: list[bytes]) -> bytes:
    msg = bytearray(b"\x08\x01\x12" + _varint(len(_CLASS)) + _CLASS)
    for r in records:
        msg += b"\x1a" + _varint(len(r)) + r
    if len(msg) > 0x7FFFFFFF:
        raise ValueError(
            f"write_block_format: a block of {len(msg)} bytes is over the format's 2^31 - 1; "
            "use a smaller records_per_block"
        )
    return _MARKER + struct.pack("<i", len(msg)) + bytes(msg)


def write_block_format(path, records, records_per_block: int = 100, compression: str = "auto") -> int:
    """Writes `records` to `path` as an Elephant-Bird block file, as twml's
    BlockFormatWriter lays it out; returns the number of records written.

    Args:
      path: a file name, any scheme tf.io.gfile writes (local, ram://, ...).
      records: an iterable of serialized DataRecords (bytes) or of record
        dicts as `bpr_ops.encode_data_record` takes them.
      records_per_block: records in each block (>= 1); the last may hold fewer.
      compression: "" (plain), "gz" (gzip) or "auto" (gzip when `path` ends
        in ".gz").
    """
    from .request import encode_data_record

    where = "write_block_format"
    compression = _check_compression(compression, where)
    if isinstance(records_per_block, bool) or not isinstance(records_per_block, int) or records_per_block < 1:
        raise ValueError(f"{where}: records_per_block must be an int >= 1, got {records_per_block!r}")
    path = str(path)
    gz = compression == "gz" or (compression == "auto" and path.rsplit("/", 1)[-1].rsplit(".", 1)[-1:] == ["gz"]
                                 and "." in path.rsplit("/", 1)[-1])
    count = 0
    with tf.io.gfile.GFile(path, "wb") as raw:
        out: io.RawIOBase = gzip.GzipFile(fileobj=raw, mode="wb") if gz else raw
        try:
            pending: list[bytes] = []
            for i, r in enumerate(records):
                if isinstance(r, dict):
                    r = encode_data_record(r)
                elif isinstance(r, (bytes, bytearray, memoryview)):
                    r = bytes(r)
                else:
                    raise TypeError(f"{where}: records[{i}] must be bytes or a record dict, got {type(r).__name__}")
                pending.append(r)
                count += 1
                if len(pending) == records_per_block:
                    out.write(_block(pending))
                    pending = []
            if pending:
                out.write(_block(pending))
        finally:
            if gz:
                out.close()
    return count


# ---- training input -------------------------------------------------------


def _reader(features) -> BatchPredictionRequestReader:
    # The shared base, not the Keras 3 class: the tf_keras reader
    # (TF_USE_LEGACY_KERAS=1, bpr_ops.tf_keras_layers) reads the same way.
    if isinstance(features, _RequestReader):
        return features
    if isinstance(features, FeatureConfig):
        return BatchPredictionRequestReader(features)
    if isinstance(features, dict):
        return BatchPredictionRequestReader(**features)
    raise TypeError(
        "training_dataset: features must be a bpr_ops.BatchPredictionRequestReader (the serving "
        f"model's input layer, Keras 3 or tf_keras), a bpr_ops.FeatureConfig or a dict of the reader's "
        f"arguments, got {type(features).__module__}.{type(features).__qualname__}"
    )


def _targets(features, labels, weights) -> tuple[list, list]:
    """The label and weight keys: the arguments, else the FeatureConfig's."""
    labels = list(labels) if not isinstance(labels, (str, bytes)) else [labels]
    weights = list(weights) if not isinstance(weights, (str, bytes)) else [weights]
    if isinstance(features, FeatureConfig):
        for arg, given, configured in (("labels", labels, features.labels), ("weights", weights, features.weights)):
            if given and configured and given != configured:
                raise ValueError(f"training_dataset: {arg} {given!r} differ from the FeatureConfig's {configured!r}; "
                                 "give them in one place")
        labels = labels or features.labels
        weights = weights or features.weights
    return labels, weights


def _check_targets(filenames, compression_type, buffer_size, labels, weights, records: int,
                   ignore_errors: bool = False) -> None:
    """Raises ValueError naming each label or weight key that none of the
    first `records` records has as a kind the label and weight getters read
    (labels binary or continuous, weights continuous): such a key trains on
    default labels or zero weights, which is a typo far more often than a
    choice. Only in eager mode (it reads the files now). With ignore_errors,
    damaged files are passed over here too (unlogged: the training pass logs them)."""
    if not records or not (labels or weights) or not tf.executing_eagerly():
        return
    label_ids, _ = resolve_keys(labels, "training_dataset labels") if labels else ([], [])
    weight_ids, _ = resolve_keys(weights, "training_dataset weights") if weights else ([], [])
    first = BlockFormatDataset(filenames, compression_type, buffer_size, batch_size=records)
    if ignore_errors:
        # The batched source keeps a batch's records across an error, so
        # this is still the first `records` good records.
        first = first.ignore_errors()
    first = first.take(1)
    batch = next(iter(first), None)
    if batch is None or int(tf.size(batch)) == 0:
        return  # no records: nothing is trained on either
    lib = load_library()
    handle = lib.decode_data_record(input_bytes=batch, keep_features=[], keep_codes=[], label_features=[],
                                    weight_features=[])
    ids = [i for i in label_ids for _ in (1, 2)] + weight_ids
    kinds = [k for _ in label_ids for k in (1, 2)] + [2] * len(weight_ids)
    sources = lib.get_feature_sources_from_data_record(handle, feature_ids=ids, feature_kinds=kinds).numpy()
    found = (sources == 1).any(axis=0)
    other = (sources == 3).any(axis=0)
    n = sources.shape[0]
    problems = []
    for j, (key, key_id) in enumerate(zip(labels, label_ids)):
        cols = [2 * j, 2 * j + 1]
        if not found[cols].any():
            how = ("is sent only as another kind (labels are read from binary or continuous features)"
                   if other[cols].any() else "is in none of them")
            problems.append(f"label {key!r} (feature id {key_id}) {how}")
    for j, (key, key_id) in enumerate(zip(weights, weight_ids)):
        col = 2 * len(label_ids) + j
        if not found[col]:
            how = ("is sent only as another kind (weights are read from continuous features)"
                   if other[col] else "is in none of them")
            problems.append(f"weight {key!r} (feature id {key_id}) {how}")
    if problems:
        raise ValueError(
            f"training_dataset: checked the first {n} records of the files: " + "; ".join(problems)
            + ". A label missing from a record reads default_label and a missing weight 0, so these would "
            "train on defaults; check the names. If such a feature is really absent from that many records, "
            "pass check_records=0 (no check) or a larger number."
        )


def _decode_with(lib, records, reader, label_ids, weight_ids, default_label):
    """(features, labels, weights) of `records` through `lib`'s decode and
    getter ops: the op library itself (the two-step path), a recorder of the
    ops it makes (the one-pass source's plan) or a replay of the one-pass
    source's outputs (its element)."""
    keep = reader._keep()
    handle = lib.decode_data_record(
        input_bytes=records,
        keep_features=keep,
        keep_codes=[0] * len(keep),
        label_features=label_ids,
        weight_features=weight_ids,
    )
    x = reader._features(lib, handle)
    y = lib.get_labels_from_data_record(handle, default_label=float(default_label))
    if weight_ids:
        w = tf.reduce_prod(lib.get_weights_from_data_record(handle), axis=1)
    else:
        # y is [B, L]: B records, also when L is 0.
        w = tf.ones(tf.shape(y)[:1], tf.float32)
    return x, y, w


def decode_records(records, features, labels=(), weights=(), default_label: float = 0.0):
    """Decodes a vector of serialized DataRecords into (features, labels,
    weights): features as `features` (a BatchPredictionRequestReader, a
    FeatureConfig, whose labels and weights are the default, or the reader's
    arguments as a dict) outputs them for request bytes, through the same getter ops;
    labels float32 [B, len(labels)] (a missing label is `default_label`);
    weights float32 [B] (the product of the named weight features, a missing
    one 0; all ones when `weights` is empty)."""
    reader = _reader(features)
    labels, weights = _targets(features, labels, weights)
    label_ids, _ = resolve_keys(list(labels), "training_dataset labels") if labels else ([], [])
    weight_ids, _ = resolve_keys(list(weights), "training_dataset weights") if weights else ([], [])
    return _decode_with(load_library(), records, reader, label_ids, weight_ids, default_label)


# ---- the one-pass source --------------------------------------------------


class _Call(NamedTuple):
    """One op `_decode_with` made: the library function, the op, its attrs
    (a plan line) and its outputs."""

    function: str
    op_type: str
    plan_line: str
    dtypes: tuple
    shapes: tuple
    wrap: object  # outputs -> what the library function returned


def _plan_attr(name: str, value) -> str:
    which = value.WhichOneof("value")
    if which == "i":
        return f"{name}=i:{value.i}"
    if which == "f":
        return f"{name}=f:{struct.unpack('<I', struct.pack('<f', value.f))[0]}"
    if which == "s":
        return f"{name}=s:{value.s.hex()}"
    if which == "b":
        return f"{name}=b:{int(value.b)}"
    if which == "list" and not (value.list.f or value.list.s or value.list.type or value.list.shape):
        return f"{name}=l:{','.join(str(i) for i in value.list.i)}"
    raise ValueError(f"training_dataset: attr {name} ({which}) of a getter cannot go in the one-pass plan")


class _Recorder:
    """The op library, recording each decode and getter op it makes."""

    def __init__(self, lib):
        self._lib = lib
        self.calls: list[_Call] = []

    def __getattr__(self, function):
        real = getattr(self._lib, function)

        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            tensors = list(result) if isinstance(result, tuple) else [result]
            op = tensors[0].op
            attrs = [_plan_attr(k, v) for k, v in sorted(op.node_def.attr.items()) if v.WhichOneof("value") != "type"]
            n = len(op.outputs) if op.type != "DecodeDataRecord" else 0
            line = "\t".join([op.type, str(n), *attrs])
            if isinstance(result, tuple):
                wrap = type(result)._make
            else:
                def wrap(outputs):
                    return outputs[0]
            self.calls.append(_Call(function, op.type, line, tuple(t.dtype for t in op.outputs),
                                    tuple(t.shape for t in op.outputs), wrap))
            return result

        return call


class _Replay:
    """The op library's stand-in in the map after the one-pass source: each
    getter call returns the source's outputs for it, in the recorded order."""

    def __init__(self, calls, outputs):
        self._calls = iter(calls)
        self._outputs = list(outputs)
        self._at = 0

    def __getattr__(self, function):
        def call(*args, **kwargs):
            recorded = next(self._calls)
            if recorded.function != function:
                raise AssertionError(f"one-pass replay: {function} called where {recorded.function} was recorded")
            if recorded.op_type == "DecodeDataRecord":
                return None  # the handle: only passed to the getters, which replay
            n = len(recorded.dtypes)
            outputs = self._outputs[self._at:self._at + n]
            self._at += n
            return recorded.wrap(outputs)

        return call


def _one_pass_plan(reader, label_ids, weight_ids, default_label) -> list[_Call]:
    """The ops `_decode_with` makes for this reader, labels and weights,
    recorded once in a scratch graph."""
    recorder = _Recorder(load_library())
    with tf.Graph().as_default():
        records = tf.compat.v1.placeholder(tf.string, [None])
        _decode_with(recorder, records, reader, label_ids, weight_ids, default_label)
    return recorder.calls


class _BlockFormatFeatureDataset(dataset_ops.DatasetSource):
    """The op BlockFormatFeatureDataset (ours): BlockFormatBatchDataset's
    batches decoded by the getters of `calls` in the same op, each record
    parsed once; elements are the getters' outputs, flat."""

    def __init__(self, filenames, compression_type, buffer_size, batch_size: int, drop_remainder: bool, calls):
        getters = [c for c in calls if c.op_type != "DecodeDataRecord"]
        self._spec = tuple(tf.TensorSpec(shape, dtype) for c in getters for dtype, shape in zip(c.dtypes, c.shapes))
        variant = load_library().block_format_feature_dataset(
            filenames=filenames,
            compression_type=compression_type,
            buffer_size=buffer_size,
            batch_size=tf.constant(batch_size, tf.int64),
            drop_remainder=tf.constant(drop_remainder, tf.bool),
            plan=tf.constant("\n".join(c.plan_line for c in calls)),
            output_types=[s.dtype for s in self._spec],
            output_shapes=[s.shape for s in self._spec],
        )
        super().__init__(variant)

    @property
    def element_spec(self):
        return self._spec


def training_dataset(
    filenames,
    features,
    batch_size: int,
    labels=(),
    weights=(),
    default_label: float = 0.0,
    compression_type: str = "auto",
    buffer_size: int = DEFAULT_BUFFER_SIZE,
    num_parallel_reads: int | None = None,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    drop_remainder: bool = False,
    check_records: int = 1024,
    ignore_errors: bool = False,
    one_pass: bool = True,
) -> tf.data.Dataset:
    """Block files -> batches of `(features, labels, weights)` for `model.fit`.

    Args:
      filenames, compression_type, buffer_size, num_parallel_reads: as BlockFormatDataset.
      features: the serving model's `BatchPredictionRequestReader`, the
        `bpr_ops.FeatureConfig` it was made from, or a dict of its arguments:
        the same feature keys, kinds, defaults and output_mode, read by the
        same ops, so training sees what serving sees.
      batch_size: records per batch.
      labels: label feature keys (names or ids), read as float32 [B, L]
        (default: a FeatureConfig's labels).
      weights: weight feature keys; the sample weight is their product ([B]),
        1.0 when none are given (default: a FeatureConfig's weights).
      check_records: a label or weight key that none of the first
        `check_records` records has (labels as binary or continuous features,
        weights as continuous) is a ValueError naming it, raised here (the
        files' first records are read once, in eager mode); 0: no check. A
        key present in some records only is fine: the others read
        default_label, or weight 0.
      default_label: a record's value for a label it does not have.
      shuffle_buffer: > 0 shuffles records in a buffer of that many before batching.
      seed: the shuffle's seed.
      drop_remainder: drop a last batch smaller than batch_size.
      ignore_errors: skip damaged and missing files (the rest of a damaged
        file, a record that is not a DataRecord) instead of raising, logging
        each skipped error (file and byte offset) as a TensorFlow warning.
        Applied to the records before shuffling and batching, so no good
        record is lost on any read path; the check_records check passes
        over damaged files too. (`.ignore_errors()` on the result works when
        reading in file order without shuffle_buffer, with check_records=0
        if the first files are damaged: the check reads them now; elsewhere
        a shuffled or interleaved batch cut short by an error is lost.)
      one_pass: True (default): read in file order without shuffle_buffer,
        the batches come from one op (BlockFormatFeatureDataset) that parses
        each record once, from the file's bytes into the batch's tensors,
        with the getters' own code; shuffle_buffer > 0, num_parallel_reads
        > 1, and ignore_errors with tensor features read the two-step way. False: always the two-step path (records
        as strings, then DecodeDataRecord and the getter ops in a map), for
        comparison or as an escape hatch. Both give the same batches.
    """
    if not isinstance(ignore_errors, bool):
        raise ValueError(f"training_dataset: ignore_errors must be a bool, got {ignore_errors!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"training_dataset: batch_size must be an int >= 1, got {batch_size!r}")
    reader = _reader(features)
    # Resolve here, so a bad label key fails now and not inside tf.data.
    labels, weights = _targets(features, labels, weights)
    if labels:
        resolve_keys(labels, "training_dataset labels")
    if weights:
        resolve_keys(weights, "training_dataset weights")
    if isinstance(check_records, bool) or not isinstance(check_records, int) or check_records < 0:
        raise ValueError(f"training_dataset: check_records must be an int >= 0, got {check_records!r}")
    _check_targets(filenames, _check_compression(compression_type, "training_dataset"), buffer_size, labels,
                   weights, check_records, ignore_errors)
    # Small batches are decoded several at a time and cut by rebatch (slices
    # in C++, no function call per batch): below about a thousand records the
    # decode function's fixed cost per call outweighs its work (issue 27:
    # 1.4x -> 1.9x parse_example's rate at batch 64). rebatch gives exactly
    # .batch(batch_size)'s batches; a chunk that is a multiple of batch_size
    # only spares it concatenating across chunks.
    if not isinstance(one_pass, bool):
        raise ValueError(f"training_dataset: one_pass must be a bool, got {one_pass!r}")
    in_order = num_parallel_reads is None or num_parallel_reads == 1
    # A tensor getter can refuse a batch (a declared shape the records do
    # not have): in a map after ignore_errors (two-step) that is an error
    # the user sees; inside the one-pass source ignore_errors would skip it.
    refusable = ignore_errors and bool(reader._tensors or reader._sparse_tensors)
    if one_pass and in_order and not shuffle_buffer and not refusable:
        return _one_pass_dataset(filenames, reader, batch_size, labels, weights, default_label, compression_type,
                                 buffer_size, drop_remainder, ignore_errors)
    chunk = batch_size * max(1, _DECODE_RECORDS // batch_size)
    drop_chunk = drop_remainder and chunk == batch_size
    if shuffle_buffer or (ignore_errors and not in_order):
        # Shuffling moves records one by one, so they are read one by one.
        # Interleaved files are batched by .batch(), which loses a batch an
        # error cuts short: errors are skipped on the records, before it.
        ds = BlockFormatDataset(filenames, compression_type, buffer_size, num_parallel_reads)
        if ignore_errors:
            ds = ds.ignore_errors(log_warning=True)
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed)
        ds = ds.batch(chunk, drop_remainder=drop_chunk)
    else:
        # Read batched by the source op: no tf.data element per record. It
        # keeps a batch's records across an error, so skipping errors after
        # it loses none.
        ds = BlockFormatDataset(filenames, compression_type, buffer_size, num_parallel_reads,
                                batch_size=chunk, drop_remainder=drop_chunk)
        if ignore_errors:
            ds = ds.ignore_errors(log_warning=True)
    ds = ds.map(
        lambda records: decode_records(records, reader, labels, weights, default_label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if chunk != batch_size:
        ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    # The decode ops are stateful (twml registered them so: they make a
    # resource handle), and tf.data refuses to checkpoint an iterator whose
    # functions hold stateful ops. Each call's handle lives only within that
    # call of the map function, so there is no state outside the iterator to
    # lose: saving the iterator (files, position, buffers) is exact.
    options = tf.data.Options()
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _one_pass_dataset(filenames, reader, batch_size, labels, weights, default_label, compression_type, buffer_size,
                      drop_remainder, ignore_errors) -> tf.data.Dataset:
    """training_dataset read by BlockFormatFeatureDataset: each record parsed
    once; a map rebuilds the reader's output structure from the getters'
    outputs with the reader's own code (`_decode_with` on a replay)."""
    where = "training_dataset"
    compression_type = _check_compression(compression_type, where)
    if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size < 0:
        raise ValueError(f"{where}: buffer_size must be an int >= 0, got {buffer_size!r}")
    if isinstance(filenames, (str, bytes)):
        filenames = [filenames]
    filenames = tf.convert_to_tensor(filenames, dtype=tf.string, name="filenames")
    if filenames.shape.rank is not None and filenames.shape.rank > 1:
        raise ValueError(f"{where}: filenames must be a scalar or a vector, got shape {filenames.shape}")
    if not isinstance(drop_remainder, bool):
        raise ValueError(f"{where}: drop_remainder must be a bool, got {drop_remainder!r}")
    label_ids, _ = resolve_keys(list(labels), "training_dataset labels") if labels else ([], [])
    weight_ids, _ = resolve_keys(list(weights), "training_dataset weights") if weights else ([], [])
    calls = _one_pass_plan(reader, label_ids, weight_ids, default_label)
    # Small batches are decoded several at a time and cut by rebatch, as on
    # the two-step path: per decode the op runs every getter and the map its
    # function once, which at batch 64 cost more CPU than the parse itself
    # (bench_block.py, issue 38). rebatch gives exactly .batch()'s batches.
    chunk = batch_size * max(1, _DECODE_RECORDS // batch_size)
    drop_chunk = drop_remainder and chunk == batch_size
    ds = _BlockFormatFeatureDataset(filenames, tf.constant(compression_type, tf.string),
                                    tf.constant(buffer_size, tf.int64), chunk, drop_chunk, calls)
    if ignore_errors:
        # The source keeps a batch's good records across an error.
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.map(
        lambda *outputs: _decode_with(_Replay(calls, outputs), None, reader, label_ids, weight_ids, default_label),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if chunk != batch_size:
        ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)

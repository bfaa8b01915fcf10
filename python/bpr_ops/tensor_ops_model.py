"""Python wrappers of twml's small tensor ops (issue 37), one per op.

The ops keep twml's registered names, attrs, inputs and outputs, so graphs
twml exported run unchanged; these wrappers are for new code. Each passes its
arguments to the op as they are (TensorFlow converts lists and arrays); the
kernels check the inputs and raise tf.errors.InvalidArgumentError naming the
op, the input and what was expected where twml crashed or dropped values
(README, "twml's model ops").
"""

from __future__ import annotations

import tensorflow as tf

from ._loader import load_library

__all__ = [
    "compress_sample_ids",
    "decompress_sample_ids",
    "feature_extractor",
    "feature_mask",
    "fixed_length_tensor",
    "fixed_length_tensor_v2",
    "get_substrings",
    "hashmap",
    "var_length_reader",
]


def feature_mask(keep, list_keep, name=None) -> tf.Tensor:
    """twml's `FeatureMask`: whether each element of `keep` is in `list_keep`.

    `keep`: int64 or int8, any shape (flattened). `list_keep`: a list of ints.
    Returns bool [number of elements of keep].
    """
    return load_library().feature_mask(keep=keep, list_keep=list(list_keep), name=name)


def hashmap(keys, hash_keys, hash_values, name=None):
    """twml's `Hashmap`: looks `keys` up in the table `hash_keys[i] -> hash_values[i]`.

    All int64. Returns `(values, mask)` of the shape of `keys`: `values` is
    the table's value where the key is in the table (`mask` 1) and the key
    itself where it is not (`mask` 0). A key repeated in `hash_keys` maps to
    its later value. `hash_keys` and `hash_values` must have as many elements.
    Each call uses the table it is given (twml kept the first call's table).
    """
    return load_library().hashmap(keys=keys, hash_keys=hash_keys, hash_values=hash_values, name=name)


def compress_sample_ids(input, name=None) -> tf.Tensor:  # noqa: A002 (twml's input name)
    """twml's `CompressSampleIds`: int32 sample ids, non-negative and
    non-decreasing, to counts: `output[s]` = how many times `s` occurs.
    Returns int32 [input[-1] + 1] ([0] for an empty input)."""
    return load_library().compress_sample_ids(input=input, name=name)


def decompress_sample_ids(input, name=None) -> tf.Tensor:  # noqa: A002
    """twml's `DecompressSampleIds`: int32 counts (non-negative) to sample
    ids, `s` repeated `input[s]` times. The inverse of `compress_sample_ids`."""
    return load_library().decompress_sample_ids(input=input, name=name)


def fixed_length_tensor(segment_ids, values, pad_value, max_length=-1, name=None) -> tf.Tensor:
    """twml's `FixedLengthTensor`: variable-length segments as a dense
    `[batch_size, max_length]` tensor, `batch_size` = last segment id + 1.

    `segment_ids`: int32 or int64, sorted, non-negative, one per value.
    `values`: int32, int64 or string. `pad_value`: a scalar of the values'
    dtype, written where a segment is shorter than `max_length`. A negative
    `max_length` is the longest segment's length; longer segments are cut.
    """
    return load_library().fixed_length_tensor(
        segment_ids=segment_ids, values=values, pad_value=pad_value, max_length=max_length, name=name
    )


def fixed_length_tensor_v2(segment_ids, values, pad_value, batch_size, max_length=-1, name=None) -> tf.Tensor:
    """twml's `FixedLengthTensorV2`: `fixed_length_tensor` with the batch size
    given (int64, one value; every segment id below it), so trailing empty
    rows are kept."""
    return load_library().fixed_length_tensor_v2(
        segment_ids=segment_ids,
        values=values,
        pad_value=pad_value,
        batch_size=tf.cast(batch_size, tf.int64),
        max_length=max_length,
        name=name,
    )


def var_length_reader(input1, name=None) -> tf.Tensor:
    """twml's `VarLengthReader`: int32 ones of shape `[1, input1[0]]`.
    `input1` is int32 of rank 1 with at least one element, the first non-negative."""
    return load_library().var_length_reader(input1=input1, name=name)


def feature_extractor(mask_in, ids_in, keys_in, values_in, codes_in, types_in, name=None):
    """twml's `FeatureExtractor`: the rows of a hashed record's columns where
    `mask_in` (bool) is true, in order.

    `ids_in`, `keys_in`, `codes_in` int64, `values_in` float32 or float64,
    `types_in` int8, each with as many elements as `mask_in`. Returns
    `(ids_out, keys_out, values_out, codes_out, types_out)`.
    """
    # The op's attr default (T = float) would make TensorFlow convert a
    # float64 NumPy array to float32; converted first, it keeps its dtype.
    values_in = tf.convert_to_tensor(values_in)
    return load_library().feature_extractor(
        mask_in=mask_in, ids_in=ids_in, keys_in=keys_in, values_in=values_in, codes_in=codes_in,
        types_in=types_in, name=name,
    )


def get_substrings(values, min_n, max_n, name=None) -> tf.Tensor:
    """twml's `GetSubstrings` (fastText-style subwords) of each string.

    For a word w: the distinct strings among w, `<w>` and the substrings of
    `<w>` of `min_n` to `max_n` **bytes** that start on a UTF-8 character,
    sorted bytewise and joined by `;`. Lengths are bytes, as in twml: an
    n-gram may end inside a multi-byte character. `min_n` and `max_n` must be
    non-negative; `min_n=0` adds the empty string (a leading `;`).
    Returns a string tensor of the shape of `values`.
    """
    return load_library().get_substrings(values=values, min_n=min_n, max_n=max_n, name=name)

"""Keras 3 layers around the writer ops, for the last layer of an exported model."""

from __future__ import annotations

import numbers

import keras

from . import ops


def _checked_keys(keys, layer: str) -> list[int]:
    """Keys as a list of distinct Python ints, checked when the layer is built."""
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise TypeError(f"{layer}: keys must be a list of integer feature ids, got {keys!r}")
    out = []
    for k in keys:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"{layer}: keys must be integer feature ids, got {k!r} in {keys!r}")
        k = int(k)
        if not -(2**63) <= k < 2**63:
            raise ValueError(f"{layer}: key {k} does not fit in int64")
        out.append(k)
    seen = {}
    for i, k in enumerate(out):
        if k in seen:
            raise ValueError(
                f"{layer}: keys has a duplicate: key {k} appears at index {seen[k]} and index {i}"
            )
        seen[k] = i
    return out


class _WriterLayer(keras.layers.Layer):
    def __init__(self, keys, **kwargs):
        # The predictions reach the op in the dtype the model made them:
        # autocasting (float64 -> float32, say) would silently change them.
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.keys = _checked_keys(keys, type(self).__name__)

    def compute_output_shape(self, input_shape):
        return (1, None)

    def compute_output_spec(self, *args, **kwargs):
        return keras.KerasTensor((1, None), dtype="uint8")

    def get_config(self):
        return {**super().get_config(), "keys": list(self.keys)}


@keras.saving.register_keras_serializable(package="bpr_ops")
class BatchPredictionWriter(_WriterLayer):
    """Packages a [B, K] prediction tensor, one column per key, into a
    serialized Thrift BatchPredictionResponse (uint8 [1, N]).

    Args:
      keys: K distinct integer feature ids; column j of the values is written
        under keys[j]. A [B] input is accepted when K == 1.
    """

    def call(self, values):
        return ops.batch_prediction_response_writer(self.keys, values)


@keras.saving.register_keras_serializable(package="bpr_ops")
class BatchPredictionTensorWriter(_WriterLayer):
    """Packages K dense tensors, each [B, ...], into a serialized Thrift
    BatchPredictionResponse (uint8 [1, N]); record i maps keys[j] to row i of
    the j-th tensor.

    Args:
      keys: K >= 1 distinct integer feature ids, one per input tensor.
    """

    def __init__(self, keys, **kwargs):
        super().__init__(keys, **kwargs)
        if not self.keys:
            raise ValueError("BatchPredictionTensorWriter: keys is empty; give one key per tensor")

    def call(self, values):
        return ops.batch_prediction_tensor_response_writer(self.keys, list(values))

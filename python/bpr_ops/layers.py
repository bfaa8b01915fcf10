"""Keras layers around the writer ops, for the last layer of an exported model.

The classes here are Keras 3 layers. `writer_layers(keras_module)` makes the
same classes on another Keras: bpr_ops.tf_keras_layers has them on tf_keras
(Keras 2), one body of code for both.
"""

from __future__ import annotations

import keras

from . import _checks, _splits, ops
from ._keys import config_keys, resolve_keys


class _WriterLayer:
    """What the writer layers share, whichever Keras they are made on
    (`writer_layers`): the Keras layer class comes after it in the bases."""

    def __init__(self, keys, **kwargs):
        # The predictions reach the op in the dtype the model made them:
        # autocasting (float64 -> float32, say) would silently change them.
        kwargs.setdefault("autocast", False)
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Names are hashed here, once (and again by from_config: a loaded
        # model hashes the names its config holds). `keys` stays as given,
        # for get_config and messages; `key_ids` is what the op writes.
        self.key_ids, self.keys = resolve_keys(keys, type(self).__name__)

    def compute_output_shape(self, input_shape, row_splits_shape=None):
        return (1, None) if row_splits_shape is None else (None,)

    def compute_output_spec(self, values, row_splits=None):
        # Functional models are built here, on KerasTensors: what their static
        # shapes and dtypes already tell is an error now, not in the server.
        self._check_input(values)
        if row_splits is not None:
            # One response per request (issue 29): string [R].
            _splits.check_spec(row_splits, self._where())
            return keras.KerasTensor((None,), dtype="string")
        return keras.KerasTensor((1, None), dtype="uint8")

    def _where(self) -> str:
        return f"{type(self).__name__} '{self.name}' with keys {_checks.keys_text(self.keys)}"

    def get_config(self):
        return {**super().get_config(), "keys": config_keys(self.keys)}


class _ContinuousWriter(_WriterLayer):
    """Packages a [B, K] prediction tensor, one column per key, into a
    serialized Thrift BatchPredictionResponse (uint8 [1, N]); called with
    `row_splits` (int64 [R + 1], from `BatchPredictionRequestReader(row_splits=True)`),
    into one response per request (string [R]: the form servers batch).

    Args:
      keys: K keys, each an integer feature id or a feature name (str or
        bytes, hashed as twml's FeatureId does: `bpr_ops.feature_id`), with
        distinct ids; column j of the values is written under keys[j]. A [B]
        input is accepted when K == 1. `layer.key_ids` holds the ids.
    """

    def _check_input(self, values):
        values = _checks.dense(
            values, "values", self._where(), "a dense float tensor [batch, K] (or [batch] with one key)"
        )
        _checks.check_continuous(self._where(), self.keys, len(self.keys), values)
        return values

    def call(self, values, row_splits=None):
        # Subclassed models and tf.function tracing reach here with symbolic
        # tensors: the same checks, before the op is added to the graph.
        values = self._check_input(values)
        if row_splits is not None:
            return ops.batch_prediction_responses_writer(self.key_ids, values, row_splits)
        return ops.batch_prediction_response_writer(self.key_ids, values)


class _TensorWriter(_WriterLayer):
    """Packages K dense tensors, each [B, ...], into a serialized Thrift
    BatchPredictionResponse (uint8 [1, N]); record i maps keys[j] to row i of
    the j-th tensor. Called with `row_splits` (int64 [R + 1]), one response
    per request (string [R]), as BatchPredictionWriter.

    Args:
      keys: K >= 1 keys, one per input tensor, each an integer feature id or a
        feature name (hashed as twml does), with distinct ids.
    """

    def __init__(self, keys, **kwargs):
        super().__init__(keys, **kwargs)
        if not self.keys:
            raise ValueError("BatchPredictionTensorWriter: keys is empty; give one key per tensor")

    def _check_input(self, values):
        values = _checks.dense_list(values, self._where(), self.keys)
        _checks.check_tensor(self._where(), self.keys, len(self.keys), values)
        return values

    def call(self, values, row_splits=None):
        values = self._check_input(values)
        if row_splits is not None:
            return ops.batch_prediction_tensor_responses_writer(self.key_ids, values, row_splits)
        return ops.batch_prediction_tensor_response_writer(self.key_ids, values)


class _RecordWriter(_WriterLayer):
    """Packages K dense tensors into one serialized Thrift DataRecord (uint8
    [1, N]) whose `tensors` map holds values[j] (whole, any shape) under
    keys[j]: twml's `twml.layers.DataRecordTensorWriter`, "initially added to
    support exporting user embeddings as tensors".

    Args:
      keys: K >= 1 keys, one per input tensor, each an integer feature id or a
        feature name (hashed as twml does), with distinct ids (twml kept the
        first of repeated keys and dropped the others silently).
    """

    def __init__(self, keys, **kwargs):
        super().__init__(keys, **kwargs)
        if not self.keys:
            raise ValueError("DataRecordTensorWriter: keys is empty; give one key per tensor")

    def compute_output_spec(self, values):
        self._check_input(values)
        return keras.KerasTensor((1, None), dtype="uint8")

    def _check_input(self, values):
        values = _checks.dense_list(values, self._where(), self.keys)
        error = _checks.unsupported_dtype(self._where(), values, ops.RECORD_DTYPES)
        if error is not None:
            raise error
        if len(values) != len(self.keys):
            raise _checks.InputShapeError(
                None,
                None,
                f"{self._where()}: got {len(values)} values tensors for {len(self.keys)} keys; "
                "one values tensor per key is expected",
            )
        return values

    def call(self, values):
        values = self._check_input(values)
        return ops.data_record_tensor_writer(self.key_ids, values)


def writer_layers(keras_module, module: str) -> dict:
    """{name: class} of the writer layers on `keras_module` (keras or tf_keras),
    registered with it as "bpr_ops>Name" so that saved models find them."""
    register = keras_module.saving.register_keras_serializable(package="bpr_ops")
    made = {}
    for name, logic in (
        ("BatchPredictionWriter", _ContinuousWriter),
        ("BatchPredictionTensorWriter", _TensorWriter),
        ("DataRecordTensorWriter", _RecordWriter),
    ):
        cls = type(name, (logic, keras_module.layers.Layer), {"__doc__": logic.__doc__, "__module__": module})
        cls.__qualname__ = name
        made[name] = register(cls)
    return made


_KERAS_3 = writer_layers(keras, __name__)
BatchPredictionWriter = _KERAS_3["BatchPredictionWriter"]
BatchPredictionTensorWriter = _KERAS_3["BatchPredictionTensorWriter"]
DataRecordTensorWriter = _KERAS_3["DataRecordTensorWriter"]

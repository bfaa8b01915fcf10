"""bpr_ops' Keras layers on tf_keras (Keras 2, what twml's users wrote models
in): BatchPredictionWriter, BatchPredictionTensorWriter,
DataRecordTensorWriter and BatchPredictionRequestReader, the same code, names
and configs as the Keras 3 classes, registered with tf_keras as
"bpr_ops>Name" so that its SavedModel, `.h5` and `.keras` files with them load.

`import bpr_ops` gives these classes as bpr_ops.BatchPredictionWriter ...
when TF_USE_LEGACY_KERAS is set (`tf.keras` is tf_keras then) and imports this
module when tf_keras was imported before it. After importing tf_keras
yourself without that variable, import this module:

    import tf_keras
    from bpr_ops.tf_keras_layers import BatchPredictionWriter
"""

from __future__ import annotations

try:
    import tf_keras
except ImportError as e:
    raise ImportError(
        "bpr_ops.tf_keras_layers needs tf_keras, which is not installed. It must match the TensorFlow "
        "minor (tf_keras 2.21 for TensorFlow 2.21, ...); next to tensorflow-cpu install it without its "
        "dependencies, or pip installs the `tensorflow` distribution too: "
        "`pip install --no-deps 'tf_keras==<your TensorFlow major.minor>.*'`",
        name="tf_keras",
    ) from e

from ._request_layer import request_reader_layer
from .layers import writer_layers
from .sparse_layers import sparse_layers

_WRITERS = writer_layers(tf_keras, __name__)
BatchPredictionWriter = _WRITERS["BatchPredictionWriter"]
BatchPredictionTensorWriter = _WRITERS["BatchPredictionTensorWriter"]
DataRecordTensorWriter = _WRITERS["DataRecordTensorWriter"]
BatchPredictionRequestReader = request_reader_layer(tf_keras, __name__)
# twml's sparse layers (issue 37).
_SPARSE = sparse_layers(tf_keras, __name__)
FullSparse = _SPARSE["FullSparse"]
SparseMaxNorm = _SPARSE["SparseMaxNorm"]
Partition = _SPARSE["Partition"]
Stitch = _SPARSE["Stitch"]


def _nested_dict_inputs_fix():
    """Lets tf_keras functional models take nested dict inputs such as the
    reader's and training_dataset's `{"continuous": ..., "tensors": {key: ...}}`.

    tf_keras (2.16-2.21) tells a nested input structure from a flat dict by
    `len(top-level keys) != len(leaves)` (keras-team/tf-keras#73, open), so a
    nested dict with as many keys as leaves, e.g. {"continuous": x,
    "tensors": {"emb": t}, "tensors_found": {"emb": f}}, is taken for a flat
    dict and every call of the model fails with `'dict' object has no
    attribute '_keras_history'` (2.16: `... 'shape'`). Such inputs get what tf_keras gives every
    other nested structure: no input spec (no input check). All other models
    go through tf_keras' own property unchanged."""
    try:
        from tf_keras.src.engine import functional
    except ImportError:  # another layout: tf_keras' own behaviour stays (test_tf_keras.py would fail)
        return

    original = functional.Functional.__dict__.get("input_spec")
    if not isinstance(original, property) or getattr(original.fget, "_bpr_ops_fix", False):
        return

    def input_spec(self):
        nested = getattr(self, "_nested_inputs", None)
        if (not hasattr(self, "_manual_input_spec") and isinstance(nested, dict)
                and any(isinstance(v, (dict, list, tuple)) for v in nested.values())):
            return None
        return original.fget(self)

    input_spec._bpr_ops_fix = True
    functional.Functional.input_spec = property(input_spec, original.fset, original.fdel, original.__doc__)


_nested_dict_inputs_fix()

# twml's model ops (issue 37): discretizers and calibration.
from .discretizers import discretizer_layers  # noqa: E402

_DISCRETIZERS = discretizer_layers(tf_keras, __name__)
HashingDiscretizer = _DISCRETIZERS["HashingDiscretizer"]
Isotonic = _DISCRETIZERS["Isotonic"]
PercentileDiscretizer = _DISCRETIZERS["PercentileDiscretizer"]
MDL = _DISCRETIZERS["MDL"]

__all__ = [
    "BatchPredictionRequestReader",
    "BatchPredictionTensorWriter",
    "BatchPredictionWriter",
    "DataRecordTensorWriter",
    "HashingDiscretizer",
    "Isotonic",
    "MDL",
    "PercentileDiscretizer",
    "FullSparse",
    "Partition",
    "SparseMaxNorm",
    "Stitch",
]

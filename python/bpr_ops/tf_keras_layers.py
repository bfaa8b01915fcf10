"""bpr_ops' Keras layers on tf_keras (Keras 2, what twml's users wrote models
in): BatchPredictionWriter, BatchPredictionTensorWriter and
BatchPredictionRequestReader, the same code, names and configs as the Keras 3
classes, registered with tf_keras as "bpr_ops>Name" so that its SavedModel,
`.h5` and `.keras` files with them load.

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
BatchPredictionRequestReader = request_reader_layer(tf_keras, __name__)
# twml's sparse layers (issue 37).
_SPARSE = sparse_layers(tf_keras, __name__)
FullSparse = _SPARSE["FullSparse"]
SparseMaxNorm = _SPARSE["SparseMaxNorm"]
Partition = _SPARSE["Partition"]
Stitch = _SPARSE["Stitch"]

__all__ = [
    "BatchPredictionRequestReader",
    "BatchPredictionTensorWriter",
    "BatchPredictionWriter",
    "FullSparse",
    "Partition",
    "SparseMaxNorm",
    "Stitch",
]

"""bpr_ops: TensorFlow ops that write predictions as a Thrift BatchPredictionResponse.

    import bpr_ops
    out = bpr_ops.batch_prediction_response_writer(keys=[11, 12], values=scores)  # uint8 [1, N]
    bpr_ops.decode_batch_prediction_response(out)  # [{11: 0.25, 12: 0.75}, ...]
    bpr_ops.BatchPredictionWriter(keys=["prediction", 1002])  # names hashed as twml does
    bpr_ops.feature_id("prediction")  # -5621645068071228725

The op library is loaded on first use (see `bpr_ops._loader`).
"""

from ._loader import LibraryLoadError, library_path, load_library
from .decode import DecodeError, SparseTensorValue, decode_batch_prediction_response
from .feature_ids import feature_id, feature_ids
from .layers import BatchPredictionTensorWriter, BatchPredictionWriter
from .ops import batch_prediction_response_writer, batch_prediction_tensor_response_writer

__version__ = "0.1.0"

__all__ = [
    "BatchPredictionTensorWriter",
    "BatchPredictionWriter",
    "DecodeError",
    "LibraryLoadError",
    "SparseTensorValue",
    "batch_prediction_response_writer",
    "batch_prediction_tensor_response_writer",
    "decode_batch_prediction_response",
    "feature_id",
    "feature_ids",
    "library_path",
    "load_library",
]

"""bpr_ops: TensorFlow ops that write predictions as a Thrift BatchPredictionResponse.

    import bpr_ops
    out = bpr_ops.batch_prediction_response_writer(keys=[11, 12], values=scores)  # uint8 [1, N]
    bpr_ops.decode_batch_prediction_response(out)  # [{11: 0.25, 12: 0.75}, ...]
    bpr_ops.BatchPredictionWriter(keys=["prediction", 1002])  # names hashed as twml does
    bpr_ops.feature_id("prediction")  # -5621645068071228725

The op library is loaded on first use (see `bpr_ops._loader`).
"""

import importlib.util

from ._loader import SUPPORTED_TENSORFLOW

# TensorFlow is an extra of the wheel (a hard requirement would make pip
# install tensorflow-cpu next to a user's tensorflow: one import package, two
# distributions), so its absence gets a message saying what to install rather
# than "No module named 'keras'" from deep inside.
if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(
        f"bpr_ops needs TensorFlow ({SUPPORTED_TENSORFLOW}), which is not installed in this Python "
        "environment: install it with bpr_ops, `pip install 'bpr-ops[tensorflow]'` (or "
        "`'bpr-ops[tensorflow-cpu]'` for the CPU-only build)",
        name="tensorflow",
    )

from ._loader import LibraryLoadError, UnsupportedTensorFlowError, library_path, load_library  # noqa: E402
from .decode import DecodeError, SparseTensorValue, decode_batch_prediction_response  # noqa: E402
from .feature_ids import feature_id, feature_ids  # noqa: E402
from .layers import BatchPredictionTensorWriter, BatchPredictionWriter
from .ops import batch_prediction_response_writer, batch_prediction_tensor_response_writer

__version__ = "0.1.0"

__all__ = [
    "BatchPredictionTensorWriter",
    "BatchPredictionWriter",
    "DecodeError",
    "LibraryLoadError",
    "SparseTensorValue",
    "UnsupportedTensorFlowError",
    "batch_prediction_response_writer",
    "batch_prediction_tensor_response_writer",
    "decode_batch_prediction_response",
    "feature_id",
    "feature_ids",
    "library_path",
    "load_library",
]

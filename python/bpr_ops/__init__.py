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
# distributions). Without it the decoder, the feature-id hash and bpr-decode
# still work (they import no TensorFlow); a name that needs TensorFlow raises an
# ImportError saying what to install rather than "No module named 'keras'".
from .decode import DecodeError, SparseTensorValue, decode_batch_prediction_response  # noqa: E402
from .feature_ids import feature_id, feature_ids  # noqa: E402
from .request import encode_batch_prediction_request, encode_data_record  # noqa: E402

# The names that need TensorFlow, and the module of each.
_NEEDS_TENSORFLOW = {
    "BatchPredictionRequestReader": "_request_layer",
    "BatchPredictionTensorWriter": "layers",
    "BatchPredictionWriter": "layers",
    "DataRecordTensorWriter": "layers",
    "batch_prediction_response_writer": "ops",
    "data_record_tensor_writer": "ops",
    "batch_prediction_tensor_response_writer": "ops",
    "batch_prediction_responses_writer": "ops",
    "batch_prediction_tensor_responses_writer": "ops",
    "LibraryLoadError": "_loader",
    "UnsupportedTensorFlowError": "_loader",
    "library_path": "_loader",
    "load_library": "_loader",
}

if importlib.util.find_spec("tensorflow") is not None:
    # Imported now, not on first use: importing the layers registers them with
    # Keras, which a `.keras` file loaded right after `import bpr_ops` needs.
    from ._loader import LibraryLoadError, UnsupportedTensorFlowError, library_path, load_library  # noqa: E402
    from ._request_layer import BatchPredictionRequestReader  # noqa: E402
    from .layers import BatchPredictionTensorWriter, BatchPredictionWriter, DataRecordTensorWriter  # noqa: E402
    from .ops import (  # noqa: E402
        batch_prediction_response_writer,
        batch_prediction_tensor_response_writer,
        data_record_tensor_writer,
    )
    from .ops import batch_prediction_responses_writer, batch_prediction_tensor_responses_writer  # noqa: E402
else:

    def __getattr__(name):
        if name in _NEEDS_TENSORFLOW:
            raise ImportError(
                f"bpr_ops.{name} needs TensorFlow ({SUPPORTED_TENSORFLOW}), which is not installed in this "
                "Python environment: install it with bpr_ops, `pip install 'bpr-ops[tensorflow]'` (or "
                "`'bpr-ops[tensorflow-cpu]'` for the CPU-only build). The decoder, feature_id(s) and "
                "bpr-decode work without it.",
                name="tensorflow",
            )
        raise AttributeError(f"module 'bpr_ops' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "BatchPredictionRequestReader",
    "encode_batch_prediction_request",
    "encode_data_record",
    "BatchPredictionTensorWriter",
    "BatchPredictionWriter",
    "DataRecordTensorWriter",
    "DecodeError",
    "LibraryLoadError",
    "SparseTensorValue",
    "UnsupportedTensorFlowError",
    "batch_prediction_response_writer",
    "batch_prediction_tensor_response_writer",
    "data_record_tensor_writer",
    "batch_prediction_responses_writer",
    "batch_prediction_tensor_responses_writer",
    "decode_batch_prediction_response",
    "feature_id",
    "feature_ids",
    "library_path",
    "load_library",
]

"""bpr_ops: TensorFlow ops that write predictions as a Thrift BatchPredictionResponse.

    import bpr_ops
    out = bpr_ops.batch_prediction_response_writer(keys=[11, 12], values=scores)  # uint8 [1, N]
    bpr_ops.decode_batch_prediction_response(out)  # [{11: 0.25, 12: 0.75}, ...]
    bpr_ops.BatchPredictionWriter(keys=["prediction", 1002])  # names hashed as twml does
    bpr_ops.feature_id("prediction")  # -5621645068071228725

Importing bpr_ops where TensorFlow is installed imports it and loads the op
library, which registers the ops with TensorFlow (as tensorflow-text does): a
SavedModel, a `keras.layers.TFSMLayer` or a `.keras` file that uses them loads
after `import bpr_ops`, imported before or after TensorFlow. The exception is
the bpr-decode command (and `python -m bpr_ops`), which needs no TensorFlow and
does not import it; there the names that need TensorFlow import it on first use.
"""

import importlib
import importlib.util
import os
import sys
import warnings

from ._loader import SUPPORTED_TENSORFLOW

# TensorFlow is an extra of the wheel (a hard requirement would make pip
# install tensorflow-cpu next to a user's tensorflow: one import package, two
# distributions). Without it the decoder, the feature-id hash and bpr-decode
# still work (they import no TensorFlow); a name that needs TensorFlow raises an
# ImportError saying what to install rather than "No module named 'keras'".
from .decode import DecodeError, SparseTensorValue, decode_batch_prediction_response  # noqa: E402
from .feature_config import FeatureConfig  # noqa: E402
from .feature_ids import feature_id, feature_ids  # noqa: E402
from .request import encode_batch_prediction_request, encode_data_record  # noqa: E402

# The names that need TensorFlow, and the module of each.
_NEEDS_TENSORFLOW = {
    "BatchPredictionRequestReader": "_request_layer",
    "BatchPredictionTensorWriter": "layers",
    "BatchPredictionWriter": "layers",
    "DataRecordTensorWriter": "layers",
    "batch_prediction_response_writer": "ops",
    "batch_prediction_tensor_response_writer": "ops",
    "batch_prediction_responses_writer": "ops",
    "batch_prediction_tensor_responses_writer": "ops",
    "data_record_tensor_writer": "ops",
    "export_for_serving": "serving",
    # Mistakes seen before the op runs (while a model is built or traced).
    "InputDTypeError": "_checks",
    "InputShapeError": "_checks",
    # twml's model ops (issue 37): discretizers, calibration, calibrators.
    "HashingDiscretizer": "discretizers",
    "Isotonic": "discretizers",
    "HashingDiscretizerCalibrator": "calibrators",
    "IsotonicCalibrator": "calibrators",
    "PercentileDiscretizer": "discretizers",
    "MDL": "discretizers",
    "PercentileDiscretizerCalibrator": "calibrators",
    "MDLCalibrator": "calibrators",
    "percentile_discretizer": "discretizers",
    "mdl": "discretizers",
    "hashing_discretizer": "discretizers",
    "isotonic_calibration": "discretizers",
    # twml's model ops (issue 37): sparse matmul (FullSparse), norms, partition/stitch.
    "FullSparse": "sparse_layers",
    "SparseMaxNorm": "sparse_layers",
    "Partition": "sparse_layers",
    "Stitch": "sparse_layers",
    "binary_sparse_dense_matmul": "sparse_layers",
    "partition_sparse_tensor_mod": "sparse_layers",
    "sparse_max_norm_inference": "sparse_layers",
    "sparse_max_norm_training": "sparse_layers",
    # twml's model ops (issue 37): the small tensor ops.
    "feature_mask": "tensor_ops_model",
    "hashmap": "tensor_ops_model",
    "compress_sample_ids": "tensor_ops_model",
    "decompress_sample_ids": "tensor_ops_model",
    "fixed_length_tensor": "tensor_ops_model",
    "fixed_length_tensor_v2": "tensor_ops_model",
    "var_length_reader": "tensor_ops_model",
    "feature_extractor": "tensor_ops_model",
    "get_substrings": "tensor_ops_model",
    "LibraryLoadError": "_loader",
    "UnsupportedTensorFlowError": "_loader",
    "library_path": "_loader",
    "load_library": "_loader",
}

# Layers outside layers.py that tf_keras_layers also makes.
_TF_KERAS_TOO = ("HashingDiscretizer", "Isotonic", "PercentileDiscretizer", "MDL", "FullSparse", "SparseMaxNorm",
                 "Partition", "Stitch")

_HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def _started_as_cli() -> bool:
    """Whether this process is the bpr-decode command: its console script (pip
    names the script bpr-decode) or `python -m bpr_ops`, which imports this
    package before running its __main__, while sys.argv[0] is still "-m"."""
    argv0 = sys.argv[0] if getattr(sys, "argv", None) else ""
    if argv0 == "-m":
        args = getattr(sys, "orig_argv", [])
        for i, arg in enumerate(args):
            if arg == "-m":
                target = args[i + 1] if i + 1 < len(args) else ""
            elif arg.startswith("-m"):
                target = arg[2:]
            else:
                continue
            return target in ("bpr_ops", "bpr_ops.__main__")
        return False
    return os.path.basename(argv0) == "bpr-decode"


def _legacy_keras() -> bool:
    """TensorFlow's switch to tf_keras (Keras 2) as `tf.keras`, read as it reads it."""
    return os.environ.get("TF_USE_LEGACY_KERAS") in ("true", "True", "1")


def _register_ops():
    """Loads the op library, which registers its ops with TensorFlow. A library
    that does not load is a warning here, not an error: the decoder and the
    feature ids need none; the ops raise the loader's error when called."""
    from ._loader import LibraryLoadError, load_library

    try:
        load_library()
    except LibraryLoadError as e:
        warnings.warn(
            "bpr_ops: the op library did not load, so its ops are not registered with TensorFlow "
            f"(a SavedModel that uses them will not load; calling them raises this error): {e}",
            RuntimeWarning,
            stacklevel=3,
        )


if _HAS_TENSORFLOW and not _started_as_cli():
    import tensorflow  # noqa: E402, F401  (first: the library links against it)

    _register_ops()
    # Imported now, not on first use: importing the layers registers them with
    # Keras, which a `.keras` file loaded right after `import bpr_ops` needs.
    from ._checks import InputDTypeError, InputShapeError  # noqa: E402
    from ._loader import LibraryLoadError, UnsupportedTensorFlowError, library_path, load_library  # noqa: E402
    from .ops import (  # noqa: E402
        batch_prediction_response_writer,
        batch_prediction_responses_writer,
        batch_prediction_tensor_response_writer,
        batch_prediction_tensor_responses_writer,
        data_record_tensor_writer,
    )

    if _legacy_keras():
        # tf.keras is tf_keras: the layers are tf_keras layers (Keras 2).
        from .tf_keras_layers import (  # noqa: E402
            BatchPredictionRequestReader,
            BatchPredictionTensorWriter,
            BatchPredictionWriter,
            DataRecordTensorWriter,
        )
        from .tf_keras_layers import FullSparse, Partition, SparseMaxNorm, Stitch  # noqa: E402, F401
    else:
        from ._request_layer import BatchPredictionRequestReader  # noqa: E402
        from .layers import BatchPredictionTensorWriter, BatchPredictionWriter, DataRecordTensorWriter  # noqa: E402
        # twml's sparse layers (issue 37); importing registers them with Keras
        # and the gradient of BinarySparseTensorDenseMatMul.
        from .sparse_layers import FullSparse, Partition, SparseMaxNorm, Stitch  # noqa: E402, F401
        from . import discretizers  # noqa: E402, F401  (registers twml's model layers with Keras)

        if "tf_keras" in sys.modules:
            # tf_keras imported directly: its files with our layers load too.
            from . import tf_keras_layers  # noqa: E402, F401


def __getattr__(name):
    if name in _NEEDS_TENSORFLOW:
        if not _HAS_TENSORFLOW:
            raise ImportError(
                f"bpr_ops.{name} needs TensorFlow ({SUPPORTED_TENSORFLOW}), which is not installed in this "
                "Python environment: install it with bpr_ops, `pip install 'bpr-ops[tensorflow]'` (or "
                "`'bpr-ops[tensorflow-cpu]'` for the CPU-only build). The decoder, feature_id(s) and "
                "bpr-decode work without it.",
                name="tensorflow",
            )
        # The CLI's process skipped TensorFlow at import: it is imported now.
        module = _NEEDS_TENSORFLOW[name]
        if (module in ("layers", "_request_layer") or name in _TF_KERAS_TOO) and _legacy_keras():
            module = "tf_keras_layers"
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
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
    "FeatureConfig",
    "InputDTypeError",
    "InputShapeError",
    "LibraryLoadError",
    "SparseTensorValue",
    "UnsupportedTensorFlowError",
    "batch_prediction_response_writer",
    "batch_prediction_responses_writer",
    "batch_prediction_tensor_response_writer",
    "batch_prediction_tensor_responses_writer",
    "data_record_tensor_writer",
    "decode_batch_prediction_response",
    "export_for_serving",
    "feature_id",
    "feature_ids",
    "library_path",
    "load_library",
    # twml's sparse model ops (issue 37).
    "FullSparse",
    "Partition",
    "SparseMaxNorm",
    "Stitch",
    "binary_sparse_dense_matmul",
    "partition_sparse_tensor_mod",
    "sparse_max_norm_inference",
    "sparse_max_norm_training",
]

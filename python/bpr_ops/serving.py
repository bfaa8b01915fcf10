"""export_for_serving: one SavedModel of a per-request model that every server
we know of runs: TensorFlow Serving and bpr-host (`serving_default`), navi
(`navi`), and twml's single-response form (`single`, batching off).

Why a helper and not `tf.saved_model.save` of a `tf.Module`: a module holding
Keras 3 layers saves a graph whose variables C++ loaders cannot restore
(TensorFlow Serving, bpr-host and the TF1 loader fail with "Could not find
variable dense/bias"; only TensorFlow's Python loader copes). Keras's
ExportArchive, which `model.export` uses too, saves the variables the
signatures read, so that is what this writes with, for Keras 3 and tf_keras
alike.

Why a `navi` signature: navi reads each output's width from `dims()[1]` and
decodes string outputs as UTF-8, so a string [R] output of raw response bytes
makes it panic. There each response is web-safe base64 without padding
(`tf.io.encode_base64`), one per row: string [R, 1].
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

import tensorflow as tf

INPUT = "requests"
OUTPUT = "responses"
SINGLE_INPUT = "request"
SINGLE_OUTPUT = "response"

_EXPECTED_INPUT = (
    "one string input of shape [None], one serialized BatchPredictionRequest per element "
    '(keras.Input((), dtype="string") read by BatchPredictionRequestReader(..., row_splits=True))'
)
_EXPECTED_OUTPUT = (
    "one string output of shape [None], one BatchPredictionResponse per request (a writer given the "
    'reader\'s splits: BatchPredictionWriter(keys)(scores, row_splits=features["row_splits"]))'
)


def _keras_of(model):
    """The Keras (3, or tf_keras) module the model is made with."""
    import keras

    if isinstance(model, keras.Model):
        return keras
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return tf_keras
    raise TypeError(
        f"export_for_serving: model must be a Keras model (Keras 3 or tf_keras), got {type(model).__name__}"
    )


def _spec_text(t) -> str:
    dtype = getattr(t.dtype, "name", t.dtype)
    shape = [None if d is None else int(d) for d in tuple(t.shape)]
    return f"{dtype} {shape}"


def _flat_outputs(model):
    outputs = model.outputs
    if isinstance(outputs, dict):
        return list(outputs.values())
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _check_model(model) -> None:
    """The per-request contract, checked before anything is traced."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "export_for_serving: the model has no symbolic inputs (a subclassed model that was never "
            f"built from keras.Input?); expected {_EXPECTED_INPUT}"
        )
    inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    if len(inputs) != 1 or tf.as_dtype(inputs[0].dtype) != tf.string or tuple(inputs[0].shape) != (None,):
        raise ValueError(
            f"export_for_serving: the model takes {[_spec_text(t) for t in inputs]}; expected {_EXPECTED_INPUT}"
        )
    outputs = _flat_outputs(model)
    if len(outputs) != 1 or tf.as_dtype(outputs[0].dtype) != tf.string or len(tuple(outputs[0].shape)) != 1:
        got = [_spec_text(t) for t in outputs]
        single = any(tf.as_dtype(t.dtype) in (tf.uint8, tf.int32) and len(tuple(t.shape)) == 2 for t in outputs)
        hint = (
            " (a uint8 [1, N] output is twml's one response for the whole batch, which servers that batch "
            "cannot split; build the model with row_splits, and pass single=True for that form)"
            if single
            else ""
        )
        raise ValueError(f"export_for_serving: the model gives {got}; expected {_EXPECTED_OUTPUT}{hint}")


# Every byte value as a one-byte string: gathering by the request's bytes and
# joining makes the scalar string of those exact bytes, with stock ops only
# (no op turns uint8 [N] into a string, and unicode_encode would re-encode
# bytes over 0x7f as UTF-8).
_BYTES = [bytes([b]) for b in range(256)]


def _uint8_to_string(request):
    table = tf.constant(_BYTES, tf.string)
    return tf.strings.reduce_join(tf.gather(table, tf.cast(request, tf.int32)))


def export_for_serving(model, path, *, navi: bool = True, single: bool = False, verbose: bool = False) -> None:
    """Writes `model` to `path` as a SavedModel that C++ servers run with its
    trained variables, with these signatures:

    - `serving_default`: `requests` string [None] -> `responses` string [None],
      one BatchPredictionResponse per request: for TensorFlow Serving (with or
      without batching), bpr-host, and Python.
    - `navi` (navi=True): `requests` string [None] -> `responses` string
      [None, 1], each response web-safe base64 without padding
      (`tf.io.encode_base64`): navi needs 2-D outputs and UTF-8 strings.
      navi sends one request per caller; decode with `bpr-decode --base64`
      or `base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))`.
    - `single` (single=True): `request` uint8 [None] (one request's bytes) ->
      `response` uint8 [1, N], twml's form, for servers that run it with
      batching off; byte for byte the per-request model's response.

    `model`: a Keras 3 or tf_keras model from one string [None] input (one
    serialized BatchPredictionRequest per element, read by
    `BatchPredictionRequestReader(..., row_splits=True)`) to one string [None]
    output (a writer given the reader's `row_splits`). Anything else is a
    ValueError naming what the model takes and gives. The model's layers may be
    trained (a Dense after `fit`): their variables are saved.
    """
    keras_module = _keras_of(model)
    if not model.built:
        raise ValueError("export_for_serving: the model is not built; expected " + _EXPECTED_INPUT)
    _check_model(model)

    archive = keras_module.export.ExportArchive()
    archive.track(model)
    requests_spec = [tf.TensorSpec([None], tf.string, name=INPUT)]

    def per_request(requests):
        return {OUTPUT: model(requests)}

    archive.add_endpoint("serving_default", per_request, input_signature=requests_spec)
    if navi:

        def navi_fn(requests):
            # encode_base64 is web-safe (- and _) and unpadded by default.
            return {OUTPUT: tf.reshape(tf.io.encode_base64(model(requests)), [-1, 1])}

        archive.add_endpoint("navi", navi_fn, input_signature=requests_spec)
    if single:

        def single_fn(request):
            response = model(tf.reshape(_uint8_to_string(request), [1]))
            return {SINGLE_OUTPUT: tf.io.decode_raw(response, tf.uint8)}

        archive.add_endpoint("single", single_fn, input_signature=[tf.TensorSpec([None], tf.uint8, name=SINGLE_INPUT)])

    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        if keras_module.__name__ == "tf_keras":
            archive.write_out(os.fspath(path))
        else:
            archive.write_out(os.fspath(path), verbose=verbose)

"""`import bpr_ops` registers the ops (issue 29): a SavedModel, a TFSMLayer and
a `.keras` file with our ops load in a fresh process after the import alone,
whichever of bpr_ops and TensorFlow is imported first; bpr-decode stays fast
and quiet (it imports no TensorFlow); without TensorFlow the decoder, the
feature ids and the encoder work.

Each check runs in a clean interpreter: in this one the ops are loaded."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check

PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]
KEYS = ["prediction", 1002]


def fresh(script: str, *args, env=None, **extra):
    """Runs `script` in a new interpreter that finds this source tree's bpr_ops."""
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, env=env, **extra)


def _writer_model():
    inputs = keras.Input((2,), dtype="float32")
    return keras.Model(inputs, bpr_ops.BatchPredictionWriter(keys=KEYS)(inputs))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tf.Module SavedModel, a Keras export and a .keras file, all writing KEYS."""
    tmp = tmp_path_factory.mktemp("import_registers")

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def serve(self, values):
            return {"response": bpr_ops.batch_prediction_response_writer(KEYS, values)}

    module = Module()
    tf.saved_model.save(module, str(tmp / "module"), signatures={"serving_default": module.serve})
    model = _writer_model()
    model.export(str(tmp / "exported"), format="tf_saved_model", verbose=False)
    model.save(tmp / "model.keras")
    return tmp


# Serves [[0.25, 0.5], [1.5, -2.0]] and prints the response's bytes as hex.
LOAD_SAVED_MODEL = """
    import sys
    {imports}
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    (out,) = serve(tf.constant([[0.25, 0.5], [1.5, -2.0]])).values()
    print(out.numpy().tobytes().hex())
"""

EXPECTED = [{"prediction": 0.25, 1002: 0.5}, {"prediction": 1.5, 1002: -2.0}]


def check_response(done):
    """The response a fresh process printed, decoded by thriftpy2."""
    assert done.returncode == 0, done.stderr
    response = thrift_check.decode(bytes.fromhex(done.stdout.strip().splitlines()[-1]))
    ids = bpr_ops.feature_ids(["prediction"]) + [1002]
    got = [{k: r.continuousFeatures[k] for k in ids} for r in response.predictions]
    assert got == [{ids[0]: e["prediction"], 1002: e[1002]} for e in EXPECTED], got


@pytest.mark.parametrize("imports", [
    "import tensorflow as tf\n    import bpr_ops",
    "import bpr_ops\n    import tensorflow as tf",
    "import tensorflow as tf, bpr_ops",
])
def test_a_saved_model_loads_after_the_import_alone(saved, imports):
    # Before issue 29: "Op type not registered 'BatchPredictionResponseWriter'",
    # unless bpr_ops.load_library() ran first.
    check_response(fresh(LOAD_SAVED_MODEL.format(imports=imports), saved / "module"))


def test_a_keras_export_loads_after_the_import_alone(saved):
    check_response(fresh(LOAD_SAVED_MODEL.format(imports="import bpr_ops, tensorflow as tf"), saved / "exported"))


def test_a_tfsm_layer_loads_after_the_import_alone(saved):
    script = """
        import sys
        import keras, numpy as np, bpr_ops
        layer = keras.layers.TFSMLayer(sys.argv[1], call_endpoint="serve")
        out = layer(np.float32([[0.25, 0.5], [1.5, -2.0]]))
        print(np.asarray(out).tobytes().hex())
    """
    check_response(fresh(script, saved / "exported"))


def test_a_keras_file_loads_after_the_import_alone(saved):
    script = """
        import sys
        import keras, numpy as np, bpr_ops
        model = keras.saving.load_model(sys.argv[1])
        layer = model.layers[-1]
        assert type(layer) is bpr_ops.BatchPredictionWriter, type(layer)
        print(np.asarray(model(np.float32([[0.25, 0.5], [1.5, -2.0]]))).tobytes().hex())
    """
    check_response(fresh(script, saved / "model.keras"))


def test_a_library_that_does_not_load_warns_at_import_and_the_op_says_why(tmp_path):
    # The import still works (the decoder needs no library); the warning and
    # the op's error both give the loader's reasons.
    script = """
        import warnings
        warnings.simplefilter("always")
        with warnings.catch_warnings(record=True) as caught:
            import bpr_ops
        print("WARNINGS:", [str(w.message).splitlines()[0] for w in caught])
        try:
            bpr_ops.batch_prediction_response_writer([1], [[0.5]])
        except bpr_ops.LibraryLoadError as e:
            print("ERROR:", str(e).splitlines()[0])
    """
    done = fresh(script, env={"BPR_OPS_LIBRARY": str(tmp_path / "missing.so"), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    warned, error = done.stdout.strip().splitlines()[-2:]
    assert "bpr_ops: the op library did not load, so its ops are not registered" in warned, warned
    assert error == "ERROR: could not load the bpr_ops op library; tried:", error


# What pip writes for the console script `bpr-decode = "bpr_ops.__main__:main"`.
CONSOLE_SCRIPT = """\
#!{python}
import re
import sys
from bpr_ops.__main__ import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


def _console_script(tmp_path: Path) -> Path:
    script = tmp_path / "bin" / "bpr-decode"
    script.parent.mkdir()
    script.write_text(CONSOLE_SCRIPT.format(python=sys.executable))
    script.chmod(0o755)
    return script


def _small_response(tmp_path: Path) -> Path:
    path = tmp_path / "small.bin"
    path.write_bytes(bpr_ops.batch_prediction_response_writer(KEYS, [[0.25, 0.5]]).numpy().tobytes())
    return path


@pytest.mark.parametrize("how", ["console script", "python -m bpr_ops"])
def test_bpr_decode_imports_no_tensorflow_and_prints_no_tensorflow_lines(tmp_path, how):
    # Before issue 29 bpr-decode took ~4 s whenever TensorFlow was installed
    # (importing bpr_ops imported it) and TensorFlow's log lines came with it.
    # The probe: a sitecustomize that reports, at exit, whether TensorFlow was imported.
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('TENSORFLOW IMPORTED: %s\\n' % ('tensorflow' in sys.modules)))\n"
    )
    # TensorFlow's own default log level: its lines would show.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = f"{probe}{os.pathsep}{PYTHON_DIR}"
    command = [str(_console_script(tmp_path))] if how == "console script" else [sys.executable, "-m", "bpr_ops"]
    started = time.perf_counter()
    done = subprocess.run(command + [str(_small_response(tmp_path)), "--names", "prediction"],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [
        "record  prediction  1002", "     0        0.25   0.5"], done.stdout
    assert done.stderr == "TENSORFLOW IMPORTED: False\n", done.stderr
    # Issue 29's bound is 1 s; TensorFlow's import alone takes seconds. On a
    # shared, loaded machine wall time swings, so the bound is on what the
    # command costs beyond an interpreter that imports numpy, timed just now
    # (the deterministic check is the one above).
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import numpy"], check=True, env=env)
    baseline = time.perf_counter() - started
    print(f"{how}: {seconds:.3f} s from start to exit; python -c 'import numpy': {baseline:.3f} s")
    assert seconds - baseline < 1.0, (seconds, baseline)


def test_the_op_names_still_work_in_the_cli_process(tmp_path):
    # Where bpr_ops skipped TensorFlow at import (the CLI), a name that needs it imports it then.
    script = """
        import sys
        sys.argv[0] = "bpr-decode"
        import bpr_ops
        assert "tensorflow" not in sys.modules
        out = bpr_ops.batch_prediction_response_writer([1], [[0.5]])
        print(bpr_ops.decode_batch_prediction_response(out))
    """
    done = fresh(script, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[{1: 0.5}]", done.stdout


def test_without_tensorflow_the_decoder_ids_and_encoder_work():
    # TensorFlow made unimportable (as if not installed): sys.modules["tensorflow"] = None.
    script = """
        import sys
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        import bpr_ops
        request = bpr_ops.encode_batch_prediction_request([{"continuous": {"a": 1.5}}])
        print(len(request) > 0, bpr_ops.feature_id("prediction"))
        try:
            bpr_ops.BatchPredictionWriter
        except ImportError as e:
            print("IMPORT ERROR:", str(e).split(",")[0])
    """
    done = fresh(script)
    assert done.returncode == 0, done.stderr
    first, error = done.stdout.strip().splitlines()
    assert first == f"True {bpr_ops.feature_id('prediction')}", first
    assert error.startswith("IMPORT ERROR: bpr_ops.BatchPredictionWriter needs TensorFlow"), error

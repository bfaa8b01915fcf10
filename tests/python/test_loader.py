"""The library loader: one error listing every path tried and why, a
library built for another TensorFlow refused with both versions named, the
release wheel's library for the running TensorFlow minor picked (and an
unsupported TensorFlow refused before any library is tried), and importing
bpr_ops without TensorFlow saying what to install."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

import tensorflow as tf

import bpr_ops
from bpr_ops import _loader

PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]
ROOT = Path(__file__).resolve().parents[2]
RUNNING = tuple(int(p) for p in tf.__version__.split(".")[:2])


def packaged_copy(tmp: Path, libraries: dict) -> Path:
    """A copy of the bpr_ops package laid out as the release wheel installs it
    (outside any source checkout), holding `libraries`: {file name: bytes}."""
    package = tmp / "site" / "bpr_ops"
    shutil.copytree(PYTHON_DIR / "bpr_ops", package, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name, data in libraries.items():
        (package / name).write_bytes(data)
    return package.parent


def call_op_from(site: Path):
    """Imports bpr_ops from `site` with no BPR_OPS_LIBRARY and calls an op;
    returns (rc, stdout, stderr)."""
    script = textwrap.dedent(
        """
        import bpr_ops
        try:
            out = bpr_ops.batch_prediction_response_writer([1], [[0.5]])
        except bpr_ops.LibraryLoadError as e:
            raise SystemExit(f"{type(e).__name__}: {e}")
        print(bpr_ops.library_path().name, bpr_ops.decode_batch_prediction_response(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "BPR_OPS_LIBRARY"}
    env.update(PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=site)
    return done.returncode, done.stdout, done.stderr


def load_in_fresh_process(library: str):
    """Imports bpr_ops with BPR_OPS_LIBRARY set and calls an op; returns (rc, stderr)."""
    script = textwrap.dedent(
        """
        import bpr_ops
        try:
            bpr_ops.batch_prediction_response_writer([1], [[0.5]])
        except bpr_ops.LibraryLoadError as e:
            raise SystemExit("LOAD ERROR: " + str(e))
        """
    )
    env = {**os.environ, "BPR_OPS_LIBRARY": library, "PYTHONPATH": str(PYTHON_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    return done.returncode, done.stderr


class LoaderTest(tf.test.TestCase):
    def test_the_loaded_library_is_one_of_the_candidates_and_knows_its_tensorflow(self):
        path = bpr_ops.library_path()
        self.assertIn(path, [p for p, _ in _loader.candidate_paths()])
        self.assertEqual(_loader.built_for_tensorflow(path), tf.__version__)

    def test_a_missing_override_is_reported_not_replaced(self):
        rc, stderr = load_in_fresh_process("/nonexistent/libbpr_ops.so")
        self.assertNotEqual(rc, 0)
        self.assertIn("LOAD ERROR: could not load the bpr_ops op library; tried:", stderr)
        self.assertIn("/nonexistent/libbpr_ops.so ($BPR_OPS_LIBRARY): no such file", stderr)
        self.assertIn("set BPR_OPS_LIBRARY", stderr)

    def test_a_library_for_another_tensorflow_names_both_versions(self):
        data = bpr_ops.library_path().read_bytes()
        marker = b"BPR_OPS_BUILT_FOR_TENSORFLOW=" + tf.__version__.encode()
        self.assertIn(marker, data)
        # Same length, so the file stays a valid ELF library.
        other = b"BPR_OPS_BUILT_FOR_TENSORFLOW=" + b"1.99.9"[: len(tf.__version__)].ljust(len(tf.__version__), b"0")
        fake = Path(self.get_temp_dir()) / "libbpr_ops.so"
        fake.write_bytes(data.replace(marker, other))
        rc, stderr = load_in_fresh_process(str(fake))
        self.assertNotEqual(rc, 0)
        self.assertIn(f"built for TensorFlow {other.split(b'=')[1].decode()}, but this process runs "
                      f"TensorFlow {tf.__version__}", stderr)

    def test_a_file_that_is_not_our_library(self):
        junk = Path(self.get_temp_dir()) / "junk.so"
        junk.write_bytes(b"\x7fELF not really")
        rc, stderr = load_in_fresh_process(str(junk))
        self.assertNotEqual(rc, 0)
        self.assertIn("not a bpr_ops library (no TensorFlow version marker)", stderr)


    def test_the_release_wheel_layout_loads_the_build_for_the_running_minor(self):
        # Every other minor's file is junk: touching one would fail the load.
        real = bpr_ops.library_path().read_bytes()
        libraries = {f"libbpr_ops.tf{RUNNING[0]}_{RUNNING[1]}.so": real}
        for minor in (RUNNING[1] - 1, RUNNING[1] + 1):
            libraries[f"libbpr_ops.tf{RUNNING[0]}_{minor}.so"] = b"\x7fELF not this one"
        rc, stdout, stderr = call_op_from(packaged_copy(Path(self.get_temp_dir()), libraries))
        self.assertEqual(rc, 0, stderr)
        self.assertEqual(stdout.split()[0], f"libbpr_ops.tf{RUNNING[0]}_{RUNNING[1]}.so")
        self.assertIn("{1: 0.5}", stdout)

    def test_an_unsupported_tensorflow_gets_one_error_and_no_library_is_tried(self):
        libraries = {f"libbpr_ops.tf1_{m}.so": b"\x7fELF never loaded" for m in (97, 98, 99)}
        rc, _, stderr = call_op_from(packaged_copy(Path(self.get_temp_dir()), libraries))
        self.assertNotEqual(rc, 0)
        last = stderr.strip().splitlines()[-1]
        self.assertTrue(last.startswith("UnsupportedTensorFlowError: bpr_ops has no op library for "
                                        f"TensorFlow {tf.__version__}: this installation is built for "
                                        "TensorFlow 1.97 to 1.99 (1.97, 1.98, 1.99)."), last)
        self.assertIn("pip install 'bpr-ops[tensorflow]'", last)
        # Refused before any file is opened: no per-file reason is listed.
        self.assertNotIn("tried:", stderr)
        self.assertNotIn("not a bpr_ops library", stderr)

    def test_the_supported_range_is_the_one_built_for(self):
        lines = (ROOT / "scripts" / "tf_versions.txt").read_text().splitlines()
        minors = [".".join(v.split(".")[:2]) for v in lines if v and not v.startswith("#")]
        self.assertEqual(_loader.SUPPORTED_TENSORFLOW, f"{minors[0]} to {minors[-1]}")
        # The default build (requirements.txt) is the newest supported minor.
        pinned = re.search(r"^tensorflow-cpu==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)[1]
        self.assertEqual(pinned, [v for v in lines if v and not v.startswith("#")][-1])

    # Without TensorFlow: tests/python/test_wheel.py, in a venv where the wheel is installed
    # without it (the decoder and feature ids work there; the op names say what to install).


if __name__ == "__main__":
    tf.test.main()

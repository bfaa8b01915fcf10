"""The library loader: one error listing every path tried and why, and a
library built for another TensorFlow refused with both versions named."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import tensorflow as tf

import bpr_ops
from bpr_ops import _loader

PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]


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


if __name__ == "__main__":
    tf.test.main()

"""`python -m bpr_ops decode FILE` (the bpr-decode console script): tables and
JSON for good files, one line and exit 2 for bad ones."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

import bpr_ops

PYTHON_DIR = Path(bpr_ops.__file__).resolve().parents[1]


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "bpr_ops", *map(str, args)], capture_output=True, text=True, env=env)


class DecodeCliTest(tf.test.TestCase):
    def setUp(self):
        self.tmp = Path(self.get_temp_dir())
        out = bpr_ops.batch_prediction_tensor_response_writer(
            [7, 8], [tf.constant([[1.5, 2.0], [3.0, -0.0]]), tf.constant([[b"a"], [b"\xff"]])]
        )
        self.npy = self.tmp / "tensor.npy"
        np.save(self.npy, out.numpy())
        self.raw = self.tmp / "continuous.bin"
        self.raw.write_bytes(bpr_ops.batch_prediction_response_writer([1, 2], [[0.25, np.nan]]).numpy().tobytes())

    def test_table(self):
        done = run("decode", self.npy)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["record", "7", "8"])
        self.assertIn("float32[2] [1.5 2. ]", lines[1])
        self.assertIn(r"string[1] ['\xff']", lines[2])
        self.assertEqual(lines[-1], "(2 records)")

    def test_json_without_the_decode_word(self):
        done = run(self.raw, "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [{"1": 0.25, "2": "nan"}])
        tensors = json.loads(run(self.npy, "--format", "json").stdout)
        self.assertEqual(tensors[1]["8"], {"dtype": "object", "shape": [1], "values": [{"hex": "ff"}]})
        self.assertEqual(tensors[0]["7"], {"dtype": "float32", "shape": [2], "values": [1.5, 2.0]})

    def test_bad_files_give_one_line_and_exit_2(self):
        truncated = self.tmp / "truncated.bin"
        truncated.write_bytes(self.raw.read_bytes()[:-3])
        wrong_dtype = self.tmp / "floats.npy"
        np.save(wrong_dtype, np.zeros(3, np.float32))
        for path, message in (
            (truncated, "truncated response"),
            (wrong_dtype, "expected the op's uint8 output"),
            (self.tmp / "missing.bin", "No such file"),
        ):
            done = run("decode", path)
            self.assertEqual(done.returncode, 2)
            self.assertEqual(done.stdout, "")
            errors = [line for line in done.stderr.splitlines() if line.startswith("bpr-decode:")]
            self.assertLen(errors, 1)
            self.assertIn(message, errors[0])

    def test_names_label_keys_in_the_table_and_the_json(self):
        named = self.tmp / "named.bin"
        out = bpr_ops.batch_prediction_response_writer(["prediction", 3, "p_like"], [[0.5, 1.0, 2.0]])
        named.write_bytes(out.numpy().tobytes())
        done = run(named, "--names", "prediction,p_like")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines()[0].split(), ["record", "prediction", "3", "p_like"])
        names_file = self.tmp / "names.txt"
        names_file.write_text("p_like\r\n\nunused.name\nprediction\n")
        done = run(named, "--names-file", names_file, "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [{"prediction": 0.5, "3": 1.0, "p_like": 2.0}])
        # Both forms together, and a name given twice, are fine.
        done = run("decode", named, "--names", "p_like", "--names-file", names_file, "--format", "json")
        self.assertEqual(json.loads(done.stdout), [{"prediction": 0.5, "3": 1.0, "p_like": 2.0}])

    def test_bad_names_give_one_line_and_exit_2(self):
        bad_file = self.tmp / "bad_names.txt"
        bad_file.write_bytes(b"prediction\nab\xffc\n")
        for args, message in (
            (["--names-file", bad_file], "bad_names.txt:2: the name is not UTF-8 (invalid start byte at byte 2)"),
            (["--names-file", self.tmp / "no_names.txt"], "No such file"),
        ):
            done = run(self.raw, *args)
            self.assertEqual(done.returncode, 2, done)
            self.assertEqual(done.stdout, "")
            errors = [line for line in done.stderr.splitlines() if line.startswith("bpr-decode:")]
            self.assertLen(errors, 1)
            self.assertIn(message, errors[0])


if __name__ == "__main__":
    tf.test.main()

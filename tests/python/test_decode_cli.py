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
import every_field

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

    def test_a_name_that_reads_as_a_number_is_told_apart_from_that_int_key(self):
        # Issue 20: the name "1002" and the key 1002 printed alike, and in JSON
        # the second overwrote the first.
        path = self.tmp / "names.bin"
        path.write_bytes(bpr_ops.batch_prediction_response_writer(
            ["prediction", 1002, "1002"], [[0.25, 0.5, 0.75]]).numpy().tobytes())
        table = run("decode", path, "--names", "prediction,1002")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertEqual(table.stdout.splitlines()[0].split(), ["record", "prediction", "1002", '"1002"'])
        self.assertEqual(table.stdout.splitlines()[1].split(), ["0", "0.25", "0.5", "0.75"])
        as_json = json.loads(run("decode", path, "--names", "prediction,1002", "--format", "json").stdout)
        self.assertEqual(as_json, [{"prediction": 0.25, "1002": 0.5, '"1002"': 0.75}])

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


    def test_every_record_field(self):
        path = self.tmp / "every_field.bin"
        path.write_bytes(every_field.apache_bytes())
        table = run(path)
        self.assertEqual(table.returncode, 0, table.stderr)
        lines = table.stdout.splitlines()
        header = lines[0].split()
        self.assertEqual(sorted(header[1:], key=int), [str(k) for k in sorted(every_field.EXPECTED[0])])
        self.assertEqual(lines[-1], "(2 records)")
        for cell in ("'café'", "{'x', 'y'}", "{'w': 1.25}", r"'\x00\x01\xfe'", "int8[3] [-128   -1    1]",
                     "sparse[2, 3] float64[2] [7. 8.] at int64[2, 2] [[0 2] [1 0]]", "True", "-9223372036854775808"):
            self.assertIn(cell, lines[1])
        done = run(path, "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        records = json.loads(done.stdout)
        self.assertEqual(records[1], {"3": -1.0})
        first = records[0]
        self.assertEqual((first["1"], first["-4"], first["6"], first["7"], first["8"]), (True, "inf", "café", ["x", "y"], {"w": 1.25}))
        self.assertEqual(first["18"], {"hex": "0001fe"})
        self.assertEqual(first["9"], {"dtype": "int8", "shape": [3], "values": [-128, -1, 1]})
        self.assertEqual(first["19"]["dense_shape"], [2, 3])
        self.assertEqual(first["19"]["values"]["values"], [7.0, 8.0])

    def test_unknown_fields_are_skipped_with_a_note(self):
        path = self.tmp / "v2.bin"
        path.write_bytes(every_field.extended_bytes(self.tmp))
        done = run(path, "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertLen(json.loads(done.stdout), 2)
        notes = [line for line in done.stderr.splitlines() if line.startswith("bpr-decode: note:")]
        self.assertLen(notes, 1)
        self.assertIn("DataRecord field 25 (list) x2", notes[0])
        truncated = self.tmp / "v2_truncated.bin"
        truncated.write_bytes(path.read_bytes()[:-40])
        done = run(truncated)
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        errors = [line for line in done.stderr.splitlines() if line.startswith("bpr-decode:")]
        self.assertLen(errors, 1)
        self.assertRegex(errors[0], r"^bpr-decode: error: .*v2_truncated.bin: truncated response: ")

    def test_a_key_under_two_fields_is_labelled_by_field(self):
        from thrift_check import IDL, TBinaryProtocol, TMemoryBuffer

        buf = TMemoryBuffer()
        IDL.BatchPredictionResponse(
            predictions=[IDL.data.DataRecord(continuousFeatures={3: 0.5}, discreteFeatures={3: 7})]
        ).write(TBinaryProtocol(buf))
        path = self.tmp / "two_fields.bin"
        path.write_bytes(buf.getvalue())
        done = run(path, "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [{"continuousFeatures:3": 0.5, "discreteFeatures:3": 7}])

    def test_predict_output_one_response_per_row(self):
        import keras

        inp = keras.Input((2,))
        model = keras.Model(inp, bpr_ops.BatchPredictionWriter([1, 2])(inp))
        x = np.arange(12, dtype=np.float32).reshape(6, 2)
        out = model.predict(x, batch_size=2, verbose=0)  # 3 responses of equal length: [3, N]
        np.save(self.tmp / "predict.npy", out)
        done = run(self.tmp / "predict.npy", "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [{"1": a, "2": b} for a, b in x.tolist()])


    # ---- Issue 36: --help, --base64, requests read whole, `| head` ------------

    def test_help_says_what_files_it_reads(self):
        for args in (["--help"], ["decode", "--help"]):
            done = run(*args)
            self.assertEqual(done.returncode, 0, done.stderr)
            text = " ".join(done.stdout.split())
            for words in ("block file", "BatchPredictionRequest", "commonFeatures", "--request", "--base64",
                          "web-safe", "standard input", ".npz"):
                self.assertIn(words, text)

    def _request_with_common(self):
        from test_batching import encode
        from thrift_check import IDL

        data = encode([IDL.data.DataRecord(continuousFeatures={5: 0.5}), IDL.data.DataRecord(binaryFeatures={6})],
                      IDL.data.DataRecord(continuousFeatures={7: 23.0}))
        path = self.tmp / "request.bin"
        path.write_bytes(data)
        return path

    def test_a_request_read_without_request_keeps_its_common_features(self):
        path = self._request_with_common()
        said = run(path, "--request", "--format", "json")
        self.assertEqual(said.returncode, 0, said.stderr)
        want = {"commonFeatures": {"7": 23.0}, "records": [{"5": 0.5}, {"6": True}]}
        self.assertEqual(json.loads(said.stdout), want)
        guessed = run(path, "--format", "json")
        self.assertEqual(guessed.returncode, 0, guessed.stderr)
        self.assertEqual(json.loads(guessed.stdout), want)
        notes = [line for line in guessed.stderr.splitlines() if line.startswith("bpr-decode:")]
        self.assertEqual(len(notes), 1, guessed.stderr)
        self.assertIn("read as a BatchPredictionRequest: it has commonFeatures", notes[0])
        table = run(path).stdout.splitlines()
        self.assertEqual(table[1].split(), ["common", "23", "-", "-"])

    def test_base64_text_web_safe_or_standard_padding_optional(self):
        import base64

        raw = self.raw.read_bytes()
        other = bpr_ops.batch_prediction_response_writer([3], [[1.5], [-2.0]]).numpy().tobytes()
        web = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        std = base64.b64encode(other).decode()
        path = self.tmp / "responses.b64"
        path.write_text(f"{web}\n{std}\n")
        done = run(path, "--base64", "--format", "json")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout), [{"1": 0.25, "2": "nan"}, {"3": 1.5}, {"3": -2.0}])
        # A request as navi's callers send it, and from standard input.
        request = base64.urlsafe_b64encode(self._request_with_common().read_bytes()).decode().rstrip("=")
        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-m", "bpr_ops", "-", "--base64", "--request", "--format", "json"],
                              input=request, capture_output=True, text=True, env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(json.loads(done.stdout)["commonFeatures"], {"7": 23.0})
        for text, message in (
            ("Zm9v!x", "base64 text 0: '!' at character 4 is not base64"),
            ("Zm9vY", "5 characters cannot be base64"),
            (f"{web} {request}", "base64 text 1 is a BatchPredictionRequest with commonFeatures"),
            ("", "no base64 text"),
        ):
            path.write_text(text)
            done = run(path, "--base64")
            self.assertEqual(done.returncode, 2, done)
            errors = [line for line in done.stderr.splitlines() if line.startswith("bpr-decode:")]
            self.assertLen(errors, 1)
            self.assertIn(message, errors[0])

    def test_output_cut_short_ends_quietly(self):
        # `bpr-decode big.bin | head -1` printed a BrokenPipeError traceback.
        path = self.tmp / "big.bin"
        values = np.arange(20000, dtype=np.float32).reshape(10000, 2)
        path.write_bytes(bpr_ops.batch_prediction_response_writer([1, 2], values).numpy().tobytes())
        env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.Popen([sys.executable, "-m", "bpr_ops", path], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        first = proc.stdout.readline()
        proc.stdout.close()  # as head does after its line
        stderr = proc.stderr.read().decode()
        self.assertEqual(proc.wait(timeout=60), 141)
        self.assertEqual(first.split(), [b"record", b"1", b"2"])
        self.assertEqual(stderr, "")


if __name__ == "__main__":
    tf.test.main()

"""bpr-host feeds a string batch (issue 29): serialized requests as .bin
files (a directory, or NAME=FILE.bin repeated) become one string [N] tensor
through the TensorFlow C API, byte for byte (every request holds NULs and
bytes over 0x7f); the model's string [N] output comes back one response per
request, written to a directory and printed per element. Judged against the
responses Python serves for each request alone, and decoded by thriftpy2.

The SavedModel has both signatures a user exports: "serving_default" (string
[None] requests -> string [None] responses, for servers that batch) and
"single" (uint8 request bytes -> uint8 [1, N], twml's form, batching off)."""

import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check
from test_batching import FEATURES, OUT_KEYS, check_response, requests, scores_of, single_path
from test_serving_host import assert_one_line_error, built, host  # noqa: F401 (fixture)


class TwoSignatures(tf.Module):
    def __init__(self):
        super().__init__()
        self.batched_reader = bpr_ops.BatchPredictionRequestReader(continuous=FEATURES, row_splits=True)
        self.reader = bpr_ops.BatchPredictionRequestReader(continuous=FEATURES)
        self.writer = bpr_ops.BatchPredictionWriter(OUT_KEYS)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="requests")])
    def per_request(self, requests_t):
        f = self.batched_reader(requests_t)
        return {"responses": self.writer(scores_of(f["continuous"]), row_splits=f["row_splits"])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8, name="request")])
    def single(self, request):
        return {"response": self.writer(scores_of(self.reader(request)["continuous"]))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batched_host")
    module = TwoSignatures()
    tf.saved_model.save(
        module, str(tmp / "model"), signatures={"serving_default": module.per_request, "single": module.single}
    )
    reqs = requests([2, 0, 3, 1], seed=29)
    files = tmp / "requests"
    files.mkdir()
    # Binary-safety needs bytes a C string or UTF-8 would break.
    assert all(b"\x00" in d for d, _ in reqs) and any(max(d) > 0x7F for d, _ in reqs)
    for i, (data, _) in enumerate(reqs):
        (files / f"{i:03d}.bin").write_bytes(data)
    (files / "notes.txt").write_text("not a request: ignored")
    return {"model": tmp / "model", "dir": files, "reqs": reqs}


def _responses(out_dir):
    return [p.read_bytes() for p in sorted(out_dir.glob("response-*.bin"))]


def test_a_directory_of_requests_is_one_string_batch(built, saved, tmp_path):
    run = host(built, "--model", saved["model"], "--input", saved["dir"], "--output", tmp_path / "out", "--print")
    assert run.returncode == 0, run.stderr
    got = _responses(tmp_path / "out")
    assert len(got) == len(saved["reqs"])
    for (data, features), response in zip(saved["reqs"], got):
        assert response == single_path(data)
        check_response(response, features)
    lines = run.stdout.splitlines()
    assert lines[0].startswith("4 responses, one per request"), run.stdout
    for r, (_, features) in enumerate(saved["reqs"]):
        assert any(line.startswith(f"response {r}: {len(features)} records") for line in lines), run.stdout


def test_repeated_bin_files_are_one_batch_in_order(built, saved, tmp_path):
    order = [3, 0, 2]
    args = []
    for i in order:
        args += ["--input", f"requests={saved['dir'] / f'{i:03d}.bin'}"]
    run = host(built, "--model", saved["model"], *args, "--output", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    got = _responses(tmp_path / "out")
    assert got == [single_path(saved["reqs"][i][0]) for i in order]


def test_the_single_signature_still_takes_one_request_as_uint8(built, saved, tmp_path):
    one = saved["dir"] / "002.bin"
    run = host(built, "--model", saved["model"], "--signature", "single", "--input", one,
               "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    assert data == single_path(one.read_bytes())
    # Several files cannot be one uint8 request.
    run = host(built, "--model", saved["model"], "--signature", "single", "--input", saved["dir"],
               "--output", tmp_path / "x.bin")
    assert_one_line_error(run, "has 4 files", "'request' is uint8", "need a string input")


def test_string_inputs_refuse_what_cannot_hold_bytes(built, saved, tmp_path):
    np.save(tmp_path / "requests.npy", np.array([d for d, _ in saved["reqs"]]))
    run = host(built, "--model", saved["model"], "--input", tmp_path / "requests.npy", "--output", tmp_path / "o")
    assert_one_line_error(run, "has dtype '|S", "NumPy bytes arrays pad with NULs", ".bin files instead",
                          "a directory of them, or --input NAME=FILE.bin repeated")
    # Object arrays (pickles) and str arrays: the same advice, never a pickle load.
    np.save(tmp_path / "objects.npy", np.array([d for d, _ in saved["reqs"]], dtype=object), allow_pickle=True)
    run = host(built, "--model", saved["model"], "--input", tmp_path / "objects.npy", "--output", tmp_path / "o")
    assert_one_line_error(run, "has dtype '|O'", "object arrays are pickles", ".bin files instead")
    np.save(tmp_path / "text.npy", np.array(["not bytes", "at all"]))
    run = host(built, "--model", saved["model"], "--input", tmp_path / "text.npy", "--output", tmp_path / "o")
    assert_one_line_error(run, "has dtype '<U", "str arrays hold text", ".bin files instead")
    np.save(tmp_path / "floats.npy", np.zeros([2], np.float32))
    run = host(built, "--model", saved["model"], "--input", tmp_path / "floats.npy", "--output", tmp_path / "o")
    assert_one_line_error(run, "signature input 'requests' is string", "give a .bin file")
    (tmp_path / "empty").mkdir()
    run = host(built, "--model", saved["model"], "--input", tmp_path / "empty", "--output", tmp_path / "o")
    assert_one_line_error(run, "has no .bin files")

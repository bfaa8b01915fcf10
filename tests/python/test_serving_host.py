"""The exported model where models are served, outside Python.

- host/ (bpr-host): a Rust serving host on the TensorFlow C API (the
  `tensorflow` crate) that loads libbpr_ops.so at run time, then the
  SavedModel: same bytes as Python, the op really comes from our library, one
  clear line for every error, and the TensorFlow version guard.
- libbpr_ops.a: a C++ program links the static archive whole-archive with
  TensorFlow (the TF Serving way), never loads our .so, and serves the same
  SavedModel.

The fixtures build what they need with cargo (PYTHON set to this Python), so
the file runs on its own as well as under `make test`.
"""

import os
import struct
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

import bpr_ops
import test_request_serving as request_graph
import thrift_check

ROOT = Path(__file__).resolve().parents[2]
TF_LIB = Path(tf.sysconfig.get_lib())
MARKER = b"BPR_OPS_BUILT_FOR_TENSORFLOW="

CONTINUOUS_KEYS = [11, 12, 13]
TENSOR_KEYS = [21, 22]


def _cargo_env():
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


@pytest.fixture(scope="module")
def built():
    """target/release (or $CARGO_TARGET_DIR/release) with libbpr_ops.so,
    libbpr_ops.a and bpr-host built. Two cargo calls, not one `-p a -p b`:
    building the core alone is exactly `make build` (a no-op after it).

    Skipped in a run pointed at another build (BPR_OPS_LIBRARY: make
    test-python-oldest-tf, make matrix): bpr-host builds against .venv's
    TensorFlow into target/release, and building it with that run's Python
    would rebind target/release to another minor (and cost CI minutes)."""
    if os.environ.get("BPR_OPS_LIBRARY"):
        pytest.skip("bpr-host is built against .venv's TensorFlow; this run is pointed at another build (BPR_OPS_LIBRARY)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for cmd in (["cargo", "build", "--release"], ["cargo", "build", "--release", "-p", "bpr-host"]):
        run = subprocess.run(cmd, cwd=ROOT, env=_cargo_env(), capture_output=True, text=True)
        assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stderr[-4000:]}"
    release = target / "release"
    for name in ("libbpr_ops.so", "libbpr_ops.a", "bpr-host"):
        assert (release / name).is_file(), release / name
    return release


def _export(model, directory: Path):
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Both SavedModels, the batch, and the bytes Python gives for each."""
    tmp = tmp_path_factory.mktemp("serving")
    rng = np.random.default_rng(7)
    batch = rng.normal(size=(5, 4)).astype(np.float32)
    np.save(tmp / "batch.npy", batch)

    inp = keras.Input((4,), name="features")
    scores = keras.layers.Dense(len(CONTINUOUS_KEYS), name="scores")(inp)
    continuous = keras.Model(inp, bpr_ops.BatchPredictionWriter(CONTINUOUS_KEYS)(scores))

    inp = keras.Input((4,), name="features")
    emb = keras.layers.Dense(3, name="emb")(inp)
    grid = keras.layers.Reshape((2, 2))(inp)
    tensor = keras.Model(inp, bpr_ops.BatchPredictionTensorWriter(TENSOR_KEYS)([emb, grid]))

    out = {"dir": tmp, "batch": batch}
    # What the writer saw: float32 scores, written as doubles.
    score_model = keras.Model(continuous.input, scores)
    for name, model in (("continuous", continuous), ("tensor", tensor)):
        path = _export(model, tmp / name)
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        (result,) = serve(tf.constant(batch)).values()
        out[name] = {"dir": path, "python": thrift_check.to_bytes(result), "keras": model(batch)}
    out["continuous"]["scores"] = np.asarray(score_model(batch))
    return out


def host(built, *args, ops=True):
    """Runs bpr-host with `--ops <our library>` (ops=True), none (False) or
    `--ops <ops>`. TF_CPP_MIN_LOG_LEVEL is unset, as a user would have it:
    then the host keeps TensorFlow's log lines off stderr."""
    cmd = [str(built / "bpr-host")]
    if ops is True:
        cmd += ["--ops", str(built / "libbpr_ops.so")]
    elif ops:
        cmd += ["--ops", str(ops)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(run, *fragments):
    assert run.returncode != 0, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("bpr-host: error: "), lines[0]
    assert "panicked" not in run.stderr and "RUST_BACKTRACE" not in run.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize("kind", ["continuous", "tensor"])
def test_host_bytes_equal_python(built, models, kind, tmp_path):
    run = host(built, "--model", models[kind]["dir"], "--input", models["dir"] / "batch.npy",
               "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    assert run.stderr == "", run.stderr  # TensorFlow's INFO logs are kept off
    data = (tmp_path / "out.bin").read_bytes()
    assert data == models[kind]["python"]
    assert data == thrift_check.to_bytes(models[kind]["keras"])
    # Decoded by thriftpy2 from the IDL, and by our decoder.
    assert len(thrift_check.decode(data).predictions) == len(models["batch"])
    records = bpr_ops.decode_batch_prediction_response(data)
    assert len(records) == len(models["batch"])


def test_continuous_records_hold_the_scores(built, models, tmp_path):
    run = host(built, "--model", models["continuous"]["dir"], "--input",
               models["dir"] / "batch.npy", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    records = bpr_ops.decode_batch_prediction_response((tmp_path / "out.bin").read_bytes())
    for scores, record in zip(models["continuous"]["scores"], records):
        assert list(record) == CONTINUOUS_KEYS
        assert [record[k] for k in CONTINUOUS_KEYS] == [float(v) for v in scores]


def test_tensor_records_hold_the_rows(built, models, tmp_path):
    run = host(built, "--model", models["tensor"]["dir"], "--input",
               models["dir"] / "batch.npy", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    records = bpr_ops.decode_batch_prediction_response((tmp_path / "out.bin").read_bytes())
    for row, record in zip(models["batch"], records):
        assert list(record) == TENSOR_KEYS
        assert record[21].shape == (3,)
        np.testing.assert_array_equal(record[22], row.reshape(2, 2))


def test_print_shows_a_table_of_records(built, models):
    run = host(built, "--model", models["tensor"]["dir"], "--input", models["dir"] / "batch.npy",
               "--print")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("5 records, ")
    assert lines[1].split() == ["record", "key", "kind", "dtype", "shape", "value"]
    assert len(lines) == 2 + 5 * len(TENSOR_KEYS)
    row = models["batch"][0].reshape(-1)
    first_grid = next(line for line in lines if line.split()[:2] == ["0", "22"])
    assert "FLOAT" in first_grid and "[2, 2]" in first_grid
    assert first_grid.endswith("[" + ", ".join(str(np.float32(v)) for v in row) + "]")


def test_json_input_gives_the_same_bytes(built, models, tmp_path):
    import json

    batch = models["batch"]
    (tmp_path / "batch.json").write_text(json.dumps({"features": batch.astype(float).tolist()}))
    run = host(built, "--model", models["continuous"]["dir"], "--input", tmp_path / "batch.json",
               "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out.bin").read_bytes() == models["continuous"]["python"]


def test_without_the_op_library_the_op_is_not_registered(built, models, tmp_path):
    # The op really comes from libbpr_ops.so: TensorFlow alone does not know it.
    run = host(built, "--model", models["continuous"]["dir"], "--input",
               models["dir"] / "batch.npy", "--output", tmp_path / "out.bin", ops=False)
    # Issue 29: TensorFlow's message alone does not say to give --ops.
    assert_one_line_error(run, "Op type not registered 'BatchPredictionResponseWriter'",
                          "load their library with --ops PATH/libbpr_ops.so")
    assert not (tmp_path / "out.bin").exists()


def test_errors_are_one_line(built, models, tmp_path):
    model = models["continuous"]["dir"]
    batch = models["dir"] / "batch.npy"
    run = host(built, "--model", model, "--input", batch, "--print", ops=tmp_path / "nope.so")
    assert_one_line_error(run, "cannot read op library", "nope.so")

    not_a_library = tmp_path / "junk.so"
    not_a_library.write_bytes(b"not an ELF file")
    run = host(built, "--model", model, "--input", batch, "--print", ops=not_a_library)
    assert_one_line_error(run, "cannot load op library", "junk.so")

    assert_one_line_error(host(built, "--model", model, "--input", batch, "--print",
                               "--signature", "predict"),
                          "no signature 'predict'", "serving_default")
    assert_one_line_error(host(built, "--model", tmp_path, "--input", batch, "--print"),
                          "not a SavedModel directory")

    np.save(tmp_path / "f64.npy", models["batch"].astype(np.float64))
    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "f64.npy", "--print"),
                          "has dtype float64", "'features' wants float32")

    np.save(tmp_path / "wide.npy", np.zeros((2, 5), np.float32))
    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "wide.npy", "--print"),
                          "has shape [2, 5]", "wants shape [None, 4]")

    np.save(tmp_path / "flat.npy", np.zeros(4, np.float32))
    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "flat.npy", "--print"),
                          "has shape [4]")

    np.save(tmp_path / "text.npy", np.array(["a"]))
    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "text.npy", "--print"),
                          "has dtype '<U1'")

    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "absent.npy", "--print"),
                          "cannot read input")
    assert_one_line_error(host(built, "--model", model, "--input", f"other={batch}", "--print"),
                          "no input 'other'", "'features'")
    (tmp_path / "ragged.json").write_text("[[1, 2, 3, 4], [1]]")
    assert_one_line_error(host(built, "--model", model, "--input", tmp_path / "ragged.json", "--print"),
                          "not a rectangular nested list")

    usage = host(built, "--model", model)
    assert usage.returncode == 2 and "--input is required" in usage.stderr


def test_repeat_times_every_model_and_prints_one_json_line_each(built, models):
    import json

    run = host(built, "--model", models["continuous"]["dir"], "--model", models["tensor"]["dir"],
               "--input", models["dir"] / "batch.npy", "--repeat", "6", "--rounds", "3")
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["model"] for line in lines] == [str(models["continuous"]["dir"]), str(models["tensor"]["dir"])]
    for line in lines:
        assert line["rounds"] == 3 and line["runs_per_round"] == 2 and len(line["round_us"]) == 3
        assert line["median_us"] > 0
    # Several models, --rounds or --output/--print with --repeat: usage errors.
    batch = models["dir"] / "batch.npy"
    for extra in (["--model", models["tensor"]["dir"], "--print"], ["--print", "--rounds", "2"],
                  ["--repeat", "2", "--print"], ["--repeat", "0"]):
        usage = host(built, "--model", models["continuous"]["dir"], "--input", batch, *extra)
        assert usage.returncode == 2, (extra, usage.stderr)


def _patched_version(library: Path, tmp: Path, version: bytes) -> Path:
    data = library.read_bytes()
    at = data.index(MARKER) + len(MARKER)
    built_for = data[at:data.index(b"\0", at)]
    assert len(version) == len(built_for)
    copy = tmp / "libbpr_ops.so"
    copy.write_bytes(data[:at] + version + data[at + len(version):])
    return copy


def test_version_guard_names_both_versions(built, models, tmp_path):
    other = "1.99.0"[: len(tf.__version__)].ljust(len(tf.__version__), "0")
    assert other != tf.__version__
    library = _patched_version(built / "libbpr_ops.so", tmp_path, other.encode())
    run = host(built, "--model", models["continuous"]["dir"], "--input",
               models["dir"] / "batch.npy", "--print", ops=library)
    assert_one_line_error(run, f"built for TensorFlow {other}",
                          f"this host runs TensorFlow {tf.__version__}")


# --- the static archive ------------------------------------------------------


def _signature_tensors(model_dir: Path):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    (meta,) = [m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags]
    sig = meta.signature_def["serving_default"]
    (inp,) = sig.inputs.values()
    (out,) = sig.outputs.values()
    return inp.name, out.name


def _link(built, tmp: Path, archive: bool) -> Path:
    obj = tmp / "serve_static.o"
    if not obj.exists():
        subprocess.run(["g++", "-O1", "-std=c++17", f"-I{TF_LIB / 'include'}", "-c",
                        str(ROOT / "host/static/serve_static.cc"), "-o", str(obj)], check=True)
    exe = tmp / ("serve_static" if archive else "serve_static_no_ops")
    ops = (["-Wl,--whole-archive", str(built / "libbpr_ops.a"), "-Wl,--no-whole-archive"]
           if archive else [])
    subprocess.run(["g++", "-o", str(exe), str(obj), *ops, f"-L{TF_LIB}",
                    "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
                    f"-Wl,-rpath,{TF_LIB}", "-lpthread", "-ldl", "-lm"], check=True)
    return exe


@pytest.fixture(scope="module")
def static_programs(built, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("static")
    return _link(built, tmp, archive=True), _link(built, tmp, archive=False)


def test_static_archive_holds_the_op_registrations(built):
    symbols = subprocess.run(["nm", "-C", str(built / "libbpr_ops.a")], capture_output=True,
                             text=True, check=True).stdout
    # The shim's registration initialisers and the Rust kernels' entry points.
    assert "_GLOBAL__sub_I_ops.cc" in symbols
    assert "_GLOBAL__sub_I_kernels.cc" in symbols
    for fn in ("bpr_continuous_write", "bpr_tensor_write", "bpr_tensorflow_version"):
        assert f"T {fn}" in symbols, fn


def _run_static(exe: Path, model_dir: Path, batch: np.ndarray, tmp: Path):
    (tmp / "in.bin").write_bytes(batch.tobytes())
    inp, out = _signature_tensors(model_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([str(exe), str(model_dir), inp, "1", ",".join(map(str, batch.shape)),
                           str(tmp / "in.bin"), out, str(tmp / "out.bin")],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("kind", ["continuous", "tensor"])
def test_statically_linked_program_serves_the_model(static_programs, models, kind, tmp_path):
    exe, _ = static_programs
    # Nothing loads our .so: no TF_LoadLibrary, no dlopen, no DT_NEEDED on it.
    dynamic = subprocess.run(["nm", "-D", "--undefined-only", str(exe)], capture_output=True,
                             text=True, check=True).stdout
    assert "TF_LoadLibrary" not in dynamic and "dlopen" not in dynamic
    needed = subprocess.run(["readelf", "-d", str(exe)], capture_output=True, text=True,
                            check=True).stdout
    assert "libbpr_ops" not in needed
    run = _run_static(exe, models[kind]["dir"], models["batch"], tmp_path)
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    assert data == models[kind]["python"]
    assert len(thrift_check.decode(data).predictions) == len(models["batch"])


def test_without_the_archive_the_op_is_not_registered(static_programs, models, tmp_path):
    _, bare = static_programs
    run = _run_static(bare, models["continuous"]["dir"], models["batch"], tmp_path)
    assert run.returncode == 1
    assert "Op type not registered 'BatchPredictionResponseWriter'" in run.stderr


# The request side: a twml serving graph of raw request ops (test_request_serving.py),
# request bytes fed from a .bin file.
@pytest.fixture(scope="module")
def twml_saved(tmp_path_factory):
    return request_graph.save_twml_graph(tmp_path_factory.mktemp("twml_graph") / "model")


def test_bpr_host_serves_a_twml_request_graph_with_the_same_bytes(built, twml_saved, tmp_path):
    (tmp_path / "request.bin").write_bytes(request_graph._request())
    run = host(built, "--model", twml_saved, "--input", tmp_path / "request.bin", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    np.testing.assert_array_equal(np.float32(request_graph._scores(data)), request_graph._expected())
    serve = tf.saved_model.load(str(twml_saved)).signatures["serving_default"]
    python = thrift_check.to_bytes(serve(request=tf.constant(np.frombuffer(request_graph._request(), np.uint8)))["response"])
    assert data == python


def test_a_corrupt_request_in_bpr_host_is_one_line_naming_the_op(built, twml_saved, tmp_path):
    (tmp_path / "bad.bin").write_bytes(request_graph._request()[:-5])
    run = host(built, "--model", twml_saved, "--input", tmp_path / "bad.bin", "--output", tmp_path / "out.bin")
    assert run.returncode == 1, run
    assert "DecodeAndHashBatchPredictionRequestV2: input_bytes at byte" in run.stderr, run.stderr
    assert "panicked" not in run.stderr


# twml's nine tensor-feature ops in bpr-host: a SavedModel whose graph holds
# the eight tensor getters (on both handle kinds) and DataRecordTensorWriter by
# their twml op names (raw ops of the loaded library, as a graph exported with
# twml holds them), served in bpr-host from request bytes in a .bin file. Every
# getter output (string, int64, bool, uint8 widened to int32) goes into the
# writer, whose uint8 DataRecord is the signature's one output: bpr-host's bytes
# must equal Python's, and thriftpy2 reads in them the values put in the request.
_T = thrift_check.IDL.data.tensor
_G = _T.GeneralTensor
EMB, WORDS, CLICKS = 31, 32, 33
# The getters' outputs, in the order they go into the writer.
OUTPUTS = {
    "tensors": ("output", "out_shape", "out_type", "out_endian"),
    "masked": ("output", "out_type", "out_endian", "is_found"),
    "strings": ("ids", "strings"),
    "sparse": ("ids", "indices", "values", "dense_shape", "values_type", "endian"),
}


def _tensor_request() -> bytes:
    def emb(*v):
        return _G(rawTypedTensor=_T.RawTypedTensor(dataType=_T.DataType.FLOAT, content=struct.pack("<2f", *v), shape=[2]))

    coo = _T.SparseTensor(cooSparseTensor=_T.COOSparseTensor(
        denseShape=[5], indices=_T.Int64Tensor(longs=[1, 4], shape=[1, 2]),
        values=_G(doubleTensor=_T.DoubleTensor(doubles=[0.5, -2.0]))))
    records = [
        thrift_check.IDL.data.DataRecord(tensors={EMB: emb(1.5, -1.0), WORDS: _G(stringTensor=_T.StringTensor(strings=["a", "bc"]))},
                            sparseTensors={CLICKS: coo}),
        thrift_check.IDL.data.DataRecord(tensors={WORDS: _G(stringTensor=_T.StringTensor(strings=["é"]))}),
    ]
    common = thrift_check.IDL.data.DataRecord(tensors={EMB: emb(3.0, 4.0)})
    buf = TMemoryBuffer()
    thrift_check.IDL.BatchPredictionRequest(individualFeaturesList=records, commonFeatures=common).write(TBinaryProtocol(buf))
    return buf.getvalue()


class TwmlTensorGraph(tf.Module):
    def __init__(self):
        super().__init__()
        self.lib = tf.load_op_library(str(bpr_ops.library_path()))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.uint8, name="request")])
    def serve(self, request):
        lib = self.lib
        none = dict(keep_features=[], keep_codes=[], label_features=[])
        values = []
        for hashed, handle in (
            (False, lib.decode_batch_prediction_request_v2(input_bytes=request, weight_features=[], **none)),
            (True, lib.decode_and_hash_batch_prediction_request_v2(input_bytes=request, **none)),
        ):
            kind = "hashed_data_record" if hashed else "data_record"
            got = {
                "tensors": getattr(lib, f"get_tensors_from_{kind}")(handle, assert_shape=True, feature_id=EMB),
                "masked": getattr(lib, f"get_tensors_with_missing_mask_from_{kind}")(
                    handle, assert_shape=True, feature_id=EMB, default_shape=[2], dtype_size=4),
                "strings": getattr(lib, f"get_string_tensors_from_{kind}")(handle, feature_id=WORDS),
                "sparse": getattr(lib, f"get_sparse_tensors_from_{kind}")(handle, feature_id=CLICKS),
            }
            for op in OUTPUTS:
                for t in got[op]:
                    # The writer takes string, int32, int64, float, double, bool: out_endian (uint8) as int32.
                    values.append(tf.cast(t, tf.int32) if t.dtype == tf.uint8 else t)
        keys = tf.range(len(values), dtype=tf.int64)
        return {"record": lib.data_record_tensor_writer(keys=keys, values=values)}


@pytest.fixture(scope="module")
def tensor_saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("tensor_graph") / "model"
    module = TwmlTensorGraph()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _tensor_record(data: bytes):
    buf = TMemoryBuffer(data)
    rec = thrift_check.IDL.data.DataRecord()
    rec.read(TBinaryProtocol(buf, decode_response=False, strict_decode=True))
    assert buf._pos == len(data)
    return rec


def _tensor_value(t):
    """A tensor the writer wrote: (numpy array) from a rawTypedTensor or a stringTensor."""
    if t.stringTensor is not None:
        return np.array(t.stringTensor.strings, object).reshape(t.stringTensor.shape)
    r = t.rawTypedTensor
    dtype = {_T.DataType.INT32: "<i4", _T.DataType.INT64: "<i8", _T.DataType.BOOL: "?"}[r.dataType]
    return np.frombuffer(r.content, dtype).reshape(r.shape)


def test_bpr_host_runs_the_nine_tensor_ops_as_python_does(built, tensor_saved, tmp_path):
    request = _tensor_request()
    (tmp_path / "request.bin").write_bytes(request)
    run = host(built, "--model", tensor_saved, "--input", tmp_path / "request.bin", "--output", tmp_path / "out.bin")
    assert run.returncode == 0, run.stderr
    data = (tmp_path / "out.bin").read_bytes()
    serve = tf.saved_model.load(str(tensor_saved)).signatures["serving_default"]
    python = serve(request=tf.constant(np.frombuffer(request, np.uint8)))["record"].numpy()
    assert python.shape[0] == 1 and data == python.tobytes()

    # What the ops read, judged against the request's own values, for both handle kinds.
    tensors = _tensor_record(data).tensors
    per_kind = sum(len(v) for v in OUTPUTS.values())
    assert sorted(tensors) == list(range(2 * per_kind))
    for first in (0, per_kind):
        vals = iter(_tensor_value(tensors[k]) for k in range(first, first + per_kind))
        got = {op: dict(zip(names, vals)) for op, names in OUTPUTS.items()}
        emb = [struct.pack("<2f", 1.5, -1.0), struct.pack("<2f", 3.0, 4.0)]
        assert got["tensors"]["output"].tolist() == emb
        assert got["tensors"]["out_shape"].tolist() == [2, 2]
        assert got["tensors"]["out_type"].tolist() == b"float32" and got["tensors"]["out_endian"].tolist() == 0
        assert got["masked"]["out_type"].tolist() == b"float32" and got["masked"]["out_endian"].tolist() == 0
        assert got["masked"]["output"].tolist() == emb and got["masked"]["is_found"].tolist() == [True, True]
        assert got["strings"]["ids"].tolist() == [0, 0, 1]
        assert got["strings"]["strings"].tolist() == [b"a", b"bc", "é".encode()]
        sparse = got["sparse"]
        assert sparse["ids"].tolist() == [0, 0] and sparse["dense_shape"].tolist() == [2, 5]
        assert sparse["indices"].tolist() == [struct.pack(">2q", 1, 4)]
        assert sparse["values"].tolist() == [struct.pack(">2d", 0.5, -2.0)]
        assert sparse["values_type"].tolist() == b"float64" and sparse["endian"].tolist() == 1

"""The source path: `pip wheel .` (PEP 517, isolated build), installed into a
new venv, used from outside the source tree: the op, the packaged library,
TensorFlow as an extra limited to the minor it was built against (never a hard
requirement), the decoder, feature ids and bpr-decode without TensorFlow (issue
20) and the ImportError of the names that need it, and the bpr-decode console
script. The release wheel (a library per minor) is `make wheel`, tested by
`make matrix` (scripts/check_wheel.py, scripts/wheel_smoke.py)."""

import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    import bpr_ops
    package = Path(bpr_ops.__file__).parent
    assert "site-packages" in str(package), package
    assert bpr_ops.library_path().parent == package, bpr_ops.library_path()
    out = bpr_ops.batch_prediction_response_writer([1, 2], np.float32([[0.5, -1.0], [2.0, 4.0]]))
    assert bpr_ops.decode_batch_prediction_response(out) == [{1: 0.5, 2: -1.0}, {1: 2.0, 2: 4.0}]
    Path(sys.argv[1]).write_bytes(out.numpy().tobytes())
    print("ok", bpr_ops.library_path().name)
    """
)


# Run where TensorFlow is not installed: the decoder, the hash and the names that need TensorFlow.
WITHOUT_TF = textwrap.dedent(
    """
    import sys
    import bpr_ops
    ids = bpr_ops.feature_ids(["prediction", "p_like", "x" * 40 + "MIDDLE1" + "z" * 40])
    try:
        bpr_ops.BatchPredictionWriter
    except ImportError as e:
        error = str(e)
    else:
        raise SystemExit("BatchPredictionWriter without TensorFlow raised nothing")
    assert "tensorflow" not in sys.modules, sorted(m for m in sys.modules if "tensorflow" in m)
    print(ids)
    print(error)
    """
)


def mmh3_feature_id(name):
    """twml's feature id on mmh3 (the test venv's), no bpr_ops code."""
    import mmh3

    digest = mmh3.hash_bytes(name.encode("utf-16-le"), 0)
    return int.from_bytes(digest[:8], "little", signed=True)


def continuous_response(keys, values):
    """BatchPredictionResponse bytes of one record, written from the wire spec (docs/wire-format.md)."""
    record = struct.pack(">bhbbi", 13, 2, 10, 4, len(keys))
    record += b"".join(struct.pack(">qd", k, v) for k, v in zip(keys, values)) + b"\x00"
    return struct.pack(">bhbi", 15, 1, 12, 1) + record + b"\x00"


def run(cmd, **kwargs):
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BPR_OPS_LIBRARY", "PYTHON")}
    run([sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp / "dist"), "--no-deps", "-q"], env=env)
    (wheel,) = (tmp / "dist").glob("bpr_ops-*.whl")
    run([sys.executable, "-m", "venv", str(tmp / "venv")])
    pip = [str(tmp / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check"]
    # TensorFlow is an extra: the wheel alone brings none, and says so on import.
    run(pip + [str(wheel)], env=env)
    no_tf = subprocess.run([str(tmp / "venv/bin/python"), "-c", WITHOUT_TF], capture_output=True, text=True,
                           cwd=tmp, env=env)
    # bpr-decode with names, timed from process start to exit, before TensorFlow is installed.
    small = tmp / "small.bin"
    small.write_bytes(continuous_response([mmh3_feature_id("prediction"), 1002], [0.25, 0.5]))
    started = time.perf_counter()
    decode = subprocess.run([str(tmp / "venv/bin/bpr-decode"), str(small), "--names", "prediction"],
                            capture_output=True, text=True, cwd=tmp, env=env)
    no_tf.decode_seconds = time.perf_counter() - started
    no_tf.decode = decode
    run(pip + [f"{wheel}[tensorflow-cpu]"], env=env)
    return tmp, wheel, {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, no_tf


def test_wheel_metadata(installed):
    _, wheel, _, _ = installed
    assert wheel.name.endswith("-py3-none-linux_x86_64.whl"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.startswith("bpr_ops/libbpr_ops") and n.endswith(".so") for n in names), names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # Built against tensorflow-cpu 2.21 (pyproject.toml): both extras name that minor.
    assert sorted(requires) == sorted([
        "Requires-Dist: numpy",
        'Requires-Dist: tensorflow<2.22,>=2.21; extra == "tensorflow"',
        'Requires-Dist: tensorflow-cpu<2.22,>=2.21; extra == "tensorflow-cpu"',
    ]), metadata
    assert "Requires-Python: >=3.10" in metadata, metadata


def test_without_tensorflow_the_decoder_and_ids_work_and_the_rest_says_what_to_install(installed):
    *_, no_tf = installed
    assert no_tf.returncode == 0, no_tf.stderr
    ids, error = no_tf.stdout.strip().splitlines()
    names = ["prediction", "p_like", "x" * 40 + "MIDDLE1" + "z" * 40]
    assert ids == str([mmh3_feature_id(n) for n in names]), ids
    assert error.startswith("bpr_ops.BatchPredictionWriter needs TensorFlow (2.16 to 2.21), which is not installed"), error
    assert "pip install 'bpr-ops[tensorflow]'" in error, error


def test_bpr_decode_with_names_without_tensorflow_starts_fast(installed):
    *_, no_tf = installed
    done = no_tf.decode
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["record", "prediction", "1002"], done.stdout
    assert lines[1].split() == ["0", "0.25", "0.5"], done.stdout
    print(f"bpr-decode --names without TensorFlow: {no_tf.decode_seconds:.3f} s from start to exit")
    # A sanity bound, not a benchmark: with TensorFlow imported it took seconds.
    assert no_tf.decode_seconds < 2.0, no_tf.decode_seconds


def test_the_library_has_no_path_of_the_build_machine(installed):
    tmp, _, _, _ = installed
    (library,) = (tmp / "venv").glob("lib/python*/site-packages/bpr_ops/libbpr_ops*.so")
    dynamic = run(["readelf", "-d", str(library)]).stdout
    runpath = [line for line in dynamic.splitlines() if "RUNPATH" in line or "RPATH" in line]
    assert len(runpath) == 1 and runpath[0].endswith("[$ORIGIN/../tensorflow]"), runpath


def test_op_and_decode_command_from_outside_the_source_tree(installed):
    tmp, _, env, _ = installed
    response = tmp / "response.bin"
    done = run([str(tmp / "venv/bin/python"), "-c", CHECK, str(response)], cwd=tmp, env=env)
    assert done.stdout.startswith("ok libbpr_ops"), done.stdout
    decoded = run([str(tmp / "venv/bin/bpr-decode"), str(response)], cwd=tmp, env=env)
    assert decoded.stdout.splitlines()[-1] == "(2 records)", decoded.stdout
    truncated = tmp / "truncated.bin"
    truncated.write_bytes(response.read_bytes()[:-1])
    bad = subprocess.run([str(tmp / "venv/bin/bpr-decode"), str(truncated)], capture_output=True, text=True, cwd=tmp, env=env)
    assert bad.returncode == 2
    assert "bpr-decode: error:" in bad.stderr and "truncated response" in bad.stderr

"""The source path: `pip wheel .` (PEP 517, isolated build), installed into a
new venv, used from outside the source tree: the op, the packaged library,
TensorFlow as an extra limited to the minor it was built against (never a hard
requirement), the ImportError without TensorFlow, and the bpr-decode console
script. The release wheel (a library per minor) is `make wheel`, tested by
`make matrix` (scripts/check_wheel.py, scripts/wheel_smoke.py)."""

import os
import subprocess
import sys
import textwrap
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
    no_tf = subprocess.run([str(tmp / "venv/bin/python"), "-c", "import bpr_ops"], capture_output=True, text=True,
                           cwd=tmp, env=env)
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


def test_without_tensorflow_the_import_says_what_to_install(installed):
    *_, no_tf = installed
    assert no_tf.returncode != 0
    assert no_tf.stderr.strip().splitlines()[-1].startswith(
        "ImportError: bpr_ops needs TensorFlow (2.16 to 2.21), which is not installed"), no_tf.stderr


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

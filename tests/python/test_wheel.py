"""The shipping path: `pip wheel .` (PEP 517, isolated build), installed into a
new venv, used from outside the source tree: the op, the packaged library, the
TensorFlow pin in the metadata, and the bpr-decode console script."""

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
    run([str(tmp / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel)], env=env)
    return tmp, wheel, {**env, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_wheel_metadata(installed):
    _, wheel, _ = installed
    assert wheel.name.endswith("-py3-none-linux_x86_64.whl"), wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.startswith("bpr_ops/libbpr_ops") and n.endswith(".so") for n in names), names
    assert "Requires-Dist: tensorflow-cpu<2.22,>=2.21" in metadata, metadata


def test_op_and_decode_command_from_outside_the_source_tree(installed):
    tmp, _, env = installed
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

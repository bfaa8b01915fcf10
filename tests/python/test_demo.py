"""`make demo` prints the demo's own output only: no TensorFlow start-up log
lines (absl's InitializeLog warning, the oneDNN note, glog-style I/W/E lines),
neither with make's TF_CPP_MIN_LOG_LEVEL=2 nor with none set, and still a
decoded table for both writers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# glog/absl line prefixes ("I0000 00:00:...", "W1124 06:..."), and the two lines
# TensorFlow 2.21 prints at start-up whatever TF_CPP_MIN_LOG_LEVEL says.
TF_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cpu_feature_guard", re.M)


@pytest.fixture(scope="module")
def host_built():
    env = {**os.environ, "PYTHON": sys.executable}
    for cmd in (["cargo", "build", "--release"], ["cargo", "build", "--release", "-p", "bpr-host"]):
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stderr[-4000:]}"


@pytest.mark.parametrize("level", [None, "2"])
def test_demo_prints_its_own_output_only(host_built, level):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stderr == "", f"the demo wrote to stderr:\n{run.stderr[-4000:]}"
    assert not TF_LOG.search(run.stdout), run.stdout
    assert "BatchPredictionWriter: " in run.stdout and "BatchPredictionTensorWriter: " in run.stdout
    # 5 records of 3 keys each, for both tables: a header and 5 rows after each title.
    assert run.stdout.count("5 records") == 2, run.stdout
    # The request model: request bytes served by bpr-host, 3 records back.
    assert "Request bytes in, response bytes out: " in run.stdout and "3 records" in run.stdout, run.stdout
    # Trained on block files, served as request bytes: the scores are model.predict's.
    assert "in block files (bpr_ops.data.training_dataset)" in run.stdout, run.stdout
    assert "model.predict" in run.stdout and ": the same" in run.stdout, run.stdout

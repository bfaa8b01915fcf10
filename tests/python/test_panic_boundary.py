"""The panic boundary through TensorFlow: a library built with the test-only `test-panic` feature
panics inside every kernel call while BPR_OPS_TEST_PANIC is set. The call must raise an error
(InternalError) and the same process must go on serving correct responses afterwards.

The library is built into its own target directory (target/test-panic-tfX.Y) and loaded in a
subprocess through BPR_OPS_LIBRARY, so this test process keeps the normal library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
# Built against the TensorFlow this process runs (make matrix runs the harness
# under each supported minor): one target directory per minor, so that
# switching does not rebuild everything.
TARGET = ROOT / "target" / f"test-panic-tf{'.'.join(tf.__version__.split('.')[:2])}"
LIBRARY = TARGET / "release" / "libbpr_ops.so"

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    import numpy as np
    import tensorflow as tf
    import bpr_ops, thrift_check

    def calls():
        yield "continuous", lambda: bpr_ops.batch_prediction_response_writer([1, 2], np.float32([[0.5, 2.0]]))
        yield "tensor", lambda: bpr_ops.batch_prediction_tensor_response_writer(
            [7, 8], [tf.constant([[1, 2]], tf.int32), tf.constant([[b"a", b"\\xff"]])])
        fn = tf.function(lambda v: bpr_ops.batch_prediction_response_writer([3], v))
        yield "function", lambda: fn(tf.constant([1.0, 2.0]))
        # FeatureId hashes in its kernel's constructor, and TensorFlow caches
        # kernels by attrs: a new name each time makes each call construct one.
        names.append(f"feature.{len(names)}")
        yield "feature_id", lambda: bpr_ops.load_library().feature_id(feature_names=[names[-1]])

    names = []

    for panic in (True, False, True, False):
        if panic:
            os.environ["BPR_OPS_TEST_PANIC"] = "1"
        else:
            os.environ.pop("BPR_OPS_TEST_PANIC", None)
        for name, call in calls():
            try:
                out = call()
            except tf.errors.InternalError as e:
                assert panic, f"{name}: unexpected InternalError {e.message}"
                assert "internal error in bpr_ops" in e.message, e.message
                assert "forced by BPR_OPS_TEST_PANIC" in e.message, e.message
                print(f"{name}: panic -> InternalError")
                continue
            assert not panic, f"{name}: returned {out!r} although the kernel panicked"
            if name == "feature_id":
                assert out.dtype == tf.int64 and out.shape == [1], out
                print(f"{name}: ok")
                continue
            decoded = thrift_check.decode(thrift_check.to_bytes(out))
            assert len(decoded.predictions) >= 1
            print(f"{name}: ok, {len(decoded.predictions)} records")
    print("PROCESS SURVIVED")
    """
)


def seed_from_the_default_build():
    """Copies the default build's compiled dependencies (target/release) into TARGET once.

    In a new target directory cargo builds every dependency again (bindgen, the protocol and
    model crates, ...: about a third of the build's CPU time, once per TensorFlow run; the C++
    shim, rebuilt either way, is most of the rest), although the feature changes only bpr-ops. With the copy cargo finds them fresh (the copy
    keeps timestamps, and the feature leaves their fingerprints alone) and builds bpr-ops alone;
    against another TensorFlow it reruns bpr-ops' build script, as it must. Copies, not hard
    links: cargo rewrites some files of a target directory in place, which would change this
    one's behind its fingerprints. Test and bench executables are left out (the library build
    needs none of them)."""
    source, dest = ROOT / "target" / "release", TARGET / "release"
    if dest.exists() or not (source / ".fingerprint").is_dir():
        return
    partial = TARGET / "release.partial"
    shutil.rmtree(partial, ignore_errors=True)

    def executables(directory, names):
        if Path(directory).name != "deps":
            return []
        return [n for n in names if "." not in n and os.access(os.path.join(directory, n), os.X_OK)
                and os.path.isfile(os.path.join(directory, n))]

    for part in ("deps", "build", ".fingerprint"):
        if (source / part).is_dir():
            shutil.copytree(source / part, partial / part, symlinks=True, ignore=executables)
    partial.rename(dest)


def build_panicking_library() -> Path:
    seed_from_the_default_build()
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET), PYTHON=sys.executable)
    result = subprocess.run(
        ["cargo", "build", "--release", "--features", "test-panic", "--lib"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"building the test-panic library failed:\n{result.stderr[-4000:]}")
    return LIBRARY


def test_a_panicking_kernel_raises_and_the_process_goes_on():
    library = build_panicking_library()
    env = dict(os.environ, BPR_OPS_LIBRARY=str(library), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BPR_OPS_TEST_PANIC", None)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "python"), str(ROOT / "tests" / "python")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"the serving process died ({result.returncode}):\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    assert lines.count("continuous: panic -> InternalError") == 2, result.stdout
    assert lines.count("tensor: panic -> InternalError") == 2, result.stdout
    assert lines.count("function: panic -> InternalError") == 2, result.stdout
    assert lines.count("continuous: ok, 1 records") == 2, result.stdout
    assert lines.count("tensor: ok, 1 records") == 2, result.stdout
    assert lines.count("function: ok, 2 records") == 2, result.stdout
    assert lines.count("feature_id: panic -> InternalError") == 2, result.stdout
    assert lines.count("feature_id: ok") == 2, result.stdout
    assert lines[-1] == "PROCESS SURVIVED"


def test_the_normal_library_ignores_the_panic_switch(monkeypatch):
    # The switch exists only in the test-panic build: a shipped library never reads it.
    import numpy as np

    import bpr_ops

    monkeypatch.setenv("BPR_OPS_TEST_PANIC", "1")
    out = bpr_ops.batch_prediction_response_writer([1], np.float32([[0.5]]))
    assert out.shape == (1, 35)

"""Puts the source tree's package first on sys.path and silences TF's banners."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("BPR_OPS_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(ROOT / "python"))


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase has a `test_session` context manager that pytest would
    # collect and skip as "Not a test" in every class: it is not one of ours.
    items[:] = [item for item in items if item.name != "test_session"]

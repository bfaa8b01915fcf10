"""Puts the source tree's package first on sys.path and silences TF's banners."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("BPR_OPS_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(ROOT / "python"))

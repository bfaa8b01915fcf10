"""`make bench` ends with benchmarks/report.py, which writes BENCHMARKS.md anew from the results
files and the hand-written sections kept in benchmarks/*.md. A section written only into
BENCHMARKS.md would be lost at the next `make bench`: the report, run on the committed files, must
give back every heading the committed BENCHMARKS.md has, in the same order. No TensorFlow."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_library
ROOT = Path(__file__).resolve().parents[2]


def report_args():
    """report.py's arguments as the Makefile's bench target passes them."""
    line = next(l for l in (ROOT / "Makefile").read_text().splitlines() if "benchmarks/report.py" in l)
    return line.split("benchmarks/report.py", 1)[1].split()


def headings(text):
    return [l for l in text.splitlines() if re.match(r"#{1,4} ", l)]


def test_report_keeps_every_section_of_benchmarks_md(tmp_path):
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks")
    run = subprocess.run([sys.executable, "benchmarks/report.py", *report_args()], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    committed = (ROOT / "BENCHMARKS.md").read_text()
    made = (tmp_path / "BENCHMARKS.md").read_text()
    assert headings(made) == headings(committed), (
        "report.py does not give back BENCHMARKS.md's sections: keep hand-written ones in "
        "benchmarks/*.md and include them in report.py")
    assert made == committed, "BENCHMARKS.md differs from what report.py writes from the committed files"

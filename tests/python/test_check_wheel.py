"""scripts/check_wheel.py fails on a library that needs a newer glibc than the
manylinux tag README.md promises (issue 20: it reported such a tag and passed).
A real library built here is the input: pthread_create moved into glibc 2.34,
so a library calling it, linked on this machine, needs GLIBC_2.34."""

import importlib.util
import subprocess
from pathlib import Path

import pytest

# Plain C libraries and the checker script: the same under every TensorFlow.
pytestmark = pytest.mark.no_library

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_wheel", ROOT / "scripts" / "check_wheel.py")
check_wheel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_wheel)


def build(tmp_path, name, source):
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    so = tmp_path / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", str(c), "-o", str(so)], check=True)
    return so


def test_the_promised_tag_is_read_from_the_readme():
    assert check_wheel.promised_tag() == "manylinux_2_24"


def test_a_library_needing_glibc_2_34_fails_the_check(tmp_path):
    so = build(tmp_path, "newer", "#include <pthread.h>\n"
               "static void* run(void* a) { return a; }\n"
               "int start(void) { pthread_t t; return pthread_create(&t, 0, run, 0); }\n")
    problems = check_wheel.library_problems(so, "manylinux_2_24")
    assert len(problems) == 1, problems
    assert "needs glibc 2.34" in problems[0] and "pthread_create@GLIBC_2.34" in problems[0], problems
    assert "above the promised manylinux_2_24" in problems[0], problems
    # The same library passes a promise it keeps.
    assert check_wheel.library_problems(so, "manylinux_2_34") == []


def test_a_library_within_the_promise_passes(tmp_path):
    so = build(tmp_path, "plain", "int add(int a, int b) { return a + b; }\n")
    assert check_wheel.library_problems(so, "manylinux_2_24") == []


def test_a_tag_above_the_promise_fails():
    assert check_wheel.tag_problems("x.whl", "manylinux_2_34", "manylinux_2_24")
    assert check_wheel.tag_problems("x.whl", "manylinux_2_24", "manylinux_2_24") == []
    assert check_wheel.tag_problems("x.whl", "manylinux_2_17", "manylinux_2_24") == []


GOOD_METADATA = """Requires-Python: >=3.10
Classifier: Programming Language :: Python :: 3.10
Classifier: Programming Language :: Python :: 3.11
Classifier: Programming Language :: Python :: 3.12
Classifier: Programming Language :: Python :: 3.13
Requires-Dist: tensorflow<2.22,>=2.16; extra == "tensorflow"
Requires-Dist: tensorflow-cpu<2.22,>=2.16; extra == "tensorflow-cpu"
"""
README = "Supports TensorFlow 2.16 to 2.21 (Linux x86-64, Python 3.10 to 3.13) from one wheel"


def test_metadata_that_matches_the_promises_passes():
    assert check_wheel.metadata_problems(GOOD_METADATA, ["2.16", "2.21"], README) == []


def test_metadata_off_the_promises_fails():
    off = GOOD_METADATA.replace("Classifier: Programming Language :: Python :: 3.13\n", "")
    assert any("classifiers" in p for p in check_wheel.metadata_problems(off, ["2.16", "2.21"], README))
    narrow = GOOD_METADATA.replace(">=2.16", ">=2.17")
    assert len(check_wheel.metadata_problems(narrow, ["2.16", "2.21"], README)) == 2
    assert check_wheel.metadata_problems(GOOD_METADATA, ["2.16", "2.22"], README)


def test_the_readme_and_pyproject_state_the_same_pythons():
    """The source tree's own promise (the README) and its metadata (pyproject.toml) agree."""
    import tomllib

    readme = (ROOT / "README.md").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = [f"Requires-Python: {project['requires-python']}"]
    lines += [f"Classifier: {c}" for c in project["classifiers"]]
    lines += [f'Requires-Dist: {d}<2.22,>=2.16; extra == "{d}"' for d in ("tensorflow", "tensorflow-cpu")]
    assert check_wheel.metadata_problems("\n".join(lines), ["2.16", "2.21"], readme) == []

"""Builds the bpr_ops wheel. Two ways:

- `pip install .` / `pip wheel .` (from source): setuptools-rust runs cargo,
  which builds libbpr_ops.so (a plain cdylib, no Python bindings) against the
  TensorFlow of the build environment; that is the only TensorFlow minor the
  result supports.
- `make wheel` (a release): the libraries are built beforehand, one per
  supported TensorFlow minor, and BPR_OPS_PREBUILT names the directory that
  holds them (libbpr_ops.tf2_16.so ...); they are packed as they are.

TensorFlow is never a hard requirement (`tensorflow` and `tensorflow-cpu` are
one import package from two distributions: requiring one makes pip install it
next to the other). The extras `bpr-ops[tensorflow]` and
`bpr-ops[tensorflow-cpu]` pull one that the packed libraries support.
"""

import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

PREBUILT = os.environ.get("BPR_OPS_PREBUILT")
PER_MINOR = re.compile(r"libbpr_ops\.tf(\d+)_(\d+)\.so")


def extras(minors):
    """Both TensorFlow distributions, each limited to the minors built for."""
    (lo_major, lo_minor), (hi_major, hi_minor) = min(minors), max(minors)
    spec = f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor + 1}"
    return {dist: [f"{dist}{spec}"] for dist in ("tensorflow", "tensorflow-cpu")}


def build_environment_minor():
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        return tuple(int(p) for p in version.split(".")[:2])
    sys.exit("bpr-ops: building needs TensorFlow installed in the build environment (see pyproject.toml)")


def prebuilt_libraries():
    libraries = {}
    for path in Path(PREBUILT).glob("*.so"):
        match = PER_MINOR.fullmatch(path.name)
        if not match:
            sys.exit(f"bpr-ops: {path} is not a per-minor library (libbpr_ops.tfX_Y.so)")
        libraries[(int(match[1]), int(match[2]))] = path
    if not libraries:
        sys.exit(f"bpr-ops: BPR_OPS_PREBUILT={PREBUILT} holds no libbpr_ops.tfX_Y.so")
    return libraries


class PlatformWheel(bdist_wheel):
    """The library does not link libpython: one wheel serves every Python 3 on
    the platform (requires-python and TensorFlow's own wheels set which)."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class BinaryDistribution(Distribution):
    """A wheel that carries prebuilt libraries is platform-specific, even
    though setuptools sees no extension module to build."""

    def has_ext_modules(self):
        return True


class FreshBuildPy(build_py):
    """setuptools reuses build/lib: a library left there by an earlier build
    (another mode, another TensorFlow) would be packed too. build_py runs
    before build_ext, so this never removes the library of this build."""

    def run(self):
        for stale in (Path(self.build_lib) / "bpr_ops").glob("libbpr_ops*.so"):
            stale.unlink()
        super().run()


class PackPrebuilt(FreshBuildPy):
    def run(self):
        super().run()
        package = Path(self.build_lib) / "bpr_ops"
        for path in prebuilt_libraries().values():
            shutil.copy2(path, package / path.name)


if PREBUILT:
    options = {
        "extras_require": extras(prebuilt_libraries()),
        "cmdclass": {"bdist_wheel": PlatformWheel, "build_py": PackPrebuilt},
        "distclass": BinaryDistribution,
    }
else:
    from setuptools_rust import Binding, RustExtension

    # build.rs finds TensorFlow's headers and libraries through this Python.
    os.environ.setdefault("PYTHON", sys.executable)
    # Not the developer's target/: this build compiles against the build
    # environment's TensorFlow, which is gone once the wheel is made.
    os.environ.setdefault("CARGO_TARGET_DIR", os.path.join("build", "cargo"))
    # Only the TensorFlow installed next to the package: the build
    # environment's lib directory is gone once the wheel is made.
    os.environ.setdefault("BPR_OPS_RPATH", "$ORIGIN/../tensorflow")
    options = {
        "extras_require": extras([build_environment_minor()]),
        "rust_extensions": [
            RustExtension("bpr_ops.libbpr_ops", path="Cargo.toml", binding=Binding.NoBinding, py_limited_api=False)
        ],
        "cmdclass": {"bdist_wheel": PlatformWheel, "build_py": FreshBuildPy},
    }

setup(zip_safe=False, **options)

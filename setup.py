"""Builds libbpr_ops.so with cargo (a plain cdylib, no Python bindings) into the
bpr_ops package, and pins the wheel to the TensorFlow minor version it was
built against: the library is bound to that TensorFlow's C++ ABI."""

import os
import sys
from importlib import metadata

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools_rust import Binding, RustExtension


def tensorflow_requirement() -> str:
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        major, minor = (int(p) for p in version.split(".")[:2])
        return f"{dist}>={major}.{minor},<{major}.{minor + 1}"
    sys.exit("bpr-ops: building needs TensorFlow installed in the build environment (see pyproject.toml)")


class PlatformWheel(bdist_wheel):
    """The library does not link libpython: one wheel serves every Python 3 on
    the platform (TensorFlow's own wheels set which Pythons are possible)."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


# build.rs finds TensorFlow's headers and libraries through this Python.
os.environ.setdefault("PYTHON", sys.executable)
# Not the developer's target/: this build compiles against the build
# environment's TensorFlow, which is gone once the wheel is made.
os.environ.setdefault("CARGO_TARGET_DIR", os.path.join("build", "cargo"))

setup(
    install_requires=[tensorflow_requirement()],
    rust_extensions=[
        RustExtension(
            "bpr_ops.libbpr_ops",
            path="Cargo.toml",
            binding=Binding.NoBinding,
            py_limited_api=False,
        )
    ],
    cmdclass={"bdist_wheel": PlatformWheel},
    zip_safe=False,
)

"""Finds and loads libbpr_ops.so, once per process.

The library is bound to the C++ ABI of the TensorFlow minor version it was
built against (Abseil's version is part of the mangled names), so a release
wheel carries one build per supported minor, `libbpr_ops.tf2_16.so` ...
`libbpr_ops.tf2_21.so`, and the loader takes the one for the running
`tf.__version__`. A TensorFlow none of them was built for gets one error naming
it and the supported range; no other library is tried.

Tried in order: the file named by BPR_OPS_LIBRARY (when set, the only one
tried: an explicit override must not be silently replaced by another build),
the library inside this package (an installed wheel: the one for the running
TensorFlow, or the single library of a `pip install .` from source), and, in a
source checkout, the repository's `target/release` (after `cargo build
--release`). When none loads, one error lists every path tried and why.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

LIBRARY_NAME = "libbpr_ops.so"
# The TensorFlow minors a release wheel is built for (scripts/tf_versions.txt;
# tests/python/test_loader.py checks they agree).
SUPPORTED_TENSORFLOW = "2.16 to 2.21"
ENV_VAR = "BPR_OPS_LIBRARY"
_MARKER = b"BPR_OPS_BUILT_FOR_TENSORFLOW="

_lock = threading.Lock()
_library = None
_library_path: Path | None = None


# A release wheel's per-minor builds: libbpr_ops.tf2_16.so is built for 2.16.
_PER_MINOR = re.compile(r"libbpr_ops\.tf(\d+)_(\d+)\.so")


class LibraryLoadError(ImportError):
    """libbpr_ops.so could not be loaded; the message lists every path tried."""


class UnsupportedTensorFlowError(LibraryLoadError):
    """The package has no library built for the running TensorFlow minor."""


def packaged_builds(package: Path | None = None) -> dict[tuple[int, int], Path]:
    """The per-minor libraries inside the package, by (major, minor)."""
    package = package or Path(__file__).resolve().parent
    builds = {}
    for path in package.glob("libbpr_ops.tf*.so"):
        match = _PER_MINOR.fullmatch(path.name)
        if match:
            builds[(int(match[1]), int(match[2]))] = path
    return dict(sorted(builds.items()))


def _range(minors) -> str:
    names = [f"{a}.{b}" for a, b in minors]
    return names[0] if len(names) == 1 else f"{names[0]} to {names[-1]} ({', '.join(names)})"


def _running_minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def candidate_paths(tensorflow_version: str | None = None) -> list[tuple[Path, str]]:
    """(path, where it comes from) in the order they are tried for the running
    TensorFlow (or `tensorflow_version`).

    Raises UnsupportedTensorFlowError when the package carries per-minor builds
    and none is for that TensorFlow: then there is nothing worth trying.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return [(Path(override), f"${ENV_VAR}")]
    here = Path(__file__).resolve().parent
    candidates = []
    builds = packaged_builds(here)
    if builds:
        if tensorflow_version is None:
            import tensorflow as tf

            tensorflow_version = tf.__version__
        running = _running_minor(tensorflow_version)
        if running not in builds:
            raise UnsupportedTensorFlowError(
                f"bpr_ops has no op library for TensorFlow {tensorflow_version}: this installation is "
                f"built for TensorFlow {_range(builds)}. Install a supported TensorFlow "
                f"(`pip install 'bpr-ops[tensorflow]'` or `'bpr-ops[tensorflow-cpu]'`), or build "
                f"bpr_ops from source against TensorFlow {tensorflow_version} and set {ENV_VAR} to "
                f"that {LIBRARY_NAME}."
            )
        candidates.append((builds[running], f"inside the bpr_ops package, for TensorFlow {running[0]}.{running[1]}"))
    else:
        # `pip install .` from source: one library, built by setuptools-rust
        # (libbpr_ops.<python tag>.so), for the TensorFlow of that build.
        packaged = sorted(here.glob("libbpr_ops*.so")) or [here / LIBRARY_NAME]
        candidates += [(path, "inside the bpr_ops package") for path in packaged]
    # Only a source checkout has a cargo build next to the package.
    repo = here.parent.parent
    if (repo / "Cargo.toml").is_file():
        candidates.append((repo / "target" / "release" / LIBRARY_NAME, "the repository's cargo build"))
    return candidates


def built_for_tensorflow(path: Path) -> str | None:
    """The TensorFlow version the library at `path` was built against.

    Read from the file, not by loading it: loading a library built for another
    TensorFlow fails with an undefined-symbol trace that names neither version.
    """
    data = path.read_bytes()
    at = data.find(_MARKER)
    if at < 0:
        return None
    start = at + len(_MARKER)
    end = data.find(b"\0", start, start + 64)
    return data[start:end].decode("ascii", "replace") if end > 0 else None


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def load_library():
    """The loaded op library (the module `tf.load_op_library` returns)."""
    global _library, _library_path
    if _library is not None:
        return _library
    with _lock:
        if _library is None:
            _library_path, _library = _load()
    return _library


def library_path() -> Path:
    """The file of the loaded op library (loading it if needed): what a serving
    host outside Python must load too."""
    load_library()
    return _library_path


def _load():
    import tensorflow as tf

    running = tf.__version__
    tried = []
    for path, origin in candidate_paths(running):
        if not path.is_file():
            tried.append(f"{path} ({origin}): no such file")
            continue
        try:
            built = built_for_tensorflow(path)
        except OSError as e:
            tried.append(f"{path} ({origin}): cannot read it: {e}")
            continue
        if built is None:
            tried.append(f"{path} ({origin}): not a bpr_ops library (no TensorFlow version marker)")
            continue
        if _minor(built) != _minor(running):
            tried.append(
                f"{path} ({origin}): built for TensorFlow {built}, but this process runs "
                f"TensorFlow {running}; rebuild it against {running} or install TensorFlow {built}"
            )
            continue
        try:
            return path, tf.load_op_library(str(path))
        except Exception as e:  # noqa: BLE001 - every reason goes into the one error below
            tried.append(f"{path} ({origin}): {type(e).__name__}: {e}")
    raise LibraryLoadError(
        "could not load the bpr_ops op library; tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nBuild it with `make build` (or `cargo build --release` with PYTHON set to this "
        f"Python), or set {ENV_VAR} to the path of {LIBRARY_NAME}."
    )

"""Finds and loads libbpr_ops.so, once per process.

Tried in order: the file named by BPR_OPS_LIBRARY (when set, the only one
tried: an explicit override must not be silently replaced by another build),
the library inside this package (an installed wheel), and the repository's
`target/release` (a source checkout after `cargo build --release`). When none
loads, one error lists every path tried and why.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

LIBRARY_NAME = "libbpr_ops.so"
ENV_VAR = "BPR_OPS_LIBRARY"
_MARKER = b"BPR_OPS_BUILT_FOR_TENSORFLOW="

_lock = threading.Lock()
_library = None
_library_path: Path | None = None


class LibraryLoadError(ImportError):
    """libbpr_ops.so could not be loaded; the message lists every path tried."""


def candidate_paths() -> list[tuple[Path, str]]:
    """(path, where it comes from) in the order they are tried."""
    override = os.environ.get(ENV_VAR)
    if override:
        return [(Path(override), f"${ENV_VAR}")]
    here = Path(__file__).resolve().parent
    # setuptools-rust names the wheel's copy libbpr_ops.<python tag>.so.
    packaged = sorted(here.glob("libbpr_ops*.so")) or [here / LIBRARY_NAME]
    return [
        *((path, "inside the bpr_ops package") for path in packaged),
        (here.parent.parent / "target" / "release" / LIBRARY_NAME, "the repository's cargo build"),
    ]


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
    for path, origin in candidate_paths():
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

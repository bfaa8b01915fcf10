"""Checks a release wheel (make wheel runs it): one library per supported
TensorFlow minor, nothing bundled beside them, no path of the build machine in
their RUNPATH, only system libraries and TensorFlow's framework needed,
TensorFlow only as an extra, and a manylinux tag that `auditwheel show` agrees
with. Exits non-zero naming what is wrong."""

import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What a manylinux system provides, and what the user's TensorFlow does.
ALLOWED_NEEDED = {
    "libtensorflow_framework.so.2",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "ld-linux-x86-64.so.2",
}
RUNPATH = "$ORIGIN/../tensorflow"


def main(wheel: Path) -> list[str]:
    problems = []
    minors = [line.rsplit(".", 1)[0] for line in (ROOT / "scripts/tf_versions.txt").read_text().split()
              if not line.startswith("#") and line[0].isdigit()]
    expected = {f"bpr_ops/libbpr_ops.tf{m.replace('.', '_')}.so" for m in minors}
    if "manylinux" not in wheel.name:
        problems.append(f"{wheel.name}: no manylinux tag")
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        names = set(z.namelist())
        libraries = {n for n in names if n.endswith(".so") or ".so." in n}
        if libraries != expected:
            problems.append(f"libraries {sorted(libraries)}, expected exactly {sorted(expected)}")
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        for name in sorted(libraries):
            path = Path(z.extract(name, tmp))
            dynamic = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
            runpaths = re.findall(r"\((?:RUNPATH|RPATH)\).*\[(.*)\]", dynamic)
            if runpaths != [RUNPATH]:
                problems.append(f"{name}: RUNPATH {runpaths}, expected [{RUNPATH!r}] only")
            needed = set(re.findall(r"\(NEEDED\).*\[(.*)\]", dynamic))
            if needed - ALLOWED_NEEDED:
                problems.append(f"{name}: needs {sorted(needed - ALLOWED_NEEDED)} (not a system library)")
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "tensorflow" in line and "extra ==" not in line:
            problems.append(f"METADATA: TensorFlow is a hard requirement: {line}")
    for extra in ("tensorflow", "tensorflow-cpu"):
        if f"Provides-Extra: {extra}" not in metadata:
            problems.append(f"METADATA: no extra {extra!r}")
    # `auditwheel show` cannot be told that libtensorflow_framework.so.2 is
    # excluded (repair can): its overall tag stays linux_x86_64 because that
    # library is not bundled. Its symbol tag is the wheel's manylinux tag, and
    # TensorFlow's framework must be the only library it would bundle. The
    # framework stays unresolved (no TensorFlow on its search path): found, its
    # own symbols would count (TensorFlow 2.21's need manylinux_2_27), which
    # the user's TensorFlow brings whatever our tag.
    env = {k: v for k, v in os.environ.items() if k not in ("AUDITWHEEL_LD_LIBRARY_PATH", "LD_LIBRARY_PATH")}
    show = subprocess.run(["auditwheel", "show", "--json", str(wheel)], capture_output=True, text=True, env=env)
    try:
        report = json.loads(show.stdout)
    except json.JSONDecodeError:
        problems.append(f"auditwheel show failed:\n{show.stdout}{show.stderr}")
        return problems
    if not report["sym_tag"].startswith("manylinux_") or report["sym_tag"] not in wheel.name:
        problems.append(f"auditwheel show: symbol tag {report['sym_tag']}, but the wheel is {wheel.name}")
    if set(report["external_libs"]) != {"libtensorflow_framework.so.2"}:
        problems.append(f"auditwheel show: external libraries {report['external_libs']}, "
                        "expected libtensorflow_framework.so.2 alone")
    print(f"check_wheel: auditwheel show: symbol tag {report['sym_tag']}, external libraries "
          f"{sorted(report['external_libs'])} (excluded: the user's TensorFlow provides it)")
    return problems


if __name__ == "__main__":
    problems = main(Path(sys.argv[1]))
    for p in problems:
        print(f"check_wheel: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"check_wheel: {Path(sys.argv[1]).name}: ok")

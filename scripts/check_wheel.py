"""Checks a release wheel (make wheel runs it): one library per supported
TensorFlow minor, nothing bundled beside them, no path of the build machine in
their RUNPATH, only system libraries and TensorFlow's framework needed,
TensorFlow only as an extra, a manylinux tag that `auditwheel show` agrees
with, and no library needing more than the tag the README promises (its glibc
symbol versions, read here, and auditwheel's symbol tag). Exits non-zero naming
what is wrong."""

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


def promised_tag() -> str:
    """The manylinux tag README.md promises ("**`manylinux_2_24`**, checked by auditwheel")."""
    found = re.search(r"\*\*`(manylinux_\d+_\d+)`\*\*, checked by auditwheel", (ROOT / "README.md").read_text())
    if not found:
        raise SystemExit("check_wheel: README.md names no promised manylinux tag")
    return found[1]


def metadata_problems(metadata: str, minors: list[str], readme: str) -> list[str]:
    """The wheel's METADATA against what README.md promises: the Pythons ("Python 3.10 to 3.13" in
    its opening, as Requires-Python and one classifier each) and the TensorFlow range
    (scripts/tf_versions.txt's minors, as both extras)."""
    problems = []
    pythons = re.search(r"Python (3\.\d+) to (3\.\d+)\)", readme)
    if not pythons:
        return ["README.md names no Python range (\"Python 3.X to 3.Y)\")"]
    lo, hi = (int(v.split(".")[1]) for v in pythons.groups())
    if f"Requires-Python: >=3.{lo}" not in metadata.splitlines():
        problems.append(f"METADATA: Requires-Python is not >=3.{lo} (README.md: Python 3.{lo} to 3.{hi})")
    classified = re.findall(r"^Classifier: Programming Language :: Python :: 3\.(\d+)$", metadata, re.M)
    if sorted(map(int, classified)) != list(range(lo, hi + 1)):
        problems.append(f"METADATA: Python classifiers 3.{sorted(classified)}, README.md promises 3.{lo} to 3.{hi}")
    (lo_major, lo_minor), (hi_major, hi_minor) = (tuple(map(int, m.split("."))) for m in (minors[0], minors[-1]))
    for dist in ("tensorflow", "tensorflow-cpu"):
        want = f'Requires-Dist: {dist}<{hi_major}.{hi_minor + 1},>={lo_major}.{lo_minor}; extra == "{dist}"'
        if want not in metadata.splitlines():
            problems.append(f"METADATA: extra {dist} is not {want!r} (scripts/tf_versions.txt)")
    return problems


def _glibc(tag: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r"manylinux_(\d+)_(\d+)(?:_x86_64)?", tag).groups()
    return int(major), int(minor)


def tag_problems(what: str, tag: str, promised: str) -> list[str]:
    """A tag above the promised one is a problem (auditwheel would just tag the wheel higher)."""
    if _glibc(tag) > _glibc(promised):
        return [f"{what}: {tag} is above the promised {promised} (README.md)"]
    return []


def library_problems(path: Path, promised: str) -> list[str]:
    """glibc symbol versions of one library above the promised tag's glibc, read with objdump,
    so the check does not rest on auditwheel alone."""
    table = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(x) for x in v.split(".")) for v in re.findall(r"\bGLIBC_(\d+\.\d+(?:\.\d+)?)\b", table)}
    need = max(versions, default=(0, 0))[:2]
    if need > _glibc(promised):
        symbols = sorted({m for m in re.findall(r"GLIBC_(\d+\.\d+)\)?\s+(\S+)", table)
                          if tuple(int(x) for x in m[0].split(".")) > _glibc(promised)})[:5]
        return [f"{path.name}: needs glibc {need[0]}.{need[1]} (e.g. {', '.join(f'{n}@GLIBC_{v}' for v, n in symbols)}), "
                f"above the promised {promised} (README.md)"]
    return []


def main(wheel: Path) -> list[str]:
    problems = []
    promised = promised_tag()
    tag = re.search(r"(manylinux_\d+_\d+)", wheel.name)
    if tag:
        problems += tag_problems(wheel.name, tag[1], promised)
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
            problems += library_problems(path, promised)
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "tensorflow" in line and "extra ==" not in line:
            problems.append(f"METADATA: TensorFlow is a hard requirement: {line}")
    for extra in ("tensorflow", "tensorflow-cpu"):
        if f"Provides-Extra: {extra}" not in metadata:
            problems.append(f"METADATA: no extra {extra!r}")
    problems += metadata_problems(metadata, minors, (ROOT / "README.md").read_text())
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
    elif report["sym_tag"].startswith("manylinux_"):
        problems += tag_problems("auditwheel show: symbol tag", report["sym_tag"], promised)
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

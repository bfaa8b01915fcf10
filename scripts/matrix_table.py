"""Writes `make matrix`'s results (build/matrix/) as a table into
docs/reference/install.md ("Tested TensorFlow versions"), between the matrix markers. Run by scripts/matrix.sh; usage:
matrix_table.py RESULTS_DIR WHEEL_TAG."""

import json
import re
import subprocess
import sys
from pathlib import Path

VERSIONS = ("from importlib.metadata import version as v; import json, platform; "
            "print(json.dumps({'python': platform.python_version(), 'keras': v('keras'), 'numpy': v('numpy')}))")


def harness_venv(minor):
    """Python, Keras and numpy of the cached venv the harness ran in."""
    venv = subprocess.run(["scripts/tf_venv.sh", minor], capture_output=True, text=True, check=True).stdout.strip()
    return json.loads(subprocess.run([f"{venv}/bin/python", "-c", VERSIONS], capture_output=True, text=True,
                                     check=True).stdout)


def smoke(out, label):
    try:
        return json.loads((out / f"smoke-{label}.json").read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}


def main(out: Path, tag: str):
    versions = [v for v in Path("scripts/tf_versions.txt").read_text().split() if v[0].isdigit()]
    rows = [
        "| TensorFlow | op harness (`pytest tests/python`) on the build for it | its venv: Python, Keras, numpy "
        "| the wheel in a fresh venv: both ops, the request reader and bpr-decode | that venv: Python, Keras, numpy |",
        "|---|---|---|---|---|",
    ]
    for version in versions:
        minor = version.rsplit(".", 1)[0]
        h = harness_venv(minor)
        w = smoke(out, minor)
        harness = (out / f"harness-{minor}.txt").read_text().strip()
        wheel = (out / f"wheel-{minor}.txt").read_text().strip()
        if w:
            wheel = f"{wheel} (`{w['library']}`)"
        rows.append(f"| tensorflow-cpu {version} | {harness} | {h['python']}, {h['keras']}, {h['numpy']} | {wheel} | "
                    f"{w.get('python', '?')}, {w.get('keras', '?')}, {w.get('numpy', '?')} |")
    default = versions[-1]
    w = smoke(out, "full")
    full = (out / "wheel-full.txt").read_text().strip()
    rows.append(f"| tensorflow {default} (the full package) | (the build for {default.rsplit('.', 1)[0]}, above) | "
                f"| {full}, and no tensorflow-cpu installed next to it | "
                f"{w.get('python', '?')}, {w.get('keras', '?')}, {w.get('numpy', '?')} |")
    note = (f"Measured by `make matrix` with `bpr_ops-0.1.0-{tag}.whl`. Keras and numpy are the "
            "versions pip chose for each TensorFlow and Python (Keras 3.13 and later need Python 3.11). "
            "The 11 skipped tests: `test_large_output.py`'s 4 over-2-GiB cases (`make test-slow`), and 7 "
            "that build bpr-host or run the serving guide's commands against .venv's TensorFlow "
            "(`make test` runs them).")
    page = Path("docs/reference/install.md")
    text = page.read_text()
    start, end = "<!-- matrix:start -->", "<!-- matrix:end -->"
    if start not in text:
        sys.exit(f"{page} has no matrix markers")
    table = "\n".join(rows)
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{table}\n\n{note}\n{end}", text,
                  flags=re.S)
    page.write_text(text)
    print(table)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

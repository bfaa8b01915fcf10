"""Every ```python block of README.md and of every page of docs/ (docs/**/*.md,
the pages of the MkDocs site) runs as written, on its own: a reader copies one
block, not the blocks before it.

Each block runs in a fresh namespace, in a fresh empty directory (what it
writes, `exported/`, `train.gz`, stays there). A block that sets
TF_USE_LEGACY_KERAS (tf_keras must be chosen before TensorFlow is imported)
runs in a new Python process; the others run in this one, which has
TensorFlow imported already (a new process per block would cost a TensorFlow
import each). A block that cannot run here says so in the document, on the
line right before its fence: `<!-- not run: REASON -->`; it is skipped with
that reason. Shell blocks (```sh) and blocks of other languages are not run:
they build, serve and install, which this test cannot do in seconds; the ones
that matter are run by test_readme_serving.py (the serving guide's commands)
and the make targets (make demo, make earlybird, make docs). The site itself is
built by `make docs` (mkdocs build --strict), which make test runs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
NOT_RUN = re.compile(r"^\s*<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*$")

# Blocks of sections another change is rewriting, expected to fail until it
# is merged: {section heading: reason}. The lead empties this after the merge.
BEING_REWRITTEN: dict[str, str] = {}


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    section: str  # the nearest heading above it
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file; a fence may be indented (a
    block inside a list item), and its lines lose that indentation."""
    lines = path.read_text().split("\n")
    out, section, i = [], "", 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        end = i + 1
        while end < len(lines) and not (FENCE.match(lines[end]) and FENCE.match(lines[end]).group(2) == ""):
            end += 1
        assert end < len(lines), f"{path.name}:{i + 1}: a code fence that is never closed"
        if lang == "python":
            body = [ln[len(indent):] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1:end]]
            marker = NOT_RUN.match(lines[i - 1]) if i > 0 else None
            reason = marker.group("reason") if marker else None
            out.append(Block(path, i + 1, section, "\n".join(body) + "\n", reason))
        i = end + 1
    return out


BLOCKS = [b for path in DOCS for b in blocks_of(path)]


def test_the_documents_have_blocks_and_every_marker_has_one():
    assert len([b for b in BLOCKS if b.path == ROOT / "README.md"]) >= 1
    # The manual's pages (docs/, once README's sections) and their examples.
    assert len([p for p in DOCS if ROOT / "docs" in p.parents]) >= 20
    assert len([b for b in BLOCKS if ROOT / "docs" in b.path.parents]) >= 15
    for path in DOCS:
        lines = path.read_text().split("\n")
        for i, line in enumerate(lines):
            if "not run:" in line and "<!--" in line:
                m = NOT_RUN.match(line)
                assert m and m.group("reason"), f"{path.name}:{i + 1}: a not-run marker needs a reason: {line!r}"
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                assert FENCE.match(nxt) and FENCE.match(nxt).group(2) == "python", (
                    f"{path.name}:{i + 1}: a not-run marker must be right before a ```python fence")


def _run_in_new_process(block: Block, cwd: Path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_USE_LEGACY_KERAS", None)  # the block sets it, as a reader's script would
    if os.environ.get("BPR_OPS_TEST_INSTALLED") != "1":
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", block.code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{block.id} ({block.section}) failed:\n{done.stderr[-4000:]}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_runs_as_written(block: Block, tmp_path, monkeypatch, request):
    if block.not_run is not None:
        pytest.skip(f"{block.id}: not run: {block.not_run}")
    if block.section in BEING_REWRITTEN:
        request.applymarker(pytest.mark.xfail(reason=BEING_REWRITTEN[block.section], strict=False))
    monkeypatch.chdir(tmp_path)
    if "TF_USE_LEGACY_KERAS" in block.code:
        _run_in_new_process(block, tmp_path)
        return
    namespace = {"__name__": "__main__", "__file__": f"<{block.id}>"}
    exec(compile(block.code, f"<{block.id}>", "exec"), namespace)

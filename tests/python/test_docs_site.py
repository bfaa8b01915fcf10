"""The README as the front door of the documentation (issue 34): short, lines a
reader can read, and every relative link it has pointing at a file of the
repository. The README is not part of the MkDocs site, so `mkdocs build
--strict` (make docs, run by make test), which fails on any broken link, anchor
or page missing from the navigation inside docs/, never sees its links; this
test does. The site's own pages must all be listed in mkdocs.yml's nav, or the
strict build fails; here only that each nav entry exists, so a missing page
shows without MkDocs installed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_short():
    lines = README.read_text().split("\n")
    assert len(lines) < 200, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    long = [(i + 1, len(line)) for i, line in enumerate(lines) if len(line) > 200]
    assert long == [], f"README.md lines over 200 characters (line, length): {long}"


def test_the_readme_keeps_the_two_commands():
    # .ci/run and scripts/fresh-check.sh run exactly these.
    text = README.read_text()
    assert "\nmake demo " in text and "\nmake test " in text


def test_every_relative_link_of_the_readme_exists():
    text = README.read_text()
    links = [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]
    assert len(links) >= 10, links
    for link in links:
        path = link.split("#", 1)[0]
        assert path, f"README.md: an anchor-only link {link!r} (GitHub renders the README alone)"
        assert (ROOT / path).exists(), f"README.md links to {link!r}, which does not exist"


def test_every_page_in_the_nav_exists():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    pages = re.findall(r":\s+(\S+\.md)\s*$", nav, re.M)
    assert len(pages) >= 20, pages
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), f"mkdocs.yml's nav names docs/{page}, which does not exist"

"""MkDocs hooks for the documentation site (mkdocs.yml, `make docs`).

BENCHMARKS.md stays at the top of the repository, where `make bench` and its readers expect it;
docs/reference/benchmarks.md includes it (pymdownx.snippets). Its image is a path relative to the
repository root, so the image is added to the site beside that page, where the included link
points."""

from mkdocs.structure.files import File


def on_files(files, config):
    files.append(File.generated(config, "reference/benchmarks/plot.png", abs_src_path="benchmarks/plot.png"))
    return files

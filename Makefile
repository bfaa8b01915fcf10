# make test   - every test (Rust and Python), from a fresh clone, and the docs site built
# make demo   - export a model through the ops, serve it with the Rust host, print the decoded response
# make build  - target/release/libbpr_ops.so
# make docs   - the documentation site (docs/, mkdocs.yml) into build/site, warnings as errors
# make wheel  - the release wheel in dist/: a library per TensorFlow 2.16 to 2.21
# make matrix - each supported TensorFlow: op harness on its build, the wheel in a fresh venv
# Each target sets up what it needs (scripts/setup.sh: system packages, Rust version, .venv).
# make fresh-check - the README's two commands in a fresh Debian 12 root (slow; needs root)

SHELL := /bin/bash
VENV_PY := $(CURDIR)/.venv/bin/python
# build.rs finds TensorFlow through this Python.
export PYTHON := $(VENV_PY)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: all setup build docs test test-rust test-python test-python-oldest-tf wheel matrix lint demo earlybird bench fuzz memcheck test-slow fresh-check clean

all: build

setup:
	@scripts/setup.sh

build: setup
	cargo build --release

# The documentation site: docs/*.md and the API pages mkdocstrings makes from the package's
# docstrings (it imports bpr_ops, hence the build). --strict: a broken link or anchor, a missing API
# reference or a page outside mkdocs.yml's nav fails the build. Its python blocks are run by
# tests/python/test_docs_examples.py (make test-python).
docs: build
	NO_MKDOCS_2_WARNING=1 $(VENV_PY) -m mkdocs build --strict --site-dir $(CURDIR)/build/site
	@echo "docs: open $(CURDIR)/build/site/index.html"

test: build test-rust test-python test-python-oldest-tf docs

test-rust: setup
	cargo test --release

test-python: build
	$(VENV_PY) -m pytest tests/python

# The oldest supported TensorFlow too (the default is the newest): the library
# built against it as the wheel packs it (scripts/build_for_tf.sh, cached venv
# outside the tree), the op harness pointed at that build. Not the serving host,
# demo and source-wheel tests: they build against the running TensorFlow into
# target/release, which would leave the default build bound to this minor (make
# matrix says why); not the tests marked no_library (files and scripts only, the
# same under every TensorFlow). Every other minor: `make matrix`.
OLDEST_TF := $(shell grep -v '^\#' scripts/tf_versions.txt | head -1 | cut -d. -f1,2)
test-python-oldest-tf: setup
	lib=$$(scripts/build_for_tf.sh $(OLDEST_TF)) && venv=$$(scripts/tf_venv.sh $(OLDEST_TF)) && \
	  BPR_OPS_LIBRARY=$$lib PYTHON=$$venv/bin/python $$venv/bin/python -m pytest tests/python -m "not no_library" \
	    --ignore tests/python/test_serving_host.py --ignore tests/python/test_wheel.py \
	    --ignore tests/python/test_demo.py

# The release wheel (dist/bpr_ops-*-manylinux_*.whl), checked by scripts/check_wheel.py.
wheel: setup
	scripts/build_wheel.sh

# Every supported TensorFlow, measured; writes the table in docs/reference/install.md. Not in CI (about 45 minutes on 2 cores).
matrix: setup
	scripts/matrix.sh

lint:
	@scripts/setup.sh lint
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -p bpr-ops -p bpr-protocol -p bpr-model -p bpr-host -- -D warnings

demo: build
	cargo build --release -p bpr-host
	$(VENV_PY) examples/demo.py

# The-algorithm's Earlybird light ranker on TensorFlow 2 (examples/earlybird): 200,000 synthetic
# records in block files, calibrate, fit, export, serve with bpr-host. make test runs it small.
earlybird: build
	cargo build --release -p bpr-host
	$(VENV_PY) examples/earlybird/earlybird.py

# Side-by-side timings (BENCHMARKS.md, benchmarks/plot.png). Run on a quiet machine.
# Graph mode first (where production runs the op), 1 and 2 intra-op threads, BENCH_RUNS
# processes each; the writers' share of a request served by bpr-host (it builds the host);
# block files -> training batches against TFRecord + parse_example (issue 27);
# then the encoder alone against memset; then eager mode and criterion; then twml's model ops
# against twml's own build (scripts/build_twml_ops.sh) and plain TensorFlow.
BENCH_RUNS ?= 5
bench: build
	$(VENV_PY) -m pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	$(VENV_PY) benchmarks/bench_graph.py --runs $(BENCH_RUNS) --threads 1,2
	$(VENV_PY) benchmarks/bench_request.py --runs $(BENCH_RUNS) --threads 1,2
	$(VENV_PY) benchmarks/bench_share.py --runs $(BENCH_RUNS)
	$(VENV_PY) benchmarks/bench_block.py --runs $(BENCH_RUNS) --batches 64,512,4096 --compression plain,gzip
	cargo bench -p bpr-protocol --bench floor -- --runs $(BENCH_RUNS) --out $(CURDIR)/benchmarks/results_encoder.json
	$(VENV_PY) benchmarks/bench_ops.py
	$(VENV_PY) benchmarks/bench_ops.py --intra-op-threads 1 --out benchmarks/results_1thread.json
	cargo bench -p bpr-protocol --bench encode
	$(VENV_PY) benchmarks/bench_model_ops_twml.py --markdown --json benchmarks/results_model_twml.json
	$(VENV_PY) benchmarks/report.py benchmarks/analysis.md benchmarks/memory.md benchmarks/model_ops_twml.md

# Reliability runs that are too slow for `make test` (results: the issue notes).
FUZZ_SECONDS ?= 300
fuzz: setup
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	scripts/fuzz.sh $(FUZZ_SECONDS)

# valgrind on the Rust tests and on both ops inside TensorFlow; RSS over 100,000 calls.
memcheck: build
	@scripts/setup.sh memcheck
	scripts/memcheck.sh

# Responses over 2 GiB written exactly, 2^31-byte strings and rows rejected (about 12 GiB of RAM).
test-slow: build
	scripts/large_output.sh

# The README's two commands in a fresh Debian 12 root made with debootstrap (needs root; 30-50
# minutes per full variant: it downloads TensorFlow and builds everything there). FRESH_VARIANT: plain,
# libclang-cpp, nonroot (default: all three).
FRESH_VARIANT ?=
fresh-check:
	scripts/fresh-check.sh $(FRESH_VARIANT)

clean:
	cargo clean

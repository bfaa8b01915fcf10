# make test   - every test (Rust and Python), from a fresh clone
# make demo   - export a model through the ops, serve it with the Rust host, print the decoded response
# make build  - target/release/libbpr_ops.so
# Each target sets up what it needs (scripts/setup.sh: system packages, Rust version, .venv).
# make fresh-check - the two README commands in a fresh Debian 12 root (slow; needs root)

SHELL := /bin/bash
VENV_PY := $(CURDIR)/.venv/bin/python
# build.rs finds TensorFlow through this Python.
export PYTHON := $(VENV_PY)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: all setup build test test-rust test-python lint demo bench fuzz memcheck test-slow fresh-check clean

all: build

setup:
	@scripts/setup.sh

build: setup
	cargo build --release

test: build test-rust test-python

test-rust: setup
	cargo test --release

test-python: build
	$(VENV_PY) -m pytest tests/python

lint:
	@scripts/setup.sh lint
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -p bpr-ops -p bpr-encoder -p bpr-host -- -D warnings

demo: build
	cargo build --release -p bpr-host
	$(VENV_PY) examples/demo.py

# Side-by-side timings (BENCHMARKS.md, benchmarks/plot.png). Run on a quiet machine.
# Graph mode first (where production runs the op), 1 and 2 intra-op threads, BENCH_RUNS
# processes each; then the encoder alone against memset; then eager mode and criterion.
BENCH_RUNS ?= 5
bench: build
	$(VENV_PY) -m pip install -q --disable-pip-version-check -r benchmarks/requirements.txt
	$(VENV_PY) benchmarks/bench_graph.py --runs $(BENCH_RUNS) --threads 1,2
	cargo bench -p bpr-encoder --bench floor -- --runs $(BENCH_RUNS) --out $(CURDIR)/benchmarks/results_encoder.json
	$(VENV_PY) benchmarks/bench_ops.py
	$(VENV_PY) benchmarks/bench_ops.py --intra-op-threads 1 --out benchmarks/results_1thread.json
	cargo bench -p bpr-encoder --bench encode
	$(VENV_PY) benchmarks/report.py benchmarks/analysis.md benchmarks/memory.md

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

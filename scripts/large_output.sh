#!/usr/bin/env bash
# The slow limits tests: responses over 2 GiB written exactly, a string and a row over the
# i32 limit rejected. Needs about 10 GiB of free memory and a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BPR_OPS_SLOW=1 exec .venv/bin/python -m pytest tests/python/test_large_output.py -v -s -p no:cacheprovider "$@"

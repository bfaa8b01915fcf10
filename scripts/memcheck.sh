#!/usr/bin/env bash
# Memory checks of the op library:
#  1. valgrind memcheck on the Rust test binaries that drive the C ABI (src/ffi.rs) with
#     valid and broken views (tests/proptest_ffi.rs) and the crate's unit tests: every error
#     counts.
#  2. valgrind memcheck on a short Python script calling both ops through TensorFlow
#     (scripts/memcheck_ops.py): only errors with a bpr_ops frame (libbpr_ops.so, the shim or
#     the encoder) count; TensorFlow's and Python's own reports are listed but not judged.
#  3. resident memory across 100,000 calls of each op (scripts/rss_check.py).
# Takes several minutes (TensorFlow under valgrind is slow).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHON="${PYTHON:-$PWD/.venv/bin/python}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export TF_CPP_MIN_LOG_LEVEL=2
out=target/memcheck
mkdir -p "$out"
status=0

vg=(valgrind --tool=memcheck --error-exitcode=99 --track-origins=yes --num-callers=30)

echo "== 1. valgrind on the Rust ABI tests"
# The test binaries' paths, from cargo's JSON messages.
bins=$(cargo test --release --no-run -p bpr-ops -p bpr-protocol --lib --test proptest_ffi --message-format=json 2>/dev/null |
  "$PYTHON" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("bpr_ops", "bpr_protocol", "proptest_ffi"):
        print(m["executable"])')
for bin in $bins; do
  name=$(basename "$bin")
  # Fewer cases under valgrind; each still covers every fault kind.
  if PROPTEST_CASES="${MEMCHECK_CASES:-128}" "${vg[@]}" --log-file="$out/$name.log" "$bin" --test-threads=1 >"$out/$name.out" 2>&1; then
    echo "$name: $(grep -h 'ERROR SUMMARY' "$out/$name.log")"
  else
    echo "$name: FAILED: $(grep -h 'ERROR SUMMARY' "$out/$name.log"; tail -3 "$out/$name.out")"
    status=1
  fi
done

echo "== 2. valgrind on both ops through TensorFlow (errors in bpr_ops frames count)"
log="$out/python-ops.log"
PYTHONMALLOC=malloc "${vg[@]}" --error-exitcode=0 --log-file="$log" \
  "$PYTHON" scripts/memcheck_ops.py >"$out/python-ops.out" 2>&1 || { echo "the script failed:"; tail -5 "$out/python-ops.out"; status=1; }
tail -1 "$out/python-ops.out"
"$PYTHON" - "$log" <<'PY' || status=1
import re, sys
text = open(sys.argv[1]).read()
# valgrind separates reports with "==PID== " blank lines; each report starts with its kind.
blocks = re.split(r"\n==\d+== \n", text)
ours = [b for b in blocks if re.search(r"bpr_ops|bpr_shim|cpp_shim|kernels\.cc", b) and re.search(r"Invalid|uninitialised|Mismatched|overlap|Conditional", b)]
total = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
print(f"valgrind reports in total (TensorFlow, Python, ours): {total[-1] if total else '?'}; with a bpr_ops frame: {len(ours)}")
for b in ours[:5]:
    print(b[:3000])
sys.exit(1 if ours else 0)
PY

echo "== 3. resident memory over 100,000 calls of each op"
"$PYTHON" scripts/rss_check.py "${RSS_CALLS:-100000}" || status=1

exit $status

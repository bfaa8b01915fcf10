#!/usr/bin/env bash
# Fuzzes the encoder (protocol/fuzz/fuzz_targets/encode.rs), the request readers
# (fuzz_targets/request.rs), the block-file reader (fuzz_targets/block.rs) and twml's model ops
# (model/fuzz/fuzz_targets/: tensors.rs, the small tensor ops; discretize.rs, the discretizers and
# isotonic calibration; sparse.rs, the binary sparse matmul, the sparse norms and partitioning),
# SECONDS each, with cargo-fuzz (libFuzzer + AddressSanitizer). Needs cargo-fuzz (`cargo install cargo-fuzz`); the stable
# toolchain's nightly flags are unlocked with RUSTC_BOOTSTRAP=1.
#
#   scripts/fuzz.sh [SECONDS]      default 300; FUZZ_JOBS=N runs N workers
#
# New inputs go to a scratch corpus (target/fuzz-corpus), seeded from the small corpus kept in
# protocol/fuzz/corpus/encode, so the repository's corpus does not grow. A crash leaves its input in
# protocol/fuzz/artifacts/encode/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
jobs="${FUZZ_JOBS:-1}"

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2; exit 1; }
# The fuzz target links only the encoder crate (bpr-protocol): no TensorFlow, no Python.
export RUSTC_BOOTSTRAP=1

parallel=()
# With -jobs libFuzzer writes each worker's log to protocol/fuzz/fuzz-N.log.
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
cd protocol/fuzz
for target in encode request block; do
  scratch=../../target/fuzz-corpus/$target
  mkdir -p "$scratch" "corpus/$target"
  cargo fuzz run -O "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 "${parallel[@]}"
done
# twml's model ops (bpr-model, no TensorFlow either).
cd ../../model/fuzz
for target in tensors discretize sparse; do
  scratch=../../target/fuzz-corpus/model-$target
  mkdir -p "$scratch" "corpus/$target"
  cargo fuzz run -O "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -timeout=10 \
    -print_final_stats=1 "${parallel[@]}"
done

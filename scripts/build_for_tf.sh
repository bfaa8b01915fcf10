#!/usr/bin/env bash
# build_for_tf.sh X.Y: builds libbpr_ops.so against TensorFlow X.Y (its cached
# venv, scripts/tf_venv.sh) exactly as the release wheel packs it, and prints
# its path. `make wheel` packs these files; `make matrix` and `make test` run
# the Python op harness on them.
#
# - Linked by zig (cargo-zigbuild, target x86_64-unknown-linux-gnu.2.17)
#   against glibc 2.17's symbol versions, so the wheel can carry a manylinux
#   tag wider than this machine's glibc. The C++ shim is still compiled by
#   g++ against TensorFlow's headers and flags, and the libstdc++ of that g++
#   is linked (build.rs), as TensorFlow's C++ ABI requires.
# - RUNPATH: the TensorFlow next to the installed package only, no path of
#   this machine.
# - One target directory per minor: switching TensorFlow in one directory
#   would rebuild everything each time (build.rs reruns when PYTHON changes).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
minor="${1:?usage: build_for_tf.sh X.Y}"
venv="$("$root/scripts/tf_venv.sh" "$minor")"
tools="$("$root/scripts/tools_venv.sh")"
target="$root/target/tf-$minor"
triple=x86_64-unknown-linux-gnu
printf '[build_for_tf] TensorFlow %s: cargo zigbuild --release --lib into %s\n' "$minor" "$target" >&2
(
  cd "$root"
  # cargo-zigbuild finds zig through the tools venv's python (ziglang).
  PATH="$tools/bin:$PATH" PYTHON="$venv/bin/python" CARGO_TARGET_DIR="$target" \
    BPR_OPS_RPATH='$ORIGIN/../tensorflow' CXX_x86_64_unknown_linux_gnu=g++ CC_x86_64_unknown_linux_gnu=gcc \
    cargo zigbuild --release --lib --target "$triple.2.17" ${CARGO_FLAGS:-} >&2
)
echo "$target/$triple/release/libbpr_ops.so"

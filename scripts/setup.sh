#!/usr/bin/env bash
# Prepares a fresh machine for building and testing: the system packages bindgen
# needs, and a .venv with the pinned TensorFlow and test packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) and retry"
command -v c++ >/dev/null || die "no C++ compiler (c++) found: install g++ (Debian/Ubuntu: apt-get install g++)"

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null ||
    compgen -G '/usr/lib/*/libclang-*.so*' >/dev/null
}
if ! have_libclang; then
  say "bindgen needs libclang: installing libclang-dev"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  command -v apt-get >/dev/null || die "libclang not found and no apt-get: install libclang (LLVM) or set LIBCLANG_PATH"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q >/dev/null
  $sudo apt-get install -y -q libclang-dev >/dev/null
  have_libclang || die "libclang-dev installed but libclang not found"
fi

PY_BOOT="${PYTHON_BOOT:-python3}"
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt "$stamp"; then
  say "creating .venv with $( "$PY_BOOT" --version 2>&1 ) and requirements.txt"
  [ -x .venv/bin/python ] || "$PY_BOOT" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt "$stamp"
fi

#!/usr/bin/env bash
# tf_venv.sh X.Y: prints the path of a venv with the supported TensorFlow X.Y
# (tensorflow-cpu, newest patch release from scripts/tf_versions.txt) and the
# test packages of requirements.txt, creating it when missing or stale.
#
# The venvs live in a cache outside the work tree
# (${BPR_OPS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/bpr_ops}/tf-X.Y), so every clone
# and every run reuses them: a TensorFlow download is 250 MB or more.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
minor="${1:?usage: tf_venv.sh X.Y (one of: $(grep -v '^#' "$root/scripts/tf_versions.txt" | cut -d. -f1,2 | tr '\n' ' '))}"
version="$(grep -v '^#' "$root/scripts/tf_versions.txt" | grep -m1 "^${minor//./\\.}\." || true)"
[ -n "$version" ] || { echo "tf_venv.sh: TensorFlow $minor is not supported (scripts/tf_versions.txt)" >&2; exit 2; }

cache="${BPR_OPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bpr_ops}"
venv="$cache/tf-$minor"
# What the venv must hold: this TensorFlow and the test pins (everything in
# requirements.txt but its TensorFlow and tf_keras lines), and the tf_keras of
# this minor, installed without dependencies (it requires the `tensorflow`
# distribution, which pip would install next to tensorflow-cpu).
wanted="$(printf 'tensorflow-cpu==%s\n' "$version"; grep -v -E '^\s*(#|$)|^tensorflow|^tf_keras' "$root/requirements.txt")"
no_deps="tf_keras==$minor.*"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.bpr_ops-requirements" 2>/dev/null)" != "$wanted $no_deps" ]; then
  mkdir -p "$cache"
  # One writer per venv: `make -j` or two clones may ask at once.
  exec 9>"$venv.lock"
  flock 9
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.bpr_ops-requirements" 2>/dev/null)" != "$wanted $no_deps" ]; then
    printf '[tf_venv] %s: installing TensorFlow %s and the test packages\n' "$venv" "$version" >&2
    [ -x "$venv/bin/python" ] || "${PYTHON_BOOT:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check $wanted >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$no_deps" >&2
    printf '%s' "$wanted $no_deps" >"$venv/.bpr_ops-requirements"
  fi
fi
echo "$venv"

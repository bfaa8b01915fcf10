#!/usr/bin/env bash
# tools_venv.sh: prints the path of a venv with the release-build tools of
# scripts/wheel-tools.txt, creating it when missing or stale. Cached next to
# the TensorFlow venvs (scripts/tf_venv.sh), outside the work tree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${BPR_OPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bpr_ops}"
venv="$cache/wheel-tools"
if ! cmp -s "$root/scripts/wheel-tools.txt" "$venv/.bpr_ops-requirements"; then
  mkdir -p "$cache"
  exec 9>"$venv.lock"
  flock 9
  if ! cmp -s "$root/scripts/wheel-tools.txt" "$venv/.bpr_ops-requirements"; then
    printf '[tools_venv] %s: installing scripts/wheel-tools.txt\n' "$venv" >&2
    [ -x "$venv/bin/python" ] || "${PYTHON_BOOT:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$root/scripts/wheel-tools.txt" >&2
    cp "$root/scripts/wheel-tools.txt" "$venv/.bpr_ops-requirements"
  fi
fi
echo "$venv"

#!/usr/bin/env bash
# matrix.sh (make matrix): every supported TensorFlow minor, measured.
#  1. For each minor of scripts/tf_versions.txt: build libbpr_ops.so against
#     it (scripts/build_for_tf.sh, as the wheel packs it) and run the Python op
#     harness on that build (BPR_OPS_LIBRARY) in the minor's cached venv.
#  2. Build the release wheel (make wheel) and install it into a fresh venv
#     per minor, with that TensorFlow only (and once with the full `tensorflow`
#     distribution, which must not bring tensorflow-cpu along); run both ops, the request reader
#     and bpr-decode there (scripts/wheel_smoke.py).
#  3. Write the results as a table into docs/reference/install.md (scripts/matrix_table.py).
# Keeps going after a failure so the table shows every row; exits 1 if any failed.
#
# Not in the per-minor harness: test_serving_host.py (builds the Rust serving
# host and the static archive with plain cargo into target/, against the
# default TensorFlow: `make test` runs it) and test_wheel.py (builds the
# source wheel with pip's isolated build, which pins the default TensorFlow);
# step 2 is the per-minor wheel test.
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
versions="$(grep -v '^#' scripts/tf_versions.txt)"
out=build/matrix
# MATRIX_ONLY=wheel: steps 2 and 3 only, with the harness results of the last
# full run (build/matrix/harness-*.txt), e.g. after changing only packaging.
only="${MATRIX_ONLY:-}"
if [ "$only" = wheel ]; then
  ls "$out"/harness-*.txt >/dev/null 2>&1 || { echo "[matrix] MATRIX_ONLY=wheel: no harness results in $out"; exit 1; }
  rm -f "$out"/wheel-* "$out"/smoke-* "$out"/install-* "$out"/pip-list-*
else
  rm -rf "$out" && mkdir -p "$out"
fi
failed=0

# Pythons for the fresh wheel venvs: spread over 3.10 to 3.13 (each one a
# Python the minor has wheels for), where this machine has them; else python3.
declare -A PYTHON_FOR=([2.16]=3.10 [2.17]=3.11 [2.18]=3.12 [2.19]=3.10 [2.20]=3.13 [2.21]=3.13)
find_python() {
  local want="$1" p
  for p in "python$want" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want"; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c pass >/dev/null 2>&1; then command -v "$p"; return; fi
  done
  command -v python3
}

summary() {  # pytest's closing counts, without the timing
  grep -E '^[0-9]+ (passed|failed)|^=+ .*(passed|failed)' "$1" | tail -1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*$//; s/ =+$//'
}

for version in $versions; do
  [ "$only" = wheel ] && break
  minor="${version%.*}"
  echo "=== [matrix] TensorFlow $version: build and op harness"
  venv="$(scripts/tf_venv.sh "$minor")"
  if ! lib="$(scripts/build_for_tf.sh "$minor")"; then
    echo "[matrix] TensorFlow $version: build FAILED"; failed=1
    echo "build failed" >"$out/harness-$minor.txt"; continue
  fi
  BPR_OPS_LIBRARY="$lib" PYTHON="$venv/bin/python" "$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider \
    --ignore tests/python/test_serving_host.py --ignore tests/python/test_wheel.py 2>&1 | tee "$out/harness-$minor.log" | tail -3
  status="${PIPESTATUS[0]}"
  result="$(summary "$out/harness-$minor.log")"
  [ "$status" = 0 ] || { failed=1; result="FAILED: $result"; }
  echo "$result" >"$out/harness-$minor.txt"
done

echo "=== [matrix] the release wheel"
if ! scripts/build_wheel.sh 2>&1 | tee "$out/wheel.log" | grep -E '^\[wheel\]|check_wheel|Fixed-up'; then
  echo "[matrix] make wheel FAILED"; exit 1
fi
wheel="$root/$(ls dist/bpr_ops-*manylinux*.whl)"
tag="$(basename "$wheel" .whl | cut -d- -f3-)"

wheel_run() {  # wheel_run LABEL PYTHON REQUIREMENT...: fresh venv, install, smoke test
  local label="$1" python="$2"; shift 2
  local venv; venv="$(mktemp -d /tmp/bpr_ops-matrix.XXXXXX)"
  "$python" -m venv "$venv" &&
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" "$@" >"$out/install-$label.log" 2>&1 &&
    "$venv/bin/python" -m pip list --format=freeze >"$out/pip-list-$label.txt" &&
    (cd "$venv" && TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" "$root/scripts/wheel_smoke.py") >"$out/smoke-$label.json" 2>"$out/smoke-$label.err"
  local status=$?
  rm -rf "$venv"
  return $status
}

for version in $versions; do
  minor="${version%.*}"
  python="$(find_python "${PYTHON_FOR[$minor]:-3}")"
  echo "=== [matrix] TensorFlow $version: the wheel in a fresh venv ($("$python" --version))"
  if wheel_run "$minor" "$python" "tensorflow-cpu==$version"; then
    echo "[matrix] ok: $(cat "$out/smoke-$minor.json")"
    echo "ok" >"$out/wheel-$minor.txt"
  else
    echo "[matrix] TensorFlow $version: wheel FAILED"; tail -5 "$out/install-$minor.log" "$out/smoke-$minor.err"
    echo "FAILED" >"$out/wheel-$minor.txt"; failed=1
  fi
done

# The full `tensorflow` distribution: the wheel must not add tensorflow-cpu.
default="$(echo "$versions" | tail -1)"
echo "=== [matrix] tensorflow==$default (not tensorflow-cpu): the wheel in a fresh venv"
if wheel_run full "$(find_python 3.11)" "tensorflow==$default" &&
  ! grep -qi '^tensorflow-cpu==' "$out/pip-list-full.txt" && grep -q "^tensorflow==$default" "$out/pip-list-full.txt"; then
  echo "[matrix] ok: one TensorFlow ($(grep -i '^tensorflow' "$out/pip-list-full.txt" | tr '\n' ' '))"
  echo "ok" >"$out/wheel-full.txt"
else
  echo "[matrix] tensorflow==$default: FAILED"; grep -i '^tensorflow' "$out/pip-list-full.txt"
  echo "FAILED" >"$out/wheel-full.txt"; failed=1
fi

# The table.
python3 scripts/matrix_table.py "$out" "$tag" || failed=1
[ "$failed" = 0 ] || { echo "[matrix] FAILED (see build/matrix/)"; exit 1; }
echo "[matrix] all passed"

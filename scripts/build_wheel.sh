#!/usr/bin/env bash
# build_wheel.sh (make wheel): the release wheel, in dist/. One libbpr_ops.so
# per supported TensorFlow minor (scripts/tf_versions.txt, each built by
# scripts/build_for_tf.sh in its cached venv), packed together; auditwheel
# gives it its manylinux tag (libtensorflow_framework.so.2 excluded: the
# user's TensorFlow provides it), and scripts/check_wheel.py checks the result.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tools="$(scripts/tools_venv.sh)"
minors="$(grep -v "^#" scripts/tf_versions.txt | cut -d. -f1,2)"

# Nothing from an earlier build may slip into this one (setuptools reuses build/lib).
rm -rf build/prebuilt build/lib* build/bdist.* build/wheel-raw
mkdir -p build/prebuilt dist
for minor in $minors; do
  lib="$(scripts/build_for_tf.sh "$minor")"
  cp "$lib" "build/prebuilt/libbpr_ops.tf${minor/./_}.so"
done

echo "[wheel] packing $(ls build/prebuilt | tr '\n' ' ')"
BPR_OPS_PREBUILT="$root/build/prebuilt" "$tools/bin/python" -m pip wheel . -q --no-build-isolation --no-deps \
  --disable-pip-version-check -w build/wheel-raw
raw="$(ls build/wheel-raw/bpr_ops-*.whl)"
rm -f dist/bpr_ops-*.whl
PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair --exclude libtensorflow_framework.so.2 -w dist "$raw"
wheel="$(ls dist/bpr_ops-*manylinux*.whl)"
PATH="$tools/bin:$PATH" "$tools/bin/python" scripts/check_wheel.py "$wheel"
echo "[wheel] $wheel"

#!/usr/bin/env bash
# Builds twml's own model-op library (the 21 ops of issue 37, from twitter/the-algorithm's twml/libtwml) against
# the TensorFlow in the venv, so benchmarks/bench_model_ops_twml.py can time and check bpr_ops against it.
# Only for comparison: nothing in bpr_ops links to it, and `make test` does not build it.
#
# Usage:  scripts/build_twml_ops.sh [SRC]        (or TWML_SRC=SRC scripts/build_twml_ops.sh)
#   SRC is a directory holding twml's sources: either .../twml/libtwml itself or a directory with twml/libtwml
#   under it. This script does not download them (a fresh machine may reach only package registries); get them
#   with, e.g.:
#     git clone --depth 1 https://github.com/twitter/the-algorithm && scripts/build_twml_ops.sh the-algorithm
#   or from a local mirror: git -C <mirror> archive HEAD twml/libtwml | tar -x -C /tmp/twml-src
# Output: ${TWML_OPS_DIR:-~/.cache/bpr_ops/twml-ops}/libtwml_ops.so (prints its path last). The sources are
# copied there first and edited with the TF1 -> TF2 changes below; the given directory is not touched.
# Env: PYTHON (default .venv/bin/python), TWML_CXXFLAGS (default -O3 -DNDEBUG, what twml's CMake Release used),
#      JOBS (parallel compiles, default 2), FORCE=1 rebuilds even when the library is newer than this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$here/.venv/bin/python}"
src="${1:-${TWML_SRC:-}}"
out_dir="${TWML_OPS_DIR:-$HOME/.cache/bpr_ops/twml-ops}"
lib="$out_dir/libtwml_ops.so"
jobs="${JOBS:-2}"
cxxflags="${TWML_CXXFLAGS:--O3 -DNDEBUG}"

if [[ -z "$src" ]]; then
  echo "build_twml_ops.sh: no twml source directory given (argument or TWML_SRC)." >&2
  echo "  It needs twitter/the-algorithm's twml/libtwml; this script does not fetch it. Get it with" >&2
  echo "    git clone --depth 1 https://github.com/twitter/the-algorithm /tmp/the-algorithm" >&2
  echo "  then run: scripts/build_twml_ops.sh /tmp/the-algorithm" >&2
  exit 2
fi
if [[ -d "$src/twml/libtwml" ]]; then src="$src/twml/libtwml"; fi
if [[ ! -f "$src/src/ops/hashing_discretizer.cpp" || ! -f "$src/include/twml.h" ]]; then
  echo "build_twml_ops.sh: $src is not twml's libtwml (expected src/ops/hashing_discretizer.cpp and include/twml.h)" >&2
  exit 2
fi
if [[ -f "$lib" && -z "${FORCE:-}" && "$lib" -nt "${BASH_SOURCE[0]}" ]]; then
  echo "$lib is up to date (FORCE=1 rebuilds)" >&2
  echo "$lib"
  exit 0
fi

mkdir -p "$out_dir"
work="$out_dir/build"
rm -rf "$work"
mkdir -p "$work"
cp -a "$src/include" "$src/src" "$work/"
ops="$work/src/ops"
core="$work/src/lib"

# --- TF1 -> TF2.x edits (see the docs: everything else compiles unchanged) ---
# Status::OK() is gone from TF 2.x.
find "$ops" -name '*.cpp' -o -name '*.h' | xargs sed -i 's/Status::OK()/absl::OkStatus()/g'
# String tensors hold tstring; MakePerStepResourceHandle was removed.
sed -i -e 's/getInputBytes<string>/getInputBytes<tstring>/; s/getBatchSize<string>/getBatchSize<tstring>/' \
  -e 's/input\.flat<string>()(id)/input.flat<tstring>()(id)/' \
  -e 's/MakePerStepResourceHandle<ResourceType>(context, resource_name)/context->step_container()->MakeResourceHandle<ResourceType>(resource_name, *context->device())/' \
  "$ops/resource_utils.h"
# The two DT_STRING cases read std::string from tstring tensors; no model op passes strings there.
sed -i '/case DT_STRING:/{N;d}' "$ops/tensorflow_utils.cpp"
sed -i 's/REGISTER_SPARSE_TO_FIXED_LENGTH(\(int[0-9]*\), string)/REGISTER_SPARSE_TO_FIXED_LENGTH(\1, tstring)/' \
  "$ops/fixed_length_tensor.cpp"
sed -i 's/REGISTER_SUBSTRINGS(string)/REGISTER_SUBSTRINGS(tstring)/' "$ops/contrib/get_substrings.cpp"
# TF 2.x ships Eigen without the third_party/eigen3 prefix, moved blocking_counter.h, and int64 is long.
sed -i 's#third_party/eigen3/unsupported/Eigen/CXX11/Tensor#unsupported/Eigen/CXX11/Tensor#' \
  "$ops/binary_sparse_dense_matmul.h"
sed -i -e 's#tensorflow/core/lib/core/blocking_counter.h#tensorflow/core/platform/blocking_counter.h#' \
  -e 's/std::max(1LL, cost_per_unit)/std::max<int64>(1LL, cost_per_unit)/' \
  "$ops/binary_sparse_dense_matmul_impl.h"
# Fail loudly if an edit no longer applies (a changed upstream file) instead of failing later in g++.
check() { grep -q "$2" "$1" || { echo "build_twml_ops.sh: edit did not apply to $1 ($2)" >&2; exit 1; }; }
check "$ops/resource_utils.h" 'MakeResourceHandle<ResourceType>(resource_name'
check "$ops/resource_utils.h" 'getBatchSize<tstring>'
check "$ops/fixed_length_tensor.cpp" 'int64, tstring'
check "$ops/contrib/get_substrings.cpp" 'REGISTER_SUBSTRINGS(tstring)'
check "$ops/binary_sparse_dense_matmul_impl.h" 'std::max<int64>(1LL'
if grep -q 'DT_STRING' "$ops/tensorflow_utils.cpp"; then
  echo "build_twml_ops.sh: DT_STRING cases left in tensorflow_utils.cpp" >&2; exit 1
fi

sources=(
  ops/hashing_discretizer.cpp ops/percentile_discretizer_v2.cpp ops/discretizer.cpp ops/isotonic_calibration.cpp
  ops/binary_sparse_dense_matmul.cpp ops/sparse_normalization.cpp ops/partition_sparse_tensor.cpp
  ops/feature_mask.cpp ops/hashmap.cpp ops/compress_sample_ids.cpp ops/fixed_length_tensor.cpp
  ops/var_length_reader.cpp ops/feature_extractor.cpp ops/contrib/get_substrings.cpp ops/tensorflow_utils.cpp
  lib/Tensor.cpp lib/discretizer_impl.cpp lib/hashing_discretizer_impl.cpp lib/optim.cpp lib/Hashmap.cpp
)

tf_cflags="$("$PYTHON" -c 'import tensorflow as tf; print(" ".join(tf.sysconfig.get_compile_flags()))')"
tf_lflags="$("$PYTHON" -c 'import tensorflow as tf; print(" ".join(tf.sysconfig.get_link_flags()))')"
mkdir -p "$work/obj"
echo "build_twml_ops.sh: compiling ${#sources[@]} files from $src ($jobs at a time; a few minutes)" >&2
# Word splitting of the flag strings is intended (tf.sysconfig gives space-separated flags without spaces inside).
export work cxxflags tf_cflags
printf '%s\n' "${sources[@]}" | xargs -P "$jobs" -I{} bash -c '
  f="{}"; o="$work/obj/${f//\//_}.o"
  g++ -c -fPIC -w $cxxflags $tf_cflags -I"$work/include" -I"$work/src/lib" -I"$work/src/ops" "$work/src/$f" -o "$o" \
    || { echo "build_twml_ops.sh: compiling $f failed" >&2; exit 255; }'
# shellcheck disable=SC2086
g++ -shared -Wl,-z,defs -o "$lib.tmp" "$work"/obj/*.o $tf_lflags
mv "$lib.tmp" "$lib"
"$PYTHON" - "$lib" <<'PY'
import sys
import tensorflow as tf
m = tf.load_op_library(sys.argv[1])
ops = ("HashingDiscretizer PercentileDiscretizerV2 PercentileDiscretizer PercentileDiscretizerBinIndices MDL "
       "IsotonicCalibration BinarySparseTensorDenseMatMul SparseMaxNorm SparseBatchNorm SparseMaxNormInference "
       "SparseMaxNormTraining PartitionSparseTensorMod FeatureMask Hashmap CompressSampleIds DecompressSampleIds "
       "FixedLengthTensor FixedLengthTensorV2 VarLengthReader FeatureExtractor GetSubstrings").split()
missing = [o for o in ops if not hasattr(m, o)]
if missing:
    sys.exit(f"build_twml_ops.sh: the library lacks {missing}")
print(f"build_twml_ops.sh: loads, with twml's {len(ops)} model ops", file=sys.stderr)
PY
echo "$lib"

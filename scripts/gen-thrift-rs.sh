#!/usr/bin/env bash
# Regenerates protocol/tests/gen/*.rs, the Rust structs Apache Thrift's own compiler makes
# from thrift/*.thrift, which tests/thrift_decode.rs decodes our bytes with.
# The output is committed so CI needs no Thrift compiler; rerun this after
# editing the IDL. The files are used unmodified: tests/thrift_decode.rs
# provides the `crate::bpr_ops_idl::{data, tensor}` paths they import.
set -euo pipefail
cd "$(dirname "$0")/.."

want="0.17.0"
command -v thrift >/dev/null || { echo "thrift compiler not found (need Apache Thrift $want)" >&2; exit 1; }
have="$(thrift --version | awk '{print $3}')"
[ "$have" = "$want" ] || echo "warning: thrift $have, the thrift crate in Cargo.toml is 0.17" >&2

rm -rf protocol/tests/gen
mkdir -p protocol/tests/gen
for idl in thrift/tensor.thrift thrift/data.thrift thrift/prediction_service.thrift; do
  thrift --gen rs -out protocol/tests/gen "$idl"
done
ls protocol/tests/gen

// Op registrations, with twml's names, inputs and outputs so graphs exported
// with twml's ops run unchanged. half, bfloat16 (both ops) and bool, uint8,
// int8 (tensor op) are additions.
//
// The shape functions only state the output shape. Input ranks are checked by
// the kernel, so a bad input is the same InvalidArgumentError, with the same
// message, in eager mode, in tf.function and in a loaded SavedModel.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace bpr_ops {
namespace {

using ::tensorflow::shape_inference::InferenceContext;

absl::Status OneRowOfBytes(InferenceContext* c) {
  c->set_output(0, c->Matrix(1, c->UnknownDim()));
  return absl::OkStatus();
}

}  // namespace
}  // namespace bpr_ops

REGISTER_OP("BatchPredictionResponseWriter")
    .Attr("T: {float, double, half, bfloat16}")
    .Input("keys: int64")
    .Input("values: T")
    .Output("result: uint8")
    .SetShapeFn(bpr_ops::OneRowOfBytes)
    .Doc(R"doc(
Writes a Thrift BatchPredictionResponse (binary protocol) with one DataRecord
per example; record i holds continuousFeatures {keys[j]: values[i, j]}.

keys: int64 [K], distinct feature ids.
values: [B, K], or [B] when K == 1.
result: uint8 [1, N], the serialized response.
)doc");

REGISTER_OP("BatchPredictionTensorResponseWriter")
    .Attr("T: list({string, int32, int64, float, double, bool, uint8, int8, half, bfloat16})")
    .Input("keys: int64")
    .Input("values: T")
    .Output("result: uint8")
    .SetShapeFn(bpr_ops::OneRowOfBytes)
    .Doc(R"doc(
Writes a Thrift BatchPredictionResponse (binary protocol) with one DataRecord
per example; record i holds tensors {keys[j]: GeneralTensor(values[j][i])}.

keys: int64 [K], distinct feature ids, K >= 1.
values: K tensors, each [B, ...] with the same B.
result: uint8 [1, N], the serialized response.
)doc");

// twml's registration (attr, output), so graphs exported with twml's FeatureId
// run unchanged. Ours states the static shape [N]; twml's left it unknown.
REGISTER_OP("FeatureId")
    .Attr("feature_names: list(string)")
    .Output("output: int64")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      std::vector<::tensorflow::tstring> names;
      TF_RETURN_IF_ERROR(c->GetAttr("feature_names", &names));
      c->set_output(0, c->Vector(static_cast<int64_t>(names.size())));
      return absl::OkStatus();
    })
    .Doc(R"doc(
The feature id of each name: twml's hash (MurmurHash3 x64 128 of the name's
UTF-16LE code units, seed 0, first 8 bytes as a signed little-endian int64,
with twml's `#` rule), the key consumers look predictions up with.

feature_names: N feature names, each UTF-8.
output: int64 [N], output[i] is the id of feature_names[i].
)doc");

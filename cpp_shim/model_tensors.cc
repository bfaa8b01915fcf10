// twml's small tensor ops: registrations with twml's interfaces (names, attrs
// in twml's order with its defaults and allowed types, inputs, outputs: from
// twml/libtwml/src/ops/{feature_mask,hashmap,compress_sample_ids,
// fixed_length_tensor,var_length_reader,feature_extractor}.cpp and
// contrib/get_substrings.cpp) and one thin kernel for all nine; the math is
// model/src/tensors.rs. twml's shape functions said nothing for most of these;
// ours state what is known (ranks, pad_value a scalar) so mistakes surface
// when a graph is built.

#include <cstdint>
#include <string>
#include <vector>

#include "bpr_ops.h"
#include "kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_def.pb.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace bpr_ops {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr size_t kMessageCapacity = 1024;

// FeatureMask: mask [number of elements of keep] (twml flattens keep).
absl::Status FeatureMaskShape(InferenceContext* c) {
  c->set_output(0, c->Vector(c->NumElements(c->input(0))));
  return absl::OkStatus();
}

// Hashmap: values and mask have the shape of keys (twml's own function).
absl::Status HashmapShape(InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->input(0));
  return absl::OkStatus();
}

absl::Status VectorShape(InferenceContext* c) {
  c->set_output(0, c->Vector(InferenceContext::kUnknownDim));
  return absl::OkStatus();
}

// FixedLengthTensor(V2): [batch_size, max_length], max_length known when the
// attr is non-negative; pad_value a scalar (twml's kernel aborted otherwise),
// V2's batch_size one value.
absl::Status FixedLengthShape(InferenceContext* c) {
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
  int64_t max_length = -1;
  TF_RETURN_IF_ERROR(c->GetAttr("max_length", &max_length));
  DimensionHandle batch = c->UnknownDim();
  if (c->num_inputs() == 4) {
    TF_RETURN_IF_ERROR(c->WithRankAtMost(c->input(3), 1, &unused));
    const DimensionHandle n = c->NumElements(c->input(3));
    if (c->ValueKnown(n) && c->Value(n) != 1) {
      return ::tensorflow::errors::InvalidArgument(
          "FixedLengthTensorV2: batch_size must hold one value, got shape ",
          c->DebugString(c->input(3)));
    }
    // The batch size itself when it is a constant of the graph.
    const Tensor* value = c->input_tensor(3);
    if (value != nullptr && value->NumElements() == 1) {
      const int64_t b = value->flat<int64_t>()(0);
      if (b < 0) {
        return ::tensorflow::errors::InvalidArgument(
            "FixedLengthTensorV2: batch_size must be non-negative, got ", b);
      }
      batch = c->MakeDim(b);
    }
  }
  c->set_output(0, c->Matrix(batch, max_length >= 0 ? c->MakeDim(max_length) : c->UnknownDim()));
  return absl::OkStatus();
}

// VarLengthReader: input rank 1 (twml's check), output [1, input1[0]].
absl::Status VarLengthShape(InferenceContext* c) {
  ShapeHandle input;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &input));
  c->set_output(0, c->Matrix(1, InferenceContext::kUnknownDim));
  return absl::OkStatus();
}

// FeatureExtractor: five vectors of the number of true masks.
absl::Status FeatureExtractorShape(InferenceContext* c) {
  DimensionHandle n = c->UnknownDim();
  for (int i = 0; i < 5; ++i) c->set_output(i, c->Vector(n));
  return absl::OkStatus();
}

// GetSubstrings: one string per word (twml's own function).
absl::Status SameAsInput(InferenceContext* c) {
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

// One kernel for the nine ops: the op name selects the Rust op; the inputs'
// dtypes select its types.
class ModelTensorsKernel : public OpKernel {
 public:
  explicit ModelTensorsKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OpAttrs attrs;
    OP_REQUIRES_OK(ctx, ReadOpAttrs(ctx, &attrs));
    char msg[kMessageCapacity];
    const bpr_status status = bpr_model_tensors_op_new(
        ctx->def().op().c_str(), attrs.attrs.data(), attrs.attrs.size(), &op_, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }
  ~ModelTensorsKernel() override { bpr_model_tensors_op_free(op_); }

  void Compute(OpKernelContext* ctx) override {
    const int n = ctx->num_inputs();
    InlineVector<Dims, 6> dims(n);
    InlineVector<bpr_tensor, 6> views(n);
    for (int i = 0; i < n; ++i) {
      OP_REQUIRES_OK(ctx, View(ctx->input(i), &dims[i], &views[i]));
    }
    Outputs outputs{ctx, absl::OkStatus()};
    const bpr_outputs callbacks{&outputs, AllocateOutput, SetString};
    char msg[kMessageCapacity];
    const bpr_status status =
        bpr_model_tensors_compute(op_, views.data(), views.size(), &callbacks, msg, sizeof msg);
    if (status == BPR_HOST_ALLOC_FAILED) {
      OP_REQUIRES_OK(ctx, outputs.status.ok()
                              ? tensorflow::errors::Internal(def().op(),
                                                             ": output allocation failed without a status")
                              : outputs.status);
    }
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }

 private:
  bpr_model_tensors_op* op_ = nullptr;
};

}  // namespace
}  // namespace bpr_ops

REGISTER_OP("FeatureMask")
    .Attr("T: {int64, int8}")
    .Input("keep: T")
    .Attr("list_keep: list(int)")
    .Output("mask: bool")
    .SetShapeFn(bpr_ops::FeatureMaskShape)
    .Doc(R"doc(
Whether each element of keep (flattened) is one of list_keep.

keep: int64 or int8, any shape.
mask: bool [number of elements of keep].
)doc");

REGISTER_OP("Hashmap")
    .Input("keys: int64")
    .Input("hash_keys: int64")
    .Input("hash_values: int64")
    .Output("values: int64")
    .Output("mask: int8")
    .SetShapeFn(bpr_ops::HashmapShape)
    .Doc(R"doc(
Looks keys up in the table hash_keys[i] -> hash_values[i] (a repeated key: the
later entry). values: the value found, or the key itself; mask: 1 where found.
Every call uses the table it is given (twml kept its first call's table).
)doc");

REGISTER_OP("CompressSampleIds")
    .Attr("T: {int32}")
    .Input("input: T")
    .Output("output: T")
    .SetShapeFn(bpr_ops::VectorShape)
    .Doc(R"doc(
Counts of each sample id: output[s] = occurrences of s in input, which must be
non-negative and non-decreasing; output length input[last] + 1.
)doc");

REGISTER_OP("DecompressSampleIds")
    .Attr("T: {int32}")
    .Input("input: T")
    .Output("output: T")
    .SetShapeFn(bpr_ops::VectorShape)
    .Doc(R"doc(
The inverse of CompressSampleIds: sample s repeated input[s] times (counts
must be non-negative).
)doc");

REGISTER_OP("FixedLengthTensor")
    .Attr("IndexType: {int64, int32}")
    .Attr("ValueType: {int64, int32, string}")
    .Attr("max_length: int")
    .Input("segment_ids: IndexType")
    .Input("values: ValueType")
    .Input("pad_value: ValueType")
    .Output("fixed_length: ValueType")
    .SetShapeFn(bpr_ops::FixedLengthShape)
    .Doc(R"doc(
Variable-length segments -> [batch_size, max_length], padded with pad_value,
batch_size = last segment id + 1; a negative max_length is the longest
segment's length; longer segments are truncated.

segment_ids: sorted, non-negative, one per value.
pad_value: a scalar.
)doc");

REGISTER_OP("FixedLengthTensorV2")
    .Attr("IndexType: {int64, int32}")
    .Attr("ValueType: {int64, int32, string}")
    .Attr("max_length: int")
    .Input("segment_ids: IndexType")
    .Input("values: ValueType")
    .Input("pad_value: ValueType")
    .Input("batch_size: int64")
    .Output("fixed_length: ValueType")
    .SetShapeFn(bpr_ops::FixedLengthShape)
    .Doc(R"doc(
FixedLengthTensor with the batch size given (one value; every segment id
below it).
)doc");

REGISTER_OP("VarLengthReader")
    .Input("input1: int32")
    .Output("output: int32")
    .SetShapeFn(bpr_ops::VarLengthShape)
    .Doc(R"doc(
Ones of shape [1, input1[0]] (input1 rank 1, at least one element, the first
non-negative).
)doc");

REGISTER_OP("FeatureExtractor")
    .Attr("T: {float, double} = DT_FLOAT")
    .Input("mask_in: bool")
    .Input("ids_in: int64")
    .Input("keys_in: int64")
    .Input("values_in: T")
    .Input("codes_in: int64")
    .Input("types_in: int8")
    .Output("ids_out: int64")
    .Output("keys_out: int64")
    .Output("values_out: T")
    .Output("codes_out: int64")
    .Output("types_out: int8")
    .SetShapeFn(bpr_ops::FeatureExtractorShape)
    .Doc(R"doc(
The elements of the five inputs where mask_in is true (all six inputs with as
many elements).
)doc");

REGISTER_OP("GetSubstrings")
    .Attr("ValueType: {string}")
    .Attr("min_n: int")
    .Attr("max_n: int")
    .Input("values: ValueType")
    .Output("substrings: ValueType")
    .SetShapeFn(bpr_ops::SameAsInput)
    .Doc(R"doc(
Per word: the word, <word> and the n-grams of <word> of min_n..max_n bytes
starting on a UTF-8 character, distinct, sorted bytewise, joined by ';'.
)doc");

#define BPR_MODEL_TENSORS(NAME) \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tensorflow::DEVICE_CPU), bpr_ops::ModelTensorsKernel)

BPR_MODEL_TENSORS("FeatureMask");
BPR_MODEL_TENSORS("Hashmap");
BPR_MODEL_TENSORS("CompressSampleIds");
BPR_MODEL_TENSORS("DecompressSampleIds");
BPR_MODEL_TENSORS("FixedLengthTensor");
BPR_MODEL_TENSORS("FixedLengthTensorV2");
BPR_MODEL_TENSORS("VarLengthReader");
BPR_MODEL_TENSORS("FeatureExtractor");
BPR_MODEL_TENSORS("GetSubstrings");

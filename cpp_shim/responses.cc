// One response per request (issue 29): ops for models that a server batches.
//
// TF Serving's and navi's batching concatenate requests along dim 0 and split
// every output along dim 0, so a model must answer one element per request.
// The request side says which records came from which request
// (GetRequestSplitsFrom*DataRecord: int64 row_splits [R + 1]); these writers
// answer a string [R], element r the BatchPredictionResponse of records
// row_splits[r]..row_splits[r + 1], byte for byte what the single-response
// writer (twml's interface, kernels.cc) gives for them alone. New names: twml's
// ops keep their interface. The kernels are as thin as kernels.cc's: view the
// inputs, call Rust, which validates, asks for the output and each string's
// exact size through callbacks, and writes in place.
//
// The getters' kernels are request_kernels.cc's GetOp (registered there).

#include <cstdint>

#include "bpr_ops.h"
#include "kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/threadpool.h"

namespace bpr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;

// ---- Shape functions ---------------------------------------------------------

// responses: [R] where row_splits is [R + 1]; unknown when that is. Ranks are
// checked by the kernel (the same error in eager mode, tf.function and a
// loaded SavedModel), as ops.cc does.
absl::Status OnePerRequest(InferenceContext* c) {
  const auto splits = c->input(c->num_inputs() - 1);
  DimensionHandle r = c->UnknownDim();
  if (c->RankKnown(splits) && c->Rank(splits) == 1) {
    const DimensionHandle n = c->Dim(splits, 0);
    if (c->ValueKnown(n) && c->Value(n) >= 1) r = c->MakeDim(c->Value(n) - 1);
  }
  c->set_output(0, c->Vector(r));
  return absl::OkStatus();
}

absl::Status SplitsOfHandle(InferenceContext* c) {
  ::tensorflow::shape_inference::ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 0, &unused));
  c->set_output(0, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

// ---- Kernels -------------------------------------------------------------------

constexpr size_t kMessageCapacity = 1024;

// The string output [R] Rust fills (bpr_string_output), and TensorFlow's
// status when an allocation fails.
struct Responses {
  OpKernelContext* ctx;
  Tensor* out = nullptr;
  absl::Status status;
};

int32_t AllocateResponses(void* context, uint64_t count) noexcept {
  auto* r = static_cast<Responses*>(context);
  if (count > static_cast<uint64_t>(INT64_MAX)) {
    r->status = tensorflow::errors::InvalidArgument(count, " responses are too many for a tensor");
    return 1;
  }
  r->status = r->ctx->allocate_output(0, TensorShape({static_cast<int64_t>(count)}), &r->out);
  return r->status.ok() ? 0 : 1;
}

// Sizes string `index` once, uninitialised: Rust writes every byte.
uint8_t* ResponseAt(void* context, uint64_t index, uint64_t size) noexcept {
  auto* r = static_cast<Responses*>(context);
  if (r->out == nullptr || index >= static_cast<uint64_t>(r->out->NumElements())) {
    r->status = tensorflow::errors::Internal("response ", index, " asked for out of range");
    return nullptr;
  }
  tstring& s = r->out->flat<tstring>()(static_cast<int64_t>(index));
  s.resize_uninitialized(static_cast<size_t>(size));
  return reinterpret_cast<uint8_t*>(s.mdata());
}

absl::Status Finish(bpr_status status, const char* message, const Responses& r) {
  if (status == BPR_HOST_ALLOC_FAILED) {
    return r.status.ok() ? tensorflow::errors::Internal("output allocation failed without a status")
                         : r.status;
  }
  return ToStatus(status, message);
}

class ContinuousResponsesOp : public OpKernel {
 public:
  explicit ContinuousResponsesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Dims key_dims, value_dims, split_dims;
    bpr_tensor keys, values, splits;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    OP_REQUIRES_OK(ctx, View(ctx->input(1), &value_dims, &values));
    OP_REQUIRES_OK(ctx, View(ctx->input(2), &split_dims, &splits));
    char msg[kMessageCapacity];
    Responses r{ctx};
    const bpr_string_output out{&r, AllocateResponses, ResponseAt};
    const bpr_runner runner = IntraOpRunner(ctx);
    const bpr_status status = bpr_continuous_encode_responses(&keys, &values, &splits, &out,
                                                              &runner, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, Finish(status, msg, r));
  }
};

// Keeps a plan cache, as kernels.cc's TensorWriterOp: every request of a call
// has the same keys, dtypes and row shapes, so the framing is built once.
class TensorResponsesOp : public OpKernel {
 public:
  explicit TensorResponsesOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), cache_(bpr_tensor_cache_new()) {}
  ~TensorResponsesOp() override { bpr_tensor_cache_free(cache_); }
  TensorResponsesOp(const TensorResponsesOp&) = delete;
  TensorResponsesOp& operator=(const TensorResponsesOp&) = delete;

  void Compute(OpKernelContext* ctx) override {
    Dims key_dims, split_dims;
    bpr_tensor keys, splits;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    // Inputs: keys, the values list, row_splits last.
    const int num_values = ctx->num_inputs() - 2;
    OP_REQUIRES_OK(ctx, View(ctx->input(num_values + 1), &split_dims, &splits));
    InlineVector<Dims, 8> dims(num_values);
    InlineVector<bpr_tensor, 8> values(num_values);
    for (int j = 0; j < num_values; ++j) {
      OP_REQUIRES_OK(ctx, View(ctx->input(j + 1), &dims[j], &values[j]));
    }
    char msg[kMessageCapacity];
    Responses r{ctx};
    const bpr_string_output out{&r, AllocateResponses, ResponseAt};
    const bpr_runner runner = IntraOpRunner(ctx);
    const bpr_status status = bpr_tensor_encode_responses(
        cache_, &keys, values.data(), values.size(), &splits, &out, &runner, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, Finish(status, msg, r));
  }

 private:
  bpr_tensor_cache* const cache_;
};

}  // namespace
}  // namespace bpr_ops

REGISTER_OP("BatchPredictionResponsesWriter")
    .Attr("T: {float, double, half, bfloat16}")
    .Input("keys: int64")
    .Input("values: T")
    .Input("row_splits: int64")
    .Output("responses: string")
    .SetShapeFn(bpr_ops::OnePerRequest)
    .Doc(R"doc(
BatchPredictionResponseWriter, one response per request: for a model a server
batches (requests concatenated along dim 0, outputs split along dim 0).

keys: int64 [K], distinct feature ids.
values: [B, K], or [B] when K == 1.
row_splits: int64 [R + 1]: request r owns records row_splits[r]..row_splits[r + 1]
  (first 0, last B, never decreasing), as GetRequestSplitsFrom*DataRecord give them.
responses: string [R], element r the serialized BatchPredictionResponse of
  request r's records: the bytes BatchPredictionResponseWriter writes for them alone.
)doc");

REGISTER_OP("BatchPredictionTensorResponsesWriter")
    .Attr("T: list({string, int32, int64, float, double, bool, uint8, int8, half, bfloat16})")
    .Input("keys: int64")
    .Input("values: T")
    .Input("row_splits: int64")
    .Output("responses: string")
    .SetShapeFn(bpr_ops::OnePerRequest)
    .Doc(R"doc(
BatchPredictionTensorResponseWriter, one response per request.

keys: int64 [K], distinct feature ids, K >= 1.
values: K tensors, each [B, ...] with the same B.
row_splits: int64 [R + 1], as for BatchPredictionResponsesWriter.
responses: string [R], element r the bytes BatchPredictionTensorResponseWriter
  writes for request r's records alone.
)doc");

REGISTER_OP("GetRequestSplitsFromDataRecord")
    .Input("data_record_handle: resource")
    .Output("row_splits: int64")
    .SetShapeFn(bpr_ops::SplitsOfHandle)
    .Doc(R"doc(
Which records came from which input element: int64 [M + 1] for M messages
(a string input: one per element; uint8: one), message m's records being
row_splits[m]..row_splits[m + 1]. Not a twml op: the per-request writers'
row_splits.
)doc");

REGISTER_OP("GetRequestSplitsFromHashedDataRecord")
    .Input("hashed_data_record_handle: resource")
    .Output("row_splits: int64")
    .SetShapeFn(bpr_ops::SplitsOfHandle)
    .Doc("GetRequestSplitsFromDataRecord for a hashed handle (DecodeAndHash*).");

REGISTER_KERNEL_BUILDER(Name("BatchPredictionResponsesWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::ContinuousResponsesOp);
REGISTER_KERNEL_BUILDER(Name("BatchPredictionTensorResponsesWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::TensorResponsesOp);

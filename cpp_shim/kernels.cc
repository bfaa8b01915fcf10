// CPU kernels: view the inputs as bpr_tensor structs and make one call into
// Rust, which validates them, asks back through AllocateOutput for the exact
// output size, and writes the output in place. No encoding here.

#include <algorithm>
#include <cstdint>
#include <new>

#include "bpr_ops.h"
#include "kernel_util.h"
#include "tensorflow/core/framework/op_kernel.h"
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

// Messages are short (shapes and a key); longer ones are truncated by Rust.
constexpr size_t kMessageCapacity = 1024;

// The output allocation Rust asks for (bpr_alloc_fn), and TensorFlow's status
// when it fails.
struct Output {
  OpKernelContext* ctx;
  absl::Status status;
};

// Allocates the [1, size] output; `size` is Rust's exact count.
uint8_t* AllocateOutput(void* context, uint64_t size) noexcept {
  auto* output = static_cast<Output*>(context);
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    output->status = tensorflow::errors::InvalidArgument(
        "response of ", size, " bytes is too large for a tensor");
    return nullptr;
  }
  Tensor* out = nullptr;
  output->status =
      output->ctx->allocate_output(0, TensorShape({1, static_cast<int64_t>(size)}), &out);
  if (!output->status.ok()) return nullptr;
  return out->flat<uint8_t>().data();
}

absl::Status Finish(bpr_status status, const char* message, const Output& output) {
  if (status == BPR_HOST_ALLOC_FAILED) {
    return output.status.ok()
               ? tensorflow::errors::Internal("output allocation failed without a status")
               : output.status;
  }
  return ToStatus(status, message);
}

class ContinuousWriterOp : public OpKernel {
 public:
  explicit ContinuousWriterOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Dims key_dims, value_dims;
    bpr_tensor keys, values;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    OP_REQUIRES_OK(ctx, View(ctx->input(1), &value_dims, &values));

    char msg[kMessageCapacity];
    Output output{ctx, absl::OkStatus()};
    const bpr_runner runner = IntraOpRunner(ctx);
    const bpr_status status = bpr_continuous_encode(&keys, &values, AllocateOutput, &output,
                                                    &runner, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, Finish(status, msg, output));
  }
};

// Keeps a plan cache for its lifetime: a served model calls one kernel with
// the same keys, dtypes and row shapes every time, so the framing is built
// on the first call only (bpr_tensor_encode_cached). Compute may run on
// several threads at once; the cache is thread-safe.
class TensorWriterOp : public OpKernel {
 public:
  explicit TensorWriterOp(OpKernelConstruction* ctx)
      : OpKernel(ctx), cache_(bpr_tensor_cache_new()) {}
  ~TensorWriterOp() override { bpr_tensor_cache_free(cache_); }
  TensorWriterOp(const TensorWriterOp&) = delete;
  TensorWriterOp& operator=(const TensorWriterOp&) = delete;

  void Compute(OpKernelContext* ctx) override {
    Dims key_dims;
    bpr_tensor keys;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    // Input 0 is keys; the values list follows (no name lookup per call).
    const int num_values = ctx->num_inputs() - 1;
    InlineVector<Dims, 8> dims(num_values);
    InlineVector<bpr_tensor, 8> values(num_values);
    for (int j = 0; j < num_values; ++j) {
      OP_REQUIRES_OK(ctx, View(ctx->input(j + 1), &dims[j], &values[j]));
    }

    char msg[kMessageCapacity];
    Output output{ctx, absl::OkStatus()};
    const bpr_runner runner = IntraOpRunner(ctx);
    // A NULL cache (its allocation failed) caches nothing and is still correct.
    const bpr_status status = bpr_tensor_encode_cached(cache_, &keys, values.data(),
                                                       values.size(), AllocateOutput, &output,
                                                       &runner, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, Finish(status, msg, output));
  }

 private:
  bpr_tensor_cache* const cache_;
};

// The attr is constant, so the ids are computed once, here; a name that is not
// UTF-8 fails the kernel's construction with InvalidArgument (Rust's message).
class FeatureIdOp : public OpKernel {
 public:
  explicit FeatureIdOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<tstring> names;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_names", &names));
    std::vector<bpr_bytes> views(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
      views[i] = bpr_bytes{reinterpret_cast<const uint8_t*>(names[i].data()), names[i].size()};
    }
    ids_.resize(names.size());
    char msg[kMessageCapacity];
    OP_REQUIRES_OK(ctx, ToStatus(bpr_feature_ids(views.data(), views.size(), ids_.data(), msg,
                                                 sizeof msg), msg));
  }

  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({static_cast<int64_t>(ids_.size())}),
                                             &out));
    std::copy(ids_.begin(), ids_.end(), out->flat<int64_t>().data());
  }

 private:
  std::vector<int64_t> ids_;
};

// DataRecordTensorWriter: keys and a list of dense tensors -> one DataRecord.
class RecordTensorWriterOp : public OpKernel {
 public:
  explicit RecordTensorWriterOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    Dims key_dims;
    bpr_tensor keys;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    const int num_values = ctx->num_inputs() - 1;
    InlineVector<Dims, 8> dims(num_values);
    InlineVector<bpr_tensor, 8> values(num_values);
    for (int j = 0; j < num_values; ++j) {
      OP_REQUIRES_OK(ctx, View(ctx->input(j + 1), &dims[j], &values[j]));
    }
    char msg[kMessageCapacity];
    Output output{ctx, absl::OkStatus()};
    const bpr_status status = bpr_record_tensor_encode(&keys, values.data(), values.size(),
                                                       AllocateOutput, &output, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, Finish(status, msg, output));
  }
};

}  // namespace
}  // namespace bpr_ops

REGISTER_KERNEL_BUILDER(Name("DataRecordTensorWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::RecordTensorWriterOp);

// One kernel serves every T: the dtype travels in the view, not the template.
REGISTER_KERNEL_BUILDER(Name("BatchPredictionResponseWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::ContinuousWriterOp);
REGISTER_KERNEL_BUILDER(Name("BatchPredictionTensorResponseWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::TensorWriterOp);
REGISTER_KERNEL_BUILDER(Name("FeatureId").Device(tensorflow::DEVICE_CPU), bpr_ops::FeatureIdOp);

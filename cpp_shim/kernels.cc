// CPU kernels: view the inputs as bpr_tensor structs, ask Rust for the exact
// output size, allocate the output once, let Rust write it. No encoding here.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "bpr_ops.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/threadpool.h"

namespace bpr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpInputList;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;

// Messages are short (shapes and a key); longer ones are truncated by Rust.
constexpr size_t kMessageCapacity = 1024;

bpr_bytes StringAt(const void* strings, size_t index) noexcept {
  const tstring& s = static_cast<const tstring*>(strings)[index];
  return bpr_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool DtypeCode(DataType dt, bpr_dtype* code) {
  switch (dt) {
    case tensorflow::DT_FLOAT: *code = BPR_DTYPE_FLOAT; return true;
    case tensorflow::DT_DOUBLE: *code = BPR_DTYPE_DOUBLE; return true;
    case tensorflow::DT_HALF: *code = BPR_DTYPE_HALF; return true;
    case tensorflow::DT_BFLOAT16: *code = BPR_DTYPE_BFLOAT16; return true;
    case tensorflow::DT_INT32: *code = BPR_DTYPE_INT32; return true;
    case tensorflow::DT_INT64: *code = BPR_DTYPE_INT64; return true;
    case tensorflow::DT_UINT8: *code = BPR_DTYPE_UINT8; return true;
    case tensorflow::DT_INT8: *code = BPR_DTYPE_INT8; return true;
    case tensorflow::DT_BOOL: *code = BPR_DTYPE_BOOL; return true;
    case tensorflow::DT_STRING: *code = BPR_DTYPE_STRING; return true;
    default: return false;
  }
}

// A view of `t`; `dims` must outlive it.
absl::Status View(const Tensor& t, std::vector<int64_t>* dims, bpr_tensor* view) {
  bpr_dtype code;
  if (!DtypeCode(t.dtype(), &code)) {
    return tensorflow::errors::InvalidArgument(
        "unsupported dtype ", tensorflow::DataTypeString(t.dtype()));
  }
  dims->resize(t.dims());
  for (int i = 0; i < t.dims(); ++i) (*dims)[i] = t.dim_size(i);
  view->dtype = code;
  view->rank = dims->size();
  view->dims = dims->data();
  view->num_elements = static_cast<size_t>(t.NumElements());
  view->string_at = nullptr;
  if (code == BPR_DTYPE_STRING) {
    view->data = t.flat<tstring>().data();
    view->string_at = StringAt;
  } else {
    view->data = t.tensor_data().data();
  }
  return absl::OkStatus();
}

absl::Status ToStatus(bpr_status status, const char* message) {
  switch (status) {
    case BPR_OK: return absl::OkStatus();
    case BPR_INVALID_ARGUMENT: return tensorflow::errors::InvalidArgument(message);
    default: return tensorflow::errors::Internal(message);
  }
}

void ParallelFor(void* pool, int64_t total, int64_t cost_per_unit, bpr_range_fn fn,
                 void* context) {
  static_cast<tensorflow::thread::ThreadPool*>(pool)->ParallelFor(
      total, cost_per_unit, [fn, context](int64_t begin, int64_t end) { fn(context, begin, end); });
}

// The device's intra-op pool: large responses are written on the threads the
// server already sized for its ops, never on threads of our own.
bpr_runner IntraOpRunner(OpKernelContext* ctx) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  if (workers == nullptr || workers->workers == nullptr) return bpr_runner{nullptr, 1, nullptr};
  return bpr_runner{workers->workers, workers->num_threads, ParallelFor};
}

// Allocates the [1, size] output; `size` comes from Rust's exact count.
absl::Status AllocateOutput(OpKernelContext* ctx, uint64_t size, Tensor** out) {
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    return tensorflow::errors::InvalidArgument("response of ", size,
                                               " bytes is too large for a tensor");
  }
  return ctx->allocate_output(0, TensorShape({1, static_cast<int64_t>(size)}), out);
}

class ContinuousWriterOp : public OpKernel {
 public:
  explicit ContinuousWriterOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    std::vector<int64_t> key_dims, value_dims;
    bpr_tensor keys, values;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    OP_REQUIRES_OK(ctx, View(ctx->input(1), &value_dims, &values));

    char msg[kMessageCapacity];
    uint64_t size = 0;
    OP_REQUIRES_OK(ctx, ToStatus(bpr_continuous_size(&keys, &values, &size, msg,
                                                     sizeof msg), msg));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, AllocateOutput(ctx, size, &out));
    uint8_t* bytes = out->flat<uint8_t>().data();
    const bpr_runner runner = IntraOpRunner(ctx);
    OP_REQUIRES_OK(ctx, ToStatus(bpr_continuous_write(&keys, &values, bytes, size, &runner,
                                                      msg, sizeof msg), msg));
  }
};

class TensorWriterOp : public OpKernel {
 public:
  explicit TensorWriterOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    std::vector<int64_t> key_dims;
    bpr_tensor keys;
    OP_REQUIRES_OK(ctx, View(ctx->input(0), &key_dims, &keys));
    OpInputList inputs;
    OP_REQUIRES_OK(ctx, ctx->input_list("values", &inputs));
    std::vector<std::vector<int64_t>> dims(inputs.size());
    std::vector<bpr_tensor> values(inputs.size());
    for (int j = 0; j < inputs.size(); ++j) {
      OP_REQUIRES_OK(ctx, View(inputs[j], &dims[j], &values[j]));
    }

    char msg[kMessageCapacity];
    uint64_t size = 0;
    OP_REQUIRES_OK(ctx, ToStatus(bpr_tensor_size(&keys, values.data(), values.size(),
                                                 &size, msg, sizeof msg), msg));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, AllocateOutput(ctx, size, &out));
    uint8_t* bytes = out->flat<uint8_t>().data();
    const bpr_runner runner = IntraOpRunner(ctx);
    OP_REQUIRES_OK(ctx, ToStatus(bpr_tensor_write(&keys, values.data(), values.size(), bytes,
                                                  size, &runner, msg, sizeof msg), msg));
  }
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

}  // namespace
}  // namespace bpr_ops

// One kernel serves every T: the dtype travels in the view, not the template.
REGISTER_KERNEL_BUILDER(Name("BatchPredictionResponseWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::ContinuousWriterOp);
REGISTER_KERNEL_BUILDER(Name("BatchPredictionTensorResponseWriter").Device(tensorflow::DEVICE_CPU),
                        bpr_ops::TensorWriterOp);
REGISTER_KERNEL_BUILDER(Name("FeatureId").Device(tensorflow::DEVICE_CPU), bpr_ops::FeatureIdOp);

// What every kernel file of the shim needs to hand tensors to Rust: the
// dtype codes of the C ABI, a view of a tensor, the status of a Rust call, and
// the device's intra-op pool as a runner. One copy, so a dtype added to the C
// ABI (or a change to how strings are viewed) reaches every op family at once.
#ifndef BPR_OPS_KERNEL_UTIL_H_
#define BPR_OPS_KERNEL_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "bpr_ops.h"
#include "plain_allocator.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_def.pb.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/threadpool.h"

namespace bpr_ops {

template <typename T, size_t N>
using InlineVector = absl::InlinedVector<T, N, PlainAllocator<T>>;

// Dims of one input: inline up to rank 4, so a call allocates nothing here.
using Dims = InlineVector<int64_t, 4>;

inline bpr_bytes StringAt(const void* strings, size_t index) noexcept {
  const ::tensorflow::tstring& s = static_cast<const ::tensorflow::tstring*>(strings)[index];
  return bpr_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The C ABI's code for a TensorFlow dtype; false for one Rust does not take.
inline bool DtypeCode(::tensorflow::DataType dt, bpr_dtype* code) {
  switch (dt) {
    case ::tensorflow::DT_FLOAT: *code = BPR_DTYPE_FLOAT; return true;
    case ::tensorflow::DT_DOUBLE: *code = BPR_DTYPE_DOUBLE; return true;
    case ::tensorflow::DT_HALF: *code = BPR_DTYPE_HALF; return true;
    case ::tensorflow::DT_BFLOAT16: *code = BPR_DTYPE_BFLOAT16; return true;
    case ::tensorflow::DT_INT32: *code = BPR_DTYPE_INT32; return true;
    case ::tensorflow::DT_INT64: *code = BPR_DTYPE_INT64; return true;
    case ::tensorflow::DT_UINT8: *code = BPR_DTYPE_UINT8; return true;
    case ::tensorflow::DT_INT8: *code = BPR_DTYPE_INT8; return true;
    case ::tensorflow::DT_BOOL: *code = BPR_DTYPE_BOOL; return true;
    case ::tensorflow::DT_STRING: *code = BPR_DTYPE_STRING; return true;
    default: return false;
  }
}

// A view of `t`; `dims` must outlive it.
inline absl::Status View(const ::tensorflow::Tensor& t, Dims* dims, bpr_tensor* view) {
  bpr_dtype code;
  if (!DtypeCode(t.dtype(), &code)) {
    return ::tensorflow::errors::InvalidArgument("unsupported dtype ",
                                                 ::tensorflow::DataTypeString(t.dtype()));
  }
  dims->resize(t.dims());
  for (int i = 0; i < t.dims(); ++i) (*dims)[i] = t.dim_size(i);
  view->dtype = code;
  view->rank = dims->size();
  view->dims = dims->data();
  view->num_elements = static_cast<size_t>(t.NumElements());
  view->string_at = nullptr;
  if (code == BPR_DTYPE_STRING) {
    view->data = t.flat<::tensorflow::tstring>().data();
    view->string_at = StringAt;
  } else {
    view->data = t.tensor_data().data();
  }
  return absl::OkStatus();
}

// A Rust call's status as TensorFlow's: its message is already complete (it
// names the op, the input and what was expected).
inline absl::Status ToStatus(bpr_status status, const char* message) {
  switch (status) {
    case BPR_OK: return absl::OkStatus();
    case BPR_INVALID_ARGUMENT: return ::tensorflow::errors::InvalidArgument(message);
    default: return ::tensorflow::errors::Internal(message);
  }
}

// An op's attrs as the C ABI's bpr_attr structs, owned here while Rust's
// constructor (bpr_request_op_new, bpr_model_tensors_op_new) reads them.
struct OpAttrs {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> lists;
  std::vector<std::string> strings;
  std::vector<bpr_attr> attrs;
};

// Reads every attr the op registers (except type attrs, which the inputs'
// views carry) in OpDef order: the OpDef is the one table of which op has
// which attr, so it cannot drift from Rust's.
inline absl::Status ReadOpAttrs(::tensorflow::OpKernelConstruction* ctx, OpAttrs* out) {
  const ::tensorflow::OpDef* op_def = nullptr;
  TF_RETURN_IF_ERROR(::tensorflow::OpRegistry::Global()->LookUpOpDef(ctx->def().op(), &op_def));
  const int n = op_def->attr_size();
  // Reserved up front: the bpr_attr structs point into these vectors.
  out->names.reserve(n);
  out->lists.reserve(n);
  out->strings.reserve(n);
  out->attrs.reserve(n);
  for (const auto& def : op_def->attr()) {
    if (def.type() == "type") continue;
    bpr_attr attr{};
    out->names.push_back(def.name());
    attr.name = out->names.back().c_str();
    if (def.type() == "int") {
      attr.kind = BPR_ATTR_INT;
      TF_RETURN_IF_ERROR(ctx->GetAttr(def.name(), &attr.int_value));
    } else if (def.type() == "float") {
      attr.kind = BPR_ATTR_FLOAT;
      TF_RETURN_IF_ERROR(ctx->GetAttr(def.name(), &attr.float_value));
    } else if (def.type() == "string") {
      attr.kind = BPR_ATTR_STRING;
      out->strings.emplace_back();
      TF_RETURN_IF_ERROR(ctx->GetAttr(def.name(), &out->strings.back()));
      const std::string& s = out->strings.back();
      attr.string_value = bpr_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
    } else if (def.type() == "bool") {
      attr.kind = BPR_ATTR_BOOL;
      bool value = false;
      TF_RETURN_IF_ERROR(ctx->GetAttr(def.name(), &value));
      attr.int_value = value ? 1 : 0;
    } else if (def.type() == "list(int)") {
      attr.kind = BPR_ATTR_INT_LIST;
      out->lists.emplace_back();
      TF_RETURN_IF_ERROR(ctx->GetAttr(def.name(), &out->lists.back()));
      attr.list = out->lists.back().data();
      attr.list_len = out->lists.back().size();
    } else {
      return ::tensorflow::errors::Internal(ctx->def().op(), ": attr ", def.name(), " has type ",
                                            def.type(), ", which the kernel does not pass");
    }
    out->attrs.push_back(attr);
  }
  return absl::OkStatus();
}

// The outputs Rust asks for (bpr_outputs.alloc), and TensorFlow's status when
// an allocation fails: OutputCallbacks(&outputs) is the bpr_outputs to pass.
struct Outputs {
  ::tensorflow::OpKernelContext* ctx;
  absl::Status status;
};

inline int32_t AllocateOutput(void* context, int32_t index, const int64_t* dims, size_t rank,
                              void** data) noexcept {
  auto* outputs = static_cast<Outputs*>(context);
  ::tensorflow::TensorShape shape;
  outputs->status = ::tensorflow::TensorShape::BuildTensorShape(
      absl::Span<const int64_t>(dims, rank), &shape);
  if (!outputs->status.ok()) return 1;
  ::tensorflow::Tensor* out = nullptr;
  outputs->status = outputs->ctx->allocate_output(index, shape, &out);
  if (!outputs->status.ok()) return 1;
  *data = out->data();
  return 0;
}

inline void SetString(void* strings, int64_t element, const uint8_t* bytes, size_t len) noexcept {
  static_cast<::tensorflow::tstring*>(strings)[element].assign(reinterpret_cast<const char*>(bytes),
                                                              len);
}

inline void ParallelFor(void* pool, int64_t total, int64_t cost_per_unit, bpr_range_fn fn,
                        void* context) {
  static_cast<::tensorflow::thread::ThreadPool*>(pool)->ParallelFor(
      total, cost_per_unit, [fn, context](int64_t begin, int64_t end) { fn(context, begin, end); });
}

// The device's intra-op pool: large outputs are written on the threads the
// server already sized for its ops, never on threads of our own.
inline bpr_runner IntraOpRunner(::tensorflow::OpKernelContext* ctx) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  if (workers == nullptr || workers->workers == nullptr) return bpr_runner{nullptr, 1, nullptr};
  return bpr_runner{workers->workers, workers->num_threads, ParallelFor};
}

}  // namespace bpr_ops

#endif  // BPR_OPS_KERNEL_UTIL_H_

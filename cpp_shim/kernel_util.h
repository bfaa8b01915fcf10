// What every kernel file of the shim needs to hand tensors to Rust: the
// dtype codes of the C ABI, a view of a tensor, the status of a Rust call, and
// the device's intra-op pool as a runner. One copy, so a dtype added to the C
// ABI (or a change to how strings are viewed) reaches every op family at once.
#ifndef BPR_OPS_KERNEL_UTIL_H_
#define BPR_OPS_KERNEL_UTIL_H_

#include <cstddef>
#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "bpr_ops.h"
#include "plain_allocator.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
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

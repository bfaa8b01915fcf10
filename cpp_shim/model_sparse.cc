// twml's sparse matmul, norms and partitioning: registrations with twml's
// interfaces and thin kernels; the math is model/src/sparse.rs.
//
// The REGISTER_OP calls give twml's names, inputs, outputs, attrs (types,
// defaults, allowed values, order) and kernels for the same dtypes
// (twml/libtwml/src/ops/binary_sparse_dense_matmul.cpp,
// sparse_normalization.cpp, partition_sparse_tensor.cpp), so graphs twml
// exported run unchanged. The shape functions say more than twml's (which
// said nothing for five of the six): the outputs' ranks, and attrs that can
// never run are errors when the graph is built.

#include <algorithm>
#include <memory>
#include <vector>

#include "kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/mutex.h"

namespace bpr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr size_t kMsgCap = 1024;

bpr_sparse_dims DimsOf(const Tensor& t, Dims* dims) {
  dims->resize(t.dims());
  for (int i = 0; i < t.dims(); ++i) (*dims)[i] = t.dim_size(i);
  return bpr_sparse_dims{dims->data(), dims->size()};
}

// ---- BinarySparseTensorDenseMatMul ----------------------------------------

absl::Status MatMulShape(InferenceContext* c) {
  ShapeHandle unused, a_shape, b;
  DimensionHandle unused_dim;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &unused));  // a_indices
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &unused));  // a_values
  TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(2, &a_shape));
  TF_RETURN_IF_ERROR(c->WithRank(a_shape, 2, &a_shape));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 2, &b));
  bool adjoint_a, adjoint_b;
  TF_RETURN_IF_ERROR(c->GetAttr("adjoint_a", &adjoint_a));
  TF_RETURN_IF_ERROR(c->GetAttr("adjoint_b", &adjoint_b));
  DimensionHandle out_rows = c->Dim(a_shape, adjoint_a ? 1 : 0);
  DimensionHandle out_cols = c->Dim(b, adjoint_b ? 0 : 1);
  TF_RETURN_IF_ERROR(
      c->Merge(c->Dim(a_shape, adjoint_a ? 0 : 1), c->Dim(b, adjoint_b ? 1 : 0), &unused_dim));
  c->set_output(0, c->Matrix(out_rows, out_cols));
  return absl::OkStatus();
}

bool SparseElem(DataType dt, bpr_sparse_elem* code) {
  switch (dt) {
    case ::tensorflow::DT_FLOAT: *code = BPR_SPARSE_FLOAT; return true;
    case ::tensorflow::DT_DOUBLE: *code = BPR_SPARSE_DOUBLE; return true;
    case ::tensorflow::DT_INT32: *code = BPR_SPARSE_INT32; return true;
    case ::tensorflow::DT_COMPLEX64: *code = BPR_SPARSE_COMPLEX64; return true;
    case ::tensorflow::DT_COMPLEX128: *code = BPR_SPARSE_COMPLEX128; return true;
    default: return false;
  }
}

class BinaryMatMulOp : public OpKernel {
 public:
  explicit BinaryMatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adjoint_a", &adjoint_a_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adjoint_b", &adjoint_b_));
    OP_REQUIRES(ctx, SparseElem(ctx->input_type(3), &elem_),
                ::tensorflow::errors::InvalidArgument("BinarySparseTensorDenseMatMul: unsupported T ",
                                                      ::tensorflow::DataTypeString(ctx->input_type(3))));
    indices_int64_ = ctx->input_type(0) == ::tensorflow::DT_INT64;
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a_indices = ctx->input(0);
    const Tensor& a_values = ctx->input(1);
    const Tensor& a_shape = ctx->input(2);
    const Tensor& b = ctx->input(3);
    Dims di, dv, ds, db;
    bpr_binary_matmul_args args{};
    args.a_indices_dims = DimsOf(a_indices, &di);
    args.a_indices = a_indices.tensor_data().data();
    args.a_indices_int64 = indices_int64_ ? 1 : 0;
    args.a_values_dims = DimsOf(a_values, &dv);
    args.a_shape_dims = DimsOf(a_shape, &ds);
    args.a_shape = a_shape.flat<int64_t>().data();
    args.a_shape_len = static_cast<size_t>(a_shape.NumElements());
    args.b_dims = DimsOf(b, &db);
    args.b = b.tensor_data().data();
    args.elem = elem_;
    args.adjoint_a = adjoint_a_ ? 1 : 0;
    args.adjoint_b = adjoint_b_ ? 1 : 0;
    char msg[kMsgCap];
    int64_t out_dims[2];
    OP_REQUIRES_OK(ctx, ToStatus(bpr_binary_matmul_shape(&args, out_dims, msg, kMsgCap), msg));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({out_dims[0], out_dims[1]}), &out));
    void* data = const_cast<char*>(out->tensor_data().data());
    OP_REQUIRES_OK(ctx, ToStatus(bpr_binary_matmul(&args, data, static_cast<size_t>(out->NumElements()),
                                                   msg, kMsgCap),
                                 msg));
  }

 private:
  bool adjoint_a_ = false;
  bool adjoint_b_ = false;
  bool indices_int64_ = true;
  bpr_sparse_elem elem_ = BPR_SPARSE_FLOAT;
};

// ---- The sparse norms ---------------------------------------------------------

absl::Status ViewOf(const Tensor& t, Dims* dims, bpr_tensor* view) { return View(t, dims, view); }

// Locks a reference input's mutex for the call, once per distinct mutex, in
// address order (SparseBatchNorm has two; both may be one variable).
class RefLocks {
 public:
  RefLocks(OpKernelContext* ctx, std::vector<int> inputs) {
    for (int i : inputs) mutexes_.push_back(ctx->input_ref_mutex(i));
    std::sort(mutexes_.begin(), mutexes_.end());
    mutexes_.erase(std::unique(mutexes_.begin(), mutexes_.end()), mutexes_.end());
    for (auto* m : mutexes_) m->lock();
  }
  ~RefLocks() {
    for (auto it = mutexes_.rbegin(); it != mutexes_.rend(); ++it) (*it)->unlock();
  }

 private:
  std::vector<::tensorflow::mutex*> mutexes_;
};

absl::Status Initialized(OpKernelContext* ctx, const Tensor& t, int input) {
  if (t.IsInitialized()) return absl::OkStatus();
  return ::tensorflow::errors::FailedPrecondition("Attempting to use uninitialized parameters: ",
                                                  ctx->op_kernel().requested_input(input));
}

class SparseMaxNormOp : public OpKernel {
 public:
  explicit SparseMaxNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    ctx->forward_ref_input_to_ref_output(0, 0);
    RefLocks lock(ctx, {0});
    Tensor max_values = ctx->mutable_input(0, true);
    OP_REQUIRES_OK(ctx, Initialized(ctx, max_values, 0));
    Dims d1, d2, d3;
    bpr_tensor indices, values, is_training;
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(1), &d1, &indices));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(2), &d2, &values));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(3), &d3, &is_training));
    Tensor* normalized = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(2).shape(), &normalized));
    char msg[kMsgCap];
    OP_REQUIRES_OK(ctx, ToStatus(bpr_sparse_max_norm(max_values.flat<float>().data(),
                                                     static_cast<size_t>(max_values.NumElements()),
                                                     &indices, &values, &is_training, epsilon_,
                                                     normalized->flat<float>().data(), msg, kMsgCap),
                                 msg));
  }

 private:
  float epsilon_ = 0;
};

class SparseBatchNormOp : public OpKernel {
 public:
  explicit SparseBatchNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int64_t input_size = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_size", &input_size));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    char msg[kMsgCap];
    bpr_sparse_batch_norm_state* state = nullptr;
    OP_REQUIRES_OK(ctx, ToStatus(bpr_sparse_batch_norm_new(input_size, &state, msg, kMsgCap), msg));
    state_.reset(state);
  }

  void Compute(OpKernelContext* ctx) override {
    ctx->forward_ref_input_to_ref_output(0, 0);
    ctx->forward_ref_input_to_ref_output(1, 1);
    RefLocks lock(ctx, {0, 1});
    Tensor means = ctx->mutable_input(0, true);
    Tensor variances = ctx->mutable_input(1, true);
    OP_REQUIRES_OK(ctx, Initialized(ctx, means, 0));
    OP_REQUIRES_OK(ctx, Initialized(ctx, variances, 1));
    Dims d2, d3, d4;
    bpr_tensor indices, values, is_training;
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(2), &d2, &indices));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(3), &d3, &values));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(4), &d4, &is_training));
    Tensor* normalized = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, ctx->input(3).shape(), &normalized));
    char msg[kMsgCap];
    // The counts are the kernel's: one call at a time uses them.
    ::tensorflow::mutex_lock state_lock(state_mu_);
    OP_REQUIRES_OK(
        ctx, ToStatus(bpr_sparse_batch_norm(state_.get(), means.flat<float>().data(),
                                            static_cast<size_t>(means.NumElements()),
                                            variances.flat<float>().data(),
                                            static_cast<size_t>(variances.NumElements()), &indices,
                                            &values, &is_training, epsilon_,
                                            normalized->flat<float>().data(), msg, kMsgCap),
                      msg));
  }

 private:
  struct Free {
    void operator()(bpr_sparse_batch_norm_state* s) const { bpr_sparse_batch_norm_free(s); }
  };
  float epsilon_ = 0;
  ::tensorflow::mutex state_mu_;
  std::unique_ptr<bpr_sparse_batch_norm_state, Free> state_;
};

class SparseMaxNormInferenceOp : public OpKernel {
 public:
  explicit SparseMaxNormInferenceOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims d0, d1, d2;
    bpr_tensor max_values, indices, values;
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(0), &d0, &max_values));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(1), &d1, &indices));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(2), &d2, &values));
    Tensor* normalized = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(2).shape(), &normalized));
    char msg[kMsgCap];
    OP_REQUIRES_OK(ctx, ToStatus(bpr_sparse_max_norm_inference(&max_values, &indices, &values, epsilon_,
                                                               normalized->flat<float>().data(), msg,
                                                               kMsgCap),
                                 msg));
  }

 private:
  float epsilon_ = 0;
};

class SparseMaxNormTrainingOp : public OpKernel {
 public:
  explicit SparseMaxNormTrainingOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims d0, d1, d2;
    bpr_tensor max_values, indices, values;
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(0), &d0, &max_values));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(1), &d1, &indices));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(2), &d2, &values));
    Tensor* updated = nullptr;
    Tensor* normalized = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ctx->input(0).shape(), &updated));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(2).shape(), &normalized));
    char msg[kMsgCap];
    OP_REQUIRES_OK(ctx, ToStatus(bpr_sparse_max_norm_training(&max_values, &indices, &values, epsilon_,
                                                              updated->flat<float>().data(),
                                                              normalized->flat<float>().data(), msg,
                                                              kMsgCap),
                                 msg));
  }

 private:
  float epsilon_ = 0;
};

// ---- PartitionSparseTensorMod -----------------------------------------------

absl::Status CheckPartitionAttrs(int64_t num_partitions, const std::vector<DataType>& output_types,
                                 DataType value_type) {
  std::vector<bpr_dtype> codes(output_types.size());
  for (size_t i = 0; i < output_types.size(); ++i) {
    // int64, float, double are the only types the attr allows: all have codes.
    if (!DtypeCode(output_types[i], &codes[i])) codes[i] = 0;
  }
  bpr_dtype value_code = 0;
  if (!DtypeCode(value_type, &value_code)) value_code = 0;
  char msg[kMsgCap];
  return ToStatus(bpr_partition_mod_check(num_partitions, codes.data(), codes.size(), value_code, msg,
                                          kMsgCap),
                  msg);
}

absl::Status PartitionShape(InferenceContext* c) {
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &unused));
  int64_t num_partitions = 0;
  std::vector<DataType> output_types;
  DataType value_type;
  TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &num_partitions));
  TF_RETURN_IF_ERROR(c->GetAttr("output_types", &output_types));
  TF_RETURN_IF_ERROR(c->GetAttr("T", &value_type));
  TF_RETURN_IF_ERROR(CheckPartitionAttrs(num_partitions, output_types, value_type));
  for (int i = 0; i < c->num_outputs(); ++i) {
    c->set_output(i, i % 2 == 0 ? c->Matrix(c->UnknownDim(), 2) : c->Vector(c->UnknownDim()));
  }
  return absl::OkStatus();
}

class PartitionOp : public OpKernel {
 public:
  explicit PartitionOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<DataType> output_types;
    DataType value_type;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_partitions", &num_partitions_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_types", &output_types));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("T", &value_type));
    OP_REQUIRES_OK(ctx, CheckPartitionAttrs(num_partitions_, output_types, value_type));
  }

  void Compute(OpKernelContext* ctx) override {
    Dims d0, d1;
    bpr_tensor indices, values;
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(0), &d0, &indices));
    OP_REQUIRES_OK(ctx, ViewOf(ctx->input(1), &d1, &values));
    const size_t n = static_cast<size_t>(num_partitions_);
    std::vector<int64_t> counts(n);
    char msg[kMsgCap];
    OP_REQUIRES_OK(
        ctx, ToStatus(bpr_partition_mod_counts(&indices, &values, num_partitions_, counts.data(), msg, kMsgCap),
                      msg));
    std::vector<int64_t*> out_indices(n);
    std::vector<void*> out_values(n);
    for (size_t p = 0; p < n; ++p) {
      Tensor* oi = nullptr;
      Tensor* ov = nullptr;
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2 * p, TensorShape({counts[p], 2}), &oi));
      OP_REQUIRES_OK(ctx, ctx->allocate_output(2 * p + 1, TensorShape({counts[p]}), &ov));
      out_indices[p] = oi->flat<int64_t>().data();
      out_values[p] = const_cast<char*>(ov->tensor_data().data());
    }
    OP_REQUIRES_OK(ctx, ToStatus(bpr_partition_mod(&indices, &values, num_partitions_, counts.data(),
                                                   out_indices.data(), out_values.data(), msg, kMsgCap),
                                 msg));
  }

 private:
  int64_t num_partitions_ = 0;
};

absl::Status SameAs(InferenceContext* c, int output, int input) {
  c->set_output(output, c->input(input));
  return absl::OkStatus();
}

}  // namespace
}  // namespace bpr_ops

REGISTER_OP("BinarySparseTensorDenseMatMul")
    .Input("a_indices: Tindices")
    .Input("a_values: T")
    .Input("a_shape: int64")
    .Input("b: T")
    .Output("product: T")
    .Attr("T: type")
    .Attr("Tindices: {int32,int64} = DT_INT64")
    .Attr("adjoint_a: bool = false")
    .Attr("adjoint_b: bool = false")
    .SetShapeFn(bpr_ops::MatMulShape)
    .Doc(R"doc(
twml's sparse x dense product for binary features (FullSparse): A's values are
taken as 1, so each entry (m, k) of A adds row k of B (B's conjugate transpose
with adjoint_b) to row m of the product. Every index of A is checked.
)doc");

#define BPR_BINARY_MATMUL(T, I)                                                  \
  REGISTER_KERNEL_BUILDER(Name("BinarySparseTensorDenseMatMul")   \
                              .Device(::tensorflow::DEVICE_CPU)                 \
                              .TypeConstraint<T>("T")                           \
                              .TypeConstraint<I>("Tindices")                    \
                              .HostMemory("a_shape"),                           \
                          bpr_ops::BinaryMatMulOp)
#define BPR_BINARY_MATMUL_T(T) \
  BPR_BINARY_MATMUL(T, int64_t); \
  BPR_BINARY_MATMUL(T, int32_t)
BPR_BINARY_MATMUL_T(float);
BPR_BINARY_MATMUL_T(double);
BPR_BINARY_MATMUL_T(int32_t);
BPR_BINARY_MATMUL_T(::tensorflow::complex64);
BPR_BINARY_MATMUL_T(::tensorflow::complex128);

REGISTER_OP("SparseMaxNorm")
    .Attr("epsilon: float")
    .Input("max_values: Ref(float)")
    .Input("indices: int64")
    .Input("values: float")
    .Input("is_training: bool")
    .Output("updated_max_values: Ref(float)")
    .Output("normalized_values: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(bpr_ops::SameAs(c, 0, 0));
      return bpr_ops::SameAs(c, 1, 2);
    })
    .Doc(R"doc(
twml's max normalisation on a reference variable (v1 graphs): values[i] /
max(max(max_values[indices[i]], |values[i]|), epsilon); with is_training the
maxima are updated in place, value by value.
)doc");

REGISTER_OP("SparseBatchNorm")
    .Attr("input_size: int")
    .Attr("epsilon: float")
    .Input("means: Ref(float)")
    .Input("variances: Ref(float)")
    .Input("indices: int64")
    .Input("values: float")
    .Input("is_training: bool")
    .Output("updated_means: Ref(float)")
    .Output("updated_vars: Ref(float)")
    .Output("normalized_values: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(bpr_ops::SameAs(c, 0, 0));
      TF_RETURN_IF_ERROR(bpr_ops::SameAs(c, 1, 1));
      return bpr_ops::SameAs(c, 2, 3);
    })
    .Doc(R"doc(
twml's sparse batch normalisation on reference variables (v1 graphs): with
is_training, each value updates its feature's mean and variance (Welford; the
counts live in the kernel), then (values[i] - mean) / sqrt(variance + epsilon).
)doc");

REGISTER_OP("SparseMaxNormInference")
    .Attr("epsilon: float")
    .Input("max_values: float")
    .Input("indices: int64")
    .Input("values: float")
    .Output("normalized_values: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      return bpr_ops::SameAs(c, 0, 2);
    })
    .Doc(R"doc(
values[i] / max(max(max_values[indices[i]], |values[i]|), epsilon).
)doc");

REGISTER_OP("SparseMaxNormTraining")
    .Attr("epsilon: float")
    .Input("max_values: float")
    .Input("indices: int64")
    .Input("values: float")
    .Output("updated_max_values: float")
    .Output("normalized_values: float")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      TF_RETURN_IF_ERROR(bpr_ops::SameAs(c, 0, 0));
      return bpr_ops::SameAs(c, 1, 2);
    })
    .Doc(R"doc(
As SparseMaxNormInference, with the maxima updated value by value (a value sees
the maximum the earlier values of its feature made) and returned.
)doc");

REGISTER_KERNEL_BUILDER(Name("SparseMaxNorm").Device(::tensorflow::DEVICE_CPU),
                        bpr_ops::SparseMaxNormOp);
REGISTER_KERNEL_BUILDER(Name("SparseBatchNorm").Device(::tensorflow::DEVICE_CPU),
                        bpr_ops::SparseBatchNormOp);
REGISTER_KERNEL_BUILDER(Name("SparseMaxNormInference").Device(::tensorflow::DEVICE_CPU),
                        bpr_ops::SparseMaxNormInferenceOp);
REGISTER_KERNEL_BUILDER(Name("SparseMaxNormTraining").Device(::tensorflow::DEVICE_CPU),
                        bpr_ops::SparseMaxNormTrainingOp);

REGISTER_OP("PartitionSparseTensorMod")
    .Attr("T: {float, double}")
    .Input("indices: int64")
    .Input("values: T")
    .Output("result: output_types")
    .Attr("num_partitions: int")
    .Attr("output_types: list({int64, float, double})")
    .SetShapeFn(bpr_ops::PartitionShape)
    .Doc(R"doc(
twml's partitioning of a sparse batch by key: row (id, key) with its value goes
to partition key mod num_partitions as (id, key div num_partitions) (Euclidean:
a negative key is defined too). Outputs [indices_0, values_0, indices_1, ...];
output_types must be [int64, T] repeated num_partitions times.
)doc");

REGISTER_KERNEL_BUILDER(
    Name("PartitionSparseTensorMod").Device(::tensorflow::DEVICE_CPU).TypeConstraint<float>("T"),
    bpr_ops::PartitionOp);
REGISTER_KERNEL_BUILDER(
    Name("PartitionSparseTensorMod").Device(::tensorflow::DEVICE_CPU).TypeConstraint<double>("T"),
    bpr_ops::PartitionOp);

// twml's discretizers and calibration: registrations with twml's interfaces
// (twml/libtwml/src/ops/hashing_discretizer.cpp, isotonic_calibration.cpp,
// discretizer.cpp, percentile_discretizer_v2.cpp:
// names, inputs, attrs with their types and defaults, outputs) and thin
// kernels; the math is model/src/discretize/. Beside them, ops of ours where
// twml's interface cannot work in TF2's eager mode (tensor-valued attrs).
// Shape functions check ranks, which twml's did not.

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bpr_ops.h"
#include "kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

namespace bpr_ops {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

constexpr size_t kMessageCapacity = 1024;

using Calibration = std::shared_ptr<bpr_hashing_calibration>;

absl::Status NewCalibration(const int64_t* ids, size_t n, int64_t n_bin, Calibration* out) {
  char msg[kMessageCapacity] = {0};
  bpr_hashing_calibration* raw = nullptr;
  TF_RETURN_IF_ERROR(
      ToStatus(bpr_hashing_calibration_new(ids, n, n_bin, &raw, msg, sizeof msg), msg));
  out->reset(raw, bpr_hashing_calibration_free);
  return absl::OkStatus();
}

// input_ids [N], input_vals [N], bin_vals [M]; both outputs [N].
absl::Status HashingShape(InferenceContext* c) {
  ShapeHandle ids, vals, bins;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &vals));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &bins));
  DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(ids, 0), c->Dim(vals, 0), &n));
  c->set_output(0, c->Vector(n));
  c->set_output(1, c->Vector(n));
  return absl::OkStatus();
}

// As HashingShape, and feature_ids [F].
absl::Status HashingFromInputsShape(InferenceContext* c) {
  ShapeHandle ids;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &ids));
  return HashingShape(c);
}

// The kernel's inputs and outputs handed to Rust with a calibration.
void Discretize(OpKernelContext* ctx, const bpr_hashing_calibration* calibration,
                int64_t output_bits, int64_t options) {
  const Tensor& ids = ctx->input(0);
  const Tensor& vals = ctx->input(1);
  const Tensor& bins = ctx->input(2);
  Dims ids_dims, vals_dims, bins_dims;
  bpr_tensor ids_view, vals_view, bins_view;
  OP_REQUIRES_OK(ctx, View(ids, &ids_dims, &ids_view));
  OP_REQUIRES_OK(ctx, View(vals, &vals_dims, &vals_view));
  OP_REQUIRES_OK(ctx, View(bins, &bins_dims, &bins_view));
  // Outputs take input_ids' shape when Rust accepts it; allocated first so
  // Rust writes in place (nothing is read from them before it checks).
  Tensor* keys = nullptr;
  Tensor* out_vals = nullptr;
  OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ids.shape(), &keys));
  OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ids.shape(), &out_vals));
  const bpr_runner runner = IntraOpRunner(ctx);
  char msg[kMessageCapacity] = {0};
  const bpr_status status = bpr_hashing_discretize(
      calibration, &ids_view, &vals_view, &bins_view, output_bits, options,
      keys->flat<int64_t>().data(), const_cast<char*>(out_vals->tensor_data().data()), &runner,
      msg, sizeof msg);
  OP_REQUIRES_OK(ctx, ToStatus(status, msg));
}

// twml's HashingDiscretizer: the calibration comes from the tensor attr and
// is built once, when the kernel is.
class HashingDiscretizerOp : public OpKernel {
 public:
  explicit HashingDiscretizerOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_bin = 0, output_bits = 0, cost_per_unit = 0, options = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_bin", &n_bin));
    OP_REQUIRES(ctx, n_bin > 0,
                tensorflow::errors::InvalidArgument("HashingDiscretizer: n_bin must be > 0, got ",
                                                    n_bin));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_bits", &output_bits));
    OP_REQUIRES(ctx, output_bits > 0,
                tensorflow::errors::InvalidArgument(
                    "HashingDiscretizer: output_bits must be > 0, got ", output_bits));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cost_per_unit", &cost_per_unit));
    OP_REQUIRES(ctx, cost_per_unit >= 0,
                tensorflow::errors::InvalidArgument(
                    "HashingDiscretizer: cost_per_unit must be >= 0, got ", cost_per_unit));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("options", &options));
    Tensor feature_ids;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_ids", &feature_ids));
    OP_REQUIRES(ctx, feature_ids.dtype() == tensorflow::DT_INT64,
                tensorflow::errors::InvalidArgument("HashingDiscretizer: feature_ids must be int64, got ",
                                                    tensorflow::DataTypeString(feature_ids.dtype())));
    OP_REQUIRES(ctx, feature_ids.dims() == 1,
                tensorflow::errors::InvalidArgument(
                    "HashingDiscretizer: feature_ids must be a vector, got shape ",
                    feature_ids.shape().DebugString()));
    output_bits_ = output_bits;
    options_ = options;
    OP_REQUIRES_OK(ctx, NewCalibration(feature_ids.flat<int64_t>().data(),
                                       static_cast<size_t>(feature_ids.NumElements()), n_bin,
                                       &calibration_));
  }

  void Compute(OpKernelContext* ctx) override {
    Discretize(ctx, calibration_.get(), output_bits_, options_);
  }

 private:
  Calibration calibration_;
  int64_t output_bits_ = 0;
  int64_t options_ = 0;
};

// Ours: the calibration is an input (feature_ids int64 [F]), so the op runs
// eagerly. A kernel keeps the calibration of the last feature_ids it saw and
// rebuilds it only when they change (a layer's constant: never).
class HashingDiscretizerFromInputsOp : public OpKernel {
 public:
  explicit HashingDiscretizerFromInputsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int n_bin = 0, output_bits = 0, options = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("n_bin", &n_bin));
    OP_REQUIRES(ctx, n_bin > 0,
                tensorflow::errors::InvalidArgument(
                    "BprHashingDiscretizer: n_bin must be > 0, got ", n_bin));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_bits", &output_bits));
    OP_REQUIRES(ctx, output_bits > 0,
                tensorflow::errors::InvalidArgument(
                    "BprHashingDiscretizer: output_bits must be > 0, got ", output_bits));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("options", &options));
    n_bin_ = n_bin;
    output_bits_ = output_bits;
    options_ = options;
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& feature_ids = ctx->input(3);
    OP_REQUIRES(ctx, feature_ids.dims() == 1,
                tensorflow::errors::InvalidArgument(
                    "BprHashingDiscretizer: feature_ids must be a vector, got shape ",
                    feature_ids.shape().DebugString()));
    const int64_t* ids = feature_ids.flat<int64_t>().data();
    const size_t n = static_cast<size_t>(feature_ids.NumElements());
    Calibration calibration;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!cached_ || cached_ids_.size() != n ||
          (n > 0 && std::memcmp(cached_ids_.data(), ids, n * sizeof(int64_t)) != 0)) {
        Calibration fresh;
        OP_REQUIRES_OK(ctx, NewCalibration(ids, n, n_bin_, &fresh));
        cached_ids_.assign(ids, ids + n);
        cached_ = std::move(fresh);
      }
      calibration = cached_;
    }
    Discretize(ctx, calibration.get(), output_bits_, options_);
  }

 private:
  int64_t n_bin_ = 0;
  int64_t output_bits_ = 0;
  int64_t options_ = 0;
  std::mutex mu_;
  std::vector<int64_t> cached_ids_;
  Calibration cached_;
};

class IsotonicCalibrationOp : public OpKernel {
 public:
  explicit IsotonicCalibrationOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    Dims in_dims, xs_dims, ys_dims;
    bpr_tensor in_view, xs_view, ys_view;
    OP_REQUIRES_OK(ctx, View(input, &in_dims, &in_view));
    OP_REQUIRES_OK(ctx, View(ctx->input(1), &xs_dims, &xs_view));
    OP_REQUIRES_OK(ctx, View(ctx->input(2), &ys_dims, &ys_view));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, input.shape(), &output));
    char msg[kMessageCapacity] = {0};
    const bpr_status status =
        bpr_isotonic_calibration(&in_view, &xs_view, &ys_view,
                                 const_cast<char*>(output->tensor_data().data()), msg, sizeof msg);
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }
};

// twml's MDL family (discretizer.cpp): one kernel, the new key a bin id or
// the bin's index.
template <bool kBinIndices>
class MdlOp : public OpKernel {
 public:
  explicit MdlOp(OpKernelConstruction* ctx) : OpKernel(ctx), op_(ctx->def().op()) {}

  void Compute(OpKernelContext* ctx) override {
    Dims dims[5];
    bpr_tensor views[5];
    for (int i = 0; i < 5; ++i) OP_REQUIRES_OK(ctx, View(ctx->input(i), &dims[i], &views[i]));
    const Tensor& keys = ctx->input(0);
    Tensor* new_keys = nullptr;
    Tensor* new_vals = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, keys.shape(), &new_keys));
    // Keys' shape, as twml's; Rust checks vals has it before writing.
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, keys.shape(), &new_vals));
    char msg[kMessageCapacity] = {0};
    const bpr_status status =
        bpr_mdl(op_.c_str(), kBinIndices ? 1 : 0, &views[0], &views[1], &views[2], &views[3],
                &views[4], new_keys->flat<int64_t>().data(),
                const_cast<char*>(new_vals->tensor_data().data()), msg, sizeof msg);
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }

 private:
  std::string op_;
};

// keys, vals [N...] one shape; bin_ids, bin_vals [M]; feature_offsets [F].
absl::Status MdlShape(InferenceContext* c) {
  ShapeHandle keys, ids, vals, offsets, bins;
  TF_RETURN_IF_ERROR(c->Merge(c->input(0), c->input(1), &keys));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &vals));
  TF_RETURN_IF_ERROR(c->Merge(ids, vals, &bins));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &offsets));
  c->set_output(0, keys);
  c->set_output(1, keys);
  return absl::OkStatus();
}

// input [B, L], xs and ys [L, K]; output [B, L].
absl::Status IsotonicShape(InferenceContext* c) {
  ShapeHandle input, xs, ys, table;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &input));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &xs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &ys));
  TF_RETURN_IF_ERROR(c->Merge(xs, ys, &table));
  DimensionHandle labels;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(input, 1), c->Dim(table, 0), &labels));
  c->set_output(0, c->input(0));
  return absl::OkStatus();
}

using PercentileIndex = std::shared_ptr<bpr_percentile_index>;

absl::Status NewPercentileIndex(const std::string& op, const Tensor& ids, const Tensor& indices,
                                PercentileIndex* out) {
  for (const Tensor* t : {&ids, &indices}) {
    if (t->dtype() != tensorflow::DT_INT64) {
      return tensorflow::errors::InvalidArgument(
          op, ": feature_ids and feature_indices must be int64, got ",
          tensorflow::DataTypeString(t->dtype()));
    }
  }
  if (ids.dims() != 1 || ids.shape() != indices.shape()) {
    return tensorflow::errors::InvalidArgument(
        op, ": feature_ids and feature_indices must be vectors of one length, got shapes ",
        ids.shape().DebugString(), " and ", indices.shape().DebugString());
  }
  char msg[kMessageCapacity] = {0};
  bpr_percentile_index* raw = nullptr;
  TF_RETURN_IF_ERROR(ToStatus(
      bpr_percentile_index_new(op.c_str(), ids.flat<int64_t>().data(),
                               static_cast<size_t>(ids.NumElements()),
                               indices.flat<int64_t>().data(),
                               static_cast<size_t>(indices.NumElements()), &raw, msg, sizeof msg),
      msg));
  out->reset(raw, bpr_percentile_index_free);
  return absl::OkStatus();
}

// Inputs 0-4 of both percentile ops (input_ids, input_vals, bin_ids,
// bin_vals, feature_offsets) handed to Rust with an index.
void PercentileDiscretize(OpKernelContext* ctx, const std::string& op,
                          const bpr_percentile_index* index, int64_t output_bits) {
  Dims dims[5];
  bpr_tensor views[5];
  for (int i = 0; i < 5; ++i) OP_REQUIRES_OK(ctx, View(ctx->input(i), &dims[i], &views[i]));
  const Tensor& ids = ctx->input(0);
  Tensor* keys = nullptr;
  Tensor* vals = nullptr;
  // input_ids' shape; Rust checks it is a vector with input_vals' before writing.
  OP_REQUIRES_OK(ctx, ctx->allocate_output(0, ids.shape(), &keys));
  OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ids.shape(), &vals));
  const bpr_runner runner = IntraOpRunner(ctx);
  char msg[kMessageCapacity] = {0};
  const bpr_status status = bpr_percentile_discretize(
      op.c_str(), index, &views[0], &views[1], &views[2], &views[3], &views[4], output_bits,
      keys->flat<int64_t>().data(), const_cast<char*>(vals->tensor_data().data()), &runner, msg,
      sizeof msg);
  OP_REQUIRES_OK(ctx, ToStatus(status, msg));
}

// twml's PercentileDiscretizerV2: the id -> index map comes from the tensor
// attrs and is built once, when the kernel is. start_compute, end_compute and
// cost_per_unit are read by nobody (twml's kernel ignores the first two too).
class PercentileDiscretizerV2Op : public OpKernel {
 public:
  explicit PercentileDiscretizerV2Op(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int output_bits = 0, cost_per_unit = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_bits", &output_bits));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("cost_per_unit", &cost_per_unit));
    OP_REQUIRES(ctx, cost_per_unit >= 0,
                tensorflow::errors::InvalidArgument(
                    "PercentileDiscretizerV2: cost_per_unit must be >= 0, got ", cost_per_unit));
    Tensor ids, indices;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_ids", &ids));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("feature_indices", &indices));
    OP_REQUIRES_OK(ctx, NewPercentileIndex("PercentileDiscretizerV2", ids, indices, &index_));
    output_bits_ = output_bits;
  }

  void Compute(OpKernelContext* ctx) override {
    PercentileDiscretize(ctx, "PercentileDiscretizerV2", index_.get(), output_bits_);
  }

 private:
  PercentileIndex index_;
  int64_t output_bits_ = 0;
};

// Ours: feature_ids and feature_indices are inputs (5 and 6), so the op runs
// eagerly. The kernel keeps the index of the last pair it saw and rebuilds it
// only when they change (a layer's constants: never).
class PercentileDiscretizerFromInputsOp : public OpKernel {
 public:
  explicit PercentileDiscretizerFromInputsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    int output_bits = 0;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("output_bits", &output_bits));
    output_bits_ = output_bits;
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& ids = ctx->input(5);
    const Tensor& indices = ctx->input(6);
    OP_REQUIRES(ctx, ids.dims() == 1 && ids.shape() == indices.shape(),
                tensorflow::errors::InvalidArgument(
                    "BprPercentileDiscretizer: feature_ids and feature_indices must be vectors of "
                    "one length, got shapes ",
                    ids.shape().DebugString(), " and ", indices.shape().DebugString()));
    const size_t n = static_cast<size_t>(ids.NumElements());
    const int64_t* id_data = ids.flat<int64_t>().data();
    const int64_t* index_data = indices.flat<int64_t>().data();
    PercentileIndex index;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!cached_ || cached_ids_.size() != n ||
          (n > 0 && (std::memcmp(cached_ids_.data(), id_data, n * sizeof(int64_t)) != 0 ||
                     std::memcmp(cached_indices_.data(), index_data, n * sizeof(int64_t)) != 0))) {
        PercentileIndex fresh;
        OP_REQUIRES_OK(ctx, NewPercentileIndex("BprPercentileDiscretizer", ids, indices, &fresh));
        cached_ids_.assign(id_data, id_data + n);
        cached_indices_.assign(index_data, index_data + n);
        cached_ = std::move(fresh);
      }
      index = cached_;
    }
    PercentileDiscretize(ctx, "BprPercentileDiscretizer", index.get(), output_bits_);
  }

 private:
  int64_t output_bits_ = 0;
  std::mutex mu_;
  std::vector<int64_t> cached_ids_;
  std::vector<int64_t> cached_indices_;
  PercentileIndex cached_;
};

// input_ids, input_vals [N]; bin_ids, bin_vals [M]; feature_offsets [F];
// both outputs [N]. twml's set input_ids' shape and checked nothing.
absl::Status PercentileShape(InferenceContext* c) {
  ShapeHandle ids, vals, bin_ids, bin_vals, bins, offsets;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 1, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &vals));
  DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(ids, 0), c->Dim(vals, 0), &n));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &bin_ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &bin_vals));
  TF_RETURN_IF_ERROR(c->Merge(bin_ids, bin_vals, &bins));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 1, &offsets));
  c->set_output(0, c->Vector(n));
  c->set_output(1, c->Vector(n));
  return absl::OkStatus();
}

// As PercentileShape, and feature_ids, feature_indices [K].
absl::Status PercentileFromInputsShape(InferenceContext* c) {
  ShapeHandle ids, indices, merged;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 1, &ids));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(6), 1, &indices));
  TF_RETURN_IF_ERROR(c->Merge(ids, indices, &merged));
  return PercentileShape(c);
}

}  // namespace
}  // namespace bpr_ops

REGISTER_OP("HashingDiscretizer")
    .Attr("T: {float, double}")
    .Input("input_ids: int64")
    .Input("input_vals: T")
    .Input("bin_vals: T")
    .Attr("feature_ids: tensor = { dtype: DT_INT64 }")
    .Attr("n_bin: int")
    .Attr("output_bits: int")
    .Attr("cost_per_unit: int")
    .Attr("options: int")
    .Output("new_keys: int64")
    .Output("new_vals: T")
    .SetShapeFn(bpr_ops::HashingShape)
    .Doc(R"doc(
twml's hashing discretizer. A calibrated feature (its id in feature_ids, at
position i) becomes (hash(id, bin), 1), bin = where its value falls among
bin_vals[i * n_bin:(i + 1) * n_bin]; other ids keep their value, masked to
output_bits. options bits 1:0 pick the search (0 lower_bound, 1 linear,
2 upper_bound), bits 4:2 the hash (0 32-bit, 1 64-bit). feature_ids is a
tensor attr: the op runs in graphs (tf.function, v1); eagerly use
BprHashingDiscretizer.
)doc");

REGISTER_OP("BprHashingDiscretizer")
    .Attr("T: {float, double}")
    .Input("input_ids: int64")
    .Input("input_vals: T")
    .Input("bin_vals: T")
    .Input("feature_ids: int64")
    .Attr("n_bin: int")
    .Attr("output_bits: int")
    .Attr("options: int = 0")
    .Output("new_keys: int64")
    .Output("new_vals: T")
    .SetShapeFn(bpr_ops::HashingFromInputsShape)
    .Doc(R"doc(
HashingDiscretizer with the calibrated feature ids as an input instead of a
tensor attr, so it runs eagerly too; same results as twml's op.
)doc");

REGISTER_OP("IsotonicCalibration")
    .Attr("T: {float, double}")
    .Input("input: T")
    .Input("xs: T")
    .Input("ys: T")
    .Output("output: T")
    .SetShapeFn(bpr_ops::IsotonicShape)
    .Doc(R"doc(
twml's isotonic calibration: output[i, j] is input[i, j] interpolated
linearly on (xs[j], ys[j]), clamped at the ends. input [batch_size,
num_labels]; xs, ys [num_labels, num_bins].
)doc");

#define BPR_MDL_OP(NAME, DOC)         \
  REGISTER_OP(NAME)                   \
      .Attr("T: {float, double}")     \
      .Input("keys: int64")           \
      .Input("vals: T")               \
      .Input("bin_ids: int64")        \
      .Input("bin_vals: T")           \
      .Input("feature_offsets: int64") \
      .Output("new_keys: int64")      \
      .Output("new_vals: T")          \
      .SetShapeFn(bpr_ops::MdlShape)  \
      .Doc(DOC)

BPR_MDL_OP("MDL", "twml's MDL discretizer: key k's value becomes (bin_ids at the boundary twml's search "
                  "stops at in bin_vals[feature_offsets[k]:feature_offsets[k + 1]], 1); key -1 passes "
                  "through.");
BPR_MDL_OP("PercentileDiscretizer", "twml's PercentileDiscretizer: as MDL.");
BPR_MDL_OP("PercentileDiscretizerBinIndices",
           "twml's PercentileDiscretizerBinIndices: as MDL, the new key the boundary's index in "
           "its feature's run.");

#define BPR_REGISTER_MDL(T)                                                                   \
  REGISTER_KERNEL_BUILDER(Name("MDL").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          bpr_ops::MdlOp<false>);                                              \
  REGISTER_KERNEL_BUILDER(                                                                     \
      Name("PercentileDiscretizer").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      bpr_ops::MdlOp<false>);                                                                  \
  REGISTER_KERNEL_BUILDER(Name("PercentileDiscretizerBinIndices")                              \
                              .Device(::tensorflow::DEVICE_CPU)                                \
                              .TypeConstraint<T>("T"),                                         \
                          bpr_ops::MdlOp<true>);

BPR_REGISTER_MDL(float);
BPR_REGISTER_MDL(double);

#define BPR_REGISTER_DISCRETIZE(T)                                                           \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("HashingDiscretizer").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),    \
      bpr_ops::HashingDiscretizerOp);                                                        \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("BprHashingDiscretizer").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      bpr_ops::HashingDiscretizerFromInputsOp);                                              \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("IsotonicCalibration").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),   \
      bpr_ops::IsotonicCalibrationOp);

BPR_REGISTER_DISCRETIZE(float);
BPR_REGISTER_DISCRETIZE(double);

REGISTER_OP("PercentileDiscretizerV2")
    .Attr("T: {float, double}")
    .Input("input_ids: int64")
    .Input("input_vals: T")
    .Input("bin_ids: int64")
    .Input("bin_vals: T")
    .Input("feature_offsets: int64")
    .Input("start_compute: int64")
    .Input("end_compute: int64")
    .Attr("output_bits: int")
    .Attr("feature_ids: tensor = { dtype: DT_INT64 }")
    .Attr("feature_indices: tensor = { dtype: DT_INT64 }")
    .Attr("cost_per_unit: int")
    .Output("new_keys: int64")
    .Output("new_vals: T")
    .SetShapeFn(bpr_ops::PercentileShape)
    .Doc(R"doc(
twml's percentile discretizer. An id of feature_ids (mapped to feature index
k by feature_indices) becomes (the bin_ids entry of the boundary its value
stops at in bin_vals[feature_offsets[k]:feature_offsets[k + 1]], 1); other
ids keep their value and become id % ((1 << output_bits) - len(bin_ids)) +
len(bin_ids), unsigned as twml. start_compute and end_compute are ignored, as
twml did. feature_ids and feature_indices are tensor attrs: the op runs in
graphs (tf.function, v1); eagerly use BprPercentileDiscretizer.
)doc");

REGISTER_OP("BprPercentileDiscretizer")
    .Attr("T: {float, double}")
    .Input("input_ids: int64")
    .Input("input_vals: T")
    .Input("bin_ids: int64")
    .Input("bin_vals: T")
    .Input("feature_offsets: int64")
    .Input("feature_ids: int64")
    .Input("feature_indices: int64")
    .Attr("output_bits: int")
    .Output("new_keys: int64")
    .Output("new_vals: T")
    .SetShapeFn(bpr_ops::PercentileFromInputsShape)
    .Doc(R"doc(
PercentileDiscretizerV2 with feature_ids and feature_indices as inputs
instead of tensor attrs, so it runs eagerly too; same results as twml's op.
)doc");

#define BPR_REGISTER_PERCENTILE(T)                                                           \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("PercentileDiscretizerV2").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      bpr_ops::PercentileDiscretizerV2Op);                                                    \
  REGISTER_KERNEL_BUILDER(Name("BprPercentileDiscretizer")                                    \
                              .Device(::tensorflow::DEVICE_CPU)                               \
                              .TypeConstraint<T>("T"),                                        \
                          bpr_ops::PercentileDiscretizerFromInputsOp);

BPR_REGISTER_PERCENTILE(float);
BPR_REGISTER_PERCENTILE(double);

// CPU kernels of the request side (request_ops.cc). Thin, like kernels.cc: a
// decode kernel views the input messages and asks Rust for a batch, which it
// keeps in a ref-counting resource next to the input tensor (the batch holds
// offsets into those bytes); a getter kernel finds that resource behind its
// handle and lets Rust write the outputs through allocation callbacks. Every
// op's attrs go to Rust once, at construction, taken from its OpDef. No
// decoding or getter logic here.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bpr_ops.h"
#include "kernel_util.h"
#include "plain_allocator.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_def.pb.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_base.h"
#include "tensorflow/core/framework/resource_handle.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace bpr_ops {
namespace {

using ::tensorflow::DataType;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::ResourceHandle;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;

// One view per message; PlainAllocator keeps GLIBCXX_3.4.29 out (plain_allocator.h).
using Messages = std::vector<bpr_bytes, PlainAllocator<bpr_bytes>>;

// Rust's messages name the op, the element, the byte offset and a struct path;
// longer ones are truncated by Rust.
constexpr size_t kMessageCapacity = 2048;

// The Rust op of this kernel, made once from its attrs (InvalidArgument naming
// the op and the attr when they are bad).
class RequestKernel : public OpKernel {
 public:
  explicit RequestKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OpAttrs attrs;
    OP_REQUIRES_OK(ctx, ReadOpAttrs(ctx, &attrs));
    char msg[kMessageCapacity];
    const bpr_status status = bpr_request_op_new(ctx->def().op().c_str(), attrs.attrs.data(),
                                                 attrs.attrs.size(), &op_, msg, sizeof msg);
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }
  ~RequestKernel() override { bpr_request_op_free(op_); }

 protected:
  bpr_request_op* op_ = nullptr;
};

// What a handle points to: the decoded batch and the tensor whose bytes it
// indexes, kept alive together until the handle's last copy goes.
class RequestBatch : public tensorflow::ResourceBase {
 public:
  RequestBatch(std::string decoded_by, const Tensor& input)
      : decoded_by_(std::move(decoded_by)), input_(input) {
    if (input_.dtype() == tensorflow::DT_STRING) {
      const auto flat = input_.flat<tstring>();
      messages_.resize(flat.size());
      for (int64_t i = 0; i < flat.size(); ++i) {
        messages_[i] = bpr_bytes{reinterpret_cast<const uint8_t*>(flat(i).data()), flat(i).size()};
      }
    } else {
      const absl::string_view bytes = input_.tensor_data();
      messages_.push_back(bpr_bytes{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
    }
  }
  ~RequestBatch() override { bpr_request_batch_free(batch_); }

  std::string DebugString() const override {
    return absl::StrCat("bpr_ops request batch of ", decoded_by_);
  }

  bool is_string() const { return input_.dtype() == tensorflow::DT_STRING; }
  const Messages& messages() const { return messages_; }
  const bpr_request_batch* batch() const { return batch_; }
  bpr_request_batch** mutable_batch() { return &batch_; }

 private:
  const std::string decoded_by_;
  const Tensor input_;  // shares the input's buffer: messages_ point into it
  Messages messages_;
  bpr_request_batch* batch_ = nullptr;
};

// Decode*, DecodeAndHash*: input bytes -> a scalar ref-counting handle. No
// resource manager entry: the batch goes with the handle's last tensor, in
// eager mode, tf.function, TF1 sessions and the C API alike.
class DecodeOp : public RequestKernel {
 public:
  using RequestKernel::RequestKernel;

  void Compute(OpKernelContext* ctx) override {
    auto* resource = new RequestBatch(def().op(), ctx->input(0));
    // Owned by the handle from here on (it takes the one reference).
    ResourceHandle handle = ResourceHandle::MakeRefCountingHandle(resource, ctx->device()->name());
    char msg[kMessageCapacity];
    const auto& messages = resource->messages();
    const bpr_status status =
        bpr_request_decode(op_, messages.data(), messages.size(), resource->is_string() ? 1 : 0,
                           resource->mutable_batch(), msg, sizeof msg);
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<ResourceHandle>()() = std::move(handle);
  }
};

// Get*: reads the batch behind input 0 and writes every output.
class GetOp : public RequestKernel {
 public:
  using RequestKernel::RequestKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const std::string& op = def().op();
    const std::string& input_name = requested_input(0);
    OP_REQUIRES(ctx, tensorflow::TensorShapeUtils::IsScalar(input.shape()),
                tensorflow::errors::InvalidArgument(op, ": ", input_name,
                                                    " must be a scalar resource handle, got shape ",
                                                    input.shape().DebugString()));
    const ResourceHandle& handle = input.scalar<ResourceHandle>()();
    OP_REQUIRES(ctx, handle.IsRefCounting(),
                tensorflow::errors::InvalidArgument(
                    op, ": ", input_name, " is a handle to a ",
                    handle.maybe_type_name().empty() ? "resource" : handle.maybe_type_name(),
                    " (", handle.name(), "), not the output of a Decode* request op"));
    auto resource = handle.GetResource<RequestBatch>();
    OP_REQUIRES(ctx, resource.ok(),
                tensorflow::errors::InvalidArgument(
                    op, ": ", input_name, " is not the output of a Decode* request op: ",
                    resource.status().message()));
    const RequestBatch& batch = **resource;

    Outputs outputs{ctx, absl::OkStatus()};
    const bpr_outputs callbacks{&outputs, AllocateOutput, SetString};
    char msg[kMessageCapacity];
    const auto& messages = batch.messages();
    const bpr_status status = bpr_request_get(op_, batch.batch(), messages.data(),
                                              messages.size(), &callbacks, msg, sizeof msg);
    if (status == BPR_HOST_ALLOC_FAILED) {
      OP_REQUIRES_OK(ctx, outputs.status.ok() ? tensorflow::errors::Internal(
                                                    op, ": output allocation failed without a status")
                                              : outputs.status);
    }
    OP_REQUIRES_OK(ctx, ToStatus(status, msg));
  }
};

}  // namespace
}  // namespace bpr_ops

// One kernel class per role; the op name selects the Rust op. No TypeConstraint:
// the kernel serves both InputTypes (and the uint8-only V1 ops).
#define BPR_DECODE(NAME) \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tensorflow::DEVICE_CPU), bpr_ops::DecodeOp)
#define BPR_GET(NAME) \
  REGISTER_KERNEL_BUILDER(Name(NAME).Device(tensorflow::DEVICE_CPU), bpr_ops::GetOp)

BPR_DECODE("DecodeBatchPredictionRequest");
BPR_DECODE("DecodeAndHashBatchPredictionRequest");
BPR_DECODE("DecodeBatchPredictionRequestV2");
BPR_DECODE("DecodeAndHashBatchPredictionRequestV2");
BPR_DECODE("DecodeDataRecord");
BPR_DECODE("DecodeAndHashDataRecord");

BPR_GET("GetIdsFromHashedDataRecord");
BPR_GET("GetUKeysFromHashedDataRecord");
BPR_GET("GetKeysFromHashedDataRecord");
BPR_GET("GetValuesFromHashedDataRecord");
BPR_GET("GetCodesFromHashedDataRecord");
BPR_GET("GetTypesFromHashedDataRecord");
BPR_GET("GetBatchSizeFromHashedDataRecord");
BPR_GET("GetTotalSizeFromHashedDataRecord");
BPR_GET("GetLabelsFromHashedDataRecord");
BPR_GET("GetWeightsFromHashedDataRecord");
BPR_GET("GetRequestSplitsFromHashedDataRecord");  // not twml's: cpp_shim/responses.cc

BPR_GET("GetBinaryFeatures");
BPR_GET("GetContinuousFeatures");
BPR_GET("GetDiscreteFeatures");
BPR_GET("GetStringFeatures");
BPR_GET("GetSparseBinaryFeatures");
BPR_GET("GetSparseContinuousFeatures");
BPR_GET("GetBatchSizeFromDataRecord");
BPR_GET("GetLabelsFromDataRecord");
BPR_GET("GetWeightsFromDataRecord");
BPR_GET("GetRequestSplitsFromDataRecord");  // not twml's: cpp_shim/responses.cc
BPR_GET("GetFeatureSourcesFromDataRecord");  // not twml's: cpp_shim/request_ops.cc
BPR_GET("GetBinaryAsTensor");
BPR_GET("GetContinuousAsTensor");
BPR_GET("GetDiscreteAsTensor");
BPR_GET("GetStringAsTensor");
BPR_GET("GetBinaryGroupAsTensor");
BPR_GET("GetContinuousGroupAsTensor");
BPR_GET("GetDiscreteGroupAsTensor");
BPR_GET("GetStringGroupAsTensor");
BPR_GET("GetSparseBinaryAsTensor");
BPR_GET("GetSparseContinuousAsTensor");
BPR_GET("GetHashedFeaturesAsSparseTensor");
BPR_GET("GetHashedFeaturesAsSparseTensorV2");
BPR_GET("GetSparseBinaryAsSparseTensor");           // not twml's: cpp_shim/request_ops.cc
BPR_GET("GetSparseContinuousAsSparseTensor");       // not twml's
BPR_GET("GetHashedFeaturesAsSortedSparseTensor");   // not twml's

// The tensor getters (registered in tensor_ops.cc; logic in request/tensors.rs).
BPR_GET("GetTensorsFromDataRecord");
BPR_GET("GetTensorsFromHashedDataRecord");
BPR_GET("GetTensorsWithMissingMaskFromDataRecord");
BPR_GET("GetTensorsWithMissingMaskFromHashedDataRecord");
BPR_GET("GetStringTensorsFromDataRecord");
BPR_GET("GetStringTensorsFromHashedDataRecord");
BPR_GET("GetSparseTensorsFromDataRecord");
BPR_GET("GetSparseTensorsFromHashedDataRecord");

// Op registrations of twml's tensor getters (twml/libtwml/src/ops/tensor_record.cpp):
// twml's op names, attrs (names, types, order; twml gave none a default), inputs
// and outputs, so graphs exported with twml's ops run unchanged. Kernels are the
// request getter kernel (request_kernels.cc); the logic is protocol/src/request/
// tensors.rs. What differs from twml is behaviour (README, "Tensor features") and
// the shape functions: twml's stated nothing; ours state the ranks.

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace bpr_ops {
namespace {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status HandleIn(InferenceContext* c) {
  ShapeHandle unused;
  return c->WithRank(c->input(0), 0, &unused);
}

// output [B] bytes, out_shape [1 + rank], out_type and out_endian scalars.
absl::Status Tensors(InferenceContext* c) {
  TF_RETURN_IF_ERROR(HandleIn(c));
  c->set_output(0, c->Vector(c->UnknownDim()));
  c->set_output(1, c->Vector(c->UnknownDim()));
  c->set_output(2, c->Scalar());
  c->set_output(3, c->Scalar());
  return absl::OkStatus();
}

// output [B] bytes, out_type and out_endian scalars, is_found [B].
absl::Status Masked(InferenceContext* c) {
  TF_RETURN_IF_ERROR(HandleIn(c));
  auto b = c->UnknownDim();
  c->set_output(0, c->Vector(b));
  c->set_output(1, c->Scalar());
  c->set_output(2, c->Scalar());
  c->set_output(3, c->Vector(b));
  return absl::OkStatus();
}

// ids [T], strings [T].
absl::Status Strings(InferenceContext* c) {
  TF_RETURN_IF_ERROR(HandleIn(c));
  auto t = c->UnknownDim();
  c->set_output(0, c->Vector(t));
  c->set_output(1, c->Vector(t));
  return absl::OkStatus();
}

// ids [T], indices [1] and values [1] bytes, dense_shape [1 + rank], type and endian scalars.
absl::Status Sparse(InferenceContext* c) {
  TF_RETURN_IF_ERROR(HandleIn(c));
  c->set_output(0, c->Vector(c->UnknownDim()));
  c->set_output(1, c->Vector(1));
  c->set_output(2, c->Vector(1));
  c->set_output(3, c->Vector(c->UnknownDim()));
  c->set_output(4, c->Scalar());
  c->set_output(5, c->Scalar());
  return absl::OkStatus();
}

}  // namespace
}  // namespace bpr_ops

#define BPR_STRING_TENSORS(NAME, HANDLE)                                                  \
  REGISTER_OP(NAME)                                                                       \
      .Attr("feature_id: int")                                                            \
      .Input(HANDLE ": resource")                                                         \
      .Output("ids: int64")                                                               \
      .Output("strings: string")                                                          \
      .SetShapeFn(bpr_ops::Strings)                                                       \
      .Doc("The strings of tensors[feature_id] of each record that has it (stringTensor, " \
           "binaryTensor or a rawTypedTensor of STRING), row-major, with the record index.")

BPR_STRING_TENSORS("GetStringTensorsFromDataRecord", "data_record_handle");
BPR_STRING_TENSORS("GetStringTensorsFromHashedDataRecord", "hashed_data_record_handle");

#define BPR_TENSORS(NAME, HANDLE)                                                           \
  REGISTER_OP(NAME)                                                                         \
      .Attr("assert_shape: bool")                                                           \
      .Attr("feature_id: int")                                                              \
      .Input(HANDLE ": resource")                                                           \
      .Output("output: string")                                                             \
      .Output("out_shape: int64")                                                           \
      .Output("out_type: string")                                                           \
      .Output("out_endian: uint8")                                                          \
      .SetShapeFn(bpr_ops::Tensors)                                                         \
      .Doc("Per record, the bytes of tensors[feature_id] (every record must have it); "     \
           "out_shape [B, shape...], out_type its element type, out_endian 1 if big-endian.")

BPR_TENSORS("GetTensorsFromDataRecord", "data_record_handle");
BPR_TENSORS("GetTensorsFromHashedDataRecord", "hashed_data_record_handle");

#define BPR_MASKED(NAME, HANDLE)                                                              \
  REGISTER_OP(NAME)                                                                           \
      .Attr("assert_shape: bool")                                                             \
      .Attr("feature_id: int")                                                                \
      .Attr("default_shape: list(int)")                                                       \
      .Attr("dtype_size: int")                                                                \
      .Input(HANDLE ": resource")                                                             \
      .Output("output: string")                                                               \
      .Output("out_type: string")                                                             \
      .Output("out_endian: uint8")                                                            \
      .Output("is_found: bool")                                                               \
      .SetShapeFn(bpr_ops::Masked)                                                            \
      .Doc("Per record, the bytes of tensors[feature_id], or zeros of default_shape x "       \
           "dtype_size bytes where a record lacks it (is_found false).")

BPR_MASKED("GetTensorsWithMissingMaskFromDataRecord", "data_record_handle");
BPR_MASKED("GetTensorsWithMissingMaskFromHashedDataRecord", "hashed_data_record_handle");

// twml named the last output `valueendian` on one op and `values_endian` on the other.
#define BPR_SPARSE(NAME, HANDLE, ENDIAN)                                                       \
  REGISTER_OP(NAME)                                                                            \
      .Attr("feature_id: int")                                                                 \
      .Input(HANDLE ": resource")                                                              \
      .Output("ids: int64")                                                                    \
      .Output("indices: string")                                                               \
      .Output("values: string")                                                                \
      .Output("dense_shape: int64")                                                            \
      .Output("values_type: string")                                                           \
      .Output(ENDIAN ": uint8")                                                                \
      .SetShapeFn(bpr_ops::Sparse)                                                             \
      .Doc("The COO parts of sparseTensors[feature_id] of each record that has it: the record " \
           "of each value, indices (big-endian int64) and values as bytes, [B, denseShape...].")

BPR_SPARSE("GetSparseTensorsFromDataRecord", "data_record_handle", "valueendian");
BPR_SPARSE("GetSparseTensorsFromHashedDataRecord", "hashed_data_record_handle", "values_endian");

// twml's writer of one DataRecord (data_record_tensor_writer.cpp); kernel in kernels.cc.
REGISTER_OP("DataRecordTensorWriter")
    .Attr("T: list({string, int32, int64, float, double, bool})")
    .Input("keys: int64")
    .Input("values: T")
    .Output("result: uint8")
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->Matrix(1, c->UnknownDim()));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Packages keys and dense tensors into one serialized DataRecord (Thrift binary):
values[j] under keys[j] in its tensors map, numbers and bools as little-endian
rawTypedTensor, strings as stringTensor, in the order of keys. A repeated key is
an error.

keys: feature ids, int64 [K], distinct.
values: K tensors of any shape.
result: uint8 [1, N], the record's bytes.
)doc");

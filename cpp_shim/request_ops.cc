// Op registrations of the request side: twml's BatchPredictionRequest and
// DataRecord readers (twml/libtwml/src/ops/batch_prediction_request*.cpp,
// data_record.cpp, hashed_data_record.cpp), with twml's op names, attrs (names,
// types, defaults, order), inputs and outputs, so graphs exported with twml's
// ops run unchanged. What differs from twml is behaviour (README, "Request
// side") and the shape functions: twml's getters stated no shape at all; ours
// say what is known without running the op (scalar handles and sizes, rank-1
// rows, [?, len(feature_ids)] for the group getters, [?, ?] labels/weights).

#include <vector>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace bpr_ops {
namespace {

using ::tensorflow::shape_inference::InferenceContext;

// Every output is a row list of unknown length (ids, keys, values, names...).
absl::Status Rows(InferenceContext* c) {
  for (int i = 0; i < c->num_outputs(); ++i) c->set_output(i, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

// [B, L] labels or [B, W] weights: L and W are attrs of the decode op.
absl::Status UnknownMatrix(InferenceContext* c) {
  c->set_output(0, c->Matrix(c->UnknownDim(), c->UnknownDim()));
  return absl::OkStatus();
}

// [B]: one value per record.
absl::Status PerRecord(InferenceContext* c) {
  c->set_output(0, c->Vector(c->UnknownDim()));
  return absl::OkStatus();
}

// [B, F]: F = len(feature_ids).
absl::Status Group(InferenceContext* c) {
  std::vector<int64_t> ids;
  TF_RETURN_IF_ERROR(c->GetAttr("feature_ids", &ids));
  c->set_output(0, c->Matrix(c->UnknownDim(), static_cast<int64_t>(ids.size())));
  return absl::OkStatus();
}

// A resource handle input must be a scalar.
absl::Status HandleIn(InferenceContext* c) {
  ::tensorflow::shape_inference::ShapeHandle unused;
  return c->WithRank(c->input(0), 0, &unused);
}

template <absl::Status (*Out)(InferenceContext*)>
absl::Status Getter(InferenceContext* c) {
  TF_RETURN_IF_ERROR(HandleIn(c));
  return Out(c);
}

absl::Status Scalar(InferenceContext* c) { return ::tensorflow::shape_inference::ScalarShape(c); }

// A SparseTensor's parts: indices [T, 2], value lists [T], dense_shape [2].
absl::Status SparseParts(InferenceContext* c) {
  const int n = c->num_outputs();
  c->set_output(0, c->Matrix(c->UnknownDim(), 2));
  for (int i = 1; i + 1 < n; ++i) c->set_output(i, c->Vector(c->UnknownDim()));
  c->set_output(n - 1, c->Vector(2));
  return absl::OkStatus();
}

}  // namespace
}  // namespace bpr_ops

// ---- Decode ops: input bytes -> a `resource` handle (scalar) ----------------

REGISTER_OP("DecodeAndHashBatchPredictionRequest")
    .Input("input_bytes: uint8")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("decode_mode: int = 0")
    .Output("hashed_data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes a Thrift BatchPredictionRequest into a handle to a batch of hashed
records (per record, the common record's kept entries, then its own).

input_bytes: all its bytes are one BatchPredictionRequest.
keep_features: feature ids to keep.
keep_codes: the code of each of keep_features (same length).
decode_mode: sparse continuous keys are feature_id(name) (0) or id mixed with name (1).
hashed_data_record_handle: scalar handle for the *FromHashedDataRecord getters.
)doc");

REGISTER_OP("DecodeBatchPredictionRequest")
    .Input("input_bytes: uint8")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Output("data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes a Thrift BatchPredictionRequest into a handle to its DataRecords
(each merged with commonFeatures by the getters).

input_bytes: all its bytes are one BatchPredictionRequest.
keep_features: feature ids the row getters return.
keep_codes: the code of each of keep_features (same length).
data_record_handle: scalar handle for the DataRecord getters.
)doc");

REGISTER_OP("DecodeAndHashBatchPredictionRequestV2")
    .Attr("InputType: {uint8, string}")
    .Input("input_bytes: InputType")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("label_features: list(int)")
    .Attr("weight_features: list(int) = []")
    .Attr("decode_mode: int = 0")
    .Output("hashed_data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes BatchPredictionRequests into a handle to hashed records, with labels
and weights. A string input holds one request per element (their records
concatenated in order); a uint8 input is one request.

label_features: label column i (binary: 1, continuous: the value).
weight_features: weight column i (continuous).
)doc");

REGISTER_OP("DecodeBatchPredictionRequestV2")
    .Attr("InputType: {uint8, string}")
    .Input("input_bytes: InputType")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("label_features: list(int)")
    .Attr("weight_features: list(int) = []")
    .Attr("decode_mode: int = 0")
    .Output("data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes BatchPredictionRequests into a handle to DataRecords, with labels and
weights. A string input holds one request per element (their records
concatenated in order); a uint8 input is one request.
)doc");

REGISTER_OP("DecodeDataRecord")
    .Attr("InputType: {uint8, string}")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("label_features: list(int)")
    .Attr("weight_features: list(int) = []")
    .Input("input_bytes: InputType")
    .Output("data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes DataRecords (a string input: one per element; uint8: one) into a
handle for the DataRecord getters.
)doc");

REGISTER_OP("DecodeAndHashDataRecord")
    .Attr("InputType: {uint8, string}")
    .Input("input_bytes: InputType")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("label_features: list(int)")
    .Attr("weight_features: list(int) = []")
    .Attr("decode_mode: int = 0")
    .Output("hashed_data_record_handle: resource")
    .SetShapeFn(bpr_ops::Scalar)
    .Doc(R"doc(
Decodes DataRecords (a string input: one per element; uint8: one) into a
handle to hashed records for the *FromHashedDataRecord getters.
)doc");

// ---- Hashed getters: rows T = total_size, labels [B, L], weights [B, W] ------

#define BPR_HASHED_ROWS(NAME, OUT, DOC)                              \
  REGISTER_OP(NAME)                                                  \
      .Input("hashed_data_record_handle: resource")                  \
      .Output(OUT)                                                   \
      .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>)                    \
      .Doc(DOC "\n\nhashed_data_record_handle: from a DecodeAndHash* op.\n")

BPR_HASHED_ROWS("GetIdsFromHashedDataRecord", "ids: int64", "Record index of each row, [T].");
BPR_HASHED_ROWS("GetUKeysFromHashedDataRecord", "ukeys: int64", "Raw feature id of each row, [T].");
BPR_HASHED_ROWS("GetKeysFromHashedDataRecord", "keys: int64",
                "Hashed key of each row (id mixed with the discrete value or string), [T].");
BPR_HASHED_ROWS("GetValuesFromHashedDataRecord", "values: float", "Value of each row, [T].");
BPR_HASHED_ROWS("GetCodesFromHashedDataRecord", "codes: int64",
                "keep_codes entry of each row's feature id, [T].");
BPR_HASHED_ROWS("GetTypesFromHashedDataRecord", "types: int8",
                "DataRecord field id of each row (1 binary ... 6 sparse continuous), [T].");

REGISTER_OP("GetBatchSizeFromHashedDataRecord")
    .Input("hashed_data_record_handle: resource")
    .Output("batch_size: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Scalar>)
    .Doc("Number of records B in the handle (scalar).");

REGISTER_OP("GetTotalSizeFromHashedDataRecord")
    .Input("hashed_data_record_handle: resource")
    .Output("total_size: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Scalar>)
    .Doc("Number of rows T in the handle (scalar).");

REGISTER_OP("GetLabelsFromHashedDataRecord")
    .Input("hashed_data_record_handle: resource")
    .Output("labels: float")
    .Attr("default_label: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::UnknownMatrix>)
    .Doc("Labels [B, len(label_features)]; a missing label is default_label.");

REGISTER_OP("GetWeightsFromHashedDataRecord")
    .Input("hashed_data_record_handle: resource")
    .Output("weights: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::UnknownMatrix>)
    .Doc("Weights [B, len(weight_features)]; a missing weight is 0.");

// ---- DataRecord getters ------------------------------------------------------

#define BPR_FEATURES(NAME)                  \
  REGISTER_OP(NAME)                               \
      .Input("data_record_handle: resource")      \
      .Output("ids: int64")                       \
      .Output("keys: int64")
#define BPR_ROWS_DOC(DOC) .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>).Doc(DOC)

BPR_FEATURES("GetBinaryFeatures")
    .Output("values: float")
    BPR_ROWS_DOC("Rows of the kept binary features: record index, feature id, 1.");
BPR_FEATURES("GetContinuousFeatures")
    .Output("values: float")
    BPR_ROWS_DOC("Rows of the kept continuous features: record index, feature id, value.");
BPR_FEATURES("GetDiscreteFeatures")
    .Output("values: int64")
    BPR_ROWS_DOC("Rows of the kept discrete features: record index, feature id, value.");
BPR_FEATURES("GetStringFeatures")
    .Output("names: string")
    .Output("values: float")
    BPR_ROWS_DOC("Rows of the kept string features: record index, feature id, string, 1.");
BPR_FEATURES("GetSparseBinaryFeatures")
    .Output("names: string")
    .Output("values: float")
    BPR_ROWS_DOC("Rows of the kept sparse binary features, one per string: index, id, string, 1.");
BPR_FEATURES("GetSparseContinuousFeatures")
    .Output("values: float")
    .Output("names: string")
    BPR_ROWS_DOC("Rows of the kept sparse continuous features, one per entry: index, id, value, name.");

REGISTER_OP("GetBatchSizeFromDataRecord")
    .Input("data_record_handle: resource")
    .Output("batch_size: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Scalar>)
    .Doc("Number of records B in the handle (scalar).");

REGISTER_OP("GetLabelsFromDataRecord")
    .Input("data_record_handle: resource")
    .Output("labels: float")
    .Attr("default_label: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::UnknownMatrix>)
    .Doc("Labels [B, len(label_features)]; a missing label is default_label.");

REGISTER_OP("GetWeightsFromDataRecord")
    .Input("data_record_handle: resource")
    .Output("weights: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::UnknownMatrix>)
    .Doc("Weights [B, len(weight_features)]; a missing weight is 0.");

#define BPR_AS_TENSOR(NAME, ATTR, VALUE_TYPE, OUT, SHAPE, DOC) \
  REGISTER_OP(NAME)                                            \
      .Input("data_record_handle: resource")                   \
      .Attr(ATTR)                                              \
      .Attr("default_value: " VALUE_TYPE)                      \
      .Output(OUT)                                             \
      .SetShapeFn(bpr_ops::Getter<SHAPE>)                      \
      .Doc(DOC)

BPR_AS_TENSOR("GetBinaryAsTensor", "feature_id: int", "float", "values: float",
              bpr_ops::PerRecord, "[B]: 1 where the record (or its common record) has the binary feature, else default_value.");
BPR_AS_TENSOR("GetContinuousAsTensor", "feature_id: int", "float", "values: float",
              bpr_ops::PerRecord, "[B]: the record's (else its common record's) value, else default_value.");
BPR_AS_TENSOR("GetDiscreteAsTensor", "feature_id: int", "int", "values: int64",
              bpr_ops::PerRecord, "[B]: the record's (else its common record's) value, else default_value.");
BPR_AS_TENSOR("GetStringAsTensor", "feature_id: int", "string", "names: string",
              bpr_ops::PerRecord, "[B]: the record's (else its common record's) string, else default_value.");
BPR_AS_TENSOR("GetBinaryGroupAsTensor", "feature_ids: list(int)", "float", "values: float",
              bpr_ops::Group, "[B, F]: GetBinaryAsTensor of each of the F feature_ids.");
BPR_AS_TENSOR("GetContinuousGroupAsTensor", "feature_ids: list(int)", "float", "values: float",
              bpr_ops::Group, "[B, F]: GetContinuousAsTensor of each of the F feature_ids.");
BPR_AS_TENSOR("GetDiscreteGroupAsTensor", "feature_ids: list(int)", "int", "values: int64",
              bpr_ops::Group, "[B, F]: GetDiscreteAsTensor of each of the F feature_ids.");
BPR_AS_TENSOR("GetStringGroupAsTensor", "feature_ids: list(int)", "string", "names: string",
              bpr_ops::Group, "[B, F]: GetStringAsTensor of each of the F feature_ids.");

// Not a twml op (issue 29): twml's group getters answer the default for a
// feature the client misspelled or sent as another kind, indistinguishable
// from a real default. This says where each of their values came from.
REGISTER_OP("GetFeatureSourcesFromDataRecord")
    .Input("data_record_handle: resource")
    .Attr("feature_ids: list(int)")
    .Attr("feature_kinds: list(int)")
    .Output("sources: int8")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Group>)
    .Doc(R"doc(
Where each value of the group getters came from: int8 [B, F], for record b and
feature_ids[j] read as feature_kinds[j] (a DataRecord field id: 1 binary,
2 continuous, 3 discrete, 4 string, 5 sparse binary, 6 sparse continuous):
1 the record's own features, 2 its request's commonFeatures, 3 absent as that
kind but present (in the record or its commonFeatures) as another kind, so the
getter read the default; 0 absent, the default. Not a twml op.
)doc");

REGISTER_OP("GetSparseBinaryAsTensor")
    .Input("data_record_handle: resource")
    .Attr("feature_id: int")
    .Output("ids: int64")
    .Output("keys: int64")
    .Output("names: string")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>)
    .Doc("Rows of one sparse binary feature, one per string: record index, feature_id, string.");

REGISTER_OP("GetSparseContinuousAsTensor")
    .Input("data_record_handle: resource")
    .Attr("feature_id: int")
    .Output("ids: int64")
    .Output("keys: int64")
    .Output("names: string")
    .Output("values: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>)
    .Doc("Rows of one sparse continuous feature, one per entry: index, feature_id, name, value.");

// Not twml ops (issue 35): what BatchPredictionRequestReader reads sparse and
// hashed features with, one op each where the row getters above needed a dozen
// TensorFlow ops more to become a SparseTensor.
REGISTER_OP("GetSparseBinaryAsSparseTensor")
    .Input("data_record_handle: resource")
    .Attr("feature_id: int")
    .Output("indices: int64")
    .Output("names: string")
    .Output("dense_shape: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::SparseParts>)
    .Doc(R"doc(
One sparse binary feature as a SparseTensor of strings [B, N] (N the most
strings a record has), as tf.io.parse_example gives a VarLenFeature: record b's
strings (its request's commonFeatures' ones, then its own, in wire order) at
[b, 0], [b, 1], ... Not a twml op.
)doc");

REGISTER_OP("GetSparseContinuousAsSparseTensor")
    .Input("data_record_handle: resource")
    .Attr("feature_id: int")
    .Output("indices: int64")
    .Output("names: string")
    .Output("values: float")
    .Output("dense_shape: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::SparseParts>)
    .Doc(R"doc(
One sparse continuous feature as two SparseTensors [B, N] sharing indices (the
names, and the values as float32), laid out as GetSparseBinaryAsSparseTensor.
Not a twml op.
)doc");

REGISTER_OP("GetHashedFeaturesAsSortedSparseTensor")
    .Input("data_record_handle: resource")
    .Attr("binary_keep_features: list(int)")
    .Attr("continuous_keep_features: list(int)")
    .Attr("discrete_keep_features: list(int)")
    .Attr("string_keep_features: list(int)")
    .Attr("sparse_binary_keep_features: list(int)")
    .Attr("sparse_continuous_keep_features: list(int)")
    .Attr("decode_mode: int = 0")
    .Attr("hashed_bits: int")
    .Output("indices: int64")
    .Output("values: float")
    .Output("kinds: int8")
    .Output("dense_shape: int64")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::SparseParts>)
    .Doc(R"doc(
twml's hashed input of the features of each kind's keep list as one SparseTensor
[B, 2**hashed_bits] in row-major order: a value per entry at [record,
key & (2**hashed_bits - 1)] (twml.limit_bits), a record's rows kind by kind
(binary ... sparse continuous), its request's commonFeatures' then its own in
wire order, sorted by key keeping that order among equal keys; kinds: each
entry's DataRecord field id. decode_mode as for GetHashedFeaturesAsSparseTensorV2.
Not a twml op.
)doc");

REGISTER_OP("GetHashedFeaturesAsSparseTensor")
    .Input("data_record_handle: resource")
    .Attr("binary_keep_features: list(int)")
    .Attr("continuous_keep_features: list(int)")
    .Attr("discrete_keep_features: list(int)")
    .Attr("string_keep_features: list(int)")
    .Attr("sparse_binary_keep_features: list(int)")
    .Attr("sparse_continuous_keep_features: list(int)")
    .Output("ids: int64")
    .Output("keys: int64")
    .Output("values: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>)
    .Doc(R"doc(
Hashed rows (record index, hashed key, value) of the features of each type's
keep list that the decode op kept.
)doc");

REGISTER_OP("GetHashedFeaturesAsSparseTensorV2")
    .Input("data_record_handle: resource")
    .Attr("binary_keep_features: list(int)")
    .Attr("continuous_keep_features: list(int)")
    .Attr("discrete_keep_features: list(int)")
    .Attr("string_keep_features: list(int)")
    .Attr("sparse_binary_keep_features: list(int)")
    .Attr("sparse_continuous_keep_features: list(int)")
    .Attr("keep_features: list(int)")
    .Attr("keep_codes: list(int)")
    .Attr("decode_mode: int = 0")
    .Output("ids: int64")
    .Output("keys: int64")
    .Output("values: float")
    .SetShapeFn(bpr_ops::Getter<bpr_ops::Rows>)
    .Doc(R"doc(
Hashed rows (record index, hashed key, value) of the features of each type's
keep list that are also in this op's keep_features; decode_mode as for the
decode ops (sparse continuous keys).
)doc");

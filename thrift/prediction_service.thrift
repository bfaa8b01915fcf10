// What the writer ops serialize (binary protocol, the bare struct, no message
// envelope) into their uint8 output.
namespace java com.twitter.ml.prediction_service
namespace rs bpr_ops_idl

include "data.thrift"

struct BatchPredictionRequest {
  1: required list<data.DataRecord> individualFeaturesList
  2: optional data.DataRecord commonFeatures
}

struct BatchPredictionResponse {
  1: required list<data.DataRecord> predictions
}

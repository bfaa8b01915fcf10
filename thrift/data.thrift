// The feature record. The ops write field 2 (BatchPredictionResponseWriter)
// or field 8 (BatchPredictionTensorResponseWriter); the others exist for
// consumers that decode the whole struct.
namespace java com.twitter.ml.api
namespace rs bpr_ops_idl

include "tensor.thrift"

struct DataRecord {
  1: optional set<i64> binaryFeatures
  2: optional map<i64, double> continuousFeatures
  3: optional map<i64, i64> discreteFeatures
  4: optional map<i64, string> stringFeatures
  5: optional map<i64, set<string>> sparseBinaryFeatures
  6: optional map<i64, map<string, double>> sparseContinuousFeatures
  7: optional map<i64, binary> blobFeatures
  8: optional map<i64, tensor.GeneralTensor> tensors
  9: optional map<i64, tensor.SparseTensor> sparseTensors
}

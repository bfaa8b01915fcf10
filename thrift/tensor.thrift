// Tensors inside a DataRecord. Field ids and enum values are the wire contract
// that existing consumers decode: never renumber them.
namespace java com.twitter.ml.api
namespace rs bpr_ops_idl

enum DataType {
  FLOAT = 0,
  DOUBLE = 1,
  INT32 = 2,
  INT64 = 3,
  UINT8 = 4,
  STRING = 5,
  BYTE = 6,
  BOOL = 7,
}

struct StringTensor {
  1: required list<string> strings
  2: optional list<i64> shape
}

struct Int32Tensor {
  1: required list<i32> ints
  2: optional list<i64> shape
}

struct Int64Tensor {
  1: required list<i64> longs
  2: optional list<i64> shape
}

struct FloatTensor {
  1: required list<double> floats
  2: optional list<i64> shape
}

struct DoubleTensor {
  1: required list<double> doubles
  2: optional list<i64> shape
}

struct BoolTensor {
  1: required list<bool> booleans
  2: optional list<i64> shape
}

// content: the elements in little-endian byte order, row-major.
struct RawTypedTensor {
  1: required DataType dataType
  2: required binary content
  3: optional list<i64> shape
}

struct BinaryTensor {
  1: required list<binary> binaries
  2: optional list<i64> shape
}

union GeneralTensor {
  1: RawTypedTensor rawTypedTensor
  2: StringTensor stringTensor
  3: Int32Tensor int32Tensor
  4: Int64Tensor int64Tensor
  5: FloatTensor floatTensor
  6: DoubleTensor doubleTensor
  7: BoolTensor boolTensor
  8: BinaryTensor binaryTensor
}

// indices is an Int64Tensor, as in Twitter's IDL (navi's generated code) and
// what twml's reader (TensorRecordReader::readCOOSparseTensor) reads: row d
// holds each value's index along dimension d, shape [rank, n]. This file once
// said GeneralTensor; bpr_ops' readers still accept that form too (a
// GeneralTensor's int64Tensor or rawTypedTensor of INT64), so bytes written
// by it keep decoding.
struct COOSparseTensor {
  1: required list<i64> denseShape
  2: required Int64Tensor indices
  3: required GeneralTensor values
}

union SparseTensor {
  1: COOSparseTensor cooSparseTensor
}

/*
 * The C ABI between the TensorFlow shim (C++) and the bpr_ops encoder (Rust).
 *
 * This header is the one definition of the boundary: the shim includes it and
 * bindgen generates the Rust types from it. Nothing here mentions TensorFlow.
 *
 * Ownership: every pointer passed in is borrowed for the duration of the call
 * only; Rust never frees, keeps or writes through an input pointer. `out` is
 * written in place and nowhere else. Error messages are copied into the
 * caller's `msg` buffer (always NUL-terminated when `msg_cap > 0`, truncated
 * to fit). No call unwinds: every Rust panic becomes BPR_INTERNAL.
 */
#ifndef BPR_OPS_H_
#define BPR_OPS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Stable: values are never reused or renumbered. */
typedef int32_t bpr_status;
#define BPR_OK 0
#define BPR_INVALID_ARGUMENT 1
#define BPR_INTERNAL 2
/* The host's bpr_alloc_fn returned NULL: the host keeps and reports its own error. */
#define BPR_HOST_ALLOC_FAILED 3

/* Element types of a tensor view. These are bpr_ops' own numbers, neither
 * TensorFlow's DT_* nor Thrift's DataType. Stable. */
typedef int32_t bpr_dtype;
#define BPR_DTYPE_FLOAT 1
#define BPR_DTYPE_DOUBLE 2
#define BPR_DTYPE_HALF 3
#define BPR_DTYPE_BFLOAT16 4
#define BPR_DTYPE_INT32 5
#define BPR_DTYPE_INT64 6
#define BPR_DTYPE_UINT8 7
#define BPR_DTYPE_BOOL 8
#define BPR_DTYPE_STRING 9
#define BPR_DTYPE_INT8 10

/* A borrowed byte string. */
typedef struct bpr_bytes {
  const uint8_t* data; /* may be NULL when len == 0 */
  size_t len;
} bpr_bytes;

/* Returns element `index` of the string tensor whose `data` is `strings`.
 * Must not fail, throw or keep the pointer; the bytes stay valid for the call. */
typedef bpr_bytes (*bpr_string_at_fn)(const void* strings, size_t index);

/* A borrowed, read-only view of one dense row-major tensor. */
typedef struct bpr_tensor {
  bpr_dtype dtype;
  size_t rank;
  const int64_t* dims;    /* `rank` entries; may be NULL when rank == 0 */
  size_t num_elements;    /* product of dims, as the host counted it */
  /* Numeric and bool: `num_elements` contiguous elements in native (little-endian)
   * layout, bool as one byte. String: an opaque handle passed to `string_at`.
   * May be NULL when num_elements == 0. */
  const void* data;
  bpr_string_at_fn string_at; /* required for BPR_DTYPE_STRING, else ignored */
} bpr_tensor;

/* Calls fn(context, begin, end) on sub-ranges that together cover [0, total),
 * possibly concurrently, and returns once every call has returned. */
typedef void (*bpr_range_fn)(void* context, int64_t begin, int64_t end);

/* The host's thread pool, for writing large responses in parallel. bpr_ops
 * never starts threads of its own. `fn` never unwinds into the pool: Rust
 * panics are caught inside it. */
typedef struct bpr_runner {
  void* pool;      /* opaque to Rust, passed back to parallel_for */
  int32_t threads; /* how many threads the pool may run at once */
  void (*parallel_for)(void* pool, int64_t total, int64_t cost_per_unit,
                       bpr_range_fn fn, void* context);
} bpr_runner;

/*
 * BatchPredictionResponseWriter: keys int64[K], values [B, K] (or [B] when K == 1).
 * `_size` validates and computes the exact output size; `_write` validates again
 * and fills `out`, which must hold exactly that many bytes, on the calling
 * thread or, for large outputs, also on `runner`'s threads (NULL: calling
 * thread only).
 */
bpr_status bpr_continuous_size(const bpr_tensor* keys, const bpr_tensor* values,
                               uint64_t* out_size, char* msg, size_t msg_cap);
bpr_status bpr_continuous_write(const bpr_tensor* keys, const bpr_tensor* values,
                                uint8_t* out, uint64_t out_size,
                                const bpr_runner* runner, char* msg,
                                size_t msg_cap);

/*
 * BatchPredictionTensorResponseWriter: keys int64[K], values: K tensors [B, ...].
 * Same two-step contract as above.
 */
bpr_status bpr_tensor_size(const bpr_tensor* keys, const bpr_tensor* values,
                           size_t num_values, uint64_t* out_size, char* msg,
                           size_t msg_cap);
bpr_status bpr_tensor_write(const bpr_tensor* keys, const bpr_tensor* values,
                            size_t num_values, uint8_t* out, uint64_t out_size,
                            const bpr_runner* runner, char* msg, size_t msg_cap);

/* Allocates the output of exactly `size` bytes (size > 0) and returns where to
 * write it, or NULL when the host cannot allocate it (the host keeps its own
 * error; the encode call then returns BPR_HOST_ALLOC_FAILED). Called at most
 * once per encode call, after every input is validated. */
typedef uint8_t* (*bpr_alloc_fn)(void* context, uint64_t size);

/*
 * One call per op: validates the inputs once, asks the host for the output
 * through `alloc`, and writes it (on `runner`'s threads too when large). What
 * a kernel calls; the _size/_write pairs above do the same in two calls and
 * validate twice.
 */
bpr_status bpr_continuous_encode(const bpr_tensor* keys, const bpr_tensor* values,
                                 bpr_alloc_fn alloc, void* alloc_context,
                                 const bpr_runner* runner, char* msg, size_t msg_cap);
bpr_status bpr_tensor_encode(const bpr_tensor* keys, const bpr_tensor* values,
                             size_t num_values, bpr_alloc_fn alloc, void* alloc_context,
                             const bpr_runner* runner, char* msg, size_t msg_cap);
/* DataRecordTensorWriter: one DataRecord whose tensors map holds values[j]
 * under keys[j]; the output is the record's bytes (alloc'd as [1, size]). */
bpr_status bpr_record_tensor_encode(const bpr_tensor* keys, const bpr_tensor* values,
                                    size_t num_values, bpr_alloc_fn alloc, void* alloc_context,
                                    char* msg, size_t msg_cap);

/*
 * A tensor writer's plan cache: what a call's framing depends on (the keys and
 * each values tensor's dtype and row shape) validated and built once, and
 * reused while a call has the same keys, dtypes and row shapes; a call with
 * others builds and keeps its own. The bytes and errors are those of
 * bpr_tensor_encode. Owned by the caller (one per kernel), freed with
 * bpr_tensor_cache_free; safe to use from several threads at once.
 *
 * bpr_tensor_cache_new returns NULL only if the cache could not be made
 * (callers may then pass NULL, which caches nothing). bpr_tensor_cache_free(NULL)
 * does nothing; no call may use the cache during or after its free.
 */
typedef struct bpr_tensor_cache bpr_tensor_cache;
bpr_tensor_cache* bpr_tensor_cache_new(void);
void bpr_tensor_cache_free(bpr_tensor_cache* cache);
/* bpr_tensor_encode through `cache` (NULL: no cache, exactly bpr_tensor_encode). */
bpr_status bpr_tensor_encode_cached(bpr_tensor_cache* cache, const bpr_tensor* keys,
                                    const bpr_tensor* values, size_t num_values,
                                    bpr_alloc_fn alloc, void* alloc_context,
                                    const bpr_runner* runner, char* msg, size_t msg_cap);

/* The TensorFlow version (tf.__version__) this library was built against, as a
 * static NUL-terminated string. The same text follows the marker
 * "BPR_OPS_BUILT_FOR_TENSORFLOW=" in the library file, so a loader can read it
 * without loading the library into a TensorFlow it may not match. */
const char* bpr_tensorflow_version(void);

/*
 * FeatureId: out[i] = the feature id of names[i], twml's hash of the name (see
 * README "Feature names"), for i < num_names. Every name must be UTF-8; the
 * first that is not gives BPR_INVALID_ARGUMENT naming feature_names[i] and the
 * byte offset, and `out` is left unwritten. Names may be any length.
 */
bpr_status bpr_feature_ids(const bpr_bytes* names, size_t num_names, int64_t* out,
                           char* msg, size_t msg_cap);

/* ------------------------------------------------------------------------ *
 * The request side: twml's BatchPredictionRequest / DataRecord readers.
 *
 * A decode op (DecodeDataRecord, DecodeAndHash*, Decode*BatchPredictionRequest*)
 * turns the input bytes into a bpr_request_batch, which the shim keeps inside
 * the `resource` handle it outputs, next to the input tensor (so the bytes
 * outlive the batch). A getter op (Get*) reads a batch and writes its outputs
 * through bpr_outputs. All decoding and every getter's logic is in Rust; the
 * shim reads attrs, views tensors, holds the handle and maps statuses.
 * ------------------------------------------------------------------------ */

/* Kinds of attr value (bpr_attr.kind). Stable. */
typedef int32_t bpr_attr_kind;
#define BPR_ATTR_INT 1       /* TF `int`:        int_value */
#define BPR_ATTR_FLOAT 2     /* TF `float`:      float_value */
#define BPR_ATTR_STRING 3    /* TF `string`:     string_value (any bytes) */
#define BPR_ATTR_INT_LIST 4  /* TF `list(int)`:  list[0..list_len) */
#define BPR_ATTR_BOOL 5      /* TF `bool`:       int_value, 0 or 1 */

/* One attr of a request-side op, as the kernel read it at construction.
 * Names and types are twml's registered ones (cpp_shim/request_ops.cc). */
typedef struct bpr_attr {
  const char* name; /* NUL-terminated, e.g. "keep_features" */
  bpr_attr_kind kind;
  int64_t int_value;
  float float_value;
  bpr_bytes string_value;
  const int64_t* list; /* may be NULL when list_len == 0 */
  size_t list_len;
} bpr_attr;

/* An op's validated attrs, made once per kernel. Owned by the kernel. */
typedef struct bpr_request_op bpr_request_op;
/* A decoded batch. Owned by the handle's resource. Holds offsets into the
 * input bytes, never pointers: every getter is given the same bytes again. */
typedef struct bpr_request_batch bpr_request_batch;

/*
 * Validates the attrs of the request-side op `op_name` (a NUL-terminated
 * registered op name, e.g. "DecodeAndHashBatchPredictionRequestV2" or
 * "GetContinuousGroupAsTensor") and returns a new op in *out, to be freed
 * with bpr_request_op_free. Every attr the op registers must be given, once,
 * except type attrs (`InputType`: which input dtype is passed to
 * bpr_request_decode as `input_is_string`);
 * an unknown op name or attr is BPR_INVALID_ARGUMENT (so is a bad value:
 * keep_features and keep_codes of different lengths, a decode_mode other
 * than 0 or 1, ...). `attrs` is borrowed for the call only.
 */
bpr_status bpr_request_op_new(const char* op_name, const bpr_attr* attrs, size_t num_attrs,
                              bpr_request_op** out, char* msg, size_t msg_cap);
void bpr_request_op_free(bpr_request_op* op); /* NULL is a no-op */

/*
 * A decode op: decodes `inputs` and returns a new batch in *out, to be freed
 * with bpr_request_batch_free. `inputs` are the input tensor's messages: a
 * uint8 tensor is one message (all its bytes, row-major), a string tensor one
 * message per element. `input_is_string` says which (it changes the error
 * messages and nothing else). A malformed message is BPR_INVALID_ARGUMENT
 * naming the op, the element, the byte offset and what was expected; no
 * allocation is larger than the input bytes justify.
 */
bpr_status bpr_request_decode(const bpr_request_op* op, const bpr_bytes* inputs,
                              size_t num_inputs, int32_t input_is_string,
                              bpr_request_batch** out, char* msg, size_t msg_cap);
void bpr_request_batch_free(bpr_request_batch* batch); /* NULL is a no-op */

/* Where a getter writes its outputs. Each output is allocated exactly once,
 * in output order; an output may be written before the next is allocated. */
typedef struct bpr_outputs {
  void* context;
  /* Allocates output `index` (0-based, in the op's registered output order)
   * with shape dims[0..rank) and sets *data to its elements: int64, float,
   * int8 as the op registers the output, or, for a string output, an opaque
   * pointer only passed back to set_string. *data may be NULL for an output
   * of zero elements. Returns 0 on success; non-zero when the host cannot
   * allocate (the host keeps its own error; the getter then returns
   * BPR_HOST_ALLOC_FAILED). Must not throw. */
  int32_t (*alloc)(void* context, int32_t index, const int64_t* dims, size_t rank,
                   void** data);
  /* Sets element `element` of the string output whose *data was `strings` to
   * bytes[0..len) (copied). Must not fail or throw. */
  void (*set_string)(void* strings, int64_t element, const uint8_t* bytes, size_t len);
} bpr_outputs;

/*
 * A getter op: reads `batch`, which bpr_request_decode made from `inputs`
 * (the same messages, passed again), and writes every output of `op` through
 * `outputs`. A batch made by a decode op whose handle this getter does not
 * read (a DataRecord handle given to a *FromHashedDataRecord getter, or the
 * other way round) is BPR_INVALID_ARGUMENT naming both ops.
 */
bpr_status bpr_request_get(const bpr_request_op* op, const bpr_request_batch* batch,
                           const bpr_bytes* inputs, size_t num_inputs,
                           const bpr_outputs* outputs, char* msg, size_t msg_cap);


/* ------------------------------------------------------------------------ *
 * One response per request (issue 29): the writers above, cut by row splits.
 *
 * `row_splits` is an int64 view [R + 1]: request r owns records
 * row_splits[r]..row_splits[r + 1] (first 0, last B, never decreasing), as
 * GetRequestSplitsFrom*DataRecord give them. Response r is byte for byte what
 * the single-response writer gives for those records alone. A server that
 * batches requests (concatenates along dim 0, splits outputs along dim 0)
 * then hands each caller its own response.
 * ------------------------------------------------------------------------ */

/* Where a per-request writer puts its R responses: a string output [R]. */
typedef struct bpr_string_output {
  void* context;
  /* Allocates the output, `count` strings. Returns 0 on success; non-zero
   * when the host cannot (it keeps its own error; the call then returns
   * BPR_HOST_ALLOC_FAILED). Called once, after every input is validated.
   * Must not throw. */
  int32_t (*alloc)(void* context, uint64_t count);
  /* Sizes string `index` (< count) to exactly `size` bytes (size > 0) and
   * returns where to write them, valid until the call returns; NULL when the
   * host cannot (as above). Called once per string, in order. Must not throw. */
  uint8_t* (*element)(void* context, uint64_t index, uint64_t size);
} bpr_string_output;

/* BatchPredictionResponsesWriter: keys int64[K], values [B, K] (or [B] when
 * K == 1), row_splits int64[R + 1] -> R responses. */
bpr_status bpr_continuous_encode_responses(const bpr_tensor* keys, const bpr_tensor* values,
                                           const bpr_tensor* row_splits,
                                           const bpr_string_output* out,
                                           const bpr_runner* runner, char* msg,
                                           size_t msg_cap);
/* BatchPredictionTensorResponsesWriter: keys int64[K], K tensors [B, ...],
 * row_splits int64[R + 1] -> R responses; `cache` as for
 * bpr_tensor_encode_cached (NULL: no cache). */
bpr_status bpr_tensor_encode_responses(bpr_tensor_cache* cache, const bpr_tensor* keys,
                                       const bpr_tensor* values, size_t num_values,
                                       const bpr_tensor* row_splits,
                                       const bpr_string_output* out,
                                       const bpr_runner* runner, char* msg, size_t msg_cap);

/* ------------------------------------------------------------------------ *
 * Block-format files (Elephant-Bird binary blocks, twml's training data):
 * the BlockFormatDatasetV2 iterator reads a file through the host's file
 * system layer and this reader parses it, one record at a time, holding one
 * input chunk and one record.
 * ------------------------------------------------------------------------ */

/* The host's read callback failed: the host keeps and reports its own error. */
#define BPR_HOST_READ_FAILED 4

/* Reads up to `cap` bytes of the stream into buf. Returns the number read
 * (fewer than cap is fine), 0 at the end of the stream, or a negative value
 * when reading failed (the host keeps its own error). Must not throw. */
typedef int64_t (*bpr_read_fn)(void* context, uint8_t* buf, size_t cap);

/* A reader of one stream. Owned by the host; freed with bpr_block_reader_free. */
typedef struct bpr_block_reader bpr_block_reader;

/*
 * A reader of the stream `read(context, ...)` gives, named `name` in errors.
 * To resume after a checkpoint, position the stream at `block_offset` (a
 * block's marker, as bpr_block_reader_next reported it) and give `index`, the
 * records of that block already delivered; (0, 0) is the start of the stream.
 * `context` must stay valid until the reader is freed; `name` is copied.
 * `check_records` != 0: each record must be a Thrift-binary DataRecord
 * (else BPR_INVALID_ARGUMENT naming the file, the record and the offset).
 */
bpr_status bpr_block_reader_new(bpr_bytes name, bpr_read_fn read, void* context,
                                uint64_t block_offset, uint64_t index, int32_t check_records,
                                bpr_block_reader** out, char* msg, size_t msg_cap);
void bpr_block_reader_free(bpr_block_reader* reader); /* NULL is a no-op */

/*
 * The next record: *has_record = 1, *record views its bytes (valid until the
 * next call on this reader or its free), *block_offset and *index say where it
 * is; or *has_record = 0 at the end of the stream. A damaged stream is
 * BPR_INVALID_ARGUMENT naming the file, the byte offset and what was expected,
 * with *has_record = 0; BPR_HOST_READ_FAILED when `read` failed. The reader
 * cannot resynchronise after either: every further call returns the error
 * again, so a host that goes on moves to its next stream (the dataset skips
 * the rest of the file). With `check_records`, a record that is not a
 * DataRecord is BPR_INVALID_ARGUMENT with *has_record = 1 and *block_offset,
 * *index naming it: only that record is bad, and the next call gives the next one.
 */
bpr_status bpr_block_reader_next(bpr_block_reader* reader, int32_t* has_record, bpr_bytes* record,
                                 uint64_t* block_offset, uint64_t* index, char* msg,
                                 size_t msg_cap);

/* The stream offset of the next byte `reader` has not read: right after
 * bpr_block_reader_next gave a record, the end of that record (so its first
 * byte is at this minus its length). */
uint64_t bpr_block_reader_offset(const bpr_block_reader* reader);

/*
 * Checks that `record` (read from the block file `name`, record `index` of
 * the block at stream offset `block_offset`, its first byte at stream offset
 * `offset`) is a Thrift-binary DataRecord: BPR_OK, or BPR_INVALID_ARGUMENT
 * with the message bpr_block_reader_next's check gives (file, byte offset,
 * what was expected).
 */
bpr_status bpr_block_check_record(bpr_bytes name, bpr_bytes record, uint64_t block_offset,
                                  uint64_t index, uint64_t offset, char* msg, size_t msg_cap);

/*
 * The one-pass training input (BlockFormatFeatureDataset): a DecodeDataRecord
 * op and the getter ops that read its handle, made once from `plan` (UTF-8
 * text, one op a line: name TAB number-of-outputs TAB attr=kind:value ...,
 * the decode op first; kinds i int, f float as its IEEE bits in decimal,
 * s string as hex, b bool 0/1, l int list comma-separated). Bad plans are
 * BPR_INVALID_ARGUMENT naming the op and the attr.
 */
typedef struct bpr_block_features bpr_block_features;
bpr_status bpr_block_features_new(bpr_bytes plan, bpr_block_features** out, char* msg,
                                  size_t msg_cap);
void bpr_block_features_free(bpr_block_features* features); /* NULL is a no-op */

/*
 * Decodes `records` (serialized DataRecords) once and writes every getter's
 * outputs through `outputs`, numbered across the getters in plan order (the
 * decode op has none). *bad_record = -1, or, when the decode failed because
 * record i is not a DataRecord, i (the first such record). Safe to call from
 * several threads at once on one `features`.
 */
bpr_status bpr_block_features_run(const bpr_block_features* features, const bpr_bytes* records,
                                  size_t num_records, const bpr_outputs* outputs,
                                  int64_t* bad_record, char* msg, size_t msg_cap);

/* ------------------------------------------------------------------------ *
 * twml's model ops (bpr-model): discretizers and calibration.
 * ------------------------------------------------------------------------ */

/* HashingDiscretizer's calibrated feature ids (position i owns bin_vals
 * [i * n_bin, (i + 1) * n_bin)), built once per kernel from the attr, or per
 * call from an input. Owned by the caller; freed with
 * bpr_hashing_calibration_free. n_bin <= 0 is BPR_INVALID_ARGUMENT. */
typedef struct bpr_hashing_calibration bpr_hashing_calibration;
bpr_status bpr_hashing_calibration_new(const int64_t* feature_ids, size_t num_ids, int64_t n_bin,
                                       bpr_hashing_calibration** out, char* msg, size_t msg_cap);
void bpr_hashing_calibration_free(bpr_hashing_calibration* calibration); /* NULL is a no-op */

/*
 * HashingDiscretizer: input_ids int64 [N], input_vals and bin_vals float or
 * double (one dtype). Writes N keys to out_keys and N values (input_vals'
 * dtype) to out_vals. Shapes and bin_vals' length are checked first
 * (BPR_INVALID_ARGUMENT naming them); nothing is written on error.
 */
bpr_status bpr_hashing_discretize(const bpr_hashing_calibration* calibration,
                                  const bpr_tensor* input_ids, const bpr_tensor* input_vals,
                                  const bpr_tensor* bin_vals, int64_t output_bits, int64_t options,
                                  int64_t* out_keys, void* out_vals, const bpr_runner* runner,
                                  char* msg, size_t msg_cap);

/*
 * IsotonicCalibration: input [B, L], xs and ys [L, K], one dtype (float or
 * double). Writes B x L values of that dtype to output. A NaN in xs is
 * BPR_INVALID_ARGUMENT (twml's search never ends on it).
 */
bpr_status bpr_isotonic_calibration(const bpr_tensor* input, const bpr_tensor* xs,
                                    const bpr_tensor* ys, void* output, char* msg,
                                    size_t msg_cap);

/*
 * MDL, PercentileDiscretizer (bin_indices == 0) and
 * PercentileDiscretizerBinIndices (bin_indices != 0): keys int64 and vals
 * (float or double) of one shape [N...]; bin_ids int64 [M], bin_vals [M] of
 * vals' dtype, feature_offsets int64 [F]. Writes N keys and N values (vals'
 * dtype). `op` names the op in messages (NUL-terminated).
 */
bpr_status bpr_mdl(const char* op, int32_t bin_indices, const bpr_tensor* keys,
                   const bpr_tensor* vals, const bpr_tensor* bin_ids, const bpr_tensor* bin_vals,
                   const bpr_tensor* feature_offsets, int64_t* out_keys, void* out_vals, char* msg,
                   size_t msg_cap);

/* PercentileDiscretizerV2's id -> feature index map (feature_ids[i] ->
 * feature_indices[i], a repeated id keeps its last index), built once per
 * kernel from the attrs or per change of the inputs. Owned by the caller;
 * freed with bpr_percentile_index_free. Lengths that differ are
 * BPR_INVALID_ARGUMENT. `op` names the op in messages (NUL-terminated). */
typedef struct bpr_percentile_index bpr_percentile_index;
bpr_status bpr_percentile_index_new(const char* op, const int64_t* feature_ids, size_t num_ids,
                                    const int64_t* feature_indices, size_t num_indices,
                                    bpr_percentile_index** out, char* msg, size_t msg_cap);
void bpr_percentile_index_free(bpr_percentile_index* index); /* NULL is a no-op */

/*
 * PercentileDiscretizerV2 (and BprPercentileDiscretizer): input_ids int64
 * [N], input_vals [N] float or double; bin_ids int64 [M], bin_vals [M] of
 * input_vals' dtype, feature_offsets int64 [F]. Writes N keys and N values
 * (input_vals' dtype). Everything is checked before anything is written.
 */
bpr_status bpr_percentile_discretize(const char* op, const bpr_percentile_index* index,
                                     const bpr_tensor* input_ids, const bpr_tensor* input_vals,
                                     const bpr_tensor* bin_ids, const bpr_tensor* bin_vals,
                                     const bpr_tensor* feature_offsets, int64_t output_bits,
                                     int64_t* out_keys, void* out_vals, const bpr_runner* runner,
                                     char* msg, size_t msg_cap);

/* ------------------------------------------------------------------------ *
 * twml's model ops (bpr-model): sparse matmul, norms, partitioning.
 * ------------------------------------------------------------------------ */

/* Dims of one input, borrowed for the call. */
typedef struct bpr_sparse_dims {
  const int64_t* dims; /* `rank` entries; may be NULL when rank == 0 */
  size_t rank;
} bpr_sparse_dims;

/* Element types of BinarySparseTensorDenseMatMul's B and product (twml registers
 * these five; complex values are (real, imaginary) pairs as TensorFlow lays them out). */
typedef int32_t bpr_sparse_elem;
#define BPR_SPARSE_FLOAT 1
#define BPR_SPARSE_DOUBLE 2
#define BPR_SPARSE_INT32 3
#define BPR_SPARSE_COMPLEX64 4
#define BPR_SPARSE_COMPLEX128 5

/* The inputs of one BinarySparseTensorDenseMatMul call. */
typedef struct bpr_binary_matmul_args {
  bpr_sparse_dims a_indices_dims;
  const void* a_indices;   /* int64 or int32 [nnz, 2], row-major */
  int32_t a_indices_int64; /* 1: int64, 0: int32 */
  bpr_sparse_dims a_values_dims; /* the values are not read: A's values count as 1 */
  bpr_sparse_dims a_shape_dims;
  const int64_t* a_shape; /* a_shape_len entries */
  size_t a_shape_len;
  bpr_sparse_dims b_dims;
  const void* b; /* elem, row-major */
  bpr_sparse_elem elem;
  int32_t adjoint_a;
  int32_t adjoint_b;
} bpr_binary_matmul_args;

/* BinarySparseTensorDenseMatMul: checks the shapes and writes the product's dims
 * to out_dims[0..2]. Reads no data but a_shape's. */
bpr_status bpr_binary_matmul_shape(const bpr_binary_matmul_args* args, int64_t* out_dims, char* msg,
                                   size_t msg_cap);
/* out (out_len elements of args->elem, the product's dims from _shape) = A * B with A's
 * values taken as 1. Every index of A is checked before `out` is written. */
bpr_status bpr_binary_matmul(const bpr_binary_matmul_args* args, void* out, size_t out_len, char* msg,
                             size_t msg_cap);

/* SparseMaxNormInference: normalized (as many floats as values) from max_values,
 * indices (int64) and values (float). */
bpr_status bpr_sparse_max_norm_inference(const bpr_tensor* max_values, const bpr_tensor* indices,
                                         const bpr_tensor* values, float epsilon, float* normalized,
                                         char* msg, size_t msg_cap);
/* SparseMaxNormTraining: also updated_max_values (as many floats as max_values). */
bpr_status bpr_sparse_max_norm_training(const bpr_tensor* max_values, const bpr_tensor* indices,
                                        const bpr_tensor* values, float epsilon,
                                        float* updated_max_values, float* normalized, char* msg,
                                        size_t msg_cap);
/* SparseMaxNorm on a reference variable: `max_values` (num_max_values floats) is
 * updated in place when is_training (a bool scalar) is true. The variable's
 * buffer may be the buffer of `values` too (a v1 graph can pass a variable's
 * value without a copy). Nothing is written when an input is bad. */
bpr_status bpr_sparse_max_norm(float* max_values, size_t num_max_values, const bpr_tensor* indices,
                               const bpr_tensor* values, const bpr_tensor* is_training,
                               float epsilon, float* normalized, char* msg, size_t msg_cap);

/* SparseBatchNorm's per-feature counts, which live with the kernel (as twml's
 * did): made with the input_size attr (negative: BPR_INVALID_ARGUMENT, *out
 * untouched), freed with bpr_sparse_batch_norm_free (NULL is a no-op). A state
 * is used by one call at a time (the kernel holds a lock). */
typedef struct bpr_sparse_batch_norm_state bpr_sparse_batch_norm_state;
bpr_status bpr_sparse_batch_norm_new(int64_t input_size, bpr_sparse_batch_norm_state** out, char* msg,
                                     size_t msg_cap);
void bpr_sparse_batch_norm_free(bpr_sparse_batch_norm_state* state);
/* SparseBatchNorm: means and variances (reference variables) updated in place when
 * is_training; they may share a buffer with each other or with `values`. */
bpr_status bpr_sparse_batch_norm(bpr_sparse_batch_norm_state* state, float* means, size_t num_means,
                                 float* variances, size_t num_variances, const bpr_tensor* indices,
                                 const bpr_tensor* values, const bpr_tensor* is_training,
                                 float epsilon, float* normalized, char* msg, size_t msg_cap);

/* PartitionSparseTensorMod's attrs, checked when the kernel is made: num_partitions
 * positive, output_types [int64, T] repeated num_partitions times (T: float or double). */
bpr_status bpr_partition_mod_check(int64_t num_partitions, const bpr_dtype* output_types,
                                   size_t num_output_types, bpr_dtype value_type, char* msg,
                                   size_t msg_cap);
/* counts[p] (num_partitions entries) = entries of partition p; checks the inputs. */
bpr_status bpr_partition_mod_counts(const bpr_tensor* indices, const bpr_tensor* values,
                                    int64_t num_partitions, int64_t* counts, char* msg,
                                    size_t msg_cap);
/* Fills partition p's out_indices[p] (int64 [counts[p], 2]) and out_values[p]
 * (values' type, [counts[p]]), counts as bpr_partition_mod_counts gave. */
bpr_status bpr_partition_mod(const bpr_tensor* indices, const bpr_tensor* values,
                             int64_t num_partitions, const int64_t* counts,
                             int64_t* const* out_indices, void* const* out_values, char* msg,
                             size_t msg_cap);

/* ------------------------------------------------------------------------ *
 * twml's model ops (bpr-model): the small tensor ops.
 * ------------------------------------------------------------------------ */

/* FeatureMask, Hashmap, CompressSampleIds, DecompressSampleIds,
 * FixedLengthTensor, FixedLengthTensorV2, VarLengthReader, FeatureExtractor,
 * GetSubstrings (cpp_shim/model_tensors.cc; math in model/src/tensors.rs).
 * One op per kernel, made from every non-type attr the op registers
 * (bpr_attr, as for bpr_request_op_new: int and list(int) kinds); a call gets
 * the op's inputs in registered order and allocates every output, in order,
 * through bpr_outputs (numbers and bools in place; strings by set_string)
 * after every input is checked. Safe to call from several threads at once on
 * one op (Hashmap's cached table is behind a lock). */
typedef struct bpr_model_tensors_op bpr_model_tensors_op;
bpr_status bpr_model_tensors_op_new(const char* op_name, const bpr_attr* attrs, size_t num_attrs,
                                    bpr_model_tensors_op** out, char* msg, size_t msg_cap);
void bpr_model_tensors_op_free(bpr_model_tensors_op* op); /* NULL is a no-op */
bpr_status bpr_model_tensors_compute(const bpr_model_tensors_op* op, const bpr_tensor* inputs,
                                     size_t num_inputs, const bpr_outputs* outputs, char* msg,
                                     size_t msg_cap);


#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* BPR_OPS_H_ */

// BlockFormatDatasetV2: twml's registered interface, as a tf.data source,
// and BlockFormatBatchDataset (ours): the same records already batched.
//
// Thin: the kernel checks the inputs, the dataset holds them, the iterator
// opens each file through TensorFlow's file system layer (any registered
// scheme: local, ram://, gs://, ...), inflates gzip with zlib, and feeds
// the bytes to the Rust block reader (bpr_block_reader_*), which does all the
// parsing. A checkpoint is (file index, block offset, records of that block
// already delivered): restoring re-reads at most one block.
//
// Errors: each is returned once and the iterator moves on, as
// TFRecordDataset's does, so `ignore_errors()` skips a damaged file and ends.
// The reader cannot resynchronise inside a damaged file (twml's marker scan
// lost records silently), so a damaged stream, a failed read or a file that
// cannot be opened skips the rest of that file; a record that is not a
// DataRecord skips that record only. The batched source keeps the records it
// had gathered when the error came: the next call completes that batch, so
// `.ignore_errors()` on it gives the batches of the good records, as
// `.ignore_errors().batch()` does on the record dataset (issue 36).
//
// Why a batched source: one record per element pays tf.data's per-element
// cost (GetNext through the pipeline, a scalar string tensor that `batch`
// then copies) for every record, which was most of the time of block files ->
// dense features (issue 27's profile). BlockFormatBatchDataset gives exactly
// what `.batch(batch_size, drop_remainder)` over BlockFormatDatasetV2 gives,
// one element per batch, from the same iterator code.
//
// BlockFormatFeatureDataset (ours, issue 38): the batched source's batches
// decoded in the same op, one pass per record: the records of a batch are
// copied from the reader's buffer into one byte arena (no tstring each, no
// DataRecord check walk), then Rust's DecodeDataRecord and the getters a
// `plan` names (bpr_block_features_run, the getter ops' own code) write the
// element's tensors. A record that is not a DataRecord is found by the
// decode; the error names it (file, byte offset) and only it is dropped:
// the other records stay in the batch in progress, as above.

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bpr_ops.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/dataset.h"
#include "tensorflow/core/framework/model.h"
#include "tensorflow/core/framework/op_def.pb.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/partial_tensor_shape.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
// TensorFlow's own zlib (its headers ship with it; libtensorflow_framework
// exports inflate), not the system's: one zlib in the process.
#include "external/zlib/zlib.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/mutex.h"

namespace bpr_ops {
namespace {

using ::tensorflow::data::DatasetBase;
using ::tensorflow::data::DatasetContext;
using ::tensorflow::data::DatasetIterator;
using ::tensorflow::DataTypeVector;
using ::tensorflow::data::IteratorBase;
using ::tensorflow::data::IteratorContext;
using ::tensorflow::data::IteratorStateReader;
using ::tensorflow::data::IteratorStateWriter;
using ::tensorflow::OpKernelContext;
using ::tensorflow::PartialTensorShape;
using ::tensorflow::data::SerializationContext;
using ::tensorflow::Tensor;
using ::tensorflow::tstring;
namespace errors = ::tensorflow::errors;
namespace shape_inference = ::tensorflow::shape_inference;

constexpr char kOp[] = "BlockFormatDatasetV2";
constexpr char kBatchOp[] = "BlockFormatBatchDataset";
constexpr char kFeatureOp[] = "BlockFormatFeatureDataset";
// TensorFlow's own default for gzip buffers (TFRecordDataset's): used when
// buffer_size is 0, which twml accepted and then read nothing with.
constexpr int64_t kDefaultGzipBuffer = 256 << 10;
constexpr char kFileIndex[] = "current_file_index";
constexpr char kBlockOffset[] = "block_offset";
constexpr char kRecordIndex[] = "record_index";
// The batched source's records gathered before an error (a batch in progress).
constexpr char kPending[] = "pending_records";
// The feature source's pending records' positions ([n, 4] int64: file index,
// block offset, index in the block, stream offset), for their errors.
constexpr char kPendingWhere[] = "pending_where";

REGISTER_OP("BlockFormatDatasetV2")
    .Input("filenames: string")
    .Input("compression_type: string")
    .Input("buffer_size: int64")
    .Output("handle: variant")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRankAtMost(c->input(0), 1, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 0, &unused));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 0, &unused));
      return shape_inference::ScalarShape(c);
    })
    .Doc(R"doc(
A dataset of the records (serialized DataRecords) of Elephant-Bird block files,
plain or gzip, read in order, one file at a time.

filenames: a scalar or vector of file names (any scheme TensorFlow reads).
compression_type: "" (plain), "gz" (gzip) or "auto" (gzip for names ending in
  ".gz", plain otherwise).
buffer_size: gzip input buffer bytes (0: 256 KiB); unused for plain files.
)doc");

REGISTER_OP("BlockFormatBatchDataset")
    .Input("filenames: string")
    .Input("compression_type: string")
    .Input("buffer_size: int64")
    .Input("batch_size: int64")
    .Input("drop_remainder: bool")
    .Output("handle: variant")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRankAtMost(c->input(0), 1, &unused));
      for (int i = 1; i < 5; ++i) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      return shape_inference::ScalarShape(c);
    })
    .Doc(R"doc(
BlockFormatDatasetV2's records, batched: each element is a string vector of
batch_size records (the last may hold fewer, unless drop_remainder), exactly
the elements of BlockFormatDatasetV2(...).batch(batch_size, drop_remainder),
read without a tf.data element per record. Batches run across file ends, and
across errors: the records read before an error stay in the batch in
progress, which the next call completes.

batch_size: records per element, >= 1.
drop_remainder: drop a last batch of fewer than batch_size records.
)doc");

REGISTER_OP("BlockFormatFeatureDataset")
    .Input("filenames: string")
    .Input("compression_type: string")
    .Input("buffer_size: int64")
    .Input("batch_size: int64")
    .Input("drop_remainder: bool")
    .Input("plan: string")
    .Output("handle: variant")
    .Attr("output_types: list(type) >= 1")
    .Attr("output_shapes: list(shape) >= 1")
    .SetIsStateful()
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRankAtMost(c->input(0), 1, &unused));
      for (int i = 1; i < 6; ++i) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      return shape_inference::ScalarShape(c);
    })
    .Doc(R"doc(
BlockFormatBatchDataset's batches, decoded in the same op: each element is
the outputs of the getter ops `plan` names (bpr_ops.data builds it from a
BatchPredictionRequestReader, labels and weights) run on DecodeDataRecord of
the batch's records, each record parsed once from the file's bytes.

plan: the DecodeDataRecord op and the getters, one a line (see the header's
  bpr_block_features_new).
output_types, output_shapes: the getters' outputs, in plan order.
)doc");

// "", "gz" or the name's compression under "auto". Any other value was
// refused when the dataset was made.
bool IsGzip(const std::string& compression, const std::string& filename) {
  if (compression == "gz") return true;
  if (compression != "auto") return false;
  const auto slash = filename.find_last_of('/');
  const std::string base = slash == std::string::npos ? filename : filename.substr(slash + 1);
  const auto dot = base.find_last_of('.');
  return dot != std::string::npos && base.substr(dot + 1) == "gz";
}

// A gzip file's decompressed bytes, member after member. Ours rather than
// TensorFlow's ZlibInputStream, which takes the end of its input for the end
// of the data: a gzip stream cut inside its header, its trailer or where the
// data so far ends with a whole block read as a shorter file, with no error
// (issue 36). Here the file must end between members.
class GzipStream {
 public:
  // zlib counts input in 32-bit uInts: the buffer is at most 1 GiB.
  GzipStream(::tensorflow::RandomAccessFile* file, size_t buffer)
      : file_(file), in_(std::min<size_t>(buffer, size_t{1} << 30)) {
    std::memset(&z_, 0, sizeof(z_));
    init_ = inflateInit2(&z_, 16 + MAX_WBITS);  // 16: gzip framing
  }
  ~GzipStream() {
    if (init_ == Z_OK) inflateEnd(&z_);
  }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  // Up to `cap` (> 0) decompressed bytes into `buf`; *n = 0 only at the end
  // of the file, after a complete member.
  absl::Status Read(uint8_t* buf, size_t cap, size_t* n) {
    *n = 0;
    if (init_ != Z_OK) return errors::Internal("zlib's inflateInit2 failed (", init_, ")");
    z_.next_out = buf;
    z_.avail_out = static_cast<uInt>(std::min<size_t>(cap, 1u << 30));
    const uInt want = z_.avail_out;
    while (z_.avail_out == want) {
      if (z_.avail_in == 0) {
        if (eof_) {
          if (in_member_) {
            return errors::DataLoss("the gzip stream is cut short: the file ends inside a gzip member ",
                                    "(after ", read_, " compressed bytes, ", out_,
                                    " decompressed; a gzip member ends with its CRC and size)");
          }
          break;
        }
        absl::string_view got;
        const absl::Status s =
            file_->Read(read_, in_.size(), &got, reinterpret_cast<char*>(in_.data()));
        if (!s.ok() && !errors::IsOutOfRange(s)) return s;
        if (!got.empty() && got.data() != reinterpret_cast<const char*>(in_.data())) {
          std::memmove(in_.data(), got.data(), got.size());
        }
        read_ += got.size();
        eof_ = got.empty() || errors::IsOutOfRange(s);
        z_.next_in = in_.data();
        z_.avail_in = static_cast<uInt>(got.size());
        continue;
      }
      in_member_ = true;
      const int r = inflate(&z_, Z_NO_FLUSH);
      if (r == Z_STREAM_END) {
        // The member's CRC and size checked out (zlib checks the trailer);
        // another may follow (concatenated gzip).
        in_member_ = false;
        inflateReset(&z_);
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return errors::DataLoss("the gzip stream is damaged after ", read_ - z_.avail_in,
                                " compressed bytes (", out_ + (want - z_.avail_out),
                                " decompressed): zlib: ", z_.msg != nullptr ? z_.msg : "error",
                                " (", r, ")");
      }
    }
    *n = want - z_.avail_out;
    out_ += *n;
    return absl::OkStatus();
  }

  // Passes over `n` decompressed bytes; fewer only at the end of the file.
  absl::Status Skip(uint64_t n, uint64_t* skipped) {
    std::vector<uint8_t> scratch(std::min<uint64_t>(n, 64 << 10));
    *skipped = 0;
    while (*skipped < n) {
      size_t got = 0;
      TF_RETURN_IF_ERROR(Read(scratch.data(), std::min<uint64_t>(n - *skipped, scratch.size()), &got));
      if (got == 0) break;
      *skipped += got;
    }
    return absl::OkStatus();
  }

 private:
  ::tensorflow::RandomAccessFile* file_;
  std::vector<uint8_t> in_;
  z_stream z_;
  int init_ = Z_OK;
  uint64_t read_ = 0;  // compressed bytes read from the file
  uint64_t out_ = 0;   // decompressed bytes given out
  bool eof_ = false;
  bool in_member_ = false;  // a member begun and its trailer not yet checked
};

class Dataset : public DatasetBase {
 public:
  // batch_size 0: one record per element (BlockFormatDatasetV2); else
  // BlockFormatBatchDataset's batches.
  Dataset(OpKernelContext* ctx, std::vector<tstring> filenames, tstring compression,
          int64_t buffer_size, int64_t batch_size, bool drop_remainder)
      : DatasetBase(DatasetContext(ctx)),
        filenames_(std::move(filenames)),
        compression_(std::move(compression)),
        buffer_size_(buffer_size),
        batch_size_(batch_size),
        drop_remainder_(drop_remainder),
        dtypes_({::tensorflow::DT_STRING}),
        shapes_({batch_size == 0     ? PartialTensorShape({})
                 : drop_remainder ? PartialTensorShape({batch_size})
                                  : PartialTensorShape({-1})}) {}

  // BlockFormatFeatureDataset: `features` (owned here) decodes each batch.
  Dataset(OpKernelContext* ctx, std::vector<tstring> filenames, tstring compression,
          int64_t buffer_size, int64_t batch_size, bool drop_remainder, tstring plan,
          bpr_block_features* features, DataTypeVector dtypes,
          std::vector<PartialTensorShape> shapes)
      : DatasetBase(DatasetContext(ctx)),
        filenames_(std::move(filenames)),
        compression_(std::move(compression)),
        buffer_size_(buffer_size),
        batch_size_(batch_size),
        drop_remainder_(drop_remainder),
        plan_(std::move(plan)),
        features_(features),
        dtypes_(std::move(dtypes)),
        shapes_(std::move(shapes)) {}

  ~Dataset() override { bpr_block_features_free(features_); }

  const char* op() const {
    return features_ != nullptr ? kFeatureOp : batch_size_ == 0 ? kOp : kBatchOp;
  }

  std::unique_ptr<IteratorBase> MakeIteratorInternal(const std::string& prefix) const override;

  const DataTypeVector& output_dtypes() const override { return dtypes_; }

  const std::vector<PartialTensorShape>& output_shapes() const override { return shapes_; }

  std::string DebugString() const override { return absl::StrCat(op(), "::Dataset"); }

  int64_t CardinalityInternal(::tensorflow::data::CardinalityOptions) const override {
    return ::tensorflow::data::kUnknownCardinality;
  }

  absl::Status InputDatasets(std::vector<const DatasetBase*>*) const override {
    return absl::OkStatus();
  }

  // Like TFRecordDataset: the files are named in the graph, nothing else is
  // captured, so the dataset can be serialized (tf.data service, checkpoints).
  absl::Status CheckExternalState() const override { return absl::OkStatus(); }

 protected:
  absl::Status AsGraphDefInternal(SerializationContext* ctx, DatasetGraphDefBuilder* b,
                                  ::tensorflow::Node** output) const override {
    ::tensorflow::Node* filenames = nullptr;
    ::tensorflow::Node* compression = nullptr;
    ::tensorflow::Node* buffer_size = nullptr;
    TF_RETURN_IF_ERROR(b->AddVector(filenames_, &filenames));
    TF_RETURN_IF_ERROR(b->AddScalar(compression_, &compression));
    TF_RETURN_IF_ERROR(b->AddScalar(buffer_size_, &buffer_size));
    if (batch_size_ == 0) return b->AddDataset(this, {filenames, compression, buffer_size}, output);
    ::tensorflow::Node* batch_size = nullptr;
    ::tensorflow::Node* drop_remainder = nullptr;
    TF_RETURN_IF_ERROR(b->AddScalar(batch_size_, &batch_size));
    TF_RETURN_IF_ERROR(b->AddScalar(drop_remainder_, &drop_remainder));
    if (features_ == nullptr) {
      return b->AddDataset(this, {filenames, compression, buffer_size, batch_size, drop_remainder},
                           output);
    }
    ::tensorflow::Node* plan = nullptr;
    TF_RETURN_IF_ERROR(b->AddScalar(plan_, &plan));
    ::tensorflow::AttrValue types;
    ::tensorflow::AttrValue shapes;
    b->BuildAttrValue(dtypes_, &types);
    b->BuildAttrValue(shapes_, &shapes);
    return b->AddDataset(this,
                         {filenames, compression, buffer_size, batch_size, drop_remainder, plan},
                         {{"output_types", types}, {"output_shapes", shapes}}, output);
  }

 private:
  class Iterator;
  const std::vector<tstring> filenames_;
  const tstring compression_;
  const int64_t buffer_size_;
  const int64_t batch_size_;
  const bool drop_remainder_;
  const tstring plan_;
  bpr_block_features* const features_ = nullptr;
  const DataTypeVector dtypes_;
  const std::vector<PartialTensorShape> shapes_;
};

class Dataset::Iterator : public DatasetIterator<Dataset> {
 public:
  explicit Iterator(const Params& params) : DatasetIterator<Dataset>(params) {}

  ~Iterator() override { Close(); }

  bool SymbolicCheckpointCompatible() const override { return true; }

  absl::Status GetNextInternal(IteratorContext* ctx, std::vector<Tensor>* out_tensors,
                               bool* end_of_sequence) override {
    ::tensorflow::mutex_lock l(mu_);
    const int64_t batch = dataset()->batch_size_;
    if (dataset()->features_ != nullptr) return GetNextFeatures(ctx, out_tensors, end_of_sequence);
    if (batch == 0) {
      Tensor record(ctx->allocator({}), ::tensorflow::DT_STRING, ::tensorflow::TensorShape({}));
      int64_t n = 0;
      TF_RETURN_IF_ERROR(Fill(ctx, 1, &n, [&](const char* data, size_t len) {
        record.scalar<tstring>()().assign(data, len);
      }));
      *end_of_sequence = n == 0;
      if (n == 1) out_tensors->push_back(std::move(record));
      return absl::OkStatus();
    }
    // The records gather in pending_ and the tensor is made for the number
    // read, as `.batch()` does: a batch_size far beyond the files' records
    // costs nothing. An error part way through keeps them in pending_ (and
    // in a checkpoint): the next call completes the batch, so no good record
    // is lost to a damaged one.
    int64_t read = 0;
    TF_RETURN_IF_ERROR(Fill(ctx, batch - static_cast<int64_t>(pending_.size()), &read,
                            [&](const char* data, size_t len) { pending_.emplace_back(data, len); }));
    const int64_t n = static_cast<int64_t>(pending_.size());
    if (n == 0 || (n < batch && dataset()->drop_remainder_)) {
      pending_.clear();
      *end_of_sequence = true;
      return absl::OkStatus();
    }
    Tensor records(ctx->allocator({}), ::tensorflow::DT_STRING, ::tensorflow::TensorShape({n}));
    auto out = records.flat<tstring>();
    for (int64_t i = 0; i < n; ++i) out(i) = std::move(pending_[i]);
    pending_.clear();
    *end_of_sequence = false;
    out_tensors->push_back(std::move(records));
    return absl::OkStatus();
  }

 protected:
  std::shared_ptr<::tensorflow::data::model::Node> CreateNode(
      IteratorContext*, ::tensorflow::data::model::Node::Args args) const override {
    return ::tensorflow::data::model::MakeSourceNode(std::move(args));
  }

  absl::Status SaveInternal(SerializationContext*, IteratorStateWriter* writer) override {
    ::tensorflow::mutex_lock l(mu_);
    TF_RETURN_IF_ERROR(
        writer->WriteScalar(prefix(), kFileIndex, static_cast<int64_t>(file_index_)));
    if (reader_ != nullptr) {
      TF_RETURN_IF_ERROR(
          writer->WriteScalar(prefix(), kBlockOffset, static_cast<int64_t>(block_offset_)));
      TF_RETURN_IF_ERROR(
          writer->WriteScalar(prefix(), kRecordIndex, static_cast<int64_t>(record_index_)));
    }
    if (!where_.empty()) {
      const int64_t n = static_cast<int64_t>(where_.size());
      Tensor pending(::tensorflow::DT_STRING, ::tensorflow::TensorShape({n}));
      Tensor where(::tensorflow::DT_INT64, ::tensorflow::TensorShape({n, 4}));
      auto flat = pending.flat<tstring>();
      auto w = where.matrix<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        const bpr_bytes v = View(i);
        flat(i).assign(reinterpret_cast<const char*>(v.data), v.len);
        w(i, 0) = where_[i].file;
        w(i, 1) = where_[i].block;
        w(i, 2) = where_[i].index;
        w(i, 3) = where_[i].offset;
      }
      TF_RETURN_IF_ERROR(writer->WriteTensor(prefix(), kPending, pending));
      TF_RETURN_IF_ERROR(writer->WriteTensor(prefix(), kPendingWhere, where));
    }
    if (!pending_.empty()) {
      Tensor pending(::tensorflow::DT_STRING,
                     ::tensorflow::TensorShape({static_cast<int64_t>(pending_.size())}));
      auto flat = pending.flat<tstring>();
      for (size_t i = 0; i < pending_.size(); ++i) flat(i) = pending_[i];
      TF_RETURN_IF_ERROR(writer->WriteTensor(prefix(), kPending, pending));
    }
    return absl::OkStatus();
  }

  absl::Status RestoreInternal(IteratorContext* ctx, IteratorStateReader* reader) override {
    ::tensorflow::mutex_lock l(mu_);
    Close();
    pending_.clear();
    ClearPending();
    if (dataset()->features_ != nullptr && reader->Contains(prefix(), kPending)) {
      Tensor pending, where;
      TF_RETURN_IF_ERROR(reader->ReadTensor(prefix(), kPending, &pending));
      TF_RETURN_IF_ERROR(reader->ReadTensor(prefix(), kPendingWhere, &where));
      if (pending.dtype() != ::tensorflow::DT_STRING || pending.dims() != 1 ||
          pending.NumElements() >= dataset()->batch_size_ || where.dtype() != ::tensorflow::DT_INT64 ||
          where.dims() != 2 || where.dim_size(0) != pending.NumElements() || where.dim_size(1) != 4) {
        return errors::InvalidArgument(dataset()->op(), ": the checkpoint's pending records (",
                                       pending.DebugString(), ", ", where.DebugString(),
                                       ") do not fit a batch of ", dataset()->batch_size_);
      }
      const auto flat = pending.flat<tstring>();
      const auto w = where.matrix<int64_t>();
      for (int64_t i = 0; i < flat.size(); ++i) {
        if (w(i, 0) < 0 || static_cast<uint64_t>(w(i, 0)) >= dataset()->filenames_.size()) {
          return errors::InvalidArgument(dataset()->op(), ": the checkpoint's pending record ", i,
                                         " names file ", w(i, 0), " of ",
                                         dataset()->filenames_.size());
        }
        starts_.push_back(arena_.size());
        arena_.append(flat(i).data(), flat(i).size());
        where_.push_back({w(i, 0), w(i, 1), w(i, 2), w(i, 3)});
      }
    } else if (reader->Contains(prefix(), kPending)) {
      Tensor pending;
      TF_RETURN_IF_ERROR(reader->ReadTensor(prefix(), kPending, &pending));
      if (pending.dtype() != ::tensorflow::DT_STRING || pending.dims() != 1 ||
          pending.NumElements() >= std::max<int64_t>(dataset()->batch_size_, 1)) {
        return errors::InvalidArgument(dataset()->op(), ": the checkpoint's pending records (",
                                       pending.DebugString(),
                                       ") do not fit a batch of ", dataset()->batch_size_);
      }
      const auto flat = pending.flat<tstring>();
      for (int64_t i = 0; i < flat.size(); ++i) pending_.push_back(flat(i));
    }
    int64_t file_index = 0;
    TF_RETURN_IF_ERROR(reader->ReadScalar(prefix(), kFileIndex, &file_index));
    if (file_index < 0 || static_cast<uint64_t>(file_index) > dataset()->filenames_.size()) {
      return errors::InvalidArgument(dataset()->op(), ": the checkpoint's file index ", file_index,
                                     " is not one of the dataset's ",
                                     dataset()->filenames_.size(), " files");
    }
    file_index_ = static_cast<size_t>(file_index);
    if (reader->Contains(prefix(), kBlockOffset)) {
      int64_t block = 0, index = 0;
      TF_RETURN_IF_ERROR(reader->ReadScalar(prefix(), kBlockOffset, &block));
      TF_RETURN_IF_ERROR(reader->ReadScalar(prefix(), kRecordIndex, &index));
      if (block < 0 || index < 0 || file_index_ >= dataset()->filenames_.size()) {
        return errors::InvalidArgument(dataset()->op(), ": a bad checkpoint position (file ",
                                       file_index,
                                       ", block at byte ", block, ", record ", index, ")");
      }
      TF_RETURN_IF_ERROR(Open(ctx->env(), block, index));
    }
    return absl::OkStatus();
  }

 private:
  // Reads up to `want` records, across file ends, giving each to
  // sink(data, len) (the bytes are valid only during the call); *n is how
  // many (fewer only at the end of the last file or on an error). After an
  // error the position is past what failed (the file, or the bad record), so
  // the next call goes on from there.
  template <typename Sink>
  absl::Status Fill(IteratorContext* ctx, int64_t want, int64_t* n, Sink sink)
      TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    *n = 0;
    while (*n < want) {
      if (reader_ != nullptr) {
        int32_t has = 0;
        bpr_bytes record{nullptr, 0};
        uint64_t block = 0, index = 0;
        char msg[1024];
        const bpr_status s =
            bpr_block_reader_next(reader_, &has, &record, &block, &index, msg, sizeof(msg));
        if (s != BPR_OK) {
          if (s == BPR_INVALID_ARGUMENT && has) {
            // A record that is not a DataRecord, in a sound block.
            block_offset_ = block;
            record_index_ = index + 1;
            return ToStatus(s, msg);
          }
          const absl::Status e = s == BPR_HOST_READ_FAILED ? ReadFailure() : ToStatus(s, msg);
          Close();
          ++file_index_;
          return e;
        }
        if (has) {
          block_offset_ = block;
          record_index_ = index + 1;
          sink(reinterpret_cast<const char*>(record.data), record.len);
          ++*n;
          continue;
        }
        Close();
        ++file_index_;
      }
      if (file_index_ >= dataset()->filenames_.size()) return absl::OkStatus();
      const absl::Status opened = Open(ctx->env(), 0, 0);
      if (!opened.ok()) {
        // Unlike TFRecordDataset, which returns a missing file's error
        // forever (ignore_errors() never ends), go on with the next file.
        ++file_index_;
        return opened;
      }
    }
    return absl::OkStatus();
  }

  absl::Status ToStatus(bpr_status s, const char* msg) const {
    switch (s) {
      case BPR_OK:
        return absl::OkStatus();
      case BPR_INVALID_ARGUMENT:
        return errors::InvalidArgument(dataset()->op(), ": ", msg);
      default:
        return errors::Internal(dataset()->op(), ": ", msg);
    }
  }

  // The read callback: plain files straight from the RandomAccessFile into
  // Rust's buffer, gzip inflated into it.
  static int64_t Read(void* context, uint8_t* buf, size_t cap) {
    auto* it = static_cast<Iterator*>(context);
    absl::Status s;
    size_t n = 0;
    if (it->gz_ != nullptr) {
      s = cap == 0 ? absl::OkStatus() : it->gz_->Read(buf, cap, &n);
    } else {
      absl::string_view result;
      s = it->file_->Read(it->file_offset_, cap, &result, reinterpret_cast<char*>(buf));
      n = result.size();
      if (n > 0 && result.data() != reinterpret_cast<char*>(buf)) {
        std::memmove(buf, result.data(), n);
      }
      it->file_offset_ += n;
    }
    if (!s.ok() && !errors::IsOutOfRange(s)) {
      it->read_status_ = s;
      return -1;
    }
    return static_cast<int64_t>(n);
  }

  // Opens file `file_index_` positioned at the block at `block` (a stream
  // offset), `index` records of it already delivered.
  absl::Status Open(::tensorflow::Env* env, int64_t block, int64_t index)
      TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const tstring& name = dataset()->filenames_[file_index_];
    const std::string filename(name.data(), name.size());
    absl::Status s = env->NewRandomAccessFile(filename, &file_);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(dataset()->op(), ": cannot open block file ",
                                                 filename,
                                                 " (file ", file_index_, " of ",
                                                 dataset()->filenames_.size(), "): ", s.message()));
    }
    gzip_ = IsGzip(std::string(dataset()->compression_), filename);
    file_offset_ = 0;
    if (gzip_) {
      const int64_t buffer = dataset()->buffer_size_ > 0 ? dataset()->buffer_size_ : kDefaultGzipBuffer;
      gz_ = std::make_unique<GzipStream>(file_.get(), static_cast<size_t>(buffer));
      if (block > 0) {
        uint64_t skipped = 0;
        s = gz_->Skip(static_cast<uint64_t>(block), &skipped);
        if (s.ok() && skipped < static_cast<uint64_t>(block)) {
          s = errors::OutOfRange("the file decompresses to ", skipped, " bytes");
        }
        if (!s.ok()) {
          Close();
          return absl::Status(s.code(), absl::StrCat(dataset()->op(), ": block file ", filename,
                                                     ": cannot reach the checkpoint's block at "
                                                     "decompressed byte ",
                                                     block, ": ", s.message()));
        }
      }
    } else {
      file_offset_ = static_cast<uint64_t>(block);
    }
    read_status_ = absl::OkStatus();
    char msg[1024];
    const bpr_bytes bname{reinterpret_cast<const uint8_t*>(filename.data()), filename.size()};
    bpr_block_reader* reader = nullptr;
    // The feature source checks no record here: its decode walks each once
    // and names the first that is not a DataRecord.
    const int32_t check = dataset()->features_ == nullptr ? 1 : 0;
    const bpr_status st = bpr_block_reader_new(bname, &Iterator::Read, this, block, index, check,
                                               &reader, msg, sizeof(msg));
    if (st != BPR_OK) {
      Close();
      return ToStatus(st, msg);
    }
    reader_ = reader;
    block_offset_ = static_cast<uint64_t>(block);
    record_index_ = static_cast<uint64_t>(index);
    return absl::OkStatus();
  }

  // Where a pending record of the feature source came from.
  struct Where {
    int64_t file, block, index, offset;
  };

  // The outputs bpr_block_features_run asks for, as the element's tensors.
  struct FeatureOutputs {
    ::tensorflow::Allocator* allocator;
    const DataTypeVector* dtypes;
    std::vector<Tensor> tensors;
    std::vector<bool> made;
    absl::Status status;
  };

  static int32_t AllocFeature(void* context, int32_t index, const int64_t* dims, size_t rank,
                              void** data) noexcept {
    auto* o = static_cast<FeatureOutputs*>(context);
    if (index < 0 || static_cast<size_t>(index) >= o->tensors.size() || o->made[index]) {
      o->status = errors::Internal(kFeatureOp, ": the plan's getters asked for output ", index,
                                   " of ", o->tensors.size(), " twice or out of range");
      return 1;
    }
    ::tensorflow::TensorShape shape;
    o->status = ::tensorflow::TensorShape::BuildTensorShape(absl::Span<const int64_t>(dims, rank),
                                                            &shape);
    if (!o->status.ok()) return 1;
    o->tensors[index] = Tensor(o->allocator, (*o->dtypes)[index], shape);
    if (!o->tensors[index].IsInitialized()) {
      o->status = errors::ResourceExhausted(kFeatureOp, ": cannot allocate output ", index, " of shape ",
                                            shape.DebugString());
      return 1;
    }
    o->made[index] = true;
    *data = o->tensors[index].data();
    return 0;
  }

  static void SetFeatureString(void* strings, int64_t element, const uint8_t* bytes,
                               size_t len) noexcept {
    static_cast<tstring*>(strings)[element].assign(reinterpret_cast<const char*>(bytes), len);
  }

  bpr_bytes View(size_t i) const TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const size_t end = i + 1 < starts_.size() ? starts_[i + 1] : arena_.size();
    return bpr_bytes{reinterpret_cast<const uint8_t*>(arena_.data()) + starts_[i], end - starts_[i]};
  }

  void ClearPending() TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    arena_.clear();
    starts_.clear();
    where_.clear();
  }

  // Drops pending record `bad` (not a DataRecord), keeping the others in order.
  void ErasePending(size_t bad) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::string arena;
    std::vector<size_t> starts;
    for (size_t i = 0; i < starts_.size(); ++i) {
      if (i == bad) continue;
      const bpr_bytes v = View(i);
      starts.push_back(arena.size());
      arena.append(reinterpret_cast<const char*>(v.data), v.len);
    }
    arena_ = std::move(arena);
    starts_ = std::move(starts);
    where_.erase(where_.begin() + static_cast<std::ptrdiff_t>(bad));
  }

  absl::Status GetNextFeatures(IteratorContext* ctx, std::vector<Tensor>* out_tensors,
                               bool* end_of_sequence) TF_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t batch = dataset()->batch_size_;
    int64_t read = 0;
    // As the batched source: records read before an error stay pending.
    TF_RETURN_IF_ERROR(Fill(ctx, batch - static_cast<int64_t>(where_.size()), &read,
                            [&](const char* data, size_t len) {
                              starts_.push_back(arena_.size());
                              arena_.append(data, len);
                              where_.push_back(
                                  {static_cast<int64_t>(file_index_),
                                   static_cast<int64_t>(block_offset_),
                                   static_cast<int64_t>(record_index_) - 1,
                                   static_cast<int64_t>(bpr_block_reader_offset(reader_) - len)});
                            }));
    const int64_t n = static_cast<int64_t>(where_.size());
    if (n == 0 || (n < batch && dataset()->drop_remainder_)) {
      ClearPending();
      *end_of_sequence = true;
      return absl::OkStatus();
    }
    std::vector<bpr_bytes> views(n);
    for (int64_t i = 0; i < n; ++i) views[i] = View(i);
    const size_t outputs = dataset()->dtypes_.size();
    FeatureOutputs o{ctx->allocator({}), &dataset()->dtypes_, std::vector<Tensor>(outputs),
                     std::vector<bool>(outputs, false), absl::OkStatus()};
    const bpr_outputs callbacks{&o, &Iterator::AllocFeature, &Iterator::SetFeatureString};
    int64_t bad = -1;
    char msg[2048];
    const bpr_status st = bpr_block_features_run(dataset()->features_, views.data(), views.size(),
                                                 &callbacks, &bad, msg, sizeof(msg));
    if (st == BPR_HOST_ALLOC_FAILED) {
      ClearPending();
      return o.status.ok() ? errors::Internal(kFeatureOp, ": output allocation failed") : o.status;
    }
    if (st != BPR_OK) {
      if (bad >= 0 && bad < n) {
        // Only that record is bad: the error names it, the rest of the batch
        // stays pending for the next call.
        const Where w = where_[bad];
        const tstring& name = dataset()->filenames_[w.file];
        const bpr_bytes bname{reinterpret_cast<const uint8_t*>(name.data()), name.size()};
        char check[2048];
        const bpr_status c =
            bpr_block_check_record(bname, views[bad], static_cast<uint64_t>(w.block),
                                   static_cast<uint64_t>(w.index), static_cast<uint64_t>(w.offset),
                                   check, sizeof(check));
        const absl::Status e = c == BPR_OK ? ToStatus(st, msg) : ToStatus(c, check);
        ErasePending(static_cast<size_t>(bad));
        return e;
      }
      // Not one record's fault (a getter refusing the batch): the batch is
      // dropped, so skipping the error goes on with the next one.
      ClearPending();
      return ToStatus(st, msg);
    }
    ClearPending();
    for (size_t i = 0; i < outputs; ++i) {
      if (!o.made[i]) {
        return errors::Internal(kFeatureOp, ": the plan's getters wrote no output ", i, " of ",
                                outputs);
      }
    }
    *end_of_sequence = false;
    for (auto& t : o.tensors) out_tensors->push_back(std::move(t));
    return absl::OkStatus();
  }

  void Close() TF_NO_THREAD_SAFETY_ANALYSIS {
    bpr_block_reader_free(reader_);
    reader_ = nullptr;
    gz_.reset();
    file_.reset();
  }

 public:
  // A read failure of the host: its status, naming the file and the position.
  absl::Status ReadFailure() const {
    const tstring& name = dataset()->filenames_[file_index_];
    return absl::Status(read_status_.code(),
                        absl::StrCat(dataset()->op(), ": reading block file ",
                                     std::string(name), " failed",
                                     gzip_ ? " (gzip)" : "", ": ", read_status_.message()));
  }

 private:
  ::tensorflow::mutex mu_;
  size_t file_index_ TF_GUARDED_BY(mu_) = 0;
  uint64_t block_offset_ TF_GUARDED_BY(mu_) = 0;
  uint64_t record_index_ TF_GUARDED_BY(mu_) = 0;
  bpr_block_reader* reader_ = nullptr;
  // A batch's records while it is read (kept for its capacity).
  std::vector<tstring> pending_ TF_GUARDED_BY(mu_);
  // The feature source's batch in progress: the records' bytes one after
  // another (kept for its capacity), where each starts, where each was read.
  std::string arena_ TF_GUARDED_BY(mu_);
  std::vector<size_t> starts_ TF_GUARDED_BY(mu_);
  std::vector<Where> where_ TF_GUARDED_BY(mu_);
  bool gzip_ = false;
  std::unique_ptr<::tensorflow::RandomAccessFile> file_;
  std::unique_ptr<GzipStream> gz_;
  uint64_t file_offset_ = 0;
  absl::Status read_status_;
};

std::unique_ptr<IteratorBase> Dataset::MakeIteratorInternal(const std::string& prefix) const {
  return std::make_unique<Iterator>(Iterator::Params{this, absl::StrCat(prefix, "::BlockFormat")});
}

// The getters a plan names must write exactly output_types: each getter's
// registered outputs (fixed types), in plan order. Rust writes the element
// types its getters register, so this is what keeps the buffers it is given
// of those types.
absl::Status CheckPlanOutputs(const std::string& op, const std::string& plan,
                              const DataTypeVector& dtypes) {
  DataTypeVector want;
  size_t line_start = 0;
  bool first = true;
  while (line_start < plan.size()) {
    size_t line_end = plan.find('\n', line_start);
    if (line_end == std::string::npos) line_end = plan.size();
    const std::string line = plan.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    if (line.empty()) continue;
    const std::string name = line.substr(0, line.find('\t'));
    const bool decode = first;
    first = false;
    if (decode) continue;
    const ::tensorflow::OpDef* def = nullptr;
    const absl::Status found = ::tensorflow::OpRegistry::Global()->LookUpOpDef(name, &def);
    if (!found.ok()) return errors::InvalidArgument(op, ": the plan names an unknown op ", name);
    for (const auto& arg : def->output_arg()) {
      if (arg.type() == ::tensorflow::DT_INVALID || !arg.number_attr().empty() ||
          !arg.type_list_attr().empty()) {
        return errors::InvalidArgument(op, ": the plan's getter ", name,
                                       " has an output of a variable type, which this source "
                                       "does not read");
      }
      want.push_back(arg.type());
    }
  }
  if (want != dtypes) {
    return errors::InvalidArgument(op, ": output_types (", ::tensorflow::DataTypeVectorString(dtypes),
                                   ") are not the plan's getters' outputs (",
                                   ::tensorflow::DataTypeVectorString(want), ")");
  }
  return absl::OkStatus();
}

class BlockFormatDatasetOp : public ::tensorflow::data::DatasetOpKernel {
 public:
  explicit BlockFormatDatasetOp(::tensorflow::OpKernelConstruction* ctx) : DatasetOpKernel(ctx) {
    if (type_string() == kFeatureOp) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("output_types", &dtypes_));
      OP_REQUIRES_OK(ctx, ctx->GetAttr("output_shapes", &shapes_));
    }
  }

  void MakeDataset(OpKernelContext* ctx, DatasetBase** output) override {
    const std::string& op = type_string();
    const bool features = op == kFeatureOp;
    const bool batched = op == kBatchOp || features;
    const Tensor* filenames_tensor = nullptr;
    OP_REQUIRES_OK(ctx, ctx->input("filenames", &filenames_tensor));
    OP_REQUIRES(ctx, filenames_tensor->dims() <= 1,
                errors::InvalidArgument(op, ": filenames must be a scalar or a vector, got shape ",
                                        filenames_tensor->shape().DebugString()));
    const auto flat = filenames_tensor->flat<tstring>();
    std::vector<tstring> filenames(flat.data(), flat.data() + flat.size());
    for (size_t i = 0; i < filenames.size(); ++i) {
      OP_REQUIRES(ctx, !filenames[i].empty(),
                  errors::InvalidArgument(op, ": filenames[", i, "] is empty"));
    }
    tstring compression;
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<tstring>(ctx, "compression_type",
                                                                       &compression));
    OP_REQUIRES(ctx, compression == "" || compression == "gz" || compression == "auto",
                errors::InvalidArgument(op, ": unknown compression_type '",
                                        std::string(compression),
                                        "': expected \"\" (plain), \"gz\" (gzip) or \"auto\" "
                                        "(gzip for names ending in .gz), as twml's op accepts"));
    int64_t buffer_size = 0;
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<int64_t>(ctx, "buffer_size",
                                                                       &buffer_size));
    OP_REQUIRES(ctx, buffer_size >= 0,
                errors::InvalidArgument(op, ": buffer_size must be >= 0 (0: the default of ",
                                        kDefaultGzipBuffer, " bytes), got ", buffer_size));
    int64_t batch_size = 0;
    bool drop_remainder = false;
    if (batched) {
      OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<int64_t>(ctx, "batch_size",
                                                                         &batch_size));
      OP_REQUIRES(ctx, batch_size >= 1,
                  errors::InvalidArgument(op, ": batch_size must be >= 1, got ", batch_size));
      OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<bool>(ctx, "drop_remainder",
                                                                      &drop_remainder));
    }
    if (!features) {
      *output = new Dataset(ctx, std::move(filenames), std::move(compression), buffer_size,
                            batch_size, drop_remainder);
      return;
    }
    tstring plan;
    OP_REQUIRES_OK(ctx, ::tensorflow::data::ParseScalarArgument<tstring>(ctx, "plan", &plan));
    DataTypeVector dtypes = dtypes_;
    std::vector<PartialTensorShape> shapes = shapes_;
    OP_REQUIRES(ctx, dtypes.size() == shapes.size(),
                errors::InvalidArgument(op, ": ", dtypes.size(), " output_types but ",
                                        shapes.size(), " output_shapes"));
    OP_REQUIRES_OK(ctx, CheckPlanOutputs(op, std::string(plan), dtypes));
    bpr_block_features* decoder = nullptr;
    char msg[2048];
    const bpr_bytes bplan{reinterpret_cast<const uint8_t*>(plan.data()), plan.size()};
    const bpr_status st = bpr_block_features_new(bplan, &decoder, msg, sizeof(msg));
    OP_REQUIRES(ctx, st == BPR_OK,
                st == BPR_INVALID_ARGUMENT ? errors::InvalidArgument(op, ": ", msg)
                                           : errors::Internal(op, ": ", msg));
    *output = new Dataset(ctx, std::move(filenames), std::move(compression), buffer_size,
                          batch_size, drop_remainder, std::move(plan), decoder, std::move(dtypes),
                          std::move(shapes));
  }

 private:
  DataTypeVector dtypes_;
  std::vector<PartialTensorShape> shapes_;
};

REGISTER_KERNEL_BUILDER(Name("BlockFormatDatasetV2").Device(::tensorflow::DEVICE_CPU),
                        BlockFormatDatasetOp);
REGISTER_KERNEL_BUILDER(Name("BlockFormatBatchDataset").Device(::tensorflow::DEVICE_CPU),
                        BlockFormatDatasetOp);
REGISTER_KERNEL_BUILDER(Name("BlockFormatFeatureDataset").Device(::tensorflow::DEVICE_CPU),
                        BlockFormatDatasetOp);

}  // namespace
}  // namespace bpr_ops

//! Writes a model's predictions as the bytes of a Thrift `BatchPredictionResponse`
//! (binary protocol, the bare struct without a message envelope), exactly as
//! twml's `BatchPredictionResponseWriter` and `BatchPredictionTensorResponseWriter`
//! define them, and reads such responses back.
//!
//! No TensorFlow, no build script, no `unsafe`: the TensorFlow op library
//! `bpr-ops` is a thin C ABI on top of this crate, and a Rust model server that
//! gets its predictions elsewhere (ONNX, Torch, its own code) uses it directly.
//!
//! - [`encode_continuous`]: keys `int64 [K]`, values `[B, K]` of f32, f64, f16 or
//!   bf16; record i is `DataRecord { continuousFeatures = {keys[j]: values[i, j]} }`.
//! - [`encode_tensor_response`]: keys `int64 [K]`, K tensors `[B, ...]`; record i
//!   is `DataRecord { tensors = {keys[j]: GeneralTensor(row i of values[j])} }`.
//! - The two-step [`continuous_size`] / [`write_continuous`] (and
//!   [`tensor_response_size`] / [`write_tensor_response`]) write into a buffer the
//!   caller owns, with no allocation; the `_with` variants shard large responses
//!   over a [`Runner`] (a host's thread pool).
//! - [`plan_continuous`] / [`plan_tensor_response`] validate once and return a
//!   plan that knows its exact size and then writes: for a host that allocates
//!   the output between the two steps (the TensorFlow kernel).
//! - [`TensorPlanCache`] keeps the framing of the tensor writer's last call and
//!   reuses it while the keys, dtypes and row shapes stay the same: for a host
//!   that calls the writer again and again (the TensorFlow kernel owns one).
//! - On x86-64, [`ContinuousPlan::write_avx2`] and [`TensorPlan::write_avx2`]
//!   write the same bytes with AVX2 instructions (continuous: 1.4-3x faster
//!   from 76 KB up; tensor: up to 1.2x, its stores are the limit). They are
//!   `#[target_feature]` functions: calling one needs `unsafe` unless the
//!   caller checked `is_x86_feature_detected!("avx2")` (this crate itself has
//!   no unsafe code).
//! - [`decode`] reads a response into plain Rust values.
//! - [`block`] reads and writes Elephant-Bird block files of records (twml's
//!   training data), streaming.
//! - [`feature_id`] turns a feature name into the id twml's `FeatureId` gives it,
//!   the key a consumer looks a prediction up with.
//!
//! Every bad input is an [`Error`] whose message names the input, its shape and
//! what was expected; nothing is dropped silently and nothing panics.
//!
//! ```
//! use bpr_protocol::{decode, encode_continuous, Data, Tensor};
//!
//! // Two examples, two prediction columns keyed by feature id.
//! let keys = Tensor::new(&[2], Data::I64(&[1001, 1002]))?;
//! let values = Tensor::new(&[2, 2], Data::F32(&[0.25, 0.75, 0.5, 0.5]))?;
//! let bytes = encode_continuous(&keys, &values)?;
//! assert_eq!(bytes.len(), 9 + 2 * (10 + 16 * 2));
//!
//! let records = decode::decode_response(&bytes)?;
//! assert_eq!(records[0].continuous, vec![(1001, 0.25), (1002, 0.75)]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod block;
mod continuous;
mod cursor;
pub mod decode;
mod error;
mod feature_id;
mod input;
pub mod parallel;
mod record_tensor;
pub mod request;
pub mod responses;
mod tensor;
pub mod widen;
pub mod wire;

pub use continuous::{
    continuous_size, encode_continuous, plan_continuous, write_continuous, write_continuous_with,
    ContinuousPlan,
};
pub use error::{Error, ErrorKind, Result};
pub use feature_id::{feature_id, feature_id_bytes, feature_ids, write_feature_ids};
pub use input::{DType, Data, StringSource, Tensor};
pub use parallel::{Runner, ScopedThreads, Serial};
pub use record_tensor::encode_data_record_tensors;
pub use tensor::{
    encode_tensor_response, plan_tensor_response, tensor_response_size, write_tensor_response,
    write_tensor_response_with, FixedRecords, Gap, RecordLoop, TensorPlan, TensorPlanCache,
};

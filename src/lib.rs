//! bpr_ops: TensorFlow ops that write a model's predictions as the bytes of a
//! Thrift `BatchPredictionResponse` (binary protocol), a reimplementation of
//! twml's `BatchPredictionResponseWriter` and `BatchPredictionTensorResponseWriter`.
//!
//! ```text
//!  Python (python/bpr_ops)       builds the graph, loads libbpr_ops.so
//!     |
//!  C++ shim (cpp_shim/)          registers the ops; the kernels view TF tensors as
//!     |                          plain C structs and allocate the output once
//!  ffi (src/ffi.rs)              the C ABI of cpp_shim/include/bpr_ops.h; panic boundary
//!     |
//!  encoder (this crate)          validates, computes the exact size, writes the bytes
//! ```
//!
//! Data flows one way. The encoder never mentions TensorFlow: it is usable
//! (and tested) from Rust alone through [`encode_continuous`] and
//! [`encode_tensor_response`], or the two-step `*_size` / `write_*` functions
//! that write into a buffer the caller owns.

#![deny(unsafe_code)]

mod continuous;
mod dense;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod input;
pub mod parallel;
pub mod widen;
pub mod wire;

pub use continuous::{continuous_size, encode_continuous, write_continuous, write_continuous_with};
pub use dense::{
    encode_tensor_response, tensor_response_size, write_tensor_response, write_tensor_response_with,
};
pub use error::{Error, ErrorKind, Result};
pub use input::{DType, Data, StringSource, Tensor};
pub use parallel::{Runner, Serial};

//! bpr_ops: TensorFlow ops that write a model's predictions as the bytes of a
//! Thrift `BatchPredictionResponse` (binary protocol), a reimplementation of
//! twml's `BatchPredictionResponseWriter` and `BatchPredictionTensorResponseWriter`.
//!
//! ```text
//!  Python (python/bpr_ops)       builds the graph, loads libbpr_ops.so
//!     |
//!  C++ shim (cpp_shim/)          registers the ops; the kernels view TF tensors as
//!     |                          plain C structs and allocate the output once
//!  ffi (src/ffi/)                the C ABI of cpp_shim/include/bpr_ops.h, a file per op
//!     |                          family; panic boundary
//!     |
//!  bpr-protocol (protocol/)        validates, computes the exact size, writes the bytes
//! ```
//!
//! Data flows one way, and the crates say the same: this crate is the C ABI
//! and nothing else; the encoder never mentions TensorFlow and is usable from
//! Rust alone (`bpr_protocol`).

#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod ffi;

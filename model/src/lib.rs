//! twml's model math, with no TensorFlow: the kernels of twml's 21 model ops
//! (`twml/libtwml/src/ops/`: discretizers, isotonic calibration, the binary
//! sparse matmul of `FullSparse`, sparse normalisation, partitioning and the
//! small tensor ops) as plain functions over slices.
//!
//! The op library (`src/ffi/model_*.rs`) views TensorFlow's tensors as slices
//! and calls these; the C++ shim (`cpp_shim/model_*.cc`) only registers the ops
//! and moves tensors. This crate is not the protocol: it reads no bytes of the
//! wire format, and the protocol crate knows nothing of it.
//!
//! Modules, one per op family:
//! - [`discretize`]: `HashingDiscretizer`, the percentile discretizers, `MDL`,
//!   `IsotonicCalibration`;
//! - [`sparse`]: `BinarySparseTensorDenseMatMul` (`FullSparse`), the
//!   sparse-normalisation ops, `PartitionSparseTensorMod`;
//! - [`tensors`]: `FeatureMask`, `Hashmap`, sample-id compression, fixed- and
//!   var-length tensors, `FeatureExtractor`, `GetSubstrings`;
//! - [`idhash`]: the hasher of the int64-keyed tables these ops look ids up in.

#![deny(unsafe_code)]

mod error;
pub use error::{Error, Result};

pub mod discretize;
pub mod idhash;
pub mod sparse;
pub mod tensors;

//! The binary sparse matmul of `FullSparse`, sparse normalisation and
//! partitioning (twml's `binary_sparse_dense_matmul`, `sparse_normalization`,
//! `partition_sparse_tensor`).
//!
//! Each op's kernel is a function over slices that checks everything twml's
//! C++ trusted (row and column indices, feature indices, key signs, lengths)
//! before it reads or writes, so an input that crashed twml is an [`Error`]
//! here. On every input twml handled, the results are twml's, bit for bit
//! (the same float operations in the same order).

mod matmul;
mod norm;
mod partition;

pub use matmul::{binary_matmul, binary_matmul_shape, Complex, Element, Index, MatMulDims};
pub use norm::{max_norm_in_place, max_norm_inference, max_norm_training, BatchNormState};
pub use partition::{partition_counts, partition_mod, PartitionOutput};

pub use crate::error::{Error, Result};

/// Dims as TensorFlow prints them, for messages.
pub(crate) fn dims_text(dims: &[i64]) -> String {
    let parts: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(","))
}

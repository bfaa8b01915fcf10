//! The binary sparse matmul of `FullSparse`, sparse normalisation and
//! partitioning (twml's `binary_sparse_dense_matmul`, `sparse_normalization`,
//! `partition_sparse_tensor`).

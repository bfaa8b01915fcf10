//! C ABI of twml's sparse matmul, norms and partitioning (bpr_model::sparse).

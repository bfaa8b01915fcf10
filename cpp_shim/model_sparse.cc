// twml's sparse matmul, norms and partitioning: registrations with twml's
// interfaces and thin kernels; the math is model/src/sparse.rs.

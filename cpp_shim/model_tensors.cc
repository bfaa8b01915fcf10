// twml's small tensor ops: registrations with twml's interfaces and thin
// kernels; the math is model/src/tensors.rs.

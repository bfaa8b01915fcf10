// twml's discretizers and calibration: registrations with twml's
// interfaces and thin kernels; the math is model/src/discretize.rs.

//! Discretizers and calibration (twml's `hashing_discretizer`,
//! `percentile_discretizer_v2`, `discretizer`, `isotonic_calibration`).

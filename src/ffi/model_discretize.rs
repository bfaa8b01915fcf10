//! C ABI of twml's discretizers and calibration (bpr_model::discretize).

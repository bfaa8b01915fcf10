//! C ABI of twml's small tensor ops (bpr_model::tensors).

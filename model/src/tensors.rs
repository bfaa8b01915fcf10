//! twml's small tensor ops (`feature_mask`, `hashmap`, `compress_sample_ids`,
//! `fixed_length_tensor`, `var_length_reader`, `feature_extractor`,
//! `contrib/get_substrings`).

"""twml's registered interfaces of its discretizer and calibration ops, as data.

Copied from the REGISTER_OP calls of twitter/the-algorithm (HEAD of the
mirror), twml/libtwml/src/ops/: hashing_discretizer.cpp,
isotonic_calibration.cpp, discretizer.cpp, percentile_discretizer_v2.cpp. Facts, not code: test_model_discretize.py compares
the OpDefs our library registers against these.
"""

# op name -> [(kind, spec)] in registration order; kind is input, output or attr.
TWML_DISCRETIZE_OPS = {
    "HashingDiscretizer": [
        ("attr", "T: {float, double}"),
        ("input", "input_ids: int64"),
        ("input", "input_vals: T"),
        ("input", "bin_vals: T"),
        ("attr", "feature_ids: tensor = { dtype: DT_INT64 }"),
        ("attr", "n_bin: int"),
        ("attr", "output_bits: int"),
        ("attr", "cost_per_unit: int"),
        ("attr", "options: int"),
        ("output", "new_keys: int64"),
        ("output", "new_vals: T"),
    ],
    "IsotonicCalibration": [
        ("attr", "T: {float, double}"),
        ("input", "input: T"),
        ("input", "xs: T"),
        ("input", "ys: T"),
        ("output", "output: T"),
    ],
    "MDL": [
        ("attr", "T: {float, double}"),
        ("input", "keys: int64"),
        ("input", "vals: T"),
        ("input", "bin_ids: int64"),
        ("input", "bin_vals: T"),
        ("input", "feature_offsets: int64"),
        ("output", "new_keys: int64"),
        ("output", "new_vals: T"),
    ],
    "PercentileDiscretizer": [
        ("attr", "T: {float, double}"),
        ("input", "keys: int64"),
        ("input", "vals: T"),
        ("input", "bin_ids: int64"),
        ("input", "bin_vals: T"),
        ("input", "feature_offsets: int64"),
        ("output", "new_keys: int64"),
        ("output", "new_vals: T"),
    ],
    "PercentileDiscretizerBinIndices": [
        ("attr", "T: {float, double}"),
        ("input", "keys: int64"),
        ("input", "vals: T"),
        ("input", "bin_ids: int64"),
        ("input", "bin_vals: T"),
        ("input", "feature_offsets: int64"),
        ("output", "new_keys: int64"),
        ("output", "new_vals: T"),
    ],
    "PercentileDiscretizerV2": [
        ("attr", "T: {float, double}"),
        ("input", "input_ids: int64"),
        ("input", "input_vals: T"),
        ("input", "bin_ids: int64"),
        ("input", "bin_vals: T"),
        ("input", "feature_offsets: int64"),
        ("input", "start_compute: int64"),
        ("input", "end_compute: int64"),
        ("attr", "output_bits: int"),
        ("attr", "feature_ids: tensor = { dtype: DT_INT64 }"),
        ("attr", "feature_indices: tensor = { dtype: DT_INT64 }"),
        ("attr", "cost_per_unit: int"),
        ("output", "new_keys: int64"),
        ("output", "new_vals: T"),
    ],
}

"""twml's registered interfaces of its nine small tensor ops, as data.

Copied (by a regex over the REGISTER_OP calls, then checked by eye) from
twitter/the-algorithm at 72eda9a24f81, twml/libtwml/src/ops/:
feature_mask.cpp, hashmap.cpp, compress_sample_ids.cpp,
fixed_length_tensor.cpp, var_length_reader.cpp, feature_extractor.cpp and
contrib/get_substrings.cpp. Facts, not code: test_model_tensors_interface.py
compares the OpDefs our library registers against these.
"""

# op name -> [(kind, spec)] in registration order; kind is input, output or attr.
TWML_SMALL_TENSOR_OPS = {'CompressSampleIds': [('attr', 'T: {int32}'), ('input', 'input: T'), ('output', 'output: T')],
 'DecompressSampleIds': [('attr', 'T: {int32}'), ('input', 'input: T'), ('output', 'output: T')],
 'FeatureExtractor': [('attr', 'T: {float, double} = DT_FLOAT'),
                      ('input', 'mask_in: bool'),
                      ('input', 'ids_in: int64'),
                      ('input', 'keys_in: int64'),
                      ('input', 'values_in: T'),
                      ('input', 'codes_in: int64'),
                      ('input', 'types_in: int8'),
                      ('output', 'ids_out: int64'),
                      ('output', 'keys_out: int64'),
                      ('output', 'values_out: T'),
                      ('output', 'codes_out: int64'),
                      ('output', 'types_out: int8')],
 'FeatureMask': [('attr', 'T: {int64, int8}'),
                 ('input', 'keep: T'),
                 ('attr', 'list_keep: list(int)'),
                 ('output', 'mask: bool')],
 'FixedLengthTensor': [('attr', 'IndexType: {int64, int32}'),
                       ('attr', 'ValueType: {int64, int32, string}'),
                       ('attr', 'max_length: int'),
                       ('input', 'segment_ids: IndexType'),
                       ('input', 'values: ValueType'),
                       ('input', 'pad_value: ValueType'),
                       ('output', 'fixed_length: ValueType')],
 'FixedLengthTensorV2': [('attr', 'IndexType: {int64, int32}'),
                         ('attr', 'ValueType: {int64, int32, string}'),
                         ('attr', 'max_length: int'),
                         ('input', 'segment_ids: IndexType'),
                         ('input', 'values: ValueType'),
                         ('input', 'pad_value: ValueType'),
                         ('input', 'batch_size: int64'),
                         ('output', 'fixed_length: ValueType')],
 'GetSubstrings': [('attr', 'ValueType: {string}'),
                   ('attr', 'min_n: int'),
                   ('attr', 'max_n: int'),
                   ('input', 'values: ValueType'),
                   ('output', 'substrings: ValueType')],
 'Hashmap': [('input', 'keys: int64'),
             ('input', 'hash_keys: int64'),
             ('input', 'hash_values: int64'),
             ('output', 'values: int64'),
             ('output', 'mask: int8')],
 'VarLengthReader': [('input', 'input1: int32'), ('output', 'output: int32')]}

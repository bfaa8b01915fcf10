//! Fuzzes the request readers: arbitrary bytes as one or more messages for each of the six
//! decode ops (small keep, label and weight lists, both decode modes), then every getter on
//! each batch made (the tensor getters included). A crash is any panic, an error that is not InvalidArgument, or a getter
//! output of a shape other than it announced.

#![no_main]

use bpr_protocol::request::{op_names, Attr, Outputs, RequestOp, DECODE_OPS};
use bpr_protocol::{ErrorKind, Result};
use libfuzzer_sys::fuzz_target;

/// Checks each output's length against the shape it was asked for.
#[derive(Default)]
struct Sink {
    i64s: Vec<i64>,
    f32s: Vec<f32>,
    i8s: Vec<i8>,
    u8s: Vec<u8>,
    bools: Vec<bool>,
}

fn n(dims: &[usize]) -> usize {
    dims.iter().product()
}

impl Outputs for Sink {
    fn int64(&mut self, _: usize, dims: &[usize]) -> Result<&mut [i64]> {
        self.i64s = vec![0; n(dims)];
        Ok(&mut self.i64s)
    }
    fn float(&mut self, _: usize, dims: &[usize]) -> Result<&mut [f32]> {
        self.f32s = vec![0.0; n(dims)];
        Ok(&mut self.f32s)
    }
    fn int8(&mut self, _: usize, dims: &[usize]) -> Result<&mut [i8]> {
        self.i8s = vec![0; n(dims)];
        Ok(&mut self.i8s)
    }
    fn uint8(&mut self, _: usize, dims: &[usize]) -> Result<&mut [u8]> {
        self.u8s = vec![0; n(dims)];
        Ok(&mut self.u8s)
    }
    fn bool(&mut self, _: usize, dims: &[usize]) -> Result<&mut [bool]> {
        self.bools = vec![false; n(dims)];
        Ok(&mut self.bools)
    }
    fn strings(&mut self, _: usize, dims: &[usize], values: &mut dyn Iterator<Item = &[u8]>) -> Result<()> {
        assert_eq!(values.count(), n(dims), "a string output of another length than its shape");
        Ok(())
    }
}

const KEEP: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const CODES: &[i64] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const IDS: &[i64] = &[1, 2, 3, 4];

fn getter(name: &str) -> Option<RequestOp> {
    let attrs: Vec<(&str, Attr<'_>)> = match name {
        n if n.starts_with("Decode") => return None,
        // The tensor getters (feature 8: a tensor or sparse tensor in fuzzed records).
        n if n.starts_with("GetTensorsWithMissingMask") => vec![
            ("assert_shape", Attr::Bool(true)),
            ("feature_id", Attr::Int(8)),
            ("default_shape", Attr::Ints(&[2])),
            ("dtype_size", Attr::Int(4)),
        ],
        n if n.starts_with("GetTensors") => vec![("assert_shape", Attr::Bool(n.len() % 2 == 0)), ("feature_id", Attr::Int(8))],
        n if n.starts_with("GetStringTensors") || n.starts_with("GetSparseTensors") => vec![("feature_id", Attr::Int(8))],
        n if n.contains("Labels") => vec![("default_label", Attr::Float(-1.0))],
        n if n.contains("Group") => vec![
            ("feature_ids", Attr::Ints(IDS)),
            ("default_value", if n.contains("Discrete") { Attr::Int(-1) } else if n.contains("String") { Attr::Str(b"-") } else { Attr::Float(0.5) }),
        ],
        "GetFeatureSourcesFromDataRecord" => vec![("feature_ids", Attr::Ints(IDS)), ("feature_kinds", Attr::Ints(&[1, 2, 3, 6]))],
        n if n.starts_with("GetSparse") && (n.ends_with("AsTensor") || n.ends_with("AsSparseTensor")) => {
            vec![("feature_id", Attr::Int(5))]
        }
        n if n.ends_with("AsTensor") => vec![
            ("feature_id", Attr::Int(2)),
            ("default_value", if n.contains("Discrete") { Attr::Int(-1) } else if n.contains("String") { Attr::Str(b"-") } else { Attr::Float(0.5) }),
        ],
        n if n.starts_with("GetHashedFeatures") => {
            let mut a: Vec<(&str, Attr<'_>)> = [
                "binary_keep_features",
                "continuous_keep_features",
                "discrete_keep_features",
                "string_keep_features",
                "sparse_binary_keep_features",
                "sparse_continuous_keep_features",
            ]
            .iter()
            .map(|&k| (k, Attr::Ints(KEEP)))
            .collect();
            if n.ends_with("V2") {
                a.extend([("keep_features", Attr::Ints(KEEP)), ("keep_codes", Attr::Ints(CODES)), ("decode_mode", Attr::Int(0))]);
            }
            if n.ends_with("SortedSparseTensor") {
                a.extend([("decode_mode", Attr::Int(0)), ("hashed_bits", Attr::Int(20))]);
            }
            a
        }
        _ => vec![],
    };
    Some(RequestOp::new(name, &attrs).expect("getter attrs are valid"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let name = DECODE_OPS[usize::from(choice) % DECODE_OPS.len()];
    let mode = Attr::Int(i64::from(choice >> 7));
    let mut attrs = vec![("keep_features", Attr::Ints(KEEP)), ("keep_codes", Attr::Ints(CODES))];
    if name != "DecodeBatchPredictionRequest" && name != "DecodeAndHashBatchPredictionRequest" {
        attrs.extend([("label_features", Attr::Ints(&[2, 3])), ("weight_features", Attr::Ints(&[3, 4]))]);
    }
    if name != "DecodeBatchPredictionRequest" && name != "DecodeDataRecord" {
        attrs.push(("decode_mode", mode));
    }
    let decode = RequestOp::new(name, &attrs).expect("decode attrs are valid");
    // Up to 4 messages, split at 0xF0 0x0D markers (a string input's elements).
    let messages: Vec<&[u8]> = if choice & 0x40 != 0 {
        rest.split(|&b| b == 0xf0).take(4).collect()
    } else {
        vec![rest]
    };
    let batch = match decode.decode(&messages, messages.len() > 1) {
        Ok(b) => b,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            return;
        }
    };
    for g in op_names().filter_map(getter) {
        let mut sink = Sink::default();
        if let Err(e) = g.get(&batch, &messages, &mut sink) {
            // Only the wrong kind of handle is refused, and by the tensor
            // getters, tensors that are not what they must be (named).
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(e.message().contains("handle") || e.message().contains("feature_id 8, record"), "{e}");
        }
    }
});

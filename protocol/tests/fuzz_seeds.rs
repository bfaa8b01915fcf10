//! The request fuzz target's seeds (protocol/fuzz/corpus/request) reach the
//! tensor getters' success paths: decoded as fuzz_targets/request.rs decodes
//! them (first byte: the decoder and whether 0xF0 splits messages), the
//! dense, sparse and string tensors of feature 8 come out. Without such seeds
//! libFuzzer would have to build a valid `tensors` / `sparseTensors` map from
//! nothing before any getter did more than say "no such feature". The seeds
//! were written by thriftpy2 (COOSparseTensor in both IDL forms); the values
//! checked here are the ones put in.

use std::collections::BTreeMap;
use std::path::Path;

use bpr_protocol::request::{Attr, Outputs, RequestOp, DECODE_OPS};
use bpr_protocol::Result;

#[derive(Default)]
struct Sink {
    i64s: BTreeMap<usize, Vec<i64>>,
    u8s: BTreeMap<usize, Vec<u8>>,
    bools: BTreeMap<usize, Vec<bool>>,
    strings: BTreeMap<usize, Vec<Vec<u8>>>,
    f32s: Vec<f32>,
    i8s: Vec<i8>,
}

impl Outputs for Sink {
    fn int64(&mut self, i: usize, dims: &[usize]) -> Result<&mut [i64]> {
        let v = self.i64s.entry(i).or_default();
        *v = vec![0; dims.iter().product()];
        Ok(v)
    }
    fn float(&mut self, _: usize, dims: &[usize]) -> Result<&mut [f32]> {
        self.f32s = vec![0.0; dims.iter().product()];
        Ok(&mut self.f32s)
    }
    fn int8(&mut self, _: usize, dims: &[usize]) -> Result<&mut [i8]> {
        self.i8s = vec![0; dims.iter().product()];
        Ok(&mut self.i8s)
    }
    fn uint8(&mut self, i: usize, dims: &[usize]) -> Result<&mut [u8]> {
        let v = self.u8s.entry(i).or_default();
        *v = vec![0; dims.iter().product()];
        Ok(v)
    }
    fn bool(&mut self, i: usize, dims: &[usize]) -> Result<&mut [bool]> {
        let v = self.bools.entry(i).or_default();
        *v = vec![false; dims.iter().product()];
        Ok(v)
    }
    fn strings(
        &mut self,
        i: usize,
        _: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        self.strings.insert(i, values.map(<[u8]>::to_vec).collect());
        Ok(())
    }
}

/// The seed's messages and the batch its decoder makes (as the fuzz target does).
fn decoded(name: &str) -> (Vec<u8>, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/request")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The fuzz target's choice of decoder, from the same list.
    let decoder = DECODE_OPS[usize::from(data[0]) % DECODE_OPS.len()].to_string();
    (data, decoder)
}

fn run(seed: &str, getter: &str, attrs: &[(&str, Attr<'_>)]) -> Sink {
    let (data, decoder) = decoded(seed);
    let (choice, rest) = (data[0], &data[1..]);
    let messages: Vec<&[u8]> = if choice & 0x40 != 0 {
        rest.split(|&b| b == 0xf0).take(4).collect()
    } else {
        vec![rest]
    };
    let mut dattrs = vec![
        ("keep_features", Attr::Ints(&[])),
        ("keep_codes", Attr::Ints(&[])),
    ];
    if decoder.ends_with("V2") || decoder.ends_with("DataRecord") {
        dattrs.extend([
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
        ]);
    }
    if decoder != "DecodeBatchPredictionRequest" && decoder != "DecodeDataRecord" {
        dattrs.push(("decode_mode", Attr::Int(0)));
    }
    let batch = RequestOp::new(&decoder, &dattrs)
        .unwrap()
        .decode(&messages, messages.len() > 1)
        .unwrap_or_else(|e| panic!("{seed}: {decoder}: {e}"));
    let mut sink = Sink::default();
    RequestOp::new(getter, attrs)
        .unwrap()
        .get(&batch, &messages, &mut sink)
        .unwrap_or_else(|e| panic!("{seed}: {getter}: {e}"));
    sink
}

fn le_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn dense_seed_reaches_the_dense_getters() {
    let s = run(
        "tensors_dense",
        "GetTensorsFromDataRecord",
        &[
            ("assert_shape", Attr::Bool(true)),
            ("feature_id", Attr::Int(8)),
        ],
    );
    // Record 1 has no tensor 8 of its own: commonFeatures' one.
    assert_eq!(
        s.strings[&0],
        vec![le_f32(&[1.5, -2.0]), le_f32(&[3.0, 4.0])]
    );
    assert_eq!(s.i64s[&1], vec![2, 2]);
    let s = run(
        "tensors_dense",
        "GetTensorsWithMissingMaskFromDataRecord",
        &[
            ("assert_shape", Attr::Bool(true)),
            ("feature_id", Attr::Int(8)),
            ("default_shape", Attr::Ints(&[2])),
            ("dtype_size", Attr::Int(4)),
        ],
    );
    assert_eq!(s.bools[&3], vec![true, true]);
}

#[test]
fn sparse_seed_reaches_the_sparse_getter_in_both_idl_forms() {
    let s = run(
        "tensors_sparse",
        "GetSparseTensorsFromDataRecord",
        &[("feature_id", Attr::Int(8))],
    );
    assert_eq!(s.i64s[&0], vec![0, 0, 1]);
    let be: Vec<u8> = [0i64, 2, 1, 3, 1, 0]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    assert_eq!(s.strings[&1], vec![be]);
    assert_eq!(s.i64s[&3], vec![3, 3, 4]);
}

#[test]
fn strings_seed_reaches_the_string_getter_with_two_messages() {
    let s = run(
        "tensors_strings",
        "GetStringTensorsFromDataRecord",
        &[("feature_id", Attr::Int(8))],
    );
    assert_eq!(s.i64s[&0], vec![0, 0, 1]);
    assert_eq!(
        s.strings[&1],
        vec![b"ab".to_vec(), b"c".to_vec(), vec![0, 1]]
    );
}

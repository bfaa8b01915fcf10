// Decodes our bytes with Apache Thrift's Rust crate (generated structs and the raw protocol API) on random inputs, and compares with Apache's own encoder.

// tests/gen/ is Apache Thrift 0.17's output for thrift/*.thrift (scripts/gen-thrift-rs.sh),
// used unmodified. It imports its siblings as `crate::bpr_ops_idl::{data, tensor}`
// (from `namespace rs bpr_ops_idl`), which the module below provides.
#[allow(dead_code, clippy::all)]
#[path = "gen/data.rs"]
mod data;
#[allow(dead_code, clippy::all)]
#[path = "gen/prediction_service.rs"]
mod prediction_service;
#[allow(dead_code, clippy::all)]
#[path = "gen/tensor.rs"]
mod tensor;

mod bpr_ops_idl {
    pub(crate) use crate::{data, tensor};
}

use std::collections::BTreeMap;

use bpr_ops::{encode_continuous, encode_tensor_response, Data, StringSource, Tensor};
use half::{bf16, f16};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TInputProtocol, TSerializable, TType,
};
use thrift::OrderedFloat;

use data::DataRecord;
use prediction_service::BatchPredictionResponse;
use tensor::{DataType, GeneralTensor, RawTypedTensor, StringTensor};

// ---------------------------------------------------------------------------
// Deterministic inputs
// ---------------------------------------------------------------------------

/// SplitMix64: a small, seedable generator, so every run tests the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Mostly ordinary numbers, sometimes a special bit pattern.
    fn f64(&mut self) -> f64 {
        match self.below(10) {
            0 => f64::from_bits(self.next()), // any bits: NaNs, subnormals, infinities
            1 => [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY][self.below(4)],
            _ => (self.next() as i64 as f64) / (1u64 << 40) as f64,
        }
    }

    fn f32(&mut self) -> f32 {
        match self.below(10) {
            0 => f32::from_bits(self.next() as u32),
            1 => {
                f32::from_bits([0x7f80_0001, 0xffc0_0123, 0x8000_0000, 0x7f80_0000][self.below(4)])
            }
            _ => (self.next() as i32 as f32) / 65536.0,
        }
    }

    /// Distinct keys, in random (unsorted) order.
    fn keys(&mut self, k: usize) -> Vec<i64> {
        let mut keys = Vec::with_capacity(k);
        while keys.len() < k {
            let key = match self.below(3) {
                0 => self.next() as i64,
                _ => self.below(1000) as i64 - 500,
            };
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    fn bytes(&mut self, utf8: bool) -> Vec<u8> {
        let len = self.below(12);
        if utf8 {
            let alphabet = ["a", "Z", "0", " ", "é", "ß", "€", "😀", "\u{0}"];
            let mut s = String::new();
            for _ in 0..len {
                s.push_str(alphabet[self.below(alphabet.len())]);
            }
            s.into_bytes()
        } else {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }
}

/// Owned strings for `Data::Str`, which takes a sized `&dyn StringSource`.
struct Strings(Vec<Vec<u8>>);

impl StringSource for Strings {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn get(&self, index: usize) -> &[u8] {
        &self.0[index]
    }
}

// ---------------------------------------------------------------------------
// The oracle: what the spec says each element becomes.
// ---------------------------------------------------------------------------

/// f32 -> f64 bits: exact for numbers; a NaN keeps sign and payload, moved to
/// the top of the wider mantissa, with no quiet bit added.
fn widen_f32_bits(x: f32) -> u64 {
    let b = x.to_bits();
    if x.is_nan() {
        (u64::from(b >> 31) << 63) | (0x7ff << 52) | (u64::from(b & 0x7f_ffff) << 29)
    } else {
        f64::from(x).to_bits()
    }
}

/// f16 -> f32 bits, same rule.
fn widen_f16_bits(x: f16) -> u32 {
    let b = u32::from(x.to_bits());
    if x.is_nan() {
        ((b >> 15) << 31) | (0xff << 23) | ((b & 0x3ff) << 13)
    } else {
        x.to_f32().to_bits()
    }
}

fn widen_bf16_bits(x: bf16) -> u32 {
    u32::from(x.to_bits()) << 16
}

/// An owned tensor of any dtype, built from the generator.
enum Column {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<u8>),
    Str(Strings),
}

const DTYPES: usize = 9;

impl Column {
    fn random(rng: &mut Rng, dtype: usize, n: usize, utf8: bool) -> Column {
        match dtype {
            0 => Column::F32((0..n).map(|_| rng.f32()).collect()),
            1 => Column::F64((0..n).map(|_| rng.f64()).collect()),
            2 => Column::F16((0..n).map(|_| f16::from_bits(rng.next() as u16)).collect()),
            3 => Column::BF16((0..n).map(|_| bf16::from_bits(rng.next() as u16)).collect()),
            4 => Column::I32((0..n).map(|_| rng.next() as i32).collect()),
            5 => Column::I64((0..n).map(|_| rng.next() as i64).collect()),
            6 => Column::U8((0..n).map(|_| rng.next() as u8).collect()),
            7 => Column::Bool((0..n).map(|_| (rng.next() & 1) as u8).collect()),
            8 => Column::Str(Strings((0..n).map(|_| rng.bytes(utf8)).collect())),
            _ => unreachable!(),
        }
    }

    fn data(&self) -> Data<'_> {
        match self {
            Column::F32(v) => Data::F32(v),
            Column::F64(v) => Data::F64(v),
            Column::F16(v) => Data::F16(v),
            Column::BF16(v) => Data::BF16(v),
            Column::I32(v) => Data::I32(v),
            Column::I64(v) => Data::I64(v),
            Column::U8(v) => Data::U8(v),
            Column::Bool(v) => Data::Bool(v),
            Column::Str(v) => Data::Str(v),
        }
    }

    /// Elements `start..end` as the spec's expected row value.
    fn expected_row(&self, start: usize, end: usize, shape: &[i64]) -> Row {
        let shape = shape.to_vec();
        let raw = |data_type: i32, content: Vec<u8>| Row::Raw {
            data_type,
            content,
            shape: shape.clone(),
        };
        match self {
            Column::F32(v) => raw(0, le(&v[start..end], |x| x.to_bits().to_le_bytes())),
            Column::F64(v) => raw(1, le(&v[start..end], |x| x.to_bits().to_le_bytes())),
            Column::F16(v) => raw(0, le(&v[start..end], |x| widen_f16_bits(x).to_le_bytes())),
            Column::BF16(v) => raw(0, le(&v[start..end], |x| widen_bf16_bits(x).to_le_bytes())),
            Column::I32(v) => raw(2, le(&v[start..end], i32::to_le_bytes)),
            Column::I64(v) => raw(3, le(&v[start..end], i64::to_le_bytes)),
            Column::U8(v) => raw(4, v[start..end].to_vec()),
            Column::Bool(v) => raw(7, v[start..end].to_vec()),
            Column::Str(v) => Row::Str {
                strings: v.0[start..end].to_vec(),
                shape,
            },
        }
    }
}

fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

/// One decoded or expected `GeneralTensor`.
#[derive(Clone, Debug, PartialEq)]
enum Row {
    Raw {
        data_type: i32,
        content: Vec<u8>,
        shape: Vec<i64>,
    },
    Str {
        strings: Vec<Vec<u8>>,
        shape: Vec<i64>,
    },
}

// ---------------------------------------------------------------------------
// Decoding with Apache's code
// ---------------------------------------------------------------------------

/// Decodes with the generated structs; asserts every byte was consumed.
fn decode_generated(bytes: &[u8]) -> BatchPredictionResponse {
    let mut rest = bytes;
    let mut proto = TBinaryInputProtocol::new(&mut rest, true);
    let response = BatchPredictionResponse::read_from_in_protocol(&mut proto).unwrap_or_else(|e| {
        panic!(
            "Apache Thrift could not decode our {} bytes: {e}",
            bytes.len()
        )
    });
    assert!(
        rest.is_empty(),
        "the decoder stopped {} bytes before the end of our {} bytes",
        rest.len(),
        bytes.len()
    );
    response
}

/// The entries of one record's map, in wire order.
#[derive(Debug, PartialEq)]
enum Record {
    Continuous(Vec<(i64, u64)>),
    Tensors(Vec<(i64, Row)>),
}

/// Walks the response with the protocol-level API of the `thrift` crate.
/// Unlike the generated structs this keeps the map order and reads strings as
/// bytes (the generated code turns `string` into a Rust `String` and rejects
/// non-UTF-8). Any field or type the schema does not allow here is an error.
fn decode_walk(bytes: &[u8]) -> Vec<Record> {
    let mut rest = bytes;
    let mut p = TBinaryInputProtocol::new(&mut rest, true);
    let records = walk_response(&mut p).unwrap_or_else(|e| panic!("walking our bytes: {e}"));
    assert!(
        rest.is_empty(),
        "{} bytes left after the response",
        rest.len()
    );
    records
}

type Walk<T> = Result<T, String>;

fn t<T>(r: thrift::Result<T>) -> Walk<T> {
    r.map_err(|e| e.to_string())
}

fn expect_field(p: &mut dyn TInputProtocol, ttype: TType, id: i16) -> Walk<()> {
    let f = t(p.read_field_begin())?;
    if f.field_type != ttype || f.id != Some(id) {
        return Err(format!("expected field {id} of {ttype:?}, got {f:?}"));
    }
    Ok(())
}

fn expect_stop(p: &mut dyn TInputProtocol) -> Walk<()> {
    let f = t(p.read_field_begin())?;
    if f.field_type != TType::Stop {
        return Err(format!("expected STOP, got {f:?}"));
    }
    Ok(())
}

fn walk_i64_list(p: &mut dyn TInputProtocol) -> Walk<Vec<i64>> {
    let l = t(p.read_list_begin())?;
    if l.element_type != TType::I64 || l.size < 0 {
        return Err(format!("expected list<i64>, got {l:?}"));
    }
    (0..l.size).map(|_| t(p.read_i64())).collect()
}

fn walk_response(p: &mut dyn TInputProtocol) -> Walk<Vec<Record>> {
    t(p.read_struct_begin())?;
    expect_field(p, TType::List, 1)?;
    let list = t(p.read_list_begin())?;
    if list.element_type != TType::Struct || list.size < 0 {
        return Err(format!("predictions: expected list<struct>, got {list:?}"));
    }
    let mut records = Vec::new();
    for _ in 0..list.size {
        records.push(walk_record(p)?);
    }
    expect_stop(p)?;
    Ok(records)
}

fn walk_record(p: &mut dyn TInputProtocol) -> Walk<Record> {
    let f = t(p.read_field_begin())?;
    let map = t(p.read_map_begin())?;
    if map.key_type != Some(TType::I64) || map.size < 0 {
        return Err(format!("expected map<i64, _>, got {map:?}"));
    }
    let record = match (f.field_type, f.id, map.value_type) {
        (TType::Map, Some(2), Some(TType::Double)) => {
            let mut entries = Vec::new();
            for _ in 0..map.size {
                let key = t(p.read_i64())?;
                entries.push((key, t(p.read_double())?.to_bits()));
            }
            Record::Continuous(entries)
        }
        (TType::Map, Some(8), Some(TType::Struct)) => {
            let mut entries = Vec::new();
            for _ in 0..map.size {
                let key = t(p.read_i64())?;
                entries.push((key, walk_general_tensor(p)?));
            }
            Record::Tensors(entries)
        }
        other => return Err(format!("unexpected record field {other:?}")),
    };
    expect_stop(p)?;
    Ok(record)
}

fn walk_general_tensor(p: &mut dyn TInputProtocol) -> Walk<Row> {
    let f = t(p.read_field_begin())?;
    let row = match (f.field_type, f.id) {
        (TType::Struct, Some(1)) => {
            expect_field(p, TType::I32, 1)?;
            let data_type = t(p.read_i32())?;
            expect_field(p, TType::String, 2)?;
            let content = t(p.read_bytes())?;
            expect_field(p, TType::List, 3)?;
            let shape = walk_i64_list(p)?;
            expect_stop(p)?;
            Row::Raw {
                data_type,
                content,
                shape,
            }
        }
        (TType::Struct, Some(2)) => {
            expect_field(p, TType::List, 1)?;
            let l = t(p.read_list_begin())?;
            if l.element_type != TType::String || l.size < 0 {
                return Err(format!("expected list<string>, got {l:?}"));
            }
            let strings = (0..l.size)
                .map(|_| t(p.read_bytes()))
                .collect::<Walk<Vec<_>>>()?;
            expect_field(p, TType::List, 2)?;
            let shape = walk_i64_list(p)?;
            expect_stop(p)?;
            Row::Str { strings, shape }
        }
        other => return Err(format!("unexpected GeneralTensor field {other:?}")),
    };
    // A union holds exactly one field.
    expect_stop(p)?;
    Ok(row)
}

/// A generated `GeneralTensor` as a [`Row`], for comparison.
fn row_of(g: &GeneralTensor) -> Row {
    match g {
        GeneralTensor::RawTypedTensor(r) => Row::Raw {
            data_type: r.data_type.0,
            content: r.content.clone(),
            shape: r.shape.clone().expect("rawTypedTensor.shape is set"),
        },
        GeneralTensor::StringTensor(s) => Row::Str {
            strings: s.strings.iter().map(|x| x.clone().into_bytes()).collect(),
            shape: s.shape.clone().expect("stringTensor.shape is set"),
        },
        other => panic!("the ops write rawTypedTensor or stringTensor only, got {other:?}"),
    }
}

fn only_field(record: &DataRecord, which: &str) {
    let set = [
        ("binaryFeatures", record.binary_features.is_some()),
        ("continuousFeatures", record.continuous_features.is_some()),
        ("discreteFeatures", record.discrete_features.is_some()),
        ("stringFeatures", record.string_features.is_some()),
        (
            "sparseBinaryFeatures",
            record.sparse_binary_features.is_some(),
        ),
        (
            "sparseContinuousFeatures",
            record.sparse_continuous_features.is_some(),
        ),
        ("blobFeatures", record.blob_features.is_some()),
        ("tensors", record.tensors.is_some()),
        ("sparseTensors", record.sparse_tensors.is_some()),
    ];
    for (name, is_set) in set {
        assert_eq!(is_set, name == which, "DataRecord.{name} set = {is_set}");
    }
}

// ---------------------------------------------------------------------------
// BatchPredictionResponseWriter
// ---------------------------------------------------------------------------

/// Random values of one float dtype, and their expected doubles (as bits).
fn continuous_values(rng: &mut Rng, dtype: usize, n: usize) -> (Column, Vec<u64>) {
    match dtype {
        0 => {
            let v: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let bits = v.iter().map(|&x| widen_f32_bits(x)).collect();
            (Column::F32(v), bits)
        }
        1 => {
            let v: Vec<f64> = (0..n).map(|_| rng.f64()).collect();
            let bits = v.iter().map(|x| x.to_bits()).collect();
            (Column::F64(v), bits)
        }
        2 => {
            let v: Vec<f16> = (0..n).map(|_| f16::from_bits(rng.next() as u16)).collect();
            let bits = v
                .iter()
                .map(|&x| widen_f32_bits(f32::from_bits(widen_f16_bits(x))))
                .collect();
            (Column::F16(v), bits)
        }
        _ => {
            let v: Vec<bf16> = (0..n).map(|_| bf16::from_bits(rng.next() as u16)).collect();
            let bits = v
                .iter()
                .map(|&x| widen_f32_bits(f32::from_bits(widen_bf16_bits(x))))
                .collect();
            (Column::BF16(v), bits)
        }
    }
}

fn check_continuous(rng: &mut Rng, b: usize, k: usize, dtype: usize, rank1: bool) {
    let ids = rng.keys(k);
    let (values, expected) = continuous_values(rng, dtype, b * k);
    let key_dims = [k as i64];
    let keys = Tensor::new(&key_dims, Data::I64(&ids)).unwrap();
    let dims: Vec<i64> = if rank1 {
        vec![b as i64]
    } else {
        vec![b as i64, k as i64]
    };
    let bytes = encode_continuous(&keys, &Tensor::new(&dims, values.data()).unwrap())
        .unwrap_or_else(|e| panic!("B={b} K={k} dtype {dtype}: {e}"));
    let ctx = format!("B={b} K={k} dtype {dtype} rank1 {rank1}");

    // Apache's generated structs.
    let response = decode_generated(&bytes);
    assert_eq!(response.predictions.len(), b, "{ctx}");
    for (i, record) in response.predictions.iter().enumerate() {
        only_field(record, "continuousFeatures");
        let map = record.continuous_features.as_ref().unwrap();
        assert_eq!(map.len(), k, "{ctx} record {i}");
        for (j, key) in ids.iter().enumerate() {
            let got = map
                .get(key)
                .unwrap_or_else(|| panic!("{ctx}: key {key} missing"));
            assert_eq!(
                got.0.to_bits(),
                expected[i * k + j],
                "{ctx} record {i} key {key}"
            );
        }
    }

    // The protocol-level walk: the same values, in the order of `keys`.
    let want: Vec<Record> = (0..b)
        .map(|i| Record::Continuous((0..k).map(|j| (ids[j], expected[i * k + j])).collect()))
        .collect();
    assert_eq!(decode_walk(&bytes), want, "{ctx}");
}

#[test]
fn continuous_random_batches_decode_with_apache_thrift() {
    let mut rng = Rng(1);
    let sizes = [0usize, 1, 2, 3, 8, 33];
    let widths = [0usize, 1, 2, 5, 31, 40];
    let mut cases = 0;
    for &b in &sizes {
        for &k in &widths {
            for dtype in 0..4 {
                check_continuous(&mut rng, b, k, dtype, false);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 144);
}

#[test]
fn continuous_rank1_values_decode_with_apache_thrift() {
    let mut rng = Rng(2);
    for b in [0usize, 1, 2, 17] {
        for dtype in 0..4 {
            check_continuous(&mut rng, b, 1, dtype, true);
        }
    }
}

#[test]
fn continuous_bytes_equal_apache_encoder() {
    // Apache's generated code keeps maps in a BTreeMap, so it writes entries
    // in key order: give our encoder sorted keys for a byte-for-byte comparison.
    let mut rng = Rng(3);
    for (b, k) in [
        (0usize, 0usize),
        (0, 3),
        (1, 0),
        (1, 1),
        (2, 3),
        (5, 40),
        (16, 7),
    ] {
        for dtype in 0..4 {
            let mut ids = rng.keys(k);
            ids.sort_unstable();
            let (values, expected) = continuous_values(&mut rng, dtype, b * k);
            let key_dims = [k as i64];
            let dims = [b as i64, k as i64];
            let keys = Tensor::new(&key_dims, Data::I64(&ids)).unwrap();
            let ours =
                encode_continuous(&keys, &Tensor::new(&dims, values.data()).unwrap()).unwrap();

            let predictions = (0..b)
                .map(|i| {
                    let map: BTreeMap<i64, OrderedFloat<f64>> = (0..k)
                        .map(|j| (ids[j], OrderedFloat(f64::from_bits(expected[i * k + j]))))
                        .collect();
                    DataRecord::new(None, map, None, None, None, None, None, None, None)
                })
                .collect();
            let theirs = apache_encode(&BatchPredictionResponse::new(predictions));
            assert_eq!(ours, theirs, "B={b} K={k} dtype {dtype}");
        }
    }
}

fn apache_encode(response: &BatchPredictionResponse) -> Vec<u8> {
    let mut out = Vec::new();
    let mut proto = TBinaryOutputProtocol::new(&mut out, true);
    response.write_to_out_protocol(&mut proto).unwrap();
    out
}

// ---------------------------------------------------------------------------
// BatchPredictionTensorResponseWriter
// ---------------------------------------------------------------------------

/// One column: its dtype, full shape [B, ...] and data.
struct Input {
    dims: Vec<i64>,
    column: Column,
}

fn random_input(rng: &mut Rng, b: usize, dtype: usize, utf8: bool) -> Input {
    let rank = 1 + rng.below(4); // 1..=4: rows of rank 0..=3
    let mut dims = vec![b as i64];
    for _ in 1..rank {
        // Zero-width rows now and then.
        dims.push(if rng.below(8) == 0 {
            0
        } else {
            1 + rng.below(3) as i64
        });
    }
    let n = dims.iter().product::<i64>() as usize;
    Input {
        column: Column::random(rng, dtype, n, utf8),
        dims,
    }
}

/// What the spec says record i holds, in the order of `ids`.
fn expected_records(ids: &[i64], inputs: &[Input], b: usize) -> Vec<Vec<(i64, Row)>> {
    (0..b)
        .map(|i| {
            ids.iter()
                .zip(inputs)
                .map(|(&key, input)| {
                    let row_shape = &input.dims[1..];
                    let per_row = row_shape.iter().product::<i64>() as usize;
                    (
                        key,
                        input
                            .column
                            .expected_row(i * per_row, (i + 1) * per_row, row_shape),
                    )
                })
                .collect()
        })
        .collect()
}

fn encode_inputs(ids: &[i64], inputs: &[Input]) -> Vec<u8> {
    let key_dims = [ids.len() as i64];
    let keys = Tensor::new(&key_dims, Data::I64(ids)).unwrap();
    let values: Vec<Tensor<'_>> = inputs
        .iter()
        .map(|input| Tensor::new(&input.dims, input.column.data()).unwrap())
        .collect();
    encode_tensor_response(&keys, &values).unwrap()
}

/// Encodes, then checks the bytes with both Apache decoders.
fn check_tensor(ids: &[i64], inputs: &[Input], b: usize, utf8: bool, ctx: &str) -> Vec<u8> {
    let bytes = encode_inputs(ids, inputs);
    let want = expected_records(ids, inputs, b);

    if utf8 {
        let response = decode_generated(&bytes);
        assert_eq!(response.predictions.len(), b, "{ctx}");
        for (i, (record, want)) in response.predictions.iter().zip(&want).enumerate() {
            only_field(record, "tensors");
            let map = record.tensors.as_ref().unwrap();
            assert_eq!(map.len(), ids.len(), "{ctx} record {i}");
            for (key, row) in want {
                let got = map
                    .get(key)
                    .unwrap_or_else(|| panic!("{ctx}: key {key} missing"));
                assert_eq!(&row_of(got), row, "{ctx} record {i} key {key}");
            }
        }
    }

    let walked = decode_walk(&bytes);
    let want: Vec<Record> = want.into_iter().map(Record::Tensors).collect();
    assert_eq!(walked, want, "{ctx}");
    bytes
}

#[test]
fn tensor_every_dtype_decodes_with_apache_thrift() {
    let mut rng = Rng(4);
    for dtype in 0..DTYPES {
        for b in [0usize, 1, 2, 5, 13] {
            for _ in 0..4 {
                let ids = rng.keys(1);
                let inputs = [random_input(&mut rng, b, dtype, true)];
                let ctx = format!("dtype {dtype} B={b} shape {:?}", inputs[0].dims);
                check_tensor(&ids, &inputs, b, true, &ctx);
            }
        }
    }
}

#[test]
fn tensor_mixed_dtypes_in_one_call_decode_with_apache_thrift() {
    let mut rng = Rng(5);
    for b in [0usize, 1, 3, 8] {
        for k in [1usize, 2, 9, 20, 40] {
            let ids = rng.keys(k);
            let inputs: Vec<Input> = (0..k)
                .map(|j| {
                    // Every dtype appears once k >= 9; the rest are random.
                    let dtype = if j < DTYPES { j } else { rng.below(DTYPES) };
                    random_input(&mut rng, b, dtype, true)
                })
                .collect();
            let ctx = format!("B={b} K={k}");
            check_tensor(&ids, &inputs, b, true, &ctx);
        }
    }
}

#[test]
fn tensor_non_utf8_strings_decode_as_bytes() {
    // The generated structs read `string` as a Rust String and reject
    // non-UTF-8, so these are checked with the protocol-level walk only,
    // which reads each string with `read_bytes`.
    let mut rng = Rng(6);
    let mut rejected_by_generated = false;
    for b in [1usize, 2, 7] {
        for k in [1usize, 3] {
            let ids = rng.keys(k);
            let inputs: Vec<Input> = (0..k)
                .map(|_| random_input(&mut rng, b, 8, false))
                .collect();
            let ctx = format!("B={b} K={k}");
            let bytes = check_tensor(&ids, &inputs, b, false, &ctx);
            let mut rest = &bytes[..];
            let mut proto = TBinaryInputProtocol::new(&mut rest, true);
            rejected_by_generated |=
                BatchPredictionResponse::read_from_in_protocol(&mut proto).is_err();
        }
    }
    // The random bytes did include invalid UTF-8 (else this test tests nothing new).
    assert!(rejected_by_generated);
}

#[test]
fn tensor_bytes_equal_apache_encoder() {
    // Sorted keys again (BTreeMap order on Apache's side). Numeric rows are
    // built from the oracle's expected content, strings as UTF-8.
    let mut rng = Rng(7);
    for b in [0usize, 1, 4] {
        for k in [1usize, 3, 12] {
            let mut ids = rng.keys(k);
            ids.sort_unstable();
            let inputs: Vec<Input> = (0..k)
                .map(|j| random_input(&mut rng, b, j % DTYPES, true))
                .collect();
            let ours = encode_inputs(&ids, &inputs);
            let predictions = expected_records(&ids, &inputs, b)
                .into_iter()
                .map(|entries| {
                    let map: BTreeMap<i64, GeneralTensor> = entries
                        .into_iter()
                        .map(|(key, row)| (key, general_tensor(row)))
                        .collect();
                    DataRecord::new(None, None, None, None, None, None, None, map, None)
                })
                .collect();
            let theirs = apache_encode(&BatchPredictionResponse::new(predictions));
            assert_eq!(ours, theirs, "B={b} K={k}");
        }
    }
}

fn general_tensor(row: Row) -> GeneralTensor {
    match row {
        Row::Raw {
            data_type,
            content,
            shape,
        } => {
            GeneralTensor::RawTypedTensor(RawTypedTensor::new(DataType(data_type), content, shape))
        }
        Row::Str { strings, shape } => GeneralTensor::StringTensor(StringTensor::new(
            strings
                .into_iter()
                .map(|s| String::from_utf8(s).unwrap())
                .collect(),
            shape,
        )),
    }
}

// Decodes our bytes with Apache Thrift's Rust crate (generated structs and the raw protocol API) on random inputs, and compares with Apache's own encoder.

// bpr_thrift_gen (protocol/thrift-gen) is Apache Thrift 0.17's output for thrift/*.thrift,
// generated when the tests build and used unmodified.
use bpr_thrift_gen::{data, prediction_service, tensor};

mod common;

use std::collections::BTreeMap;

use bpr_protocol::{encode_continuous, encode_tensor_response, Data, Tensor};
use half::{bf16, f16};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol, TSerializable};
use thrift::OrderedFloat;

use common::{
    decode, widen_bf16, widen_f16, widen_f32, Column, Record, Rng, Row, Threads, DTYPES, STR,
};
use data::DataRecord;
use prediction_service::BatchPredictionResponse;
use tensor::{DataType, GeneralTensor, RawTypedTensor, StringTensor};

// ---------------------------------------------------------------------------
// Deterministic inputs
// ---------------------------------------------------------------------------

impl Rng {
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
            8 => Column::Str((0..n).map(|_| rng.bytes(utf8)).collect()),
            9 => Column::I8((0..n).map(|_| rng.next() as i8).collect()),
            _ => unreachable!(),
        }
    }
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

/// Walks the response with the protocol-level API of the `thrift` crate
/// ([`common::decode`]); panics if the bytes do not follow the schema.
fn decode_walk(bytes: &[u8]) -> Vec<Record> {
    decode(bytes).unwrap_or_else(|e| panic!("walking our bytes: {e}"))
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
            let bits = v.iter().map(|x| widen_f32(x.to_bits())).collect();
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
                .map(|x| widen_f32(widen_f16(x.to_bits())))
                .collect();
            (Column::F16(v), bits)
        }
        _ => {
            let v: Vec<bf16> = (0..n).map(|_| bf16::from_bits(rng.next() as u16)).collect();
            let bits = v
                .iter()
                .map(|x| widen_f32(widen_bf16(x.to_bits())))
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

/// Outputs over 1 MB (the size where writing strategies such as sharding or
/// staging through a buffer take over): every record must decode to its values.
#[test]
fn continuous_large_outputs_decode_with_apache_thrift() {
    let mut rng = Rng(5);
    // 266-byte records: 4099 of them are 1.09 MB (not a multiple of any power-of-two block).
    for dtype in 0..4 {
        check_continuous(&mut rng, 4099, 16, dtype, false);
    }
    // 26-byte records (K = 1), 40,330 of them: 1.05 MB.
    check_continuous(&mut rng, 40_330, 1, 0, true);
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
                        input.column.row(i * per_row..(i + 1) * per_row, row_shape),
                    )
                })
                .collect()
        })
        .collect()
}

fn tensors(inputs: &[Input]) -> Vec<Tensor<'_>> {
    inputs
        .iter()
        .map(|input| Tensor::new(&input.dims, input.column.data()).unwrap())
        .collect()
}

fn encode_inputs(ids: &[i64], inputs: &[Input]) -> Vec<u8> {
    let key_dims = [ids.len() as i64];
    let keys = Tensor::new(&key_dims, Data::I64(ids)).unwrap();
    encode_tensor_response(&keys, &tensors(inputs)).unwrap()
}

/// Random columns of one dtype with these dims.
fn fixed_inputs(
    rng: &mut Rng,
    dtype: usize,
    dims: impl IntoIterator<Item = Vec<i64>>,
) -> Vec<Input> {
    dims.into_iter()
        .map(|dims| {
            let n = dims.iter().product::<i64>() as usize;
            Input {
                column: Column::random(rng, dtype, n, true),
                dims,
            }
        })
        .collect()
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

/// Outputs over 1 MB with fixed-size records (written block by block): every
/// record must decode to its rows.
#[test]
fn tensor_large_outputs_decode_with_apache_thrift() {
    let mut rng = Rng(6);
    let b = 5003;
    for dtype in (0..DTYPES).filter(|&d| d != STR) {
        let ids = rng.keys(3);
        let inputs = fixed_inputs(
            &mut rng,
            dtype,
            [vec![b as i64, 16], vec![b as i64, 2, 3], vec![b as i64]],
        );
        let bytes = check_tensor(&ids, &inputs, b, true, &format!("large, dtype {dtype}"));
        if dtype == 0 {
            assert!(
                bytes.len() >= 1 << 20,
                "{} bytes: not the staged path",
                bytes.len()
            );
        }
    }
}

/// Records over a megabyte (rows of 1,100,000 elements) are written entry by
/// entry without a template, in shards: every record must decode to its rows.
#[test]
fn tensor_records_over_a_megabyte_decode_with_apache_thrift() {
    let mut rng = Rng(7);
    let b = 4;
    for dtype in [0usize, 4, 6] {
        let ids = rng.keys(3);
        let dims = [
            vec![b as i64, 1_100_000],
            vec![b as i64, 2, 3],
            vec![b as i64],
        ];
        let inputs = fixed_inputs(&mut rng, dtype, dims);
        let bytes = check_tensor(&ids, &inputs, b, true, &format!("huge rows, dtype {dtype}"));
        assert!(
            bytes.len() > b << 20,
            "{} bytes: records under a megabyte",
            bytes.len()
        );
        // The same call in shards on 4 threads: the bytes Apache decoded.
        let key_dims = [ids.len() as i64];
        let keys = Tensor::new(&key_dims, Data::I64(&ids)).unwrap();
        let values = tensors(&inputs);
        let mut sharded = vec![0u8; bytes.len()];
        bpr_protocol::write_tensor_response_with(&keys, &values, &mut sharded, &Threads(4))
            .unwrap();
        assert!(
            sharded == bytes,
            "huge rows, dtype {dtype}: the shards differ"
        );
    }
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

// bpr_protocol::decode against bytes written by Apache Thrift's Rust crate: every DataRecord
// field and GeneralTensor variant, unknown fields skipped, truncation and corruption as errors.

use bpr_thrift_gen::{data, prediction_service, tensor};

use std::collections::{BTreeMap, BTreeSet};

use bpr_protocol::decode::{decode_response, GeneralTensor as G, Record, SparseTensor as S};
use bpr_protocol::{encode_continuous, encode_tensor_response, Data, Tensor};
use proptest::prelude::*;
use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TListIdentifier, TMapIdentifier, TOutputProtocol,
    TSerializable, TStructIdentifier, TType,
};
use thrift::OrderedFloat;

use data::DataRecord;
use prediction_service::BatchPredictionResponse;
use tensor as t;

fn apache_bytes(response: &BatchPredictionResponse) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = TBinaryOutputProtocol::new(&mut out, true);
    response.write_to_out_protocol(&mut p).unwrap();
    out
}

fn of(v: f64) -> OrderedFloat<f64> {
    OrderedFloat(v)
}

/// A record with all nine DataRecord fields and every GeneralTensor variant.
fn full_record() -> DataRecord {
    let shape = Some(vec![2]);
    let mut tensors = BTreeMap::new();
    tensors.insert(
        1,
        t::GeneralTensor::RawTypedTensor(t::RawTypedTensor::new(
            t::DataType::BYTE,
            vec![0xff, 0x01],
            shape.clone(),
        )),
    );
    tensors.insert(
        2,
        t::GeneralTensor::StringTensor(t::StringTensor::new(vec!["a".into(), "".into()], None)),
    );
    tensors.insert(
        3,
        t::GeneralTensor::Int32Tensor(t::Int32Tensor::new(vec![-1, 7], shape.clone())),
    );
    tensors.insert(
        4,
        t::GeneralTensor::Int64Tensor(t::Int64Tensor::new(vec![i64::MIN], None)),
    );
    tensors.insert(
        5,
        t::GeneralTensor::FloatTensor(t::FloatTensor::new(vec![of(0.5)], None)),
    );
    tensors.insert(
        6,
        t::GeneralTensor::DoubleTensor(t::DoubleTensor::new(
            vec![of(-2.0), of(1e300)],
            shape.clone(),
        )),
    );
    tensors.insert(
        7,
        t::GeneralTensor::BoolTensor(t::BoolTensor::new(vec![true, false], shape.clone())),
    );
    tensors.insert(
        8,
        t::GeneralTensor::BinaryTensor(t::BinaryTensor::new(vec![vec![0, 159]], None)),
    );
    let mut sparse = BTreeMap::new();
    sparse.insert(
        9,
        t::SparseTensor::CooSparseTensor(t::COOSparseTensor::new(
            vec![4, 4],
            t::Int64Tensor::new(vec![0, 3], None),
            t::GeneralTensor::DoubleTensor(t::DoubleTensor::new(vec![of(1.5)], None)),
        )),
    );
    DataRecord::new(
        BTreeSet::from([-5, 10]),
        BTreeMap::from([(11, of(0.25)), (12, of(f64::NEG_INFINITY))]),
        BTreeMap::from([(13, -9i64)]),
        BTreeMap::from([(14, "café".to_string())]),
        BTreeMap::from([(15, BTreeSet::from(["x".to_string(), "y".to_string()]))]),
        BTreeMap::from([(16, BTreeMap::from([("w".to_string(), of(3.0))]))]),
        BTreeMap::from([(17, vec![0u8, 1, 2])]),
        tensors,
        sparse,
    )
}

fn full_record_expected() -> Record {
    let shape = Some(vec![2]);
    Record {
        binary: vec![-5, 10],
        continuous: vec![(11, 0.25), (12, f64::NEG_INFINITY)],
        discrete: vec![(13, -9)],
        strings: vec![(14, "café".as_bytes().to_vec())],
        sparse_binary: vec![(15, vec![b"x".to_vec(), b"y".to_vec()])],
        sparse_continuous: vec![(16, vec![(b"w".to_vec(), 3.0)])],
        blobs: vec![(17, vec![0, 1, 2])],
        tensors: vec![
            (
                1,
                G::Raw {
                    data_type: 6,
                    content: vec![0xff, 0x01],
                    shape: shape.clone(),
                },
            ),
            (2, G::Strings(vec![b"a".to_vec(), vec![]], None)),
            (3, G::Int32(vec![-1, 7], shape.clone())),
            (4, G::Int64(vec![i64::MIN], None)),
            (5, G::Float(vec![0.5], None)),
            (6, G::Double(vec![-2.0, 1e300], shape.clone())),
            (7, G::Bool(vec![true, false], shape)),
            (8, G::Binary(vec![vec![0, 159]], None)),
        ],
        sparse_tensors: vec![(
            9,
            S::Coo {
                dense_shape: vec![4, 4],
                indices: G::Int64(vec![0, 3], None),
                values: G::Double(vec![1.5], None),
            },
        )],
    }
}

#[test]
fn every_datarecord_field_written_by_apache_thrift_is_decoded() {
    let response = BatchPredictionResponse::new(vec![full_record(), DataRecord::default()]);
    let records = decode_response(&apache_bytes(&response)).unwrap();
    assert_eq!(records, vec![full_record_expected(), Record::default()]);
}

#[test]
fn our_writers_decode_to_their_inputs() {
    let keys = Tensor::new(&[2], Data::I64(&[1001, -7])).unwrap();
    let values = Tensor::new(&[2, 2], Data::F32(&[0.25, -0.0, f32::INFINITY, 1.5])).unwrap();
    let records = decode_response(&encode_continuous(&keys, &values).unwrap()).unwrap();
    let continuous: Vec<_> = records.iter().map(|r| r.continuous.clone()).collect();
    assert_eq!(
        continuous,
        vec![
            vec![(1001, 0.25), (-7, -0.0)],
            vec![(1001, f64::INFINITY), (-7, 1.5)]
        ]
    );
    assert!((records[0].continuous[1].1).is_sign_negative());

    let values = [
        Tensor::new(&[1, 2], Data::I32(&[3, -4])).unwrap(),
        Tensor::new(&[1], Data::F64(&[2.5])).unwrap(),
    ];
    let records = decode_response(&encode_tensor_response(&keys, &values).unwrap()).unwrap();
    assert_eq!(
        records[0].tensors,
        vec![
            (
                1001,
                G::Raw {
                    data_type: 2,
                    content: [3i32.to_le_bytes(), (-4i32).to_le_bytes()].concat(),
                    shape: Some(vec![2]),
                }
            ),
            (
                -7,
                G::Raw {
                    data_type: 1,
                    content: 2.5f64.to_le_bytes().to_vec(),
                    shape: Some(vec![]),
                }
            ),
        ]
    );
}

/// Writes a field of every Thrift type with id `id`, which the schema does not know.
fn unknown_fields(p: &mut dyn TOutputProtocol, id: i16) {
    let f = |ty, n| TFieldIdentifier::new("unknown", ty, n);
    p.write_field_begin(&f(TType::Bool, id)).unwrap();
    p.write_bool(true).unwrap();
    p.write_field_end().unwrap();
    p.write_field_begin(&f(TType::I16, id + 1)).unwrap();
    p.write_i16(-3).unwrap();
    p.write_field_end().unwrap();
    p.write_field_begin(&f(TType::Map, id + 2)).unwrap();
    p.write_map_begin(&TMapIdentifier::new(TType::String, TType::List, 1))
        .unwrap();
    p.write_string("k").unwrap();
    p.write_list_begin(&TListIdentifier::new(TType::Double, 2))
        .unwrap();
    p.write_double(1.0).unwrap();
    p.write_double(2.0).unwrap();
    p.write_list_end().unwrap();
    p.write_map_end().unwrap();
    p.write_field_end().unwrap();
    p.write_field_begin(&f(TType::Struct, id + 3)).unwrap();
    p.write_struct_begin(&TStructIdentifier::new("Future"))
        .unwrap();
    p.write_field_begin(&f(TType::I08, 1)).unwrap();
    p.write_i8(5).unwrap();
    p.write_field_end().unwrap();
    p.write_field_stop().unwrap();
    p.write_struct_end().unwrap();
    p.write_field_end().unwrap();
}

#[test]
fn unknown_fields_and_mistyped_known_ids_are_skipped() {
    // A newer producer's response: unknown fields at every level, and a known id
    // (continuousFeatures, 2) with another type, which Thrift readers skip.
    let mut out = Vec::new();
    {
        let p: &mut dyn TOutputProtocol = &mut TBinaryOutputProtocol::new(&mut out, true);
        p.write_struct_begin(&TStructIdentifier::new("BatchPredictionResponse"))
            .unwrap();
        unknown_fields(p, 20);
        p.write_field_begin(&TFieldIdentifier::new("predictions", TType::List, 1))
            .unwrap();
        p.write_list_begin(&TListIdentifier::new(TType::Struct, 1))
            .unwrap();
        // DataRecord
        p.write_struct_begin(&TStructIdentifier::new("DataRecord"))
            .unwrap();
        unknown_fields(p, 30);
        p.write_field_begin(&TFieldIdentifier::new("continuousFeatures", TType::I32, 2))
            .unwrap();
        p.write_i32(77).unwrap();
        p.write_field_end().unwrap();
        p.write_field_begin(&TFieldIdentifier::new("tensors", TType::Map, 8))
            .unwrap();
        p.write_map_begin(&TMapIdentifier::new(TType::I64, TType::Struct, 1))
            .unwrap();
        p.write_i64(42).unwrap();
        // GeneralTensor with an unknown variant first, then rawTypedTensor with an extra field.
        p.write_struct_begin(&TStructIdentifier::new("GeneralTensor"))
            .unwrap();
        unknown_fields(p, 40);
        p.write_field_begin(&TFieldIdentifier::new("rawTypedTensor", TType::Struct, 1))
            .unwrap();
        p.write_struct_begin(&TStructIdentifier::new("RawTypedTensor"))
            .unwrap();
        unknown_fields(p, 50);
        p.write_field_begin(&TFieldIdentifier::new("dataType", TType::I32, 1))
            .unwrap();
        p.write_i32(0).unwrap();
        p.write_field_end().unwrap();
        p.write_field_begin(&TFieldIdentifier::new("content", TType::String, 2))
            .unwrap();
        p.write_bytes(&1.5f32.to_le_bytes()).unwrap();
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
        p.write_map_end().unwrap();
        p.write_field_end().unwrap();
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
        p.write_list_end().unwrap();
        p.write_field_end().unwrap();
        unknown_fields(p, 60);
        p.write_field_stop().unwrap();
        p.write_struct_end().unwrap();
    }
    let records = decode_response(&out).unwrap();
    let expected = Record {
        tensors: vec![(
            42,
            G::Raw {
                data_type: 0,
                content: 1.5f32.to_le_bytes().to_vec(),
                shape: None,
            },
        )],
        ..Record::default()
    };
    assert_eq!(records, vec![expected]);
}

#[test]
fn every_truncation_and_trailing_byte_is_an_error() {
    let bytes = apache_bytes(&BatchPredictionResponse::new(vec![full_record()]));
    for n in 0..bytes.len() {
        let err = decode_response(&bytes[..n]).expect_err("a prefix decoded");
        assert!(err.message().contains("truncated"), "prefix {n}: {err}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let err = decode_response(&longer).unwrap_err();
    assert!(err.message().contains("1 bytes after the end"), "{err}");
}

#[test]
fn a_huge_count_is_an_error_not_an_allocation() {
    // predictions: list<struct> claiming 2^31 - 1 records in 8 bytes.
    let bytes = [0x0f, 0x00, 0x01, 0x0c, 0x7f, 0xff, 0xff, 0xff, 0x00];
    let err = decode_response(&bytes).unwrap_err();
    assert!(err.message().contains("claims 2147483647 items"), "{err}");
    let negative = [0x0f, 0x00, 0x01, 0x0c, 0xff, 0xff, 0xff, 0xff, 0x00];
    let err = decode_response(&negative).unwrap_err();
    assert!(err.message().contains("negative size, -1"), "{err}");
}

#[test]
fn deep_nesting_in_unknown_fields_is_bounded() {
    // Field 5 of type list<list<list<...>>> nested 100 deep.
    let mut bytes = vec![0x0f, 0x00, 0x05];
    for _ in 0..100 {
        bytes.extend([0x0f, 0x00, 0x00, 0x00, 0x01]);
    }
    let err = decode_response(&bytes).unwrap_err();
    assert!(err.message().contains("nests deeper than 64"), "{err}");
}

proptest! {
    #[test]
    fn corrupted_responses_never_panic(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = apache_bytes(&BatchPredictionResponse::new(vec![full_record()]));
        for (at, byte) in flips {
            let n = bytes.len();
            bytes[at % n] = byte;
        }
        let _ = decode_response(&bytes);
    }
}

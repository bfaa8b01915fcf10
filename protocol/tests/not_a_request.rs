// Bytes that are not a BatchPredictionRequest at all (a DataRecord written by
// Apache Thrift's Rust crate, text, JSON, random bytes, nothing) get an error
// that says so, not only "field 25964 has Thrift type code 104" (issue 29);
// a malformed request keeps its precise message without that note. A
// BatchPredictionResponse has a request's layout (field 1, a list of
// DataRecords) and reads as one: pinned here, documented in the README.
#![allow(clippy::field_reassign_with_default)] // the generated structs have nine optional fields

use bpr_thrift_gen::{data, prediction_service};

use std::collections::{BTreeMap, BTreeSet};

use bpr_protocol::request::{Attr, RequestOp};
use thrift::protocol::{TBinaryOutputProtocol, TSerializable};
use thrift::OrderedFloat;

use data::DataRecord;
use prediction_service::{BatchPredictionRequest, BatchPredictionResponse};

const NOTE: &str = "(these bytes do not start like a Thrift binary-protocol BatchPredictionRequest";

fn apache<T: TSerializable>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut protocol = TBinaryOutputProtocol::new(&mut out, true);
    value.write_to_out_protocol(&mut protocol).unwrap();
    out
}

fn decode(message: &[u8]) -> Result<(), String> {
    let op = RequestOp::new(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&[])),
            ("keep_codes", Attr::Ints(&[])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    )
    .unwrap();
    op.decode(&[message], false)
        .map(|_| ())
        .map_err(|e| e.message().to_string())
}

fn record() -> DataRecord {
    let mut r = DataRecord::default();
    r.binary_features = Some(BTreeSet::from([7]));
    r.continuous_features = Some(BTreeMap::from([(1, OrderedFloat(0.5))]));
    r
}

#[test]
fn data_records_text_and_random_bytes_are_said_not_to_be_requests() {
    let mut continuous_only = DataRecord::default();
    continuous_only.binary_features = None; // the generated default writes an empty set
    continuous_only.continuous_features = Some(BTreeMap::from([(1, OrderedFloat(0.5))]));
    let random: Vec<u8> = (0u32..64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, Vec<u8>, &str); 6] = [
        // Field 1 of a DataRecord is binaryFeatures, a set<i64>.
        (
            "a DataRecord",
            apache(&record()),
            "individualFeaturesList (field 1) must be a list<DataRecord>, found a set",
        ),
        // Field 2 of a DataRecord is continuousFeatures, a map.
        (
            "a DataRecord without binary features",
            apache(&continuous_only),
            "commonFeatures (field 2) must be a DataRecord, found a map",
        ),
        (
            "text",
            b"hello, this is not thrift".to_vec(),
            "which is no type",
        ),
        ("JSON", br#"{"individualFeaturesList": []}"#.to_vec(), ""),
        ("random bytes", random, ""),
        ("nothing", Vec::new(), "needs 1 more bytes"),
    ];
    for (what, bytes, detail) in cases {
        let e = decode(&bytes).expect_err(what);
        assert!(e.contains(NOTE), "{what}: {e}");
        assert!(e.contains(detail), "{what}: {e}");
        assert!(
            e.starts_with("DecodeBatchPredictionRequestV2: input_bytes at byte "),
            "{what}: {e}"
        );
    }
}

#[test]
fn a_malformed_request_keeps_its_message_without_the_note() {
    let request = BatchPredictionRequest::new(vec![record()], None::<DataRecord>);
    let mut bytes = apache(&request);
    decode(&bytes).expect("the request itself decodes");
    // Truncated inside its record: a request, but broken.
    bytes.truncate(bytes.len() - 4);
    let e = decode(&bytes).expect_err("truncated");
    assert!(!e.contains(NOTE), "{e}");
    assert!(e.contains("individualFeaturesList[0]"), "{e}");
}

#[test]
fn a_response_has_a_requests_layout_and_reads_as_one() {
    let response = BatchPredictionResponse::new(vec![record(), DataRecord::default()]);
    decode(&apache(&response)).expect("field 1, a list of DataRecords, is a request's layout");
}
